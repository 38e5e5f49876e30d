"""Build realistic lift events: counts judged by the real French sorting rules."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from vision.rules import SortingRules
from vision.schema import LiftEvent, Stream

RULES = SortingRules.load()


def lift_event(truck_id: str = "benne-01", *, stream: str = "recyclables", counts: dict[str, int] | None = None,
               at: datetime | None = None, gps: tuple[float, float] | None = (48.11, -1.68),
               heading: float | None = None, sequence: int = 0, **fields: Any) -> LiftEvent:
    counts = {"bottle": 2} if counts is None else counts
    verdict = RULES.judge(Stream(stream), counts)
    started = at or datetime.now(UTC)
    body: dict[str, Any] = {
        "event_id": str(uuid.uuid4()), "truck_id": truck_id, "sequence": sequence, "stream": stream,
        "started_at": started.isoformat(), "ended_at": (started + timedelta(seconds=8)).isoformat(),
        "gps": None if gps is None else {"lat": gps[0], "lon": gps[1], "accuracy_m": 5.0, "heading_deg": heading},
        "counts": counts, "errors": [e.to_wire() for e in verdict.errors], "contaminated": verdict.contaminated,
        "score": verdict.score, "model": {"name": "trivue-waste", "version": "test"}, "frames": 40,
    }
    body.update(fields)
    return LiftEvent.model_validate(body)


def wire(event: LiftEvent, **changes: Any) -> bytes:
    """The event as the truck sends it, optionally with fields changed or broken."""
    body = json.loads(event.to_json())
    body.update(changes)
    return json.dumps(body).encode()
