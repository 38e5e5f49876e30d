"""A stored photo taken back by its lift (``server.ingest.photo_check``) loses its file only once the
batch is committed.

Found in review: the file was deleted while the batch was being written. A batch that then failed
(the database away at commit, a poison message further on: the subscriber rolls back and retries
message by message) left the photo's row, restored by the rollback, pointing to no file, and the
retry wrote the dead letter with an empty payload: the refused photo was gone for good.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from server.command_line import open_database
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from server.ingest.models import DeadLetter, Evidence
from tests.server.events import lift_event
from tests.server.photos import jpeg

Ingest = tuple[Any, EvidenceStore, Inbox]


@pytest.fixture
def ingest(make_settings: Any) -> Ingest:
    """Settings without the broker, the photo store and the inbox writing through it."""
    settings = make_settings(ingest_enabled=False)
    store = EvidenceStore(settings.evidence_path, settings.max_evidence_bytes)
    return settings, store, Inbox(settings, store, Metrics())


def test_a_photo_taken_back_keeps_its_file_until_the_batch_commits(ingest: Ingest) -> None:
    settings, store, inbox = ingest
    announced, sent = jpeg(1), jpeg(2)
    event = lift_event("benne-01", counts={"battery": 1},
                       evidence={"sha256": hashlib.sha256(announced).hexdigest(), "width": 320, "height": 240})
    prefix, now = settings.topic_prefix, datetime.now(UTC)
    photo_topic = f"{prefix}/benne-01/evidence/{event.event_id}"
    with open_database(settings) as session:
        inbox.write(session, [MqttMessage(photo_topic, sent, now)])  # the photo first, its own batch
        session.commit()
        stored = session.scalars(select(Evidence.path)).one()
        path = store.path(stored)
        assert path.read_bytes() == sent

        lift = MqttMessage(f"{prefix}/benne-01/lift", event.to_json().encode(), now)
        inbox.write(session, [lift])
        session.rollback()  # the batch failed after the photo was taken back
        assert session.scalars(select(Evidence.path)).all() == [stored]
        assert path.is_file(), "the rollback restored the photo's row: its file must still be there"

        inbox.write(session, [lift])  # the retry, committed
        session.commit()
        assert session.scalars(select(Evidence)).all() == []
        assert not path.exists()
        letter = session.scalars(select(DeadLetter).where(DeadLetter.reason == "evidence_mismatch")).one()
        assert (letter.topic, letter.payload_size) == (photo_topic, len(sent))
        assert letter.payload == sent[:len(letter.payload)] and letter.payload


def test_a_wrong_photo_sent_after_the_right_one_leaves_the_right_one_stored(ingest: Ingest) -> None:
    """Found in the same review: a second photo for a lift whose right photo is stored (a truck's
    re-sent, re-encoded copy) was written over the stored file before its hash was compared, then
    deleted as a mismatch: the lift's row kept announcing a photo whose file was gone."""
    settings, store, inbox = ingest
    right, wrong = jpeg(3), jpeg(4)
    event = lift_event("benne-01", counts={"battery": 1},
                       evidence={"sha256": hashlib.sha256(right).hexdigest(), "width": 320, "height": 240})
    prefix, now = settings.topic_prefix, datetime.now(UTC)
    photo_topic = f"{prefix}/benne-01/evidence/{event.event_id}"
    with open_database(settings) as session:
        inbox.write(session, [MqttMessage(f"{prefix}/benne-01/lift", event.to_json().encode(), now),
                              MqttMessage(photo_topic, right, now)])
        session.commit()
        inbox.write(session, [MqttMessage(photo_topic, wrong, now)])
        session.commit()
        photo = session.scalars(select(Evidence)).one()
        assert photo.sha256 == hashlib.sha256(right).hexdigest()
        assert store.path(photo.path).read_bytes() == right
        letter = session.scalars(select(DeadLetter)).one()
        assert (letter.reason, letter.payload_size) == ("evidence_mismatch", len(wrong))
