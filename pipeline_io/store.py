"""The layer store: a local folder or an s3:// prefix (paths: `layout`, tables: `delta`).

The layers' data are Delta tables; what this module writes is the small JSON beside them
(reports, metadata), each to a temporary name and then renamed (local) or uploaded in a
single put (object storage), so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pipeline_core.config import PipelineConfig, S3Settings
from pipeline_core.errors import StorageError
from pipeline_io.atomic import write_bytes_atomic
from pipeline_io.s3 import is_s3, polars_storage_options, s3_filesystem, s3_settings_from_env, unreachable

log = logging.getLogger(__name__)


class Store:
    """Paths and atomic reads/writes under one root (local folder or s3://bucket/prefix)."""

    def __init__(self, root: str, s3: S3Settings | None = None) -> None:
        self.s3_settings = s3 or S3Settings()
        self.remote = is_s3(root)
        if root.startswith(("http://", "https://")):
            raise StorageError(f"store.root {root!r}: use a local folder or an s3:// URI")
        self.root = root.rstrip("/") if self.remote else str(Path(root).expanduser().resolve())
        self._fs: Any = None

    # -- locations -------------------------------------------------------------------
    def uri(self, *parts: str) -> str:
        return "/".join([self.root, *[p.strip("/") for p in parts]])

    def relative(self, uri: str) -> str:
        """``uri`` relative to the root: what the store's own records hold, so the store can be moved."""
        prefix = self.root + "/"
        if not uri.startswith(prefix):
            raise ValueError(f"{uri} is not under the store root {self.root}")
        return uri[len(prefix):]

    @property
    def fs(self) -> Any:
        if self._fs is None:
            if self.remote:
                self._fs = s3_filesystem(self.s3_settings)
            else:
                import fsspec

                self._fs = fsspec.filesystem("file")
        return self._fs

    @property
    def polars_options(self) -> dict[str, str] | None:
        return polars_storage_options(self.s3_settings) if self.remote else None

    def check_reachable(self) -> None:
        """Fail early, and clearly, when the bucket is missing or unreachable."""
        if not self.remote:
            try:
                Path(self.root).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"store.root {self.root}: cannot create folder ({exc.strerror})") from None
            return
        bucket = self.root[len("s3://"):].split("/", 1)[0]
        try:
            ok = self.fs.exists(bucket)
        except Exception as exc:  # botocore raises many types for one cause
            raise StorageError(f"store.root {self.root}: cannot reach bucket '{bucket}' ({exc})") from None
        if not ok:
            # s3fs reports an endpoint that does not answer as a missing bucket: tell them apart
            endpoint = s3_settings_from_env(self.s3_settings)["endpoint"]
            if endpoint and (why := unreachable(endpoint)):
                raise StorageError(f"store.root {self.root}: the S3 endpoint {endpoint} does not answer ({why}); "
                                   "start it, or fix store.s3.endpoint_url / AWS_ENDPOINT_URL")
            try:  # s3fs also reports a bucket these credentials may not read as missing: listing it tells
                self.fs.ls(bucket, refresh=True)
            except PermissionError:
                raise StorageError(f"store.root {self.root}: access to bucket '{bucket}' denied; check the credentials "
                                   "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE)") from None
            except Exception:  # missing indeed: said below
                pass
            raise StorageError(f"store.root {self.root}: bucket '{bucket}' does not exist; create it or fix store.root")

    # -- reads -----------------------------------------------------------------------
    def exists(self, uri: str) -> bool:
        return bool(self.fs.exists(uri))

    def read_json(self, uri: str) -> Any:
        try:
            with self.fs.open(uri, "rb") as fh:
                return json.loads(fh.read())
        except FileNotFoundError:
            raise StorageError(f"{uri} not found; run the stage that writes it first") from None

    # -- writes (atomic) -------------------------------------------------------------
    def write_json(self, uri: str, data: Any) -> None:
        payload = json.dumps(data, indent=2, sort_keys=False, default=str).encode()
        self.write_bytes(uri, payload)

    def write_text(self, uri: str, text: str) -> None:
        self.write_bytes(uri, text.encode())

    def write_bytes(self, uri: str, payload: bytes) -> None:
        if self.remote:
            self.fs.pipe_file(uri, payload)  # one PUT: the object appears whole or not at all
            return
        write_bytes_atomic(uri, payload)

    def remove(self, uri: str) -> None:
        if self.exists(uri):
            self.fs.rm(uri, recursive=True)


def open_store(config: PipelineConfig) -> Store:
    """The configured store, checked to be reachable."""
    store = Store(config.store.root, config.store.s3)
    store.check_reachable()
    return store


def open_existing_store(config: PipelineConfig) -> Store:
    """The configured store for commands that read or look after it: a root that does not exist (a local
    folder, or an S3 prefix with nothing under it) is an error, most likely a mistyped store.root, not a new empty store."""
    store = Store(config.store.root, config.store.s3)
    if not store.remote and not Path(store.root).is_dir():
        raise StorageError(f"store.root {store.root}: no such folder; check store.root, or run `pipeline-cli run` to create the store")
    store.check_reachable()
    if store.remote and not store.exists(store.root):
        raise StorageError(f"store.root {store.root}: nothing is stored under this prefix; check store.root, "
                           "or run `pipeline-cli run` to create the store")
    return store
