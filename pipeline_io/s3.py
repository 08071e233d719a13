"""Object storage: which URIs are remote, and S3 settings from the config and the standard AWS variables."""

from __future__ import annotations

import os
from typing import Any

from pipeline_core.config import S3Settings


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def is_remote(uri: str) -> bool:
    return uri.startswith(("s3://", "http://", "https://"))


def s3_settings_from_env(s3: S3Settings) -> dict[str, str | None]:
    endpoint = s3.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = s3.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return {
        "endpoint": endpoint,
        "region": region,
        "key": os.environ.get("AWS_ACCESS_KEY_ID"),
        "secret": os.environ.get("AWS_SECRET_ACCESS_KEY"),
        "token": os.environ.get("AWS_SESSION_TOKEN"),
    }


def polars_storage_options(s3: S3Settings) -> dict[str, str]:
    """Options for polars' native object-store reader."""
    env = s3_settings_from_env(s3)
    opts = {"aws_region": env["region"] or "us-east-1"}
    if env["endpoint"]:
        opts["aws_endpoint_url"] = env["endpoint"]
        if env["endpoint"].startswith("http://"):
            opts["aws_allow_http"] = "true"
    for ours, theirs in (("key", "aws_access_key_id"), ("secret", "aws_secret_access_key"), ("token", "aws_session_token")):
        if env[ours]:
            opts[theirs] = env[ours]
    return opts


def s3_filesystem(s3: S3Settings) -> Any:
    """An s3fs filesystem for listing, small reads and uploads."""
    import s3fs

    env = s3_settings_from_env(s3)
    client_kwargs: dict[str, Any] = {"region_name": env["region"]}
    if env["endpoint"]:
        client_kwargs["endpoint_url"] = env["endpoint"]
    # A fresh instance each time: s3fs caches listings per instance, and the store must see
    # objects written by other processes.
    return s3fs.S3FileSystem(
        key=env["key"], secret=env["secret"], token=env["token"], client_kwargs=client_kwargs,
        skip_instance_cache=True, use_listings_cache=False, config_kwargs={"retries": {"max_attempts": 3}},
    )


def unreachable(endpoint: str, timeout: float = 5.0) -> str | None:
    """Why a TCP connection to an endpoint URL's host and port fails, or None when it connects."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__
