"""Property tests: whatever bytes arrive, the LiftEvent parser answers a LiftEvent or a SchemaError."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.payloads import encode, mutated_events, payloads, valid_body
from vision.schema import LiftEvent, SchemaError, parse_lift_event

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(payload: bytes | str) -> LiftEvent | SchemaError:
    try:
        return parse_lift_event(payload)
    except SchemaError as error:
        assert str(error), "a SchemaError must say what is wrong"
        return error


@FUZZ
@given(payloads)
def test_any_bytes_give_an_event_or_a_schema_error(payload: bytes) -> None:
    result = outcome(payload)
    if isinstance(result, LiftEvent):
        # What the parser accepts, it can write back and read again unchanged.
        assert parse_lift_event(result.to_json()) == result


@FUZZ
@given(mutated_events())
def test_mutated_events_give_an_event_or_a_schema_error_naming_a_field(body: dict) -> None:
    result = outcome(encode(body))
    if isinstance(result, SchemaError):
        assert ":" in str(result)  # "<field>: <message>"


@FUZZ
@given(st.text(max_size=300))
def test_any_text_gives_an_event_or_a_schema_error(text: str) -> None:
    outcome(text)


def test_the_valid_body_the_mutations_start_from_is_valid() -> None:
    """Otherwise every mutation above would be refused for the wrong reason."""
    assert parse_lift_event(json.dumps(valid_body())).contaminated
    assert not parse_lift_event(json.dumps(valid_body(contaminated=False))).contaminated


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    for depth in (1_000, 100_000, 1_000_000):
        assert isinstance(outcome(b"[" * depth + b"]" * depth), SchemaError)
        assert isinstance(outcome(b'{"gps":' * depth + b"1" + b"}" * depth), SchemaError)
