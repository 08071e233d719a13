"""Credentials never leave the process that was given them: one helper for every place a URL is shown or stored.

A URL may carry a secret in its userinfo (``https://user:pass@host``, ``postgresql://u:p@db``) or in a
credential-like query parameter (``?token=...``, ``X-Amz-Signature=...``). `redact` masks both in any
text; the config serializes its locations through it, lineage columns and records store its output,
and `install_log_redaction` applies it to every log record the process creates (console, log file,
Prefect's API log handler).

A location with a secret that is passed to a flow as a parameter (Prefect stores parameters in its
database) goes through `conceal`: the flow receives the redacted text and the fetching edge calls
`reveal`, which finds the original in this process's memory only.
"""

from __future__ import annotations

import logging
import re

MASK = "***"

# userinfo: everything between "scheme://" and the first "@" before the host's path
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s'\"]+@")
# an already masked value stays as it is (redacting twice must not eat the text after the mask)
_CREDENTIAL_PARAM = re.compile(
    r"(?P<name>[?&;][^=&#\s'\"]*(?:token|key|secret|passw|pwd|sig|credential|auth|session)[^=&#\s'\"]*=)(?:\*\*\*|[^&#;\s'\"]+)",
    re.IGNORECASE,
)

_VAULT: dict[str, str] = {}


def redact(text: str) -> str:
    """``text`` with every URL's userinfo and credential-like query values replaced by ``***``."""
    if "://" not in text and "=" not in text:
        return text
    return _CREDENTIAL_PARAM.sub(rf"\g<name>{MASK}", _USERINFO.sub(rf"\g<scheme>{MASK}@", text))


def redact_optional(text: str | None) -> str | None:
    return None if text is None else redact(text)


def conceal(location: str) -> str:
    """The redacted form of ``location``, remembered in this process so that `reveal` gives the original back."""
    shown = redact(location)
    if shown != location:
        _VAULT[shown] = location
    return shown


def reveal(location: str) -> str:
    """The original of a location `conceal` redacted in this process; any other text unchanged."""
    return _VAULT.get(location, location)


class _RedactingFactory:
    def __init__(self, inner: logging.LogRecordFactory) -> None:  # type: ignore[name-defined]
        self.inner = inner

    def __call__(self, *args: object, **kwargs: object) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call is logging's to report, with its own message
            return record
        shown = redact(message)
        if shown != message:
            record.msg, record.args = shown, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record


def install_log_redaction() -> None:
    """Redact every log record created from now on in this process (idempotent)."""
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _RedactingFactory):
        logging.setLogRecordFactory(_RedactingFactory(factory))
