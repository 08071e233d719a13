"""Output locations: templates filled with a run's time, so that every run writes its own file."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from pipeline_core.errors import ConfigError

PLACEHOLDER = "scheduled_start"
DEFAULT_FILE_NAME = "predictions-{scheduled_start:%Y%m%dT%H%M%SZ}.parquet"
_FIELD = re.compile(r"\{" + PLACEHOLDER + r"(?::([^{}]*))?\}")


def run_output_uri(template: str, scheduled_start: datetime) -> str:
    """Fill ``{scheduled_start:<strftime>}`` with the run's scheduled time in UTC.

    A template ending in '/' is a folder and gets ``predictions-<YYYYmmddTHHMMSSZ>.parquet``.
    Anything else without the placeholder is refused: every scheduled run must write its own
    file, and a retried run must write the same one. Other ``{...}`` fields are left as they are
    for the inference flow to fill.
    """
    if template.endswith("/"):
        template += DEFAULT_FILE_NAME
    if not _FIELD.search(template):
        raise ConfigError(
            f"output_uri {template!r}: add {{{PLACEHOLDER}:%Y%m%dT%H%M%SZ}} or end it with '/' so that each run writes its own file"
        )
    when = scheduled_start.astimezone(timezone.utc) if scheduled_start.tzinfo else scheduled_start.replace(tzinfo=timezone.utc)
    return _FIELD.sub(lambda m: when.strftime(m.group(1) or "%Y%m%dT%H%M%SZ"), template)


def fill_output_template(uri: str, stamp: datetime) -> str:
    """Fill ``{timestamp}`` / ``{date}`` with the scoring time, so that a scheduled run writes a new file each time."""
    return uri.replace("{timestamp}", stamp.strftime("%Y%m%dT%H%M%SZ")).replace("{date}", stamp.strftime("%Y-%m-%d"))
