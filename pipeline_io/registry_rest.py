"""Reading the model registry over the REST API of a running MLflow server.

The commands that only read the registry (`models list`, `describe`, `history`) answer from the
MLflow server that `pipeline-cli server start --mlflow` runs on the same store: its documented REST
API needs neither `import mlflow` nor opening the SQLite store, which are nearly all of such a
command's time. Results are shaped like the `MlflowClient` objects those commands read; writes
always go through `MlflowClient`. Standard library only,
so the commands stay light.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from types import SimpleNamespace
from typing import Any


def healthy(url: str, timeout: float = 2.0) -> bool:
    """Whether a server's health endpoint ``url`` answers with success."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback URL we built
            return 200 <= response.status < 300
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
        return False


class ServerUnavailable(Exception):
    """The server did not answer as expected; the caller falls back to the store itself."""


class RestRegistry:
    """The `MlflowClient` reads of the `models` listing commands, answered by an MLflow server at ``url``."""

    def __init__(self, url: str, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def search_registered_models(self, max_results: int = 1000, page_token: str | None = None) -> list[SimpleNamespace]:
        """Every registered model (all pages; the arguments are MlflowClient's, for one caller's code)."""
        return [_registered_model(m) for m in self._pages("registered-models/search", "registered_models", {"max_results": 1000})]

    def get_registered_model(self, name: str) -> SimpleNamespace:
        return _registered_model(self._get("registered-models/get", {"name": name})["registered_model"])

    def search_model_versions(self, filter_string: str) -> list[SimpleNamespace]:
        return [SimpleNamespace(name=v["name"], version=v["version"], run_id=v.get("run_id"), creation_timestamp=int(v["creation_timestamp"]),
                                tags={t["key"]: t["value"] for t in v.get("tags", [])})
                for v in self._pages("model-versions/search", "model_versions", {"filter": filter_string, "max_results": 10000})]

    def get_run(self, run_id: str) -> SimpleNamespace:
        metrics = self._get("runs/get", {"run_id": run_id})["run"].get("data", {}).get("metrics", [])
        # NaN and infinities arrive as the strings "NaN" and "Infinity"; float() reads both, as MlflowClient does
        return SimpleNamespace(data=SimpleNamespace(metrics={m["key"]: float(m["value"]) for m in metrics}))

    def _pages(self, endpoint: str, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = None
        while True:
            page = self._get(endpoint, {**params, **({"page_token": token} if token else {})})
            items.extend(page.get(key, []))
            token = page.get("next_page_token")
            if not token:
                return items

    def _get(self, endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.url}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:  # noqa: S310 - the server `server start` runs
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":  # a missing model or run: the caller's error to report
                raise LookupError(f"{endpoint}: {params} does not exist") from None
            raise ServerUnavailable(f"{url}: {exc}") from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            raise ServerUnavailable(f"{url}: {exc}") from exc


def _error_code(exc: urllib.error.HTTPError) -> str | None:
    try:
        return json.loads(exc.read()).get("error_code")
    except (ValueError, OSError, http.client.HTTPException, AttributeError):
        return None


def _registered_model(data: dict[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(name=data["name"], aliases={a["alias"]: a["version"] for a in data.get("aliases", [])})
