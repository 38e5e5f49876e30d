"""The server's last config this truck applied, on disk beside the outbox: it outlives a restart.

The server keeps a truck's config retained on the broker, so a restarted agent gets it again, but
only once it reaches the broker. Started where the network does not reach, it counted with its
settings file's stream and thresholds until then: after a change of round from the office, glass
bottles of the glass round were judged as errors of the yellow bin. ``<outbox>.config.json`` holds
the last config applied (a temporary file, fsync, rename: a power cut leaves the old file or the
new one); start-up applies it again, then the retained one follows as before. A file absent, of
another truck, unreadable or damaged starts from the settings file (damaged: said in a warning),
never a crash. The model is left out: a model runs after the model update's checks, from the
retained config, not from a file naming one that may not be downloaded yet.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pydantic import ValidationError

from edge.state_file import replace_json
from vision.schema import TruckConfig

log = logging.getLogger(__name__)


def config_file(outbox: Path) -> Path:
    """Beside the outbox (the agent's state), as the camera clock's file is."""
    return Path(f"{outbox}.config.json")


def read_applied(path: Path, truck_id: str) -> TruckConfig | None:
    """The config last applied by ``truck_id``, without its model; None when there is none to use."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("truck_id") != truck_id:  # a state folder moved to another truck: not its settings
            log.info(
                "config: %s is truck %r's, not %r's; starting from the settings file",
                path,
                data.get("truck_id"),
                truck_id,
            )
            return None
        config = TruckConfig.model_validate(data.get("config"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:  # ValidationError is a ValueError
        reason = error.errors()[0]["msg"] if isinstance(error, ValidationError) else error
        log.warning(
            "config: %s cannot be used (%s); starting from the settings file until the server's config arrives",
            path,
            getattr(error, "strerror", None) or reason,
        )
        return None
    return config.model_copy(update={"model": None})


def write_applied(path: Path, truck_id: str, config: TruckConfig) -> None:
    """Replace the file atomically; a full or read-only disk is said, and the truck counts on."""
    data = {"truck_id": truck_id, "config": config.model_dump(mode="json", exclude_none=True, exclude={"model"})}
    try:
        replace_json(path, data)
    except OSError as error:
        log.warning(
            "config: %s cannot be written (%s); after a restart the settings file applies until the "
            "server's config arrives",
            path,
            error.strerror or error,
        )
