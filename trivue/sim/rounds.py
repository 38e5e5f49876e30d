"""Collection rounds over a real street network: which streets a truck drives, in which order.

The network is the server's imported streets (``Segment`` rows, so street ids match the API) or
a street file read with the server's own OSM/GeoJSON reader. A round walks street after street:
from where it is, the truck takes a street it has not collected yet, preferring to carry on along
the same street; when every street around is done it drives (without collecting) the shortest
way to the nearest street still to do. One-way streets are driven their way only.

Geometry is computed in a local equirectangular frame in metres around the network's centre
(error far below GPS noise over a city).
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

EARTH_RADIUS_M = 6_371_008.8
_M_PER_DEGREE = math.radians(1) * EARTH_RADIUS_M
NodeKey = tuple[int, int]
_Piece = tuple[float, float, float, float, float, float, bool]


@dataclass(frozen=True, slots=True)
class StreetRef:
    """A street as the API shows it; ``street_id`` is None when read from a file."""

    street_id: int | None
    name: str
    commune: str

    @property
    def key(self) -> str:
        return f"{self.street_id}" if self.street_id is not None else f"{self.commune}/{self.name}"


@dataclass(frozen=True, slots=True)
class Frame:
    """Local metric frame: x east, y north, metres from (lon0, lat0)."""

    lon0: float
    lat0: float
    # Metres per degree east, worked out once: a simulated month converts a few hundred thousand fixes.
    _k_lon: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_k_lon", _M_PER_DEGREE * math.cos(math.radians(self.lat0)))

    def to_xy(self, lon: float, lat: float) -> tuple[float, float]:
        return (lon - self.lon0) * _M_PER_DEGREE * math.cos(math.radians(self.lat0)), (lat - self.lat0) * _M_PER_DEGREE

    def to_lonlat(self, x: float, y: float) -> tuple[float, float]:
        return self.lon0 + x / self._k_lon, self.lat0 + y / _M_PER_DEGREE


@dataclass(frozen=True, slots=True)
class Link:
    """One street segment between junctions, in metres; drawn from ``xy[0]`` to ``xy[-1]``."""

    index: int
    street: StreetRef
    xy: tuple[tuple[float, float], ...]
    oneway: int  # 1: only in drawing order, -1: only against it, 0: both
    start: NodeKey
    end: NodeKey
    # Summed once: a simulated week asks every link's length a few times per drive.
    length_m: float = field(init=False, repr=False, compare=False)
    # The pieces of each drawing direction, measured once (see ``_pieces``): a simulated month asks
    # ``point_at`` for every stop of every round, week after week.
    _forward: tuple[_Piece, ...] = field(init=False, repr=False, compare=False)
    _backward: tuple[_Piece, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "length_m", sum(math.dist(a, b) for a, b in itertools.pairwise(self.xy)))
        object.__setattr__(self, "_forward", _pieces(self.xy))
        object.__setattr__(self, "_backward", _pieces(self.xy[::-1]))

    def point_at(self, s: float, forward: bool = True) -> tuple[float, float, float]:
        """(x, y, heading in degrees) at ``s`` metres from the start of the drive."""
        for ax, ay, dx, dy, step, heading, last in (self._forward if forward else self._backward):
            if s <= step or last:
                t = min(max(s / step, 0.0), 1.0) if step else 0.0
                return ax + dx * t, ay + dy * t, heading
            s -= step
        pts = self.xy if forward else self.xy[::-1]
        return pts[-1][0], pts[-1][1], 0.0

    def project(self, x: float, y: float) -> tuple[float, float, int]:
        """(distance from the start along the link, distance to it, side: +1 left / -1 right)."""
        best = (math.inf, 0.0, 1)
        walked = 0.0
        for a, b in itertools.pairwise(self.xy):
            dx, dy = b[0] - a[0], b[1] - a[1]
            step2 = dx * dx + dy * dy
            t = min(max(((x - a[0]) * dx + (y - a[1]) * dy) / step2, 0.0), 1.0) if step2 else 0.0
            px, py = a[0] + dx * t, a[1] + dy * t
            dist = math.hypot(x - px, y - py)
            if dist < best[0]:
                side = 1 if dx * (y - a[1]) - dy * (x - a[0]) >= 0 else -1
                best = (dist, walked + t * math.sqrt(step2), side)
            walked += math.sqrt(step2)
        return best[1], best[0], best[2]


def _pieces(pts: tuple[tuple[float, float], ...]) -> tuple[_Piece, ...]:
    """(start x, y, dx, dy, length, heading in degrees, ends at the last point) of each piece,
    computed as ``point_at`` once computed them on every call, so that its positions stay the same."""
    return tuple((a[0], a[1], b[0] - a[0], b[1] - a[1], math.dist(a, b),
                  math.degrees(math.atan2(b[0] - a[0], b[1] - a[1])) % 360, b == pts[-1])
                 for a, b in itertools.pairwise(pts))


@dataclass(frozen=True, slots=True)
class Drive:
    """A link driven in one direction; ``collect`` is False for a transfer between streets."""

    link: Link
    forward: bool
    collect: bool


class StreetNetwork:
    """The links of a city and who connects to whom."""

    def __init__(self, frame: Frame, links: list[Link]) -> None:
        if not links:
            raise ValueError("the street network is empty: import streets first")
        self.frame, self.links = frame, links
        self._out: dict[NodeKey, list[Drive]] = defaultdict(list)
        for link in links:
            if link.oneway in (0, 1):
                self._out[link.start].append(Drive(link, True, True))
            if link.oneway in (0, -1):
                self._out[link.end].append(Drive(link, False, True))

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[StreetRef, list[tuple[float, float]], int]]) -> StreetNetwork:
        """Build from (street, [(lon, lat), ...], oneway) rows."""
        rows = [r for r in rows if len(r[1]) >= 2]
        if not rows:
            raise ValueError("the street network is empty: import streets first")
        lons = [c[0] for _, coords, _ in rows for c in coords]
        lats = [c[1] for _, coords, _ in rows for c in coords]
        frame = Frame((min(lons) + max(lons)) / 2, (min(lats) + max(lats)) / 2)
        links = []
        for index, (street, coords, oneway) in enumerate(rows):
            xy = tuple(frame.to_xy(lon, lat) for lon, lat in coords)
            links.append(Link(index, street, xy, oneway, _node(coords[0]), _node(coords[-1])))
        return cls(frame, links)

    @classmethod
    def from_session(cls, session: object) -> StreetNetwork:
        """Every segment imported in the server's database (street ids as the API shows them)."""
        from sqlalchemy import select

        from server.streets.models import Segment, Street

        query = select(Street.id, Street.name, Street.commune, Segment.geometry, Segment.oneway).join(
            Segment, Segment.street_id == Street.id).order_by(Segment.id)
        return cls.from_rows((StreetRef(sid, name, commune), json.loads(geometry)["coordinates"], oneway)
                             for sid, name, commune, geometry, oneway in session.execute(query))  # type: ignore[attr-defined]

    @classmethod
    def from_file(cls, path: Path, commune: str | None = None) -> StreetNetwork:
        """Streets of an OSM/GeoJSON file, cut at junctions exactly as ``trivue streets import`` does."""
        from server.streets.osm import read_ways
        from server.streets.outlines import street_pieces

        pieces = street_pieces(read_ways(path, commune))[0]
        return cls.from_rows((StreetRef(None, p.name, p.commune), list(p.coords), p.oneway) for p in pieces)

    def within(self, lat: float, lon: float, radius_m: float) -> StreetNetwork:
        """The links with a vertex within ``radius_m`` of a point (a district for a small demo)."""
        cx, cy = self.frame.to_xy(lon, lat)
        kept = [link for link in self.links if any(math.hypot(x - cx, y - cy) <= radius_m for x, y in link.xy)]
        if not kept:
            raise ValueError(f"no street within {radius_m:g} m of {lat}, {lon}")
        rows = [(link.street, [self.frame.to_lonlat(x, y) for x, y in link.xy], link.oneway) for link in kept]
        return StreetNetwork.from_rows(rows)

    @property
    def streets(self) -> list[StreetRef]:
        return sorted({link.street for link in self.links}, key=lambda s: (s.commune, s.name))

    def drives_from(self, node: NodeKey) -> list[Drive]:
        return self._out.get(node, [])

    def plan_round(self, rng: random.Random, done: set[int], target_m: float,
                   start: NodeKey | None = None) -> list[Drive]:
        """A round of about ``target_m`` metres of collected streets; marks them in ``done``."""
        todo = [link for link in self.links if link.index not in done]
        if not todo:
            return []
        node = start or rng.choice(todo).start
        drives: list[Drive] = []
        collected = 0.0
        street: StreetRef | None = None
        while collected < target_m:
            options = [d for d in self.drives_from(node) if d.link.index not in done]
            if not options:
                path = self._path_to_work(node, done)
                if path:
                    drives.extend(path)
                    node = _arrival(path[-1])
                    continue
                # A dead end of the loaded area (or of a one-way maze): the truck leaves the map
                # and comes back at the nearest street still to do, as it would via streets not loaded.
                node = self._nearest_work(node, done)
                if node is None:
                    break
                continue
            same = [d for d in options if d.link.street == street]
            drive = rng.choice(same or options)
            done.add(drive.link.index)
            drives.append(drive)
            collected += drive.link.length_m
            street, node = drive.link.street, _arrival(drive)
        return drives

    def _nearest_work(self, origin: NodeKey, done: set[int]) -> NodeKey | None:
        starts = {d.link.start if d.forward else d.link.end for link in self.links if link.index not in done
                  for d in (Drive(link, True, True), Drive(link, False, True))
                  if link.oneway == 0 or (link.oneway == 1) == d.forward}
        if not starts:
            return None
        return min(starts, key=lambda n: (n[0] - origin[0]) ** 2 + (n[1] - origin[1]) ** 2)

    def _path_to_work(self, origin: NodeKey, done: set[int]) -> list[Drive]:
        """Shortest drive (Dijkstra on length) to a node with a link still to collect."""
        best: dict[NodeKey, float] = {origin: 0.0}
        came: dict[NodeKey, Drive] = {}
        queue: list[tuple[float, int, NodeKey]] = [(0.0, 0, origin)]
        tie = 0
        while queue:
            cost, _, node = heapq.heappop(queue)
            if cost > best.get(node, math.inf):
                continue
            if node != origin and any(d.link.index not in done for d in self.drives_from(node)):
                return self._unwind(came, origin, node)
            for drive in self.drives_from(node):
                nxt, new = _arrival(drive), cost + drive.link.length_m
                if new < best.get(nxt, math.inf):
                    best[nxt], came[nxt] = new, drive
                    tie += 1
                    heapq.heappush(queue, (new, tie, nxt))
        return []

    @staticmethod
    def _unwind(came: dict[NodeKey, Drive], origin: NodeKey, node: NodeKey) -> list[Drive]:
        path = []
        while node != origin:
            drive = came[node]
            path.append(Drive(drive.link, drive.forward, collect=False))
            node = drive.link.start if drive.forward else drive.link.end
        return path[::-1]


def _node(coord: Iterable[float]) -> NodeKey:
    lon, lat = list(coord)[:2]
    return round(lon * 1e7), round(lat * 1e7)


def _arrival(drive: Drive) -> NodeKey:
    return drive.link.end if drive.forward else drive.link.start
