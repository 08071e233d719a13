"""Content fingerprints: of data, of config sections and of the code that transforms them.

Cache keys are built only from these, never from in-memory frames.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
from typing import Any


def digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        text = part if isinstance(part, str) else json.dumps(part, sort_keys=True, default=str)
        h.update(text.encode())
        h.update(b"\x00")
    return h.hexdigest()


def code_version(*modules: str) -> str:
    """Hash of the source of the modules that define a stage's behaviour."""
    sources = [inspect.getsource(importlib.import_module(m)) for m in modules]
    return digest(*sources)[:16]
