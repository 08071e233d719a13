"""Column naming: one snake-case rule and one way to resolve a user's column reference."""

from __future__ import annotations

import re

_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")


def snake_case(name: str) -> str:
    """'NoOfURLRedirect' -> 'no_of_url_redirect', 'default payment next month' -> 'default_payment_next_month'."""
    s = _ACRONYM.sub(r"\1_\2", name.strip())
    s = _CAMEL.sub(r"\1_\2", s)
    s = _NON_WORD.sub("_", s).strip("_").lower()
    return s or "column"


def silver_name(ref: str, rename: dict[str, str], snake: bool) -> str:
    """The silver name a raw (or already cleaned) column reference ends up with."""
    name = rename.get(ref, ref)
    return snake_case(name) if snake else name
