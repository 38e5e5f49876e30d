"""``gps.source``: what it names, checked without opening anything (start-up does, before the model
loads: a misspelt source used to be reported after the model's load and self-check), and the replay
of a recorded drive (``.nmea``/``.gpx``). ``edge.gps.open_gps`` opens it."""

from __future__ import annotations

import math
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol


class Gps(Protocol):
    """What a replay feeds: ``edge.gps.Gps``."""

    def feed_nmea(self, sentence: str) -> None: ...
    def offer(self, origin: str, **values: Any) -> None: ...

GPX_MIN_STEP_M = 2.0  # two replayed points closer than this give no direction
EARTH_RADIUS_M = 6_371_000.0
REPLAY_SUFFIXES = (".nmea", ".txt", ".log", ".gpx")  # recorded fixes, replayed as a drive


class GpsError(ValueError):
    """A GPS source that cannot be used; names the source."""


def _gpx_points(path: Path) -> list[tuple[float | None, float, float]]:
    """(seconds since the first point or None, lat, lon) of every trkpt/rtept/wpt."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        raise GpsError(f"gps.source: {path}: not valid GPX ({error})") from None
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
            raise GpsError(f"gps.source: {path}: point {len(points) + 1} has no {missing.args[0]} attribute") from None
        except ValueError as error:
            raise GpsError(f"gps.source: {path}: point {len(points) + 1}: {error}") from None
    if not points:
        raise GpsError(f"gps.source: {path}: no track points")
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


def check_gps_source(source: str | None) -> str:
    """The kind of ``gps.source`` (none, fixed, replay, gpsd, device), opening nothing, or GpsError
    naming what is wrong: start-up checks it before the model loads (``edge.preflight``)."""
    if not source:
        return "none"
    if source.startswith("fixed:"):
        try:
            lat, lon = (float(v) for v in source.removeprefix("fixed:").split(","))
        except ValueError:
            raise GpsError(f"gps.source: {source!r}: expected fixed:LAT,LON in degrees (fixed:47.90,1.91)") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):  # NaN fails both
            raise GpsError(f"gps.source: {source!r}: latitude is -90..90 and longitude -180..180 degrees")
        return "fixed"
    path = Path(source)
    if path.suffix.lower() in REPLAY_SUFFIXES:
        if not path.is_file():
            raise GpsError(f"gps.source: {source!r}: no such file to replay")
        if path.suffix.lower() == ".gpx":
            _gpx_points(path)
        return "replay"
    if source.startswith("gpsd://"):
        return "gpsd"
    if source.startswith("/dev/") or "://" in source:
        return "device"
    raise GpsError(f"gps.source: {source!r}: not fixed:LAT,LON, an .nmea/.gpx file, gpsd://host, nor a serial device")
