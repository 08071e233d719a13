"""Reading the model registry over the REST API of a running MLflow server.

Commands that only read the registry (`models list`) answer from the MLflow server that
`pipeline-cli server start --mlflow` runs on the same store: its documented REST API needs neither
`import mlflow` nor opening the SQLite store, which are nearly all of such a command's time.
Only what `registry.list_models` reads is offered; everything else goes through `MlflowClient`.
Standard library only, so the command stays light.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from types import SimpleNamespace
from typing import Any


class ServerUnavailable(Exception):
    """The server did not answer as expected; the caller falls back to the store itself."""


class RestRegistry:
    """The two `MlflowClient` searches `list_models` uses, answered by an MLflow server at ``url``."""

    def __init__(self, url: str, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def search_registered_models(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(name=m["name"], aliases={a["alias"]: a["version"] for a in m.get("aliases", [])})
                for m in self._pages("registered-models/search", "registered_models", {"max_results": 1000})]

    def search_model_versions(self, filter_string: str) -> list[SimpleNamespace]:
        return [SimpleNamespace(name=v["name"], version=v["version"])
                for v in self._pages("model-versions/search", "model_versions", {"filter": filter_string, "max_results": 10000})]

    def _pages(self, endpoint: str, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = None
        while True:
            query = urllib.parse.urlencode({**params, **({"page_token": token} if token else {})})
            page = self._get(f"{self.url}/api/2.0/mlflow/{endpoint}?{query}")
            items.extend(page.get(key, []))
            token = page.get("next_page_token")
            if not token:
                return items

    def _get(self, url: str) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:  # noqa: S310 - the server `server start` runs
                return json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ServerUnavailable(f"{url}: {exc}") from exc
