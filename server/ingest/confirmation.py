"""Provisional lifts confirmed on the street they are on, with their final street confidence.

Confirming a lift where it is changes its street confidence (its truck's later lifts settle its
path), which the data-quality histogram bins (``server.ingest.quality``): the lift moves from its
old tenth to its new one in the same transaction. Two ingest workers may hold the same truck's
provisional lifts; each writes a lift only as it read it (still provisional, on the same street,
with the same confidence), in one statement per chunk, and moves the tenths of the lifts it wrote,
so a lift confirmed or moved meanwhile by the other is counted once, as it stands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from server.ingest.aggregates import move_confidence

CHUNK = 1000  # lifts per statement: 4 parameters each, well under SQLite's 32,766


def confirm_in_place(session: Session, changes: Sequence[Mapping[str, Any]]) -> int:
    """Write ``changes`` (``Tracks`` changes that keep their street: ``row`` as read, the final
    ``street_confidence``) as confirmed, and move their data-quality tenths; returns lifts written."""
    # SQLite spells IS NOT DISTINCT FROM as IS (the long form came in 3.39).
    same = "IS" if session.get_bind().dialect.name == "sqlite" else "IS NOT DISTINCT FROM"
    written = 0
    for start in range(0, len(changes), CHUNK):
        chunk = changes[start:start + CHUNK]
        values = ", ".join(f"(CAST(:i{k} AS BIGINT), CAST(:s{k} AS INTEGER), CAST(:o{k} AS FLOAT), "
                           f"CAST(:c{k} AS FLOAT))" for k in range(len(chunk)))
        params: dict[str, Any] = {}
        for k, change in enumerate(chunk):
            row = change["row"]
            params |= {f"i{k}": row["id"], f"s{k}": row["street_id"], f"o{k}": row["street_confidence"],
                       f"c{k}": change["street_confidence"]}
        # A CTE, not VALUES ... AS v(...): SQLite names no VALUES columns. By id, as the bulk update it replaces.
        ids = set(session.execute(text(
            f"""WITH v (id, street_id, old, new) AS (VALUES {values})
                UPDATE lifts SET street_confidence = v.new, match_provisional = FALSE FROM v
                WHERE lifts.id = v.id AND lifts.match_provisional AND lifts.street_id {same} v.street_id
                  AND lifts.street_confidence {same} v.old
                RETURNING lifts.id"""), params).scalars())
        done = [c for c in chunk if c["row"]["id"] in ids]
        move_confidence(session, [c["row"] for c in done],
                        [{**c["row"], "street_confidence": c["street_confidence"]} for c in done])
        written += len(done)
    return written
