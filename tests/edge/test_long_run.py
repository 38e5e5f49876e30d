"""Months without a restart: what the agent keeps in memory stays bounded however many bursts, rows and
alerts go by. Each test drives one part through thousands of iterations (fake frames, no model) and
counts the entries of the structures it keeps; the durable outbox stays the judge of what was counted."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest

from edge import camera
from edge.alert import QUEUED, CrewAlert
from edge.camera import burst_frames
from edge.config import load_settings
from edge.outbox import Outbox
from edge.uplink import Uplink
from tests.edge.helpers import unique_truck
from vision.schema import message_digest

BURSTS = 2000
JPEG = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))[1].tobytes()


@pytest.fixture
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scanner's half-second pause between passes, skipped (only the scanner's module is patched)."""
    monkeypatch.setattr(camera, "time", SimpleNamespace(sleep=lambda _s: None, monotonic=time.monotonic,
                                                        time=time.time))


def _burst(root: Path, number: int) -> Path:
    folder = root / f"burst-{number:05d}"
    folder.mkdir()
    (folder / "0.jpg").write_bytes(JPEG)
    return folder


def _scanner_memory(frames: object) -> int:
    """Entries the suspended scanner holds, whatever it calls them: every dict, set, list or deque."""
    state = frames.gi_frame.f_locals  # type: ignore[attr-defined]
    sized = [value for value in state.values() if isinstance(value, dict | set | list | tuple) or
             type(value).__name__ == "deque"]
    settled = state.get("settled")
    return sum(len(value) for value in sized) + (len(settled._seen) if settled is not None else 0)


def test_the_burst_scanner_forgets_the_bursts_it_no_longer_sees(tmp_path: Path, no_wait: None) -> None:
    """burst_delete on: every burst is counted, then deleted. The scanner used to keep every key and
    every folder it had ever seen (two entries a lift, for as long as the agent ran)."""
    counted: set[str] = set()  # the outbox's consumed marks: durable, the judge
    frames = burst_frames(tmp_path, consumed=counted.__contains__, follow=True, settle_s=0)
    yielded = []
    for number in range(BURSTS):
        folder = _burst(tmp_path, number)
        frame = next(frames)
        yielded.append(frame.burst)
        counted.add(frame.burst)  # committed with its lift
        shutil.rmtree(folder)  # trigger.burst_delete
    assert len(set(yielded)) == BURSTS
    assert _scanner_memory(frames) <= 200, "the scanner's memory grows with every burst"
    frames.close()


def test_a_counted_burst_is_never_counted_again_once_forgotten(tmp_path: Path, no_wait: None) -> None:
    """What the scanner forgets, the durable marks still know: a burst put back (a card taken out and put
    back, its mount point readable meanwhile) is not counted again; kept bursts are not re-read."""
    counted: set[str] = set()
    asked: list[str] = []

    def consumed(key: str) -> bool:
        asked.append(key)
        return key in counted

    frames = burst_frames(tmp_path, consumed=consumed, follow=True, settle_s=0)
    kept = _burst(tmp_path, 0)  # burst_delete off for this one: it stays on the card
    first = next(frames)
    counted.add(first.burst)
    moved = {}
    for number in range(1, BURSTS):
        folder = _burst(tmp_path, number)
        frame = next(frames)
        counted.add(frame.burst)
        if number < 5:  # taken away (card out), with their times, to be put back later
            moved[folder.name] = tmp_path.parent / f"away-{folder.name}"
            shutil.move(folder, moved[folder.name])
        else:
            shutil.rmtree(folder)
    for name, away in moved.items():
        shutil.move(away, tmp_path / name)
    sentinel = _burst(tmp_path, BURSTS)  # a new burst after them: the scanner has looked at all of them
    assert next(frames).burst.startswith(sentinel.name)
    assert asked.count(first.burst) == 1, "a burst kept on the disk is looked up again at every pass"
    assert kept.is_dir()
    assert _scanner_memory(frames) <= 200
    frames.close()


def test_a_burst_handed_out_and_not_yet_committed_is_not_handed_out_twice(tmp_path: Path, no_wait: None) -> None:
    """Its lift is still in the pipeline (not in the outbox yet) when its folder disappears from the
    listing and comes back (a card's hiccup): it must not be read a second time."""
    frames = burst_frames(tmp_path, consumed=lambda _key: False, follow=True, settle_s=0)
    folder = _burst(tmp_path, 0)
    first = next(frames)
    shutil.move(folder, tmp_path.parent / "away")
    _burst(tmp_path, 1)
    assert next(frames).burst.startswith("burst-00001")
    shutil.move(tmp_path.parent / "away", folder)
    _burst(tmp_path, 2)
    assert next(frames).burst.startswith("burst-00002"), f"{first.burst} read twice"
    frames.close()


class _Info:
    """paho's MessageInfo, acknowledged or not as the test says."""

    def __init__(self, link: _Link) -> None:
        self.rc, self._link = mqtt.MQTT_ERR_SUCCESS, link

    def is_published(self) -> bool:
        return self._link.acks


class _Link:
    """A client whose broker acknowledges every message while ``acks`` (no network)."""

    def __init__(self) -> None:
        self.acks, self.published = False, 0

    def publish(self, _topic: str, _payload: bytes, qos: int = 0) -> _Info:
        self.published += 1
        return _Info(self)


def _linked_uplink(tmp_path: Path) -> tuple[Outbox, Uplink, _Link]:
    """A truck's uplink on its own outbox, talking to a ``_Link`` instead of a broker."""
    settings = load_settings(None, {"truck_id": unique_truck(), "source": "x"}, environ={})
    outbox = Outbox(tmp_path / "o.sqlite3")
    uplink = Uplink(settings, outbox, lambda: None, lambda _c: None)  # type: ignore[arg-type,return-value]
    link = _Link()
    uplink.client = link  # type: ignore[assignment]
    return outbox, uplink, link


def test_the_uplink_forgets_rows_the_outbox_dropped_while_they_were_in_flight(tmp_path: Path) -> None:
    """Bad coverage: the connection dies with a lift and its photo in flight; before it comes back the
    outbox drops the photo (retention, max_mb). The uplink kept the photo's entry forever."""
    outbox, uplink, link = _linked_uplink(tmp_path)
    assert uplink.settings.uplink.delete_after == "receipt"
    for number in range(BURSTS // 4):
        outbox.put_lift(f"e{number}", ("lift", b"L%d" % number), ("photo", b"P%d" % number))
        link.acks = False
        uplink._send_more()  # both rows in flight
        uplink._session += 1  # the connection died; a new one is up
        outbox.drop_refused_photo(max(seq for _i, seq, _k in uplink._inflight))  # the photo gone meanwhile
        uplink._resync()
        link.acks = True
        for _ in range(3):  # the lift again (alone: it was in flight), acknowledged, receipted
            uplink._send_more()
            uplink._collect_acks()
        uplink._receipt_queue.append([message_digest("lift", b"L%d" % number)])
        uplink._apply_receipts()
    assert outbox.depth() == 0
    assert len(uplink._sent) + len(uplink._by_digest) + len(uplink.attempts) <= 8, \
        "the uplink keeps an entry for every photo dropped while in flight"
    outbox.close()


def test_the_uplink_forgets_the_attempts_of_photos_the_outbox_dropped(tmp_path: Path) -> None:
    """A photo alone in flight when the connection died (an attempt counted), then dropped by the outbox
    before its next try: its attempt count stayed forever."""
    outbox, uplink, link = _linked_uplink(tmp_path)
    for number in range(BURSTS // 4):
        outbox.put_lift(f"e{number}", ("lift", b"L%d" % number), ("photo", b"P%d" % number))
        link.acks = False
        uplink._send_more()  # both rows in flight, and the link dies
        uplink._session += 1
        uplink._resync()
        link.acks = True  # back: the lift goes first, alone, and is receipted
        uplink._send_more()
        uplink._collect_acks()
        uplink._receipt_queue.append([message_digest("lift", b"L%d" % number)])
        uplink._apply_receipts()
        link.acks = False  # then the photo, alone, and the link dies with it: an attempt counted
        uplink._send_more()
        photo = uplink._inflight[0][1]
        uplink._session += 1
        uplink._resync()
        assert uplink.attempts.get(photo) == 1
        outbox.drop_refused_photo(photo)  # dropped by the outbox (retention, max_mb) before its next try
        uplink._session += 1
        uplink._resync()
    assert outbox.depth() == 0
    assert len(uplink.attempts) + len(uplink._sent) + len(uplink._by_digest) <= 8
    outbox.close()


def test_crew_alerts_do_not_pile_up_while_the_cab_broker_is_down(tmp_path: Path) -> None:
    """The cab's broker down for weeks: paho queued every QoS 1 alert in memory (and would have played
    weeks of battery alarms to the crew on its return). The serial line still sounds each one."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=unique_truck(), clean_session=True)
    alert = CrewAlert(None, client, "trivue/v1/t/alert", min_interval_s=0)  # not connected: no broker
    for _ in range(BURSTS):
        alert.fire("t", ("battery",))
    assert alert.fired == BURSTS
    assert len(client._out_messages) <= QUEUED, "every alert is kept in memory while the cab broker is away"
