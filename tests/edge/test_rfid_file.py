"""The pending RFID reads on disk beside the outbox: a tag read just before a lift outlives a kill -9.

The reads were kept in memory only: the bin's tag read as it was hooked, then the agent killed (or the
power cut) while the lift was recorded, and the lift, counted again at the next start, was published
without its bin. ``<outbox>.rfid.json`` holds the reads that a lift may still claim and the last
committed lift's tags and end (the in-memory rules, kept across the restart).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.rfid import RfidReader
from edge.rfid_file import rfid_file

TAG = "E2000017221101441890ABCD"


def at(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=120) + timedelta(seconds=seconds)


def reader_on(path: Path) -> RfidReader:
    reader = RfidReader(window_s=15)
    reader.persist(path)
    return reader


def test_a_tag_read_before_the_lift_is_the_lift_s_after_a_restart(tmp_path: Path) -> None:
    path = rfid_file(tmp_path / "outbox.sqlite3")
    first = reader_on(path)
    first.feed(f"TAG:{TAG}", at=at(0))
    assert path.is_file()  # on disk as soon as read, not at the lift's end
    # killed here: the lift (1..6) was being recorded
    second = reader_on(path)
    assert second.tag_for(at(1), at(6)) == TAG


def test_a_lift_asked_about_but_not_committed_keeps_its_tag(tmp_path: Path) -> None:
    """Killed between the lift's tag and its commit: the lift, counted again, is given its tag again."""
    path = rfid_file(tmp_path / "outbox.sqlite3")
    first = reader_on(path)
    first.feed("BIN-A", at=at(0))
    assert first.tag_for(at(1), at(6)) == "BIN-A"
    first.feed("BIN-B", at=at(9))  # a read after: saved, with the state before the uncommitted lift
    assert reader_on(path).tag_for(at(1), at(6)) == "BIN-A"


def test_a_committed_lift_s_tag_does_not_go_to_the_next_lift_after_a_restart(tmp_path: Path) -> None:
    path = rfid_file(tmp_path / "outbox.sqlite3")
    first = reader_on(path)
    for second in (0, 1, 2, 7, 8):  # hooked, lifted 1..6, still read while lowered
        first.feed(f"TAG:{TAG}", at=at(second))
    assert first.tag_for(at(1), at(6)) == TAG
    first.committed()
    second = reader_on(path)
    assert second.tag_for(at(16), at(22)) is None  # the lingering reads are the previous bin's
    data = json.loads(path.read_text(encoding="utf-8"))
    assert [r["tag"] for r in data["reads"]] == [TAG]  # only the reads after that lift's end are kept


def test_reads_of_lifts_committed_are_forgotten_the_file_stays_small(tmp_path: Path) -> None:
    path = rfid_file(tmp_path / "outbox.sqlite3")
    reader = reader_on(path)
    for lift in range(40):
        reader.feed(f"BIN-{lift}", at=at(lift))
        assert reader.tag_for(at(lift + 0.1), at(lift + 0.5)) == f"BIN-{lift}"
        reader.committed()
    assert json.loads(path.read_text(encoding="utf-8"))["reads"] == []
    assert path.stat().st_size < 500


@pytest.mark.parametrize("content", ["{not json", '{"version": 1, "reads": [{"tag": "x"}]}', '["a"]',
                                     '{"version": 1, "reads": [{"tag": "A", "first": "2026-01-01T00:00:00", '
                                     '"last": "2026-01-01T00:00:00", "count": 1}], "previous": null}'])
def test_a_damaged_file_is_said_and_the_reader_starts_empty(tmp_path: Path, content: str,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    path = rfid_file(tmp_path / "outbox.sqlite3")
    path.write_text(content, encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        reader = reader_on(path)
    assert "rfid:" in caplog.text and "starting without them" in caplog.text
    reader.feed("BIN-A", at=at(0))
    assert reader.tag_for(at(1), at(6)) == "BIN-A"


def test_a_file_that_cannot_be_written_is_said_once_and_reads_go_on(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "missing-folder" / "outbox.sqlite3.rfid.json"
    reader = reader_on(path)
    with caplog.at_level(logging.WARNING):
        for second in range(5):
            reader.feed(f"BIN-{second}", at=at(second * 20))
    assert caplog.text.count("cannot be written") == 1
    assert reader.tag_for(at(81), at(85)) == "BIN-4"
