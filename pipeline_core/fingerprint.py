"""Content fingerprints of data and config sections: cache keys are built only from these, never from frames."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        text = part if isinstance(part, str) else json.dumps(part, sort_keys=True, default=str)
        h.update(text.encode())
        h.update(b"\x00")
    return h.hexdigest()
