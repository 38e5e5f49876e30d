"""Hostile truck messages: path tricks in ids, JPEG bombs, oversized payloads, values JSON cannot carry.

They go through the real ingest write path (``Ingest._write``) on SQLite and PostgreSQL; each must
end as a dead letter with a reason, write nothing outside the evidence folder, and leave the
retention purge working.
"""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from server.retention import purge_expired
from tests.security.harness import PREFIX, Harness
from tests.server.events import lift_event


def jpeg(width: int = 64, height: int = 48) -> bytes:
    image = np.full((height, width, 3), 127, np.uint8)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def declared_size(data: bytes, width: int, height: int) -> bytes:
    """The same JPEG with other dimensions written in its frame header (what a bomb does)."""
    sof = data.index(b"\xff\xc0")
    return data[:sof + 5] + struct.pack(">HH", height, width) + data[sof + 9:]


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


@pytest.mark.parametrize("truck_id", ["..", "."])
def test_evidence_under_a_dot_truck_id_is_refused_and_written_nowhere(harness: Harness, truck_id: str) -> None:
    data_dir = harness.settings.data_dir
    before = files_under(data_dir)
    topic = f"{PREFIX}/{truck_id}/evidence/{uuid.uuid4()}"
    assert harness.write([(topic, jpeg())]) == 1
    assert [reason for reason, _ in harness.dead_letters()] == ["bad_topic"]
    assert files_under(data_dir) - before - files_under(harness.settings.evidence_path) == set(), \
        "a photo was written outside the evidence folder"
    assert not any(p.suffix == ".jpg" for p in files_under(data_dir))


def test_evidence_of_a_normal_truck_is_stored_inside_the_evidence_folder(harness: Harness) -> None:
    event_id = uuid.uuid4()
    assert harness.write([(f"{PREFIX}/truck-a/evidence/{event_id}", jpeg())]) == 1
    assert harness.dead_letters() == []
    (photo,) = files_under(harness.settings.evidence_path)
    assert photo.name == f"{event_id}.jpg"


@pytest.mark.parametrize("width,height", [(65_500, 65_500), (60_000, 10), (10, 60_000), (8_193, 100)])
def test_jpeg_bombs_are_refused_before_anyone_decodes_them(harness: Harness, width: int, height: int) -> None:
    bomb = declared_size(jpeg(), width, height)
    assert len(bomb) < 2_000  # tiny on the wire, gigabytes once decoded
    assert harness.write([(f"{PREFIX}/truck-a/evidence/{uuid.uuid4()}", bomb)]) == 1
    assert [reason for reason, _ in harness.dead_letters()] == ["bad_jpeg"]
    assert files_under(harness.settings.evidence_path) == set()


def test_the_largest_photo_a_truck_may_send_is_accepted(harness: Harness) -> None:
    """The cap matches LiftEvent.evidence (8192 px a side): the bomb check refuses no real photo."""
    assert harness.write([(f"{PREFIX}/truck-a/evidence/{uuid.uuid4()}", declared_size(jpeg(), 8192, 8192))]) == 1
    assert harness.dead_letters() == []


@pytest.mark.parametrize("kind", ["lift", "stats", "evidence/5f535599-36f8-4844-b198-25d396be7c2c"])
def test_oversized_payloads_are_dead_letters_with_a_bounded_copy(harness: Harness, kind: str) -> None:
    limit = harness.settings.max_evidence_bytes if kind.startswith("evidence") else harness.settings.max_payload_bytes
    payload = b"\xff\xd8" + b"A" * limit  # one byte too many, whatever the kind
    assert harness.write([(f"{PREFIX}/truck-a/{kind}", payload)]) == 1
    assert [reason for reason, _ in harness.dead_letters()] == ["too_large"]
    with harness.sessions() as session:
        from server.ingest.models import DeadLetter

        (row,) = session.query(DeadLetter).all()
        assert row.payload_size == len(payload) and len(row.payload) <= 4096


def test_the_topic_truck_must_be_the_payload_truck(harness: Harness) -> None:
    """A truck whose broker ACL were too wide still could not file lifts for another truck."""
    event = lift_event("truck-b")
    assert harness.write([(f"{PREFIX}/truck-a/lift", event.to_json().encode())]) == 1
    assert [reason for reason, _ in harness.dead_letters()] == ["truck_mismatch"]


def test_retention_purge_still_runs_after_hostile_evidence(harness: Harness) -> None:
    """One photo stored under a path trick would make every later purge fail on that row."""
    from datetime import timedelta

    from server.db import utcnow

    harness.write([(f"{PREFIX}/../evidence/{uuid.uuid4()}", jpeg()),
                   (f"{PREFIX}/truck-a/evidence/{uuid.uuid4()}", jpeg())])
    with harness.sessions() as session, session.begin():
        report = purge_expired(session, harness.evidence, harness.settings, now=utcnow() + timedelta(days=31))
    assert report.photos == 1
    assert files_under(harness.settings.evidence_path) == set()
