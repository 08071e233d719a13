"""Content fingerprints: of data, of config sections and of the code that transforms them.

Cache keys are built only from these, never from in-memory frames.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any


def digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        text = part if isinstance(part, str) else json.dumps(part, sort_keys=True, default=str)
        h.update(text.encode())
        h.update(b"\x00")
    return h.hexdigest()


def code_version(*modules: str) -> str:
    """Hash of the source of the modules that define a stage's behaviour (read, not imported: a cache
    lookup should not pay for importing the libraries those modules use)."""
    sources = []
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"no source for module {name}")
        sources.append(Path(spec.origin).read_text(encoding="utf-8"))
    return digest(*sources)[:16]
