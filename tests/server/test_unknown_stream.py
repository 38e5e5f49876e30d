"""A lift of a stream the server's sorting rules lack (a truck set up with other rules) is no lift of
any *Flux*: counted, it swelled « Tous » and no stream. It is a dead letter, ``unknown_stream``,
kept whole and stored by a replay once the rules name its stream."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.config import ServerSettings
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage, check_reason, newest_dead_letters
from server.ingest.metrics import Metrics
from server.ingest.models import DEAD_LETTER_BYTES, DeadLetter, Lift, StreetDay, Truck
from tests.server.events import lift_event, wire
from vision.rules import DEFAULT_RULES


def rules_without(tmp_path: Path, *streams: str) -> Path:
    spec = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    for stream in streams:
        del spec["streams"][stream]
    path = tmp_path / "regles.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _inbox(settings: ServerSettings) -> Inbox:
    return Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics())


def _open(settings: ServerSettings) -> Session:
    from server.command_line import open_database

    return open_database(settings)


def test_a_lift_of_a_stream_the_rules_lack_is_a_dead_letter_replayed_once_they_have_it(
        make_settings: Any, tmp_path: Path) -> None:
    from server.ingest.replay import LetterFilter, replay_dead_letters

    local = make_settings(ingest_enabled=False, sorting_rules=rules_without(tmp_path, "biowaste", "paper"))
    at = datetime.now(UTC) - timedelta(hours=3)
    # A lift larger than a letter's 4 KiB: kept whole all the same, or no replay could store it.
    paper = lift_event("benne-01", stream="paper", at=at, counts={"paper": 3}, gps=None)
    large = wire(paper, note="x" * DEAD_LETTER_BYTES)  # a newer truck's field: ignored, kept
    glass = lift_event("benne-01", stream="glass", at=at, counts={"glass": 1}, gps=None)
    topic = f"{local.topic_prefix}/benne-01/lift"
    with _open(local) as session:
        dead = _inbox(local).write(session, [MqttMessage(topic, payload, at)
                                             for payload in (large, glass.to_json().encode())])
        session.commit()
        assert dead == 1
        assert session.scalars(select(Lift.stream)).all() == ["glass"]
        assert session.scalar(select(func.coalesce(func.sum(StreetDay.lifts), 0))) == 1  # « Tous »
        letter = session.scalars(select(DeadLetter)).one()
        assert letter.reason == "unknown_stream"
        assert "'paper'" in letter.detail and "recyclables, glass, residual" in letter.detail
        assert letter.payload == large  # whole: replayable
        check_reason("unknown_stream")  # the API's and the CLI's filter know it
        counts, items = newest_dead_letters(session, "unknown_stream")
        assert counts == {"unknown_stream": 1} and items[0].replayable

        # Replayed under the same rules: refused again, the same letter.
        report = replay_dead_letters(session, _inbox(local), LetterFilter("unknown_stream"))
        assert (report.replayed, report.dead) == (1, 1)
        # The rules fixed (the packaged ones collect paper): stored, once.
        report = replay_dead_letters(session, _inbox(local.model_copy(update={"sorting_rules": DEFAULT_RULES})),
                                     LetterFilter("unknown_stream"))
        assert (report.replayed, report.dead) == (1, 0)
        assert sorted(session.scalars(select(Lift.stream)).all()) == ["glass", "paper"]
        assert session.scalar(select(func.count()).select_from(DeadLetter)) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_collected_streams_can_be_given(make_settings: Any) -> None:
    settings = make_settings(ingest_enabled=False)
    at = datetime.now(UTC) - timedelta(hours=1)
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics(),
                  streams=["residual"])
    event = lift_event("benne-01", stream="recyclables", at=at, gps=None)
    with _open(settings) as session:
        assert inbox.write(session, [MqttMessage(f"{settings.topic_prefix}/benne-01/lift",
                                                 event.to_json().encode(), at)]) == 1
        assert session.scalars(select(DeadLetter.detail)).one() == (
            "lift of stream 'recyclables', which the sorting rules do not collect (they collect residual): "
            "replay it once the rules name it")


def test_a_truck_config_of_a_stream_the_rules_lack_is_refused(
        make_settings: Any, run_server: Any, tmp_path: Path) -> None:
    """``PUT /api/trucks/{id}/config`` pushed a stream the server's rules lack: the truck then
    published lifts that ingest sends to the dead letters as ``unknown_stream``, all of them."""
    settings = make_settings(sorting_rules=rules_without(tmp_path, "biowaste", "paper"))
    with run_server(settings) as server:
        admin = server.token("admin")
        answer = server.client.put("/api/trucks/benne-01/config", json={"stream": "paper"}, headers=admin)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"] == (
            "stream 'paper', which the sorting rules do not collect (they collect recyclables, glass, residual): "
            "the truck's lifts would all be dead letters (unknown_stream); add it to the sorting rules first")
        with server.sessions() as db:  # nothing stored, nothing published
            assert db.get(Truck, "benne-01") is None or db.get(Truck, "benne-01").config is None
        answer = server.client.put("/api/trucks/benne-01/config", json={"stream": "glass"}, headers=admin)
        assert answer.status_code == 200 and answer.json()["stream"] == "glass", answer.text


def test_a_stored_stream_the_rules_no_longer_collect_is_not_sent_again(
        make_settings: Any, run_server: Any, tmp_path: Path) -> None:
    """A truck set to collect paper before the rules dropped it: each later change (a threshold)
    carried the stored stream into the new config, which the truck could only refuse or send to the
    dead letters. The change is refused, naming the stream, until it sets or resets the stream."""
    settings = make_settings(sorting_rules=rules_without(tmp_path, "biowaste", "paper"))
    with run_server(settings) as server:
        admin = server.token("admin")
        with server.sessions() as db:
            db.add(Truck(truck_id="benne-02", status="online",
                         config={"config_version": "20261101T080000.000000Z", "stream": "paper", "conf": 0.4}))
            db.commit()
        answer = server.client.put("/api/trucks/benne-02/config", json={"min_track_frames": 3}, headers=admin)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"].startswith("this truck's stored stream: stream 'paper', which the sorting rules"
                                                  " do not collect"), answer.text
        assert "set another stream or reset it" in answer.json()["detail"]
        with server.sessions() as db:  # nothing stored
            assert db.get(Truck, "benne-02").config["conf"] == 0.4 and "min_track_frames" not in db.get(
                Truck, "benne-02").config
        answer = server.client.put("/api/trucks/benne-02/config", json={"min_track_frames": 3, "reset": ["stream"]},
                                   headers=admin)
        assert answer.status_code == 200 and "stream" not in answer.json(), answer.text
        assert answer.json()["min_track_frames"] == 3 and answer.json()["conf"] == 0.4


def test_a_rules_file_changed_in_place_is_read_again(make_settings: Any, tmp_path: Path) -> None:
    """The streams of a rules file are kept by its time and size (an inbox made without ``streams``
    parsed the YAML each time): the same file rewritten with another stream is read again."""
    from server.config import ConfigError
    from server.ingest.streams import collected_streams

    path = rules_without(tmp_path, "biowaste", "paper")
    settings = make_settings(ingest_enabled=False, sorting_rules=path)
    assert "paper" not in collected_streams(settings)
    path.write_text(DEFAULT_RULES.read_text(encoding="utf-8"), encoding="utf-8")  # paper back, in place
    assert "paper" in collected_streams(settings)
    path.unlink()
    with pytest.raises(ConfigError, match="sorting_rules"):
        collected_streams(settings)
