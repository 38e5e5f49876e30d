"""The pending RFID reads on disk, beside the outbox: a tag read just before a lift outlives a restart.

The reads were kept in memory only: a bin's tag read as it was hooked, then a ``kill -9`` or a power
cut while its lift was recorded, and the lift, counted again at the next start (its burst was not
committed), was published without its bin. ``<outbox>.rfid.json`` holds what a lift may still claim:
the reads made since the last committed lift ended (``edge.rfid``: a read made before it is that
lift's, never a later one's), at most ``MAX_READS``, and that lift's tags and end. It is written
whole (a temporary file, fsync, rename: ``edge.state_file``) at each new tag read, at most once a
second for repeats of the same tag, and after each lift committed; a restarted agent starts from it.
A file absent starts empty; one that cannot be read or makes no sense is said (a warning) and the
reader starts empty: never a crash, the next bins are read as before.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from base.bin_tags import canonical_tag
from edge.state_file import replace_json

log = logging.getLogger(__name__)

VERSION = 1


def rfid_file(outbox: Path) -> Path:
    """Beside the outbox (the agent's state), as the camera clock's file is."""
    return Path(f"{outbox}.rfid.json")


@dataclass(frozen=True, slots=True)
class SavedRead:
    tag: str
    first: datetime
    last: datetime
    count: int


@dataclass(frozen=True, slots=True)
class RfidState:
    """The reads a lift may still claim, and the last committed lift's tags and end (or None)."""

    reads: tuple[SavedRead, ...]
    previous: tuple[frozenset[str], datetime] | None


def _time(text: object) -> datetime:
    value = datetime.fromisoformat(str(text))
    if value.tzinfo is None:
        raise ValueError("a time without its time zone")
    return value


def read_state(path: Path) -> RfidState | None:
    """The saved state; None when there is none or it cannot be used (said)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError("not a version 1 RFID state")
        # In the canonical form: an agent before it saved tags as its reader printed them, and the same
        # bin read again after the upgrade would have been a second tag (two bins on one lift).
        reads = tuple(SavedRead(canonical_tag(str(r["tag"])), _time(r["first"]), _time(r["last"]),
                                max(1, int(r["count"]))) for r in data["reads"])
        previous = data.get("previous")
        ended = ((frozenset(canonical_tag(str(tag)) for tag in previous["tags"]), _time(previous["ended"]))
                 if previous else None)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, RecursionError) as error:
        log.warning("rfid: %s cannot be used (%s); starting without them: a lift cut by the restart gets no bin",
                    path, getattr(error, "strerror", None) or error)
        return None
    return RfidState(reads, ended)


def write_state(path: Path, state: RfidState) -> None:
    """Replace the file atomically; OSError (a full or read-only disk) is the caller's."""
    previous = ({"tags": sorted(state.previous[0]), "ended": state.previous[1].isoformat()}
                if state.previous else None)
    replace_json(path, {"version": VERSION, "previous": previous, "reads": [
        {"tag": r.tag, "first": r.first.isoformat(), "last": r.last.isoformat(), "count": r.count}
        for r in state.reads]})
