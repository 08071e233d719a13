"""Raw sources: fetch a local path, HTTP(S) URL or s3:// object to a local file and scan it.

Fetching and parsing are separate so that retries wrap only the network part, and so that
every source, wherever it lives, is fingerprinted from the same local bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from pathlib import Path

import polars as pl

from pipeline_core.config import DatasetConfig, HttpSettings, S3Settings
from pipeline_core.errors import ConfigError, DataError, StorageError, TransientSourceError, first_line
from pipeline_core.redaction import redact, reveal
from pipeline_io.atomic import atomic_path

log = logging.getLogger(__name__)

_EXTENSIONS = {
    ".csv": "csv", ".txt": "csv", ".tsv": "csv", ".gz": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".sqlite": "sqlite", ".sqlite3": "sqlite", ".db": "sqlite",
}


def detect_format(source: str, declared: str = "auto") -> str:
    if declared != "auto":
        return declared
    path = source.split("?", 1)[0].lower()
    for ext, fmt in _EXTENSIONS.items():
        if path.endswith(ext):
            return fmt
    raise DataError(f"{redact(source)}: cannot tell the format from the extension; set dataset.format to csv, parquet or sqlite")


def file_fingerprint(path: str | os.PathLike[str], extra: str = "") -> str:
    """sha256 of the file's bytes (plus ``extra``, e.g. the SQLite table read)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    h.update(extra.encode())
    return h.hexdigest()


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"


def http_headers(http: HttpSettings, source: str, url: str) -> dict[str, str]:
    """The configured ``headers_from_env``, read from the environment now, for a URL on ``source``'s host
    (a token meant for the source's server is never sent to another)."""
    if not http.headers_from_env or _host(url) != _host(source):
        return {}
    missing = [f"{name} (from {var})" for name, var in http.headers_from_env.items() if not os.environ.get(var)]
    if missing:
        raise ConfigError(f"dataset.http.headers_from_env: environment variable(s) for header {', '.join(missing)} not set; "
                          "export them before the run")
    return {name: os.environ[var] for name, var in http.headers_from_env.items()}


def fetch_http(url: str, dest: Path, timeout: float, headers: dict[str, str] | None = None) -> Path:
    """Download one URL; 5xx and connection errors are transient, 4xx are final."""
    import httpx

    shown = redact(url)
    try:
        with httpx.stream("GET", url, headers=headers, timeout=timeout, follow_redirects=True) as resp, atomic_path(dest) as tmp:
            if resp.status_code >= 500 or resp.status_code == 429:
                raise TransientSourceError(f"{shown}: server answered HTTP {resp.status_code} (a transient failure: retried up to dataset.http.retries times)")
            if resp.status_code >= 400:
                hint = "check dataset.source and dataset.http.headers_from_env" if resp.status_code in (401, 403) else "check the URL"
                raise StorageError(f"{shown}: HTTP {resp.status_code} {resp.reason_phrase}; {hint} (not retried)")
            with open(tmp, "wb") as fh:
                for chunk in resp.iter_bytes(1 << 20):
                    fh.write(chunk)
    except (httpx.TransportError, httpx.TimeoutException) as exc:
        raise TransientSourceError(f"{shown}: {type(exc).__name__}: {redact(str(exc))} (a transient failure: retried up to dataset.http.retries times)") from None
    return dest


def fetch_s3(uri: str, dest: Path, s3: S3Settings) -> Path:
    from pipeline_io.s3 import s3_filesystem

    fs = s3_filesystem(s3)
    try:
        fs.get_file(uri, str(dest))
    except FileNotFoundError:
        raise DataError(f"{uri}: no such object (check the bucket and key in dataset.source)") from None
    except PermissionError as exc:
        raise StorageError(f"{uri}: access denied ({exc})") from None
    except OSError as exc:
        raise TransientSourceError(f"{uri}: {exc} (a transient failure: retried)") from None
    except Exception as exc:
        from botocore.exceptions import ConnectionError as EndpointDown

        if isinstance(exc, EndpointDown):  # not an OSError: an endpoint that does not answer
            raise TransientSourceError(f"{uri}: the S3 endpoint does not answer ({first_line(exc)}); start it, or fix "
                                       "store.s3.endpoint_url / AWS_ENDPOINT_URL (a transient failure: retried)") from None
        raise
    return dest


def fetch_to_local(uri: str, s3: S3Settings, staging: Path, timeout: float, what: str, hint: str = "",
                   headers: dict[str, str] | None = None) -> Path:
    """A local path holding the bytes of ``uri`` (the file itself when it is local; a location
    `pipeline_core.redaction.conceal` redacted is fetched from its original); ``what`` and ``hint``
    word the error for a missing local file."""
    uri = reveal(uri)
    if uri.startswith(("http://", "https://")):
        staging.mkdir(parents=True, exist_ok=True)
        return fetch_http(uri, staging / (Path(uri.split("?", 1)[0]).name or "download"), timeout, headers)
    if uri.startswith("s3://"):
        staging.mkdir(parents=True, exist_ok=True)
        return fetch_s3(uri, staging / Path(uri).name, s3)
    path = Path(uri).expanduser()
    if not path.exists():
        raise DataError(f"{path}: {what} not found{hint}")
    if not path.is_file():
        raise DataError(f"{path}: {what} is not a file")
    return path


def fetch_source(dataset: DatasetConfig, s3: S3Settings, staging: Path) -> Path:
    """The configured source as a local file."""
    headers = http_headers(dataset.http, dataset.source, dataset.source)
    return fetch_to_local(dataset.source, s3, staging, dataset.http.timeout_seconds, "source file", " (check dataset.source)", headers)


def read_only_uri(path: Path) -> str:
    """A read-only SQLite URI for a file, percent-encoded: a '#' or '?' in the path stays part of the name."""
    return Path(path).resolve().as_uri() + "?mode=ro"


def sqlite_tables(path: Path, shown: str | None = None) -> list[str]:
    try:
        with sqlite3.connect(read_only_uri(path), uri=True) as conn:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name").fetchall()
    except sqlite3.DatabaseError as exc:
        raise DataError(f"{shown or path}: not a readable SQLite database ({exc})") from None
    return [r[0] for r in rows]


def choose_table(path: Path, table: str | None, shown: str | None = None) -> str:
    name = shown or str(path)
    tables = sqlite_tables(path, name)
    if not tables:
        raise DataError(f"{name}: SQLite database has no tables")
    if table is None:
        if len(tables) > 1:
            raise DataError(f"{name}: several tables {tables}; set dataset.table to one of them")
        return tables[0]
    if table not in tables:
        raise DataError(f"{name}: no table '{table}' (dataset.table); tables are {tables}")
    return table


def scan_source(path: Path, fmt: str, table: str | None = None, separator: str = ",", allow_empty: bool = False,
                shown: str | None = None) -> pl.LazyFrame:
    """The raw rows, as they are: CSV columns stay text so that nothing is lost at ingest.

    ``allow_empty`` accepts a header (or table) without rows, e.g. an empty inference batch. ``shown`` is
    what messages call the file (the source the user named, where ``path`` is a download of it). A
    ``.tsv`` file is read tab-separated unless another separator than the default is configured.
    """
    name = shown or str(path)
    if fmt == "csv" and separator == "," and path.name.lower().endswith(".tsv"):
        separator = "\t"
    if path.stat().st_size == 0:
        raise DataError(f"{name}: file is empty")
    if fmt == "csv":
        try:
            head = pl.read_csv(path, n_rows=1, infer_schema=False, separator=separator)
        except pl.exceptions.NoDataError:
            raise DataError(f"{name}: file is empty") from None
        except pl.exceptions.ComputeError as exc:
            raise DataError(f"{name}: not a readable CSV file ({first_line(exc)}); save it as UTF-8 CSV") from None
        if head.height == 0 and not allow_empty:
            raise DataError(f"{name}: CSV has a header but no rows")
        header = pl.read_csv(path, n_rows=1, has_header=False, infer_schema=False, separator=separator).row(0)
        repeated = sorted({col for col in header if header.count(col) > 1}, key=str)
        if repeated:
            raise DataError(f"{name}: column {', '.join(repr(n) for n in repeated)} appears more than once in the header; "
                            "rename the copies so each column has one name")
        return pl.scan_csv(path, infer_schema=False, separator=separator)
    if fmt == "parquet":
        try:
            schema = pl.read_parquet_schema(path)
        except Exception as exc:  # pyarrow and polars raise different types for a corrupt file
            raise DataError(f"{name}: not a readable Parquet file ({first_line(exc)})") from None
        nested = [f"{col} ({dtype})" for col, dtype in schema.items() if dtype.is_nested()]
        if nested:
            raise DataError(f"{name}: nested column(s) {', '.join(nested)}: the pipeline reads flat tables; "
                            "flatten or drop them before ingest (e.g. one column per struct field)")
        return pl.scan_parquet(path)
    if fmt == "sqlite":
        chosen = choose_table(path, table, name)
        # The name was checked against sqlite_master above; quoting keeps odd names intact.
        query = 'SELECT * FROM "{}"'.format(chosen.replace('"', '""'))
        with sqlite3.connect(read_only_uri(path), uri=True) as conn:
            frame = pl.read_database(query, conn, infer_schema_length=None)
        if frame.height == 0 and not allow_empty:
            raise DataError(f"{name}: table '{chosen}' has no rows")
        return frame.lazy()
    raise DataError(f"{name}: unsupported format '{fmt}'")

