"""The agent's small state files beside its outbox (the camera clock, the last config applied).

Written whole or not at all: a temporary file, fsync, rename, so a power cut leaves the old file or
the new one, never half of one. OSError (a full or read-only disk) is the caller's to say.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def replace_json(path: Path, data: Any) -> None:
    part = path.with_name(path.name + ".part")
    with open(part, "w", encoding="utf-8") as out:
        out.write(json.dumps(data))
        out.flush()
        os.fsync(out.fileno())
    os.replace(part, path)
