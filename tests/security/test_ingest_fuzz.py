"""Property tests through the real ingest write path: every message ends stored or dead-lettered.

``Ingest._write`` is what the writer thread runs on each batch taken from the broker: it commits
through ``Inbox.write``, falls back to one message at a time when a batch fails, and must return
normally (a raised exception would kill the writer thread and stop all ingest). Runs on SQLite
and, when it is up, PostgreSQL (NUL characters, 64-bit overflow and JSON quirks differ there).
"""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from server.ingest.models import Lift
from tests.security.harness import PREFIX, Harness
from tests.security.payloads import encode, json_values, mutated_events, payloads

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# Only topics a broker can deliver: MQTT forbids NUL and wildcards in a published topic name
# (Mosquitto refuses them), so fuzzing those would test the impossible.
truck_ids = st.sampled_from(["truck-a", "truck-b", "..", "../../etc", "a b", "", "x" * 80, "é", "%2e%2e", "$x"])
topic_text = st.text(st.characters(blacklist_characters="\x00+#", blacklist_categories=("Cs",)), min_size=1,
                     max_size=60)
lift_topics = truck_ids.map(lambda truck: f"{PREFIX}/{truck}/lift")
other_topics = st.one_of(
    topic_text,
    st.builds(lambda truck, rest: f"{PREFIX}/{truck}/{rest}", truck_ids,
              st.sampled_from(["evidence/..", "evidence/../../x", f"evidence/{uuid.uuid4()}", "lift/x", "photo",
                               "evidence", f"evidence/{uuid.uuid4()}/x", "config"])),
)
messages = st.one_of(
    st.tuples(lift_topics, payloads),
    st.tuples(st.just(f"{PREFIX}/truck-a/lift"), mutated_events("truck-a").map(encode)),
    st.tuples(other_topics, st.one_of(st.binary(max_size=200), json_values.map(encode))),
)


@FUZZ
@given(batch=st.lists(messages, min_size=1, max_size=6))
def test_every_message_ends_stored_duplicate_or_dead_lettered(harness: Harness,
                                                              batch: list[tuple[str, bytes]]) -> None:
    assert harness.write(batch) == len(batch)


@FUZZ
@given(body=mutated_events("truck-a"))
def test_a_mutated_event_sent_twice_is_counted_once(harness: Harness, body: dict) -> None:
    payload = encode(body)
    message = (f"{PREFIX}/truck-a/lift", payload)
    assert harness.write([message, message]) == 2
    assert harness.write([message]) == 1
    with harness.sessions() as session:
        event_id = str(body.get("event_id"))
        assert (session.scalar(select(func.count()).select_from(Lift).where(Lift.event_id == event_id)) or 0) <= 1
