"""GPS: the latest position fix, from NMEA 0183 (serial device or file replay), a GPX replay, or fixed.

``latest()`` returns None when there is no fix or the last one is older than ``max_age_s``: a
lift is then kept with ``gps`` empty rather than placed where the truck was minutes ago. Replays
re-time their fixes to now (they simulate a drive happening today) and are paced by the
recording's own timestamps, scaled by ``speed``.

The heading sent with a lift is the course the truck drove up with, not the receiver's course
of the moment: a lift happens with the truck stopped, and a receiver's course over ground at
walking speed or below is noise (it spins, or freezes at whatever it last computed). The server
weighs the heading against each candidate street's direction, so a wrong one would pull a lift
onto the crossing street; the course is therefore taken only while the truck moves (at least
``COURSE_MIN_SPEED_MPS``) and kept through the stop for ``course_max_age_s``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path
from typing import Any

from edge.lines import LineReader
from vision.schema import GpsFix

log = logging.getLogger(__name__)

UERE_M = 5.0  # metres of error per unit of HDOP, a common rule of thumb for consumer receivers
KNOT_MPS = 1852 / 3600
COURSE_MIN_SPEED_MPS = 1.5  # ~5 km/h: below it a receiver's course over ground is not the street's direction
COURSE_MAX_AGE_S = 120.0  # a bin lift stops the truck for seconds to a minute; after a longer halt, no heading
GPX_MIN_STEP_M = 2.0  # two replayed points closer than this give no direction
EARTH_RADIUS_M = 6_371_000.0
GPSD_WATCH = b'?WATCH={"enable":true,"nmea":true};\n'


class GpsError(ValueError):
    """A GPS source that cannot be used; names the source."""


def _checksum_ok(sentence: str) -> bool:
    body, _, given = sentence[1:].partition("*")
    if not given:
        return True  # checksum is optional in NMEA 0183
    computed = reduce(lambda acc, ch: acc ^ ord(ch), body, 0)
    try:
        return computed == int(given[:2], 16)
    except ValueError:
        return False


def _degrees(value: str, hemisphere: str) -> float:
    # NMEA packs degrees and minutes: ddmm.mmmm (lat) / dddmm.mmmm (lon)
    head, minutes = divmod(float(value), 100)
    degrees = head + minutes / 60
    return -degrees if hemisphere in ("S", "W") else degrees


def parse_nmea(sentence: str) -> tuple[str, dict[str, float]] | None:
    """``$GPGGA``/``$GNRMC``... -> ("GGA"|"RMC", fields) when it carries a valid fix, else None."""
    sentence = sentence.strip()
    if not sentence.startswith("$") or not _checksum_ok(sentence):
        return None
    fields = sentence.split("*")[0].split(",")
    kind = fields[0][3:]
    try:
        if kind == "GGA" and len(fields) >= 9 and fields[6] not in ("", "0") and fields[2] and fields[4]:
            values = {"lat": _degrees(fields[2], fields[3]), "lon": _degrees(fields[4], fields[5])}
            if fields[8]:
                values["accuracy_m"] = float(fields[8]) * UERE_M
            return kind, values
        if kind == "RMC" and len(fields) >= 9 and fields[2] == "A" and fields[3] and fields[5]:
            values = {"lat": _degrees(fields[3], fields[4]), "lon": _degrees(fields[5], fields[6])}
            if fields[7]:
                values["speed_mps"] = float(fields[7]) * KNOT_MPS
            if fields[8]:
                values["heading_deg"] = float(fields[8]) % 360
            return kind, values
    except ValueError:
        return None
    return None


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
        self._course: tuple[float, float] | None = None  # the last course while moving, and its clock
        self._stoppers: list = []

    def update(self, lat: float, lon: float, *, heading_deg: float | None = None, speed_mps: float | None = None,
               **extra: float) -> None:
        """A new fix. ``heading_deg`` counts only with ``speed_mps`` at walking pace or above, or
        when the source gives no speed (it vouches for its own heading)."""
        now, tick = datetime.now(UTC), self.clock()
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

    def feed_nmea(self, sentence: str) -> None:
        parsed = parse_nmea(sentence)
        if parsed is not None:
            self.offer(sentence[:80], **parsed[1])

    def offer(self, origin: str, **values: Any) -> None:
        """``update`` with a fix read from a receiver or a recording; one out of range (a latitude of
        99 degrees with a valid checksum, a course of nan) is logged and skipped, the last good fix
        stays: raised in the replay's thread, it stopped every later fix."""
        try:
            self.update(**values)
        except ValueError as error:  # pydantic's ValidationError is one
            log.warning("GPS fix ignored (%s): %s", " ".join(str(error).split())[:160], origin)

    def latest(self) -> GpsFix | None:
        with self._lock:
            fix = self._fix
        if fix is None or fix.fix_at is None:
            return fix
        return fix if (datetime.now(UTC) - fix.fix_at).total_seconds() <= self.max_age_s else None

    def fix_age_s(self) -> float | None:
        with self._lock:
            fix = self._fix
        return None if fix is None or fix.fix_at is None else (datetime.now(UTC) - fix.fix_at).total_seconds()

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


def _gpx_points(path: Path) -> list[tuple[float | None, float, float]]:
    """(seconds since the first point or None, lat, lon) of every trkpt/rtept/wpt."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        raise GpsError(f"{path}: not valid GPX ({error})") from None
    points, first = [], None
    for node in root.iter():
        if node.tag.rsplit("}", 1)[-1] not in ("trkpt", "rtept", "wpt"):
            continue
        stamp = next((c.text for c in node if c.tag.rsplit("}", 1)[-1] == "time"), None)
        offset = None
        try:
            if stamp:
                at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                first = at if first is None else first
                offset = at - first
            points.append((offset, float(node.attrib["lat"]), float(node.attrib["lon"])))
        except KeyError as missing:
            raise GpsError(f"{path}: point {len(points) + 1} has no {missing.args[0]} attribute") from None
        except ValueError as error:
            raise GpsError(f"{path}: point {len(points) + 1}: {error}") from None
    if not points:
        raise GpsError(f"{path}: no track points")
    return points


def _distance_bearing(lat1: float, lon1: float, lat2: float, lon2: float) -> tuple[float, float]:
    """(metres, initial bearing in degrees from north) from point 1 to point 2; short distances."""
    north = math.radians(lat2 - lat1) * EARTH_RADIUS_M
    east = math.radians(lon2 - lon1) * EARTH_RADIUS_M * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot(north, east), math.degrees(math.atan2(east, north)) % 360


def _drive_clock(speed: float) -> Callable[[], float]:
    """Seconds of a recording replayed at ``speed``x."""
    start = time.monotonic()
    return lambda: (time.monotonic() - start) * speed


def _replay(gps: Gps, path: Path, speed: float, stop: threading.Event) -> None:
    if path.suffix.lower() == ".gpx":
        start, step = time.monotonic(), 1.0
        previous: tuple[float | None, float, float] | None = None
        for index, (offset, lat, lon) in enumerate(_gpx_points(path)):
            due = start + (offset if offset is not None else index * step) / speed
            if stop.wait(max(0.0, due - time.monotonic())):
                return
            # GPX has no course: the bearing from the previous point, and the speed when both are timed.
            motion: dict[str, float] = {}
            if previous is not None:
                metres, bearing = _distance_bearing(previous[1], previous[2], lat, lon)
                seconds = offset - previous[0] if offset is not None and previous[0] is not None else None
                if seconds:
                    motion["speed_mps"] = metres / seconds
                if metres >= GPX_MIN_STEP_M:
                    motion["heading_deg"] = bearing
            gps.offer(f"{path} point {index + 1}", lat=lat, lon=lon, **motion)
            previous = (offset, lat, lon)
        return
    for line in path.read_text(encoding="ascii", errors="replace").splitlines():
        # one fix per second of recording: pace on the GGA/RMC pairs a receiver emits each second
        if line[3:6] == "GGA" and stop.wait(1.0 / speed):
            return
        gps.feed_nmea(line)


REPLAY_SUFFIXES = (".nmea", ".txt", ".log", ".gpx")  # recorded fixes, replayed as a drive


def open_gps(source: str | None, baud: int = 4800, speed: float = 1.0, max_age_s: float = 30.0) -> Gps:
    """``fixed:LAT,LON``, a ``.nmea``/``.gpx`` file (replayed), ``gpsd://host[:port]``, or a serial device."""
    if not source:
        return Gps(max_age_s)
    if source.startswith("fixed:"):
        try:
            lat, lon = (float(v) for v in source.removeprefix("fixed:").split(","))
        except ValueError:
            raise GpsError(f"gps {source!r}: expected fixed:LAT,LON in degrees, e.g. fixed:47.9029,1.9093") from None
        try:
            return FixedGps(lat, lon)
        except ValueError:  # GpsFix's bounds (pydantic's ValidationError is a ValueError)
            raise GpsError(f"gps {source!r}: latitude is -90..90 and longitude -180..180 degrees") from None
    path = Path(source)
    if path.suffix.lower() in REPLAY_SUFFIXES and not path.is_file():
        raise GpsError(f"gps {source!r}: no such file to replay")
    if path.is_file() and path.suffix.lower() in REPLAY_SUFFIXES:
        gps = Gps(max_age_s, clock=_drive_clock(speed))
        if path.suffix.lower() == ".gpx":
            _gpx_points(path)  # validate at start-up
        stop = threading.Event()
        threading.Thread(target=_replay, args=(gps, path, speed, stop), name="gps-replay", daemon=True).start()
        gps._stoppers.append(stop.set)
        return gps
    gps = Gps(max_age_s)
    if source.startswith("gpsd://"):
        # gpsd relays the receiver's NMEA once asked to; it shares the device with other programs
        address = source.removeprefix("gpsd://").rstrip("/") or "127.0.0.1"
        port = address if ":" in address else f"{address}:2947"
        reader = LineReader(f"socket://{port}", baud, gps.feed_nmea, name="gpsd", greeting=GPSD_WATCH).start()
        gps._stoppers.append(reader.stop)
        return gps
    if source.startswith("/dev/") or "://" in source:
        reader = LineReader(source, baud, gps.feed_nmea, name="gps").start()
        gps._stoppers.append(reader.stop)
        return gps
    raise GpsError(f"gps {source!r}: not fixed:LAT,LON, an .nmea/.gpx file, gpsd://host, nor a serial device")
