"""LiftEvent bounds: what the parser accepts, the server stores; what it cannot store, the parser refuses.

The parser is the edge of the system: a value it lets through and the database then refuses ends as
a ``store_error`` dead letter (or worse, a batch retried). So the property is strict: every event
that ``parse_lift_event`` accepts, generated right up to the bounds (64-bit sequence, 10,000 items,
any printable Unicode, timestamps from 1970 to 8999 in any offset), is stored as a lift on SQLite
and PostgreSQL, with no dead letter.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from server.ingest.models import Lift
from tests.security.harness import PREFIX, Harness
from tests.security.payloads import encode, valid_body
from vision.schema import (
    MAX_CLASSES,
    MAX_FRAMES,
    MAX_ITEMS,
    MAX_SCORE,
    MAX_SEQUENCE,
    LiftEvent,
    SchemaError,
    Severity,
    TruckStats,
    parse_lift_event,
)

STORE = settings(max_examples=200, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def rarely(inside: st.SearchStrategy[Any], beyond: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``inside`` the bounds, one draw in forty ``beyond`` them (which the parser must refuse)."""
    # 17, not 0 or 39: hypothesis favours the ends of a range, which would make "rarely" often
    return st.integers(0, 39).flatmap(lambda roll: beyond if roll == 17 else inside)


def edgy_ints(low: int, high: int) -> st.SearchStrategy[int]:
    """Integers in [low, high], the bounds themselves drawn often (where storage breaks), and past them."""
    inside = st.one_of(st.sampled_from([low, high, high - 1, min(low + 1, high)]), st.integers(low, high))
    return rarely(inside, st.sampled_from([high + 1, 2**31, 2**63, 2**64, low - 1]))


def edgy_floats(low: float, high: float) -> st.SearchStrategy[float]:
    inside = st.one_of(st.sampled_from([low, high]), st.floats(low, high, allow_nan=False, allow_infinity=False))
    return rarely(inside, st.sampled_from([math.inf, -math.inf, math.nan, high * 2 + 1]))


# Any printable Unicode (accents, emoji, CJK, astral planes); the parser strips surrounding space.
# Now and then a control character (NUL: PostgreSQL text cannot hold it) or one too many.
printable = st.characters(blacklist_categories=("Cs", "Cc"))
text = rarely(st.text(printable, min_size=1, max_size=64),
              st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=64),
                        st.text(printable, min_size=65, max_size=70)))
ids = st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True)  # "." and ".." included: refused by both
offsets = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
moments = st.one_of(
    st.sampled_from([datetime(1970, 1, 1, tzinfo=UTC), datetime(8999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)]),
    st.datetimes(datetime(1970, 1, 2), datetime(8999, 12, 30), timezones=st.just(UTC)),
).flatmap(lambda at: offsets.map(lambda zone: at.astimezone(zone)))


@st.composite
def accepted_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A lift event body anywhere inside the bounds, now and then a value beyond them."""
    started = draw(moments)
    ended = started + draw(st.one_of(st.just(timedelta(0)), st.timedeltas(timedelta(0), timedelta(days=3650))))
    assume(ended.astimezone(UTC).year < 9000)
    errors = draw(st.lists(st.fixed_dictionaries({
        "class": text, "count": edgy_ints(1, MAX_ITEMS), "category": text,
        "severity": st.sampled_from([s.value for s in Severity])}), max_size=4))
    gps = draw(st.none() | st.fixed_dictionaries({
        "lat": edgy_floats(-90, 90), "lon": edgy_floats(-180, 180),
        "accuracy_m": st.none() | edgy_floats(0, 10_000),
        "heading_deg": st.none() | st.floats(0, 360, exclude_max=True),
        "fix_at": st.none() | moments.map(datetime.isoformat)}))
    return {
        "schema_version": draw(st.sampled_from(["1.0", "1.999999", "1.7"])),
        "truck_id": draw(ids),
        "sequence": draw(edgy_ints(0, MAX_SEQUENCE)),
        "stream": draw(st.sampled_from(["recyclables", "glass", "residual", "biowaste", "paper"])),
        "started_at": started.isoformat(), "ended_at": ended.isoformat(),
        "gps": gps,
        "bin_id": draw(st.none() | ids),
        "counts": draw(st.dictionaries(text, edgy_ints(0, MAX_ITEMS), max_size=6)),
        "errors": errors,
        "contaminated": any(e["severity"] != "info" for e in errors),
        "score": draw(edgy_floats(0, MAX_SCORE)),
        "model": {"name": draw(rarely(st.text(printable, min_size=1, max_size=128), st.just("a\u0000b"))),
                  "version": draw(text)},
        "frames": draw(edgy_ints(0, MAX_FRAMES)),
        "evidence": draw(st.none() | st.fixed_dictionaries({
            "sha256": st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
            "width": edgy_ints(1, 8192), "height": edgy_ints(1, 8192)})),
    }


@pytest.mark.heavy(cpu_s=30)
@STORE
@given(body=accepted_bodies())
def test_every_event_the_parser_accepts_is_stored_without_error(harness: Harness, body: dict[str, Any]) -> None:
    # A fresh id each run: hypothesis replays examples, and a replayed id is (rightly) a duplicate.
    payload = encode({**body, "event_id": str(uuid.uuid4())})  # NaN/Infinity written as a careless sender does
    try:
        event = parse_lift_event(payload)
    except SchemaError:
        # Refused at the edge: nothing reaches the database. Not counted as a passing example, so a parser
        # that refused everything fails (hypothesis: filter_too_much / Unsatisfiable) instead of passing.
        assume(False)
        raise
    topic = f"{PREFIX}/{event.truck_id}/lift"
    dead_before = len(harness.dead_letters())
    # delivered when it was made: ingest refuses lifts far from their arrival (``expired``, ``future``)
    assert harness.write([(topic, payload)], received_at=event.started_at) == 1
    assert harness.dead_letters()[dead_before:] == []  # no store_error, no refusal of an accepted event
    with harness.sessions() as session:
        stored = session.scalars(select(Lift).where(Lift.event_id == str(event.event_id))).one()
    assert (stored.sequence, stored.frames, stored.counts) == (event.sequence, event.frames, event.counts)
    assert math.isclose(stored.score, event.score, rel_tol=1e-9)


def refused(field: str, value: Any, where: tuple[str, ...] = ()) -> str:
    body = valid_body()
    parent = body
    for step in where:
        parent = parent[step]
    parent[field] = value
    with pytest.raises(SchemaError) as error:
        parse_lift_event(encode(body))
    return str(error.value)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 10**400])
def test_scores_must_be_finite(value: float) -> None:
    assert refused("score", value).startswith("score:")


@pytest.mark.parametrize("field,value", [
    ("sequence", 2**63), ("sequence", 2**64), ("sequence", -1),
    ("frames", MAX_FRAMES + 1), ("frames", 2**31), ("score", MAX_SCORE * 1.01), ("score", -0.5),
    ("schema_version", "1." + "9" * 20), ("started_at", "9999-12-31T23:59:59Z"),
    ("started_at", "0001-01-01T00:00:00+14:00"), ("ended_at", "1969-12-31T23:59:59Z"),
    ("truck_id", ".."), ("truck_id", "."), ("truck_id", "t" * 65),
])
def test_values_beyond_what_the_server_stores_are_refused_naming_the_field(field: str, value: Any) -> None:
    assert refused(field, value).startswith(f"{field}:")


def test_counts_and_errors_are_bounded() -> None:
    assert refused("counts", {"bottle": MAX_ITEMS + 1}).startswith("counts.bottle:")
    assert refused("counts", {f"c{i}": 1 for i in range(MAX_CLASSES + 1)}).startswith("counts:")
    assert refused("counts", {"bot\u0000tle": 1}).startswith("counts.")
    assert refused("counts", {"x" * 65: 1}).startswith("counts.")
    body = valid_body()
    error = body["errors"][0]
    assert refused("errors", [error] * (MAX_CLASSES + 1)).startswith("errors:")
    assert refused("count", MAX_ITEMS + 1, ("errors", 0)).startswith("errors.0.count:")  # type: ignore[arg-type]


@pytest.mark.parametrize("field,value", [("name", "trivue\u0000waste"), ("version", "1\n2"), ("name", "x" * 129)])
def test_model_strings_are_printable_and_bounded(field: str, value: str) -> None:
    assert refused(field, value, ("model",)).startswith(f"model.{field}:")


def test_the_bounds_leave_every_real_lift_through() -> None:
    """A full hopper, a long lift and a truck that has run for centuries are all still valid."""
    body = valid_body()
    body.update(sequence=MAX_SEQUENCE, frames=MAX_FRAMES, counts={**body["counts"], "bottle": MAX_ITEMS},
                started_at="1970-01-01T00:00:00Z")
    event = parse_lift_event(encode(body))
    assert (event.sequence, event.frames, event.counts["bottle"]) == (MAX_SEQUENCE, MAX_FRAMES, MAX_ITEMS)
    assert isinstance(LiftEvent.model_validate_json(event.to_json()), LiftEvent)


def test_stats_counters_are_finite_and_64_bit() -> None:
    base = {"truck_id": "truck-a", "sent_at": "2026-01-01T00:00:00Z", "uptime_s": 1}
    assert TruckStats.model_validate({**base, "photos_refused": 3}).photos_refused == 3
    for field, value in (("uptime_s", math.inf), ("fps", math.nan), ("outbox_depth", 2**63),
                         ("photos_too_large", -1)):
        with pytest.raises(ValueError, match=field):
            TruckStats.model_validate({**base, field: value})
