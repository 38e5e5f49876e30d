"""GPS: the position fix of a lift, from NMEA 0183 (serial device or file replay), a GPX replay, or fixed.

``latest()`` returns None when there is no fix or the last one is older than ``max_age_s``: a lift is then
kept with ``gps`` empty rather than placed where the truck was minutes ago. A fix's age is counted on the
monotonic clock, not the system clock: a clock set back an hour (NTP or a GPS-set clock at boot, while in a
tunnel) made a minutes-old fix look fresh for an hour, and one set forward made every fix stale. Its
``fix_at`` is the system time of that age, so that it reads right beside the lift's own times. The receiver's
date and time in RMC/GGA are not used (a GPS week rollover puts them 19.6 years back). A receiver that
disappears (USB unplugged, gpsd gone) ends the position at once; the reader reopens it. Replays re-time their
fixes to now (they simulate a drive happening today) and are paced by the recording's own timestamps, scaled
by ``speed``.

A lift takes the fix of the moment it ended (``at``), kept in ``edge.track``: a burst processed minutes late
(a backlog) got the position of the moment it was processed, another street.

The heading sent with a lift is the course the truck drove up with, not the receiver's course of the moment: a
lift happens with the truck stopped, and a receiver's course over ground at walking speed or below is noise
(it spins, or freezes at whatever it last computed). The server weighs the heading against each candidate
street's direction, so a wrong one would pull a lift onto the crossing street; the course is therefore taken
only while the truck moves (at least ``COURSE_MIN_SPEED_MPS``) and kept through the stop for
``course_max_age_s``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import reduce
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from edge.gps_source import GpsError as GpsError  # named from here too
from edge.gps_source import _drive_clock, _replay, check_gps_source
from edge.lines import LineReader, Throttled
from edge.track import Track
from vision.schema import GpsFix

log = logging.getLogger(__name__)

UERE_M = 5.0  # metres of error per unit of HDOP, a common rule of thumb for consumer receivers
# A position the receiver estimates without satellites (GGA quality 6, RMC mode E: dead reckoning
# through a tunnel or a canyon of buildings) drifts a few per cent of the distance driven; its HDOP
# still describes the last real fix. Kept, with at least this error, so the server weighs it as weak.
ESTIMATED_ACCURACY_M = 30.0
# GGA quality 7 (position typed in by hand) and 8 (simulator), RMC modes M and S: not where the
# truck is, so no fix at all (a receiver left in simulation mode placed every lift at its demo point).
NOT_MEASURED_GGA = ("7", "8")
NOT_MEASURED_RMC = ("M", "S", "N")
KNOT_MPS = 1852 / 3600
COURSE_MIN_SPEED_MPS = 1.5  # ~5 km/h: below it a receiver's course over ground is not the street's direction
COURSE_MAX_AGE_S = 120.0  # a bin lift stops the truck for seconds to a minute; after a longer halt, no heading
# Ended this long ago or less (or "after now": a camera box's clock ahead), a lift is live: the latest
# fix, as before. A live burst is read burst_settle_s (2 s) after its last photo (stamped by the camera
# box's clock) and judged in a second or two; the rest covers that clock a few seconds behind.
LIVE_LAG_S = 10.0
GPSD_WATCH = b'?WATCH={"enable":true,"nmea":true};\n'


NUMBER = re.compile(r"^\d+(\.\d+)?$")  # what NMEA writes: no sign, exponent, nan or inf


class Sentence(NamedTuple):
    """What one line says: a ``fix`` (``values`` for ``Gps.update``), ``void`` (the receiver says it
    has no fix), ``other`` (a sentence without a position, a gpsd report), or ``bad`` (``reason``)."""

    status: str
    kind: str = ""
    values: Mapping[str, float] = MappingProxyType({})  # read-only: a shared default
    reason: str = ""


def _checksum_ok(sentence: str) -> bool:
    body, _, given = sentence[1:].partition("*")
    if not given:
        return True  # optional in NMEA 0183; a half line no longer reaches here (edge/lines.py)
    computed = reduce(lambda acc, ch: acc ^ ord(ch), body, 0)
    return len(given) == 2 and all(c in "0123456789abcdefABCDEF" for c in given) and computed == int(given, 16)


def _degrees(value: str, hemisphere: str, positive: str, negative: str) -> float:
    """NMEA packs degrees and minutes: ddmm.mmmm (lat) / dddmm.mmmm (lon)."""
    if not NUMBER.match(value) or hemisphere not in (positive, negative):
        raise ValueError(f"position {value!r} {hemisphere!r}")
    head, minutes = divmod(float(value), 100)
    if minutes >= 60:
        raise ValueError(f"position {value!r}: {minutes:g} minutes")
    degrees = head + minutes / 60
    return -degrees if hemisphere == negative else degrees


def _number(value: str) -> float:
    if not NUMBER.match(value):
        raise ValueError(f"not a number: {value!r}")
    return float(value)


def read_sentence(line: str) -> Sentence:
    """One line from a receiver, a recording or gpsd."""
    sentence = line.strip()
    if not sentence:  # a recording's blank line
        return Sentence("other")
    if sentence.startswith("{"):  # gpsd's own JSON reports (VERSION, DEVICES, WATCH, ERROR)
        try:
            report = json.loads(sentence)
        except (ValueError, RecursionError):  # RecursionError: nested thousands deep
            return Sentence("bad", reason="not JSON")
        if not isinstance(report, dict):
            return Sentence("bad", reason="JSON that is no gpsd report")
        if report.get("class") == "ERROR":
            return Sentence("bad", reason=f"gpsd error: {str(report.get('message'))[:120]}")
        return Sentence("other")
    if not sentence.startswith("$") or len(sentence) < 7:
        return Sentence("bad", reason="not an NMEA sentence")
    if not _checksum_ok(sentence):
        return Sentence("bad", reason="bad checksum")
    fields = sentence.split("*")[0].split(",")
    kind = fields[0][3:]
    try:
        if kind == "GGA" and len(fields) >= 9:
            if fields[6] in ("", "0", *NOT_MEASURED_GGA):
                return Sentence("void", kind)
            values = {"lat": _degrees(fields[2], fields[3], "N", "S"), "lon": _degrees(fields[4], fields[5], "E", "W")}
            if fields[8]:
                values["accuracy_m"] = _number(fields[8]) * UERE_M
            if fields[6] == "6":
                values["accuracy_m"] = max(values.get("accuracy_m", 0.0), ESTIMATED_ACCURACY_M)
            return Sentence("fix", kind, values)
        if kind == "RMC" and len(fields) >= 9:
            # status V, or NMEA 2.3's mode N: the receiver says the position is not valid
            mode = fields[12][:1] if len(fields) >= 13 else ""
            if fields[2] != "A" or mode in NOT_MEASURED_RMC:
                return Sentence("void", kind)
            values = {"lat": _degrees(fields[3], fields[4], "N", "S"), "lon": _degrees(fields[5], fields[6], "E", "W")}
            if mode == "E":
                values["accuracy_m"] = ESTIMATED_ACCURACY_M
            if fields[7]:
                values["speed_mps"] = _number(fields[7]) * KNOT_MPS
            if fields[8]:
                values["heading_deg"] = _number(fields[8]) % 360
            return Sentence("fix", kind, values)
    except ValueError as error:
        return Sentence("bad", kind, reason=f"malformed {kind}: {error}")
    if kind in ("GGA", "RMC"):
        return Sentence("bad", kind, reason=f"{kind} with {len(fields)} fields")
    return Sentence("other", kind)


def parse_nmea(sentence: str) -> tuple[str, Mapping[str, float]] | None:
    """``$GPGGA``/``$GNRMC``... -> ("GGA"|"RMC", fields) when it carries a valid fix, else None."""
    read = read_sentence(sentence)
    return (read.kind, read.values) if read.status == "fix" else None


class Gps:
    """Holds the latest fix; fed by a reader thread, read by the pipeline."""

    def __init__(self, max_age_s: float = 30.0, course_max_age_s: float = COURSE_MAX_AGE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self.course_max_age_s = course_max_age_s
        # Seconds of the drive: a replay runs its recording's clock (``_drive_clock``), so a halt it
        # replays at 100x still ends the course after ``course_max_age_s`` of the recording.
        self.clock = clock
        self._lock = threading.Lock()
        self._fix: GpsFix | None = None
        # time.monotonic() when self._fix arrived: fixes age by it, never set back nor forward as
        # the system clock is
        self._fix_tick = 0.0
        self._course: tuple[float, float] | None = None  # the last course while moving, and its clock
        self._track = Track()  # the fixes of the last minutes, by the same monotonic ticks, for ``at``
        self._stoppers: list = []
        self._warnings = Throttled(log)

    def update(self, lat: float, lon: float, *, heading_deg: float | None = None, speed_mps: float | None = None,
               **extra: float) -> None:
        """A new fix. ``heading_deg`` counts only with ``speed_mps`` at walking pace or above, or
        when the source gives no speed (it vouches for its own heading)."""
        now, tick, received = datetime.now(UTC), self.clock(), time.monotonic()
        if heading_deg is not None and not math.isfinite(heading_deg):  # kept, a nan course spoilt every later fix
            heading_deg = None
        with self._lock:
            if heading_deg is not None and (speed_mps is None or speed_mps >= COURSE_MIN_SPEED_MPS):
                self._course = (heading_deg % 360, tick)
            course = self._course
            if course is not None and tick - course[1] > self.course_max_age_s:
                course = None
            previous = self._fix.model_dump() if self._fix else {}
            same_place = previous and (previous["lat"], previous["lon"]) == (lat, lon)
            kept = {k: v for k, v in previous.items()
                    if k not in ("lat", "lon", "fix_at", "heading_deg")} if same_place else {}
            self._fix = GpsFix(lat=lat, lon=lon, fix_at=now, heading_deg=course[0] if course else None,
                               **{**kept, **extra})
            self._fix_tick = received
            self._track.add(received, self._fix)  # with its heading of the moment

    def feed_nmea(self, sentence: str) -> None:
        read = read_sentence(sentence)
        if read.status == "fix":
            self.offer(sentence[:80], **read.values)
        elif read.status == "void":
            self.lose_fix(f"{read.kind} says no fix")
        elif read.status == "bad":
            self._warnings.warning(read.reason.split(":")[0], "GPS line ignored (%s): %r", read.reason, sentence[:80])

    def lose_fix(self, why: str) -> None:
        """The receiver says it does not know where it is: lifts get no position from now on, where
        the last fix stood for ``max_age_s`` (30 s, 200 m of driving) as if still right."""
        with self._lock:
            had, self._fix = self._fix is not None, None
            if had:
                self._track.add(time.monotonic(), None)  # no fix is carried across the loss
        if had:
            log.warning("GPS fix lost (%s): lifts get no position until the receiver has one again", why)

    def offer(self, origin: str, **values: Any) -> None:
        """``update`` with a fix read from a receiver or a recording; one out of range (a latitude of
        99 degrees with a valid checksum, a course of nan) is logged and skipped, the last good fix
        stays: raised in the replay's thread, it stopped every later fix."""
        try:
            self.update(**values)
        except ValueError as error:  # pydantic's ValidationError is one
            log.warning("GPS fix ignored (%s): %s", " ".join(str(error).split())[:160], origin)

    def _aged(self) -> tuple[GpsFix | None, float]:
        """The last fix and its age in seconds, by the monotonic clock."""
        with self._lock:
            fix, tick = self._fix, self._fix_tick
        return fix, max(0.0, time.monotonic() - tick)

    def latest(self) -> GpsFix | None:
        fix, age = self._aged()
        if fix is None or age > self.max_age_s:
            return None
        # stamped again from its age: the system clock may have been set since the fix arrived
        return fix.model_copy(update={"fix_at": datetime.now(UTC) - timedelta(seconds=age)})

    def at(self, when: datetime) -> GpsFix | None:
        """The fix of a lift that ended at ``when``: the latest one if live (``LIVE_LAG_S``), else the
        fix nearest that moment within ``max_age_s``, heading included; None rather than where the
        truck is now."""
        wall, now = datetime.now(UTC), time.monotonic()
        late = (wall - when).total_seconds()
        if late <= LIVE_LAG_S:
            return self.latest()
        found = self._track.near(now - late, self.max_age_s)
        if found is None:
            if late > self._track.history_s and len(self._track):  # not for a truck without a receiver
                self._warnings.warning("older than the track", "a lift that ended %.0f min ago (a backlog, or a "
                                       "camera clock behind) is older than the GPS track kept (%.0f min): sent "
                                       "without a position", late / 60, self._track.history_s / 60)
            return None
        fix, tick = found
        return fix.model_copy(update={"fix_at": wall - timedelta(seconds=now - tick)})

    def fix_age_s(self) -> float | None:
        fix, age = self._aged()
        return None if fix is None else age

    def close(self) -> None:
        for stop in self._stoppers:
            stop()


class FixedGps(Gps):
    """A depot camera or a test bench: always the same place, always fresh."""

    def __init__(self, lat: float, lon: float) -> None:
        super().__init__(max_age_s=float("inf"))
        self.update(lat, lon)

    def latest(self) -> GpsFix | None:
        fix = super().latest()
        return fix.model_copy(update={"fix_at": datetime.now(UTC)}) if fix else None

    def at(self, when: datetime) -> GpsFix | None:
        return self.latest()  # it never moves: a lift of any time was there


def open_gps(source: str | None, baud: int = 4800, speed: float = 1.0, max_age_s: float = 30.0) -> Gps:
    """``fixed:LAT,LON``, a ``.nmea``/``.gpx`` file (replayed), ``gpsd://host[:port]``, or a serial device."""
    kind, gps = check_gps_source(source), Gps(max_age_s)
    if kind == "fixed":
        lat, lon = (float(v) for v in str(source).removeprefix("fixed:").split(","))
        return FixedGps(lat, lon)
    if kind == "replay":
        gps = Gps(max_age_s, clock=_drive_clock(speed))
        stop = threading.Event()
        threading.Thread(target=_replay, args=(gps, Path(str(source)), speed, stop), name="gps-replay",
                         daemon=True).start()
        gps._stoppers.append(stop.set)
    elif kind == "gpsd":  # gpsd relays the receiver's NMEA once asked to; it shares the device with others
        address = str(source).removeprefix("gpsd://").rstrip("/") or "127.0.0.1"
        port = address if ":" in address else f"{address}:2947"
        reader = LineReader(f"socket://{port}", baud, gps.feed_nmea, name="gpsd", greeting=GPSD_WATCH,
                            on_lost=lambda: gps.lose_fix("gpsd connection lost")).start()
        gps._stoppers.append(reader.stop)
    elif kind == "device":
        reader = LineReader(str(source), baud, gps.feed_nmea, name="gps",
                            on_lost=lambda: gps.lose_fix("receiver disconnected")).start()
        gps._stoppers.append(reader.stop)
    return gps
