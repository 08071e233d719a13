"""Output locations of scheduled runs: one file per run, named by the run's scheduled time."""

from __future__ import annotations

from datetime import datetime, timezone

from pipeline_core.errors import ConfigError

PLACEHOLDER = "scheduled_start"
DEFAULT_FILE_NAME = "predictions-{scheduled_start:%Y%m%dT%H%M%SZ}.parquet"


def run_output_uri(template: str, scheduled_start: datetime) -> str:
    """Fill ``{scheduled_start:<strftime>}`` with the run's scheduled time in UTC.

    A template ending in '/' is a folder and gets ``predictions-<YYYYmmddTHHMMSSZ>.parquet``.
    Anything else without the placeholder is refused: every scheduled run must write its own
    file, and a retried run must write the same one.
    """
    if template.endswith("/"):
        template += DEFAULT_FILE_NAME
    if "{" + PLACEHOLDER not in template:
        raise ConfigError(
            f"output_uri {template!r}: add {{{PLACEHOLDER}:%Y%m%dT%H%M%SZ}} or end it with '/' so that each run writes its own file"
        )
    when = scheduled_start.astimezone(timezone.utc) if scheduled_start.tzinfo else scheduled_start.replace(tzinfo=timezone.utc)
    try:
        return template.format(**{PLACEHOLDER: when})
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"output_uri {template!r}: only {{{PLACEHOLDER}:<strftime format>}} can be filled in ({exc})") from None
