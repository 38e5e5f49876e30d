"""Hypothesis strategies for hostile truck messages: random bytes, random JSON, mutated valid events."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from tests.server.events import lift_event

HUGE = [10**19, 2**63, -(2**63) - 1, 10**400, 1e308, -1e308, 1e-320]

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from(HUGE),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=80),
    st.sampled_from(["", " ", "\u0000", "\ud7ff\ue000", "'; DROP TABLE lifts; --", "<script>alert(1)</script>",
                     "=HYPERLINK(\"http://x\")", "../../etc/passwd", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
                     "0001-01-01T00:00:00+14:00", "NaN", "Infinity", "0b7e1d1c-62c5-4a4b-9a52-6a57b7f6d2a8",
                     "é" * 65, "🗑️" * 20, "x" * 10_000]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=25,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside a JSON document (dict keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _parent(body: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        body = body[step]
    return body


def valid_body(truck_id: str = "truck-a", contaminated: bool = True) -> dict[str, Any]:
    counts = {"bottle": 2, "battery": 1, "food": 1} if contaminated else {"bottle": 2}
    event = lift_event(truck_id, counts=counts, bin_id="TAG-0001")
    return json.loads(event.to_json())


@st.composite
def mutated_events(draw: st.DrawFn, truck_id: str = "truck-a") -> dict[str, Any]:
    """A valid event with 1 to 3 of: a field dropped, replaced by garbage, or an unknown field added."""
    body = valid_body(truck_id, draw(st.booleans()))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(body)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(body, path)
        operation = draw(st.sampled_from(["drop", "replace", "add", "wrap"]))
        if operation == "drop":
            del parent[path[-1]]
        elif operation == "replace":
            parent[path[-1]] = draw(json_values)
        elif operation == "wrap":  # the right value inside garbage nesting
            parent[path[-1]] = draw(st.sampled_from([[parent[path[-1]]], {"value": parent[path[-1]]}]))
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=20))] = draw(json_values)
    return body


def encode(body: Any) -> bytes:
    """JSON as a careless or hostile sender writes it (NaN and Infinity tokens included)."""
    return json.dumps(body, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass")


payloads = st.one_of(
    st.binary(max_size=300),
    json_values.map(encode),
    mutated_events().map(encode),
    st.builds(lambda body: encode(body)[: len(encode(body)) // 2], mutated_events()),  # truncated
    st.sampled_from([b"[" * 100_000, b'{"a":' * 50_000, b"\xff\xfe\x00", b"\xef\xbb\xbf{}", b"null", b"0"]),
)

