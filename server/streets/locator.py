"""Matching a GPS fix to a street and an address: the in-memory spatial index.

Every segment is cut into short straight pieces (at most ``PIECE_M`` long) and each piece is
filed under the grid cell of its midpoint; a fix then looks at the few cells around it and
measures exact point-to-piece distances in a local equirectangular projection centred on the
fix (error well under 0.1 % within a kilometre, anywhere but the poles). No spatial database
extension or GEOS is needed, and SQLite and PostgreSQL behave the same.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from server.streets.models import Address, Segment, Street
from server.streets.osm import EARTH_RADIUS_M, degrees_per_metre

PIECE_M = 40.0  # pieces longer than this are subdivided, so a midpoint cell stays near its piece
CELL_DEG_LAT = 0.001  # about 111 m
DEFAULT_ACCURACY_M = 10.0  # a fix without accuracy is treated like a typical truck GPS
STREET_HALF_WIDTH_M = 6.0  # a truck on a street is this far from its centre line at most
MIN_SIGMA_M = 8.0  # GPS error never assumed smaller than this in an urban canyon
# Fixes worse than this leave the block uncertain even when one street is alone nearby.
GOOD_ACCURACY_M = 20.0
TURN_PENALTY_M = 12.0  # cost of a street at right angles to the truck's heading
WRONG_WAY_PENALTY_M = 6.0  # cost of driving a one-way street backwards (trucks rarely do)
LOCATE_CHUNK = 4096  # fixes per numpy pass in ``locate_many``: bounds the (fix, piece) pair arrays


@dataclass(frozen=True, slots=True)
class Match:
    """Where a fix was matched. ``confidence`` covers the street and, when ``address_id`` is set,
    the address too: the household-level features refuse attribution below their threshold."""

    street_id: int
    street_name: str
    commune: str
    segment_id: int
    distance_m: float
    address_id: int | None
    address_label: str | None
    address_distance_m: float | None
    confidence: float
    street_confidence: float = 1.0
    address_candidates: int = 0  # addresses of the street within the fix's uncertainty
    address_synthetic: bool = False  # made up for a demo (``trivue addresses synthesize``)


@dataclass(frozen=True, slots=True)
class SegmentEnds:
    """A segment as the road graph sees it: its street, end nodes (``node_key``) and length."""

    street_id: int
    start: tuple[int, int]
    end: tuple[int, int]
    length_m: float
    oneway: int


@dataclass(frozen=True, slots=True)
class _Addresses:
    ids: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    labels: tuple[str, ...]
    synthetic: np.ndarray


class Locator:
    """Nearest street (and address) of a fix, over every segment loaded from the database."""

    def __init__(self, segments: list[tuple[int, int, str, int]], streets: dict[int, tuple[str, str]],
                 addresses: dict[int, _Addresses] | None = None, max_distance_m: float = 30.0,
                 default_accuracy_m: float = DEFAULT_ACCURACY_M) -> None:
        """``segments``: (segment id, street id, GeoJSON LineString, oneway) rows."""
        self.max_distance_m = max_distance_m
        self.default_accuracy_m = default_accuracy_m
        self._streets = streets
        self._addresses = addresses or {}
        self._build(segments)

    @classmethod
    def from_session(cls, session: Session, *, with_addresses: bool = True, **options: float) -> Locator:
        streets = {sid: (name, commune) for sid, name, commune in
                   session.execute(select(Street.id, Street.name, Street.commune))}
        segments = [tuple(row) for row in session.execute(
            select(Segment.id, Segment.street_id, Segment.geometry, Segment.oneway).order_by(Segment.id))]
        addresses = _load_addresses(session) if with_addresses else None
        return cls(segments, streets, addresses, **options)  # type: ignore[arg-type]

    @classmethod
    def from_engine(cls, engine: Engine, **options: float | bool) -> Locator:
        with Session(engine) as session:
            return cls.from_session(session, **options)  # type: ignore[arg-type]

    @property
    def segment_count(self) -> int:
        return len(set(self._seg_id.tolist())) if len(self._seg_id) else 0

    def _build(self, segments: list[tuple[int, int, str, int]]) -> None:
        ax, ay, bx, by, seg, street, oneway, along = ([] for _ in range(8))
        self.segment_ends: dict[int, SegmentEnds] = {}
        for seg_id, street_id, geometry, way in segments:
            coords = np.asarray(json.loads(geometry)["coordinates"], dtype=float)
            walked = 0.0
            for (x0, y0), (x1, y1) in itertools.pairwise(coords.tolist()):
                length = _metres(x0, y0, x1, y1)
                steps = max(1, math.ceil(length / PIECE_M))
                t = np.linspace(0.0, 1.0, steps + 1)
                xs, ys = x0 + (x1 - x0) * t, y0 + (y1 - y0) * t
                ax.extend(xs[:-1])
                ay.extend(ys[:-1])
                bx.extend(xs[1:])
                by.extend(ys[1:])
                seg.extend([seg_id] * steps)
                street.extend([street_id] * steps)
                oneway.extend([way] * steps)
                along.extend((walked + length * t[:-1]).tolist())
                walked += length
            if len(coords) >= 2:
                self.segment_ends[seg_id] = SegmentEnds(street_id, node_key(coords[0]), node_key(coords[-1]),
                                                        walked, way)
        self._ax, self._ay, self._bx, self._by = (np.asarray(v, dtype=float) for v in (ax, ay, bx, by))
        self._seg_id = np.asarray(seg, dtype=np.int64)
        self._street_id = np.asarray(street, dtype=np.int64)
        self._oneway = np.asarray(oneway, dtype=np.int8)
        self._along = np.asarray(along, dtype=float)  # metres from the segment's start to the piece's start
        # Direction of each piece as a unit vector (east, north) in metres.
        kx = np.cos(np.radians((self._ay + self._by) / 2))
        dx, dy = (self._bx - self._ax) * kx, self._by - self._ay
        norm = np.hypot(dx, dy)
        norm[norm == 0] = 1.0
        self._ux, self._uy = dx / norm, dy / norm
        self._cell_deg_lon = CELL_DEG_LAT / max(math.cos(math.radians(float(np.mean(ay)) if ay else 0.0)), 0.2)
        keys = self._cell_keys((self._ax + self._bx) / 2, (self._ay + self._by) / 2)
        order = np.argsort(keys, kind="stable")
        for name in ("_ax", "_ay", "_bx", "_by", "_seg_id", "_street_id", "_oneway", "_ux", "_uy", "_along"):
            setattr(self, name, getattr(self, name)[order])
        self._keys = keys[order]

    def _cell_keys(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        cx = np.floor(lon / self._cell_deg_lon).astype(np.int64)
        cy = np.floor(lat / CELL_DEG_LAT).astype(np.int64)
        return cy * (1 << 32) + cx

    def _candidates(self, lat: float, lon: float, radius_m: float) -> np.ndarray:
        """Indices of the pieces that may lie within ``radius_m`` of the fix."""
        if not len(self._keys):
            return np.empty(0, dtype=np.int64)
        dlon, dlat = degrees_per_metre(lat)
        reach = radius_m + PIECE_M / 2
        cx0 = math.floor((lon - reach * dlon) / self._cell_deg_lon)
        cx1 = math.floor((lon + reach * dlon) / self._cell_deg_lon)
        rows = np.arange(math.floor((lat - reach * dlat) / CELL_DEG_LAT),
                         math.floor((lat + reach * dlat) / CELL_DEG_LAT) + 1, dtype=np.int64)
        starts = np.searchsorted(self._keys, rows * (1 << 32) + cx0, side="left")
        ends = np.searchsorted(self._keys, rows * (1 << 32) + cx1, side="right")
        spans = [np.arange(s, e) for s, e in zip(starts.tolist(), ends.tolist(), strict=True) if e > s]
        return np.concatenate(spans) if spans else np.empty(0, dtype=np.int64)

    def nearby_streets(self, lat: float, lon: float, radius_m: float) -> list[tuple[int, float]]:
        """(street id, distance in metres) of every street within ``radius_m``, nearest first."""
        idx = self._candidates(lat, lon, radius_m)
        if not len(idx):
            return []
        distance = self._distances(idx, lat, lon)
        nearest: dict[int, float] = {}
        for street_id, d in zip(self._street_id[idx].tolist(), distance.tolist(), strict=True):
            if d <= radius_m and d < nearest.get(street_id, math.inf):
                nearest[street_id] = d
        return sorted(nearest.items(), key=lambda item: item[1])

    def locate(self, lat: float, lon: float, heading_deg: float | None = None,
               accuracy_m: float | None = None) -> Match | None:
        """The street the truck stood on at this fix, or None when none lies close enough."""
        accuracy = accuracy_m if accuracy_m is not None and accuracy_m > 0 else self.default_accuracy_m
        sigma = max(accuracy, MIN_SIGMA_M)
        # A poor fix may be further from its street; three sigma at most, so a fix 1 km off stays unmatched.
        radius = self.max_distance_m + min(accuracy, 2 * self.max_distance_m)
        idx = self._candidates(lat, lon, radius)
        if not len(idx):
            return None
        distance = self._distances(idx, lat, lon)
        near = distance <= radius
        if not near.any():
            return None
        idx, distance = idx[near], distance[near]
        cost = distance + self._heading_cost(idx, heading_deg)
        best = int(np.argmin(cost))
        street_id = int(self._street_id[idx[best]])
        others = self._street_id[idx] != street_id
        margin = float(cost[others].min() - cost[best]) if others.any() else math.inf
        street_conf = (_distance_factor(float(distance[best]), sigma) * _margin_factor(margin, sigma)
                       * math.exp(-max(0.0, accuracy - GOOD_ACCURACY_M) / (2 * GOOD_ACCURACY_M)))
        name, commune = self._streets.get(street_id, ("", ""))
        match = Match(street_id, name, commune, int(self._seg_id[idx[best]]), round(float(distance[best]), 2),
                      None, None, None, round(street_conf, 4), round(street_conf, 4), 0)
        return self._with_address(match, lat, lon, sigma)

    def locate_many(self, lats: Sequence[float], lons: Sequence[float],
                    headings: Sequence[float | None] | None = None,
                    accuracies: Sequence[float | None] | None = None) -> list[Match | None]:
        """``locate`` for many fixes at once: the same matches, one numpy pass per chunk of fixes.

        Ingest calls this once per batch: per fix, ``locate`` spends most of its time in numpy call
        overhead on a few hundred pieces, which one pass over every (fix, piece) pair pays once.
        """
        n = len(lats)
        headings = headings if headings is not None else [None] * n
        accuracies = accuracies if accuracies is not None else [None] * n
        found: list[Match | None] = []
        for start in range(0, n, LOCATE_CHUNK):
            end = min(n, start + LOCATE_CHUNK)
            found.extend(self._locate_chunk(list(lats[start:end]), list(lons[start:end]),
                                            list(headings[start:end]), list(accuracies[start:end])))
        return found

    def _locate_chunk(self, lats: list[float], lons: list[float], headings: list[float | None],
                      accuracies: list[float | None]) -> list[Match | None]:
        n = len(lats)
        if not n or not len(self._keys):
            return [None] * n
        # Per-fix scalars with Python's math, as ``locate`` computes them, so results are identical.
        accuracy = [a if a is not None and a > 0 else self.default_accuracy_m for a in accuracies]
        radius = np.array([self.max_distance_m + min(a, 2 * self.max_distance_m) for a in accuracy])
        lat, lon = np.asarray(lats, dtype=float), np.asarray(lons, dtype=float)
        point, piece = self._candidate_pairs(lat, lon, radius)
        if not len(point):
            return [None] * n
        kx = np.array([math.cos(math.radians(v)) * EARTH_RADIUS_M * math.pi / 180 for v in lats])[point]
        distance = self._segment_distances(piece, lat[point], lon[point], kx)
        near = distance <= radius[point]
        point, piece, distance = point[near], piece[near], distance[near]
        if not len(point):
            return [None] * n
        cost = distance + self._heading_costs(point, piece, headings)
        # Pairs are sorted by fix, then by piece index: the first minimum is ``locate``'s argmin.
        starts = np.flatnonzero(np.r_[True, point[1:] != point[:-1]])
        group = np.cumsum(np.r_[False, point[1:] != point[:-1]])
        best_cost = np.minimum.reduceat(cost, starts)
        position = np.arange(len(cost))
        best = np.minimum.reduceat(np.where(cost == best_cost[group], position, len(cost)), starts)
        best_street = self._street_id[piece[best]]
        others = self._street_id[piece] != best_street[group]
        margin = np.minimum.reduceat(np.where(others, cost, np.inf), starts) - best_cost
        # Plain lists from here: indexing numpy arrays element by element is slow.
        best_piece = piece[best]
        found: list[Match | None] = [None] * n
        for p, street_id, segment_id, near_m, margin_m in zip(
                point[starts].tolist(), best_street.tolist(), self._seg_id[best_piece].tolist(),
                distance[best].tolist(), margin.tolist(), strict=True):
            sigma = max(accuracy[p], MIN_SIGMA_M)
            street_conf = (_distance_factor(near_m, sigma) * _margin_factor(margin_m, sigma)
                           * math.exp(-max(0.0, accuracy[p] - GOOD_ACCURACY_M) / (2 * GOOD_ACCURACY_M)))
            name, commune = self._streets.get(street_id, ("", ""))
            match = Match(street_id, name, commune, segment_id, round(near_m, 2),
                          None, None, None, round(street_conf, 4), round(street_conf, 4), 0)
            found[p] = self._with_address(match, lats[p], lons[p], sigma)
        return found

    def _candidate_pairs(self, lat: np.ndarray, lon: np.ndarray, radius: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(fix, piece) index pairs of the cells around each fix (``_candidates`` for many fixes),
        sorted by fix then piece."""
        # The same scale as ``degrees_per_metre`` (Python's math), so the cells are ``_candidates``'s.
        lat_deg = 180.0 / (math.pi * EARTH_RADIUS_M)
        dlon = np.array([lat_deg / max(math.cos(math.radians(v)), 1e-6) for v in lat.tolist()])
        reach = radius + PIECE_M / 2
        cx0 = np.floor((lon - reach * dlon) / self._cell_deg_lon).astype(np.int64)
        cx1 = np.floor((lon + reach * dlon) / self._cell_deg_lon).astype(np.int64)
        cy0 = np.floor((lat - reach * lat_deg) / CELL_DEG_LAT).astype(np.int64)
        cy1 = np.floor((lat + reach * lat_deg) / CELL_DEG_LAT).astype(np.int64)
        rows_per_fix = cy1 - cy0 + 1
        fix = np.repeat(np.arange(len(lat)), rows_per_fix)
        first_row = np.cumsum(rows_per_fix) - rows_per_fix
        row = cy0[fix] + (np.arange(len(fix)) - first_row[fix])
        begin = np.searchsorted(self._keys, row * (1 << 32) + cx0[fix], side="left")
        end = np.searchsorted(self._keys, row * (1 << 32) + cx1[fix], side="right")
        length = np.maximum(end - begin, 0)
        total = int(length.sum())
        point = np.repeat(fix, length)
        offset = np.cumsum(length) - length
        piece = np.repeat(begin - offset, length) + np.arange(total)
        return point, piece

    def _heading_costs(self, point: np.ndarray, piece: np.ndarray,
                       headings: list[float | None]) -> np.ndarray | float:
        """``_heading_cost`` for (fix, piece) pairs; fixes without a heading cost nothing."""
        if all(h is None for h in headings):
            return 0.0
        has = np.array([h is not None for h in headings])
        hx = np.array([math.sin(math.radians(h)) if h is not None else 0.0 for h in headings])[point]
        hy = np.array([math.cos(math.radians(h)) if h is not None else 0.0 for h in headings])[point]
        ux, uy = self._ux[piece], self._uy[piece]
        across = np.abs(ux * hy - uy * hx)
        along = (ux * hx + uy * hy) * self._oneway[piece]
        return np.where(has[point], TURN_PENALTY_M * across + WRONG_WAY_PENALTY_M * (along < -0.5), 0.0)

    def _distances(self, idx: np.ndarray, lat: float, lon: float) -> np.ndarray:
        return self._segment_distances(idx, lat, lon, math.cos(math.radians(lat)) * EARTH_RADIUS_M * math.pi / 180)

    def _segment_distances(self, idx: np.ndarray, lat: float | np.ndarray, lon: float | np.ndarray,
                           kx: float | np.ndarray) -> np.ndarray:
        """Metres from each point to its piece ``idx`` (local equirectangular projection, ``kx`` metres
        per degree of longitude at the point). One fix (scalars, ``locate``) or one per pair (arrays,
        ``locate_many``): the same arithmetic, so both give identical matches."""
        return self._segment_projection(idx, lat, lon, kx)[0]

    def _segment_projection(self, idx: np.ndarray, lat: float | np.ndarray, lon: float | np.ndarray,
                            kx: float | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``_segment_distances``, where the nearest point lies along each piece (0..1), which
        trajectory matching needs to measure the route between two fixes, and where the fix's
        projection on the piece's line falls before clipping (< 0 or > 1: past its ends)."""
        ky = EARTH_RADIUS_M * math.pi / 180
        ax, ay = (self._ax[idx] - lon) * kx, (self._ay[idx] - lat) * ky
        bx, by = (self._bx[idx] - lon) * kx, (self._by[idx] - lat) * ky
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        length2[length2 == 0] = 1e-12
        raw = -(ax * dx + ay * dy) / length2
        t = np.clip(raw, 0.0, 1.0)
        return np.hypot(ax + t * dx, ay + t * dy), t, raw

    def _heading_cost(self, idx: np.ndarray, heading_deg: float | None) -> np.ndarray | float:
        """Metres added to a piece the truck is not driving along (crossing or one-way backwards)."""
        if heading_deg is None:
            return 0.0
        hx, hy = math.sin(math.radians(heading_deg)), math.cos(math.radians(heading_deg))
        ux, uy = self._ux[idx], self._uy[idx]
        across = np.abs(ux * hy - uy * hx)  # |sin| of the angle between heading and street
        along = (ux * hx + uy * hy) * self._oneway[idx]  # < 0: against a one-way street
        return TURN_PENALTY_M * across + WRONG_WAY_PENALTY_M * (along < -0.5)

    def _with_address(self, match: Match, lat: float, lon: float, sigma: float) -> Match:
        book = self._addresses.get(match.street_id)
        if book is None:
            return match
        kx = math.cos(math.radians(lat)) * EARTH_RADIUS_M * math.pi / 180
        ky = EARTH_RADIUS_M * math.pi / 180
        distance = np.hypot((book.lon - lon) * kx, (book.lat - lat) * ky)
        best = int(np.argmin(distance))
        nearest = float(distance[best])
        # Addresses that the fix cannot tell from the nearest one, given its uncertainty.
        candidates = int((distance <= nearest + sigma).sum())
        confidence = match.street_confidence / candidates
        return Match(match.street_id, match.street_name, match.commune, match.segment_id, match.distance_m,
                     int(book.ids[best]), book.labels[best], round(nearest, 2), round(confidence, 4),
                     match.street_confidence, candidates, bool(book.synthetic[best]))


def _distance_factor(distance: float, sigma: float) -> float:
    """1 on the roadway, falling off like a Gaussian GPS error beyond it."""
    excess = max(0.0, distance - STREET_HALF_WIDTH_M)
    return math.exp(-0.5 * (excess / sigma) ** 2)


def _margin_factor(margin: float, sigma: float) -> float:
    """Chance the best street beats the runner-up: 0.5 when tied, near 1 a few sigma ahead."""
    if math.isinf(margin):
        return 1.0
    return 1.0 / (1.0 + math.exp(-2.0 * margin / sigma))


def node_key(coord: Sequence[float]) -> tuple[int, int]:
    """A junction's key: its position to 1e-7 degrees, as the importer cut the ways there."""
    return round(coord[0] * 1e7), round(coord[1] * 1e7)


def _metres(x0: float, y0: float, x1: float, y1: float) -> float:
    kx = math.cos(math.radians((y0 + y1) / 2))
    return math.hypot((x1 - x0) * kx, y1 - y0) * EARTH_RADIUS_M * math.pi / 180


def _load_addresses(session: Session) -> dict[int, _Addresses]:
    rows = session.execute(select(Address.street_id, Address.id, Address.lon, Address.lat, Address.label,
                                  Address.synthetic)
                           .where(Address.street_id.is_not(None)).order_by(Address.street_id, Address.id))
    grouped: dict[int, list[tuple[int, float, float, str, bool]]] = {}
    for street_id, *rest in rows:
        grouped.setdefault(street_id, []).append(tuple(rest))  # type: ignore[arg-type]
    return {sid: _Addresses(np.array([r[0] for r in rs], dtype=np.int64), np.array([r[1] for r in rs]),
                            np.array([r[2] for r in rs]), tuple(r[3] for r in rs),
                            np.array([bool(r[4]) for r in rs], dtype=bool))
            for sid, rs in grouped.items()}
