"""Trajectory matching at ingest: a lift's street from its truck's path, provisional until confirmed.

A lift is matched at once (ingest stays batch-friendly), from its own fix and the truck's lifts
already known; its street may still change while the truck's next lifts arrive, so it is stored
``match_provisional``. Each batch re-matches, per truck, the provisional lifts with the new ones
(``TrackLocator.match_track``, ``server.streets.trajectory``); a lift is confirmed once
its truck's path has settled its street (no later lift can change it), or ``CONFIRM_MAX`` later
lifts are known, or the truck went on ``GAP`` later, or nothing came from the truck for ``GAP``
(it stopped). Lifts are confirmed in time order. The truck's last ``ANCHORS`` confirmed lifts
start each path, pinned to their street: where the truck comes from. A lift whose RFID tag the
bin registry knows (``server.streets.bins``) is pinned to its address's street too, and takes
that address: the registry is certain where the fix is not.

When a stored provisional lift moves to another street, the aggregates follow in the same
transaction: the lift is taken out of its old street-day (``add_to_aggregates(sign=-1)``) and
added to the new one. The update is guarded by the old street, so two ingest workers that both
saw the lift move it once. A lift confirmed on its street changes only its street confidence,
which the data-quality histogram bins: ``server.ingest.confirmation`` moves it between tenths.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Select, Update, func, select, update
from sqlalchemy.orm import Session

from server.ingest.aggregates import (
    LiftRow,
    MatchColumns,
    StreetLocator,
    StreetMatch,
    add_to_aggregates,
    rebuild_aggregates,
    street_columns,
)
from server.ingest.bins import BinLookup, BinPlace, bin_columns, place_of, place_tagged, registered
from server.ingest.confirmation import confirm_in_place
from server.ingest.models import PROVISIONAL, Lift
from server.ingest.street_level import street_level as drop_household

log = logging.getLogger(__name__)

# A lift is confirmed once the truck's path has settled its street: the best paths into every
# candidate of the truck's last lift agree on it, so no later lift can change it
# (``TrackMatch.settled``). Where two streets stay indistinguishable (a square along a quay), this
# many later lifts confirm it anyway: each batch re-matches the provisional lifts, so the wait is bounded.
CONFIRM_MAX = 30
GAP = timedelta(minutes=15)  # a truck silent this long has stopped: its lifts are final
ANCHORS = 2  # confirmed lifts read before a truck's provisional ones: where its path comes from
OFFSETS_KEPT = 64  # a truck's latest fix-to-street distances: its GPS error changes with the sky and streets
SWEEP_EVERY = timedelta(minutes=1)  # how often stopped trucks' provisional lifts are confirmed
_MATCHED = ("street_id", "segment_id", "street_distance_m", "address_id", "address_distance_m", "match_confidence",
            "street_confidence", "match_provisional", "registry_placed")
_STORED = (Lift.id, Lift.event_id, Lift.truck_id, Lift.sequence, Lift.started_at, Lift.lat, Lift.lon,
           Lift.heading_deg, Lift.accuracy_m, Lift.bin_id, Lift.street_id, Lift.segment_id, Lift.street_distance_m,
           Lift.address_id, Lift.address_distance_m, Lift.match_confidence, Lift.street_confidence,
           Lift.day, Lift.stream, Lift.contaminated, Lift.has_alert, Lift.score, Lift.errors, Lift.overruled_at,
           Lift.registry_placed, Lift.view_unusable)


def provisional_lifts(truck_ids: Iterable[str]) -> Select[Any]:
    """The stored provisional lifts of these trucks, read by every batch: through the partial
    index of the few provisional lifts, never the trucks' history."""
    return select(*_STORED).where(PROVISIONAL, Lift.truck_id.in_(sorted(truck_ids)))


def stopped_trucks_lifts(before: datetime) -> Update:
    """Confirm the provisional lifts received before ``before`` (their truck went silent)."""
    return update(Lift).where(PROVISIONAL, Lift.received_at < before).values(match_provisional=False)


class PathMatch(Protocol):
    """What ingest reads of ``server.streets.trajectory.TrackMatch``."""

    @property
    def street_id(self) -> int: ...
    @property
    def segment_id(self) -> int: ...
    @property
    def settled(self) -> bool: ...
    @property
    def distance_m(self) -> float: ...
    @property
    def confidence(self) -> float: ...


class TrackLocator(StreetLocator, Protocol):
    """A street index that also matches a truck's path (``server.streets.trajectory.TrackLocator``)."""

    def match_track(self, fixes: Sequence[Any],
                    pinned: Sequence[int | None] | None = None) -> list[PathMatch | None]: ...
    def match_tracks(self, paths: Sequence[tuple[Sequence[Any], Sequence[int | None] | None]]
                     ) -> list[list[PathMatch | None]]: ...
    def on_street(self, street_id: int, segment_id: int, distance_m: float, street_confidence: float,
                  lat: float, lon: float, accuracy_m: float | None = None) -> StreetMatch: ...
    def gps_accuracy(self, offsets: Sequence[float]) -> float | None: ...


class TrackFix(NamedTuple):  # a tuple: built for every lift of every batch
    lat: float
    lon: float
    at: datetime
    heading_deg: float | None
    accuracy_m: float | None


@dataclass(frozen=True, slots=True)
class TrackReport:
    matched: int  # lifts (new and provisional) re-matched from their truck's path
    moved: int  # stored lifts that changed street, with their aggregates
    confirmed: int  # stored lifts confirmed


class Tracks:
    """The trajectory step of ingest; ``Inbox`` calls ``match`` before inserting a batch, ``settle`` after."""

    def __init__(self, bins: BinLookup | None = None, street_level: bool = False) -> None:
        """``street_level``: write the lifts a path moves without tag or address (household level off)."""
        self.bins = bins
        self.street_level = street_level
        self._swept: datetime | None = None
        # Per truck, its last confirmed lifts as this process confirmed them: the next batch's anchors
        # without a query. Another ingest worker may have confirmed later ones; then the database is read.
        self._last: dict[str, list[dict[str, Any]]] = {}
        # Per truck, its latest fixes' distances to their streets, for its fixes without an accuracy:
        # a batch holds too few of one truck's lifts to measure its GPS error (``TrackLocator.gps_accuracy``).
        self._offsets: dict[str, deque[float]] = {}

    @staticmethod
    def can_match(locator: StreetLocator | None) -> bool:
        return hasattr(locator, "match_track")

    def match(self, session: Session, locator: StreetLocator | None, rows: Sequence[LiftRow]) -> list[dict[str, Any]]:
        """Set the street of the batch's lifts from their trucks' paths; returns the stored
        provisional lifts to update after the insert (``settle``). Nothing when the locator cannot
        match paths (``can_match``)."""
        if not self.can_match(locator):
            return []
        tracker: TrackLocator = locator  # type: ignore[assignment]
        fresh = [r for r in rows if r["lat"] is not None and r["lon"] is not None]
        # A lift without a fix has no place on its truck's path: it is left out of it (its
        # neighbours are matched as if it were not there), and only the registry can place it.
        blind = [r for r in rows if r["lat"] is None or r["lon"] is None]
        by_truck: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in fresh:
            by_truck[row["truck_id"]].append(row)  # type: ignore[arg-type]
        if not by_truck:
            place_tagged(blind, registered(session, self.bins, blind))
            return []
        stored = session.execute(provisional_lifts(by_truck)).mappings().all()
        known = {s["event_id"] for s in stored}
        for s in stored:
            by_truck[s["truck_id"]].append({**s, "stored": True})
        paths: dict[str, list[dict[str, Any]]] = {}
        for truck_id, truck_rows in by_truck.items():
            seen: set[str] = set()
            path = []
            for r in sorted(truck_rows, key=lambda r: (r["started_at"], r["sequence"], not r.get("stored"))):
                # A re-delivered lift is already stored: its stored copy stands for it.
                if r["event_id"] in seen or (r["event_id"] in known and not r.get("stored")):
                    continue
                seen.add(r["event_id"])
                path.append(r)
            paths[truck_id] = [*self._anchors(session, truck_id, path[0]), *path]
        places = registered(session, self.bins, [*blind, *(r for path in paths.values() for r in path)])
        place_tagged(blind, places)  # only the registry can place a lift without a fix
        found = tracker.match_tracks([(self._fixes(tracker, truck_id, path), [pin(r, places) for r in path])
                                      for truck_id, path in paths.items()])
        changes: list[dict[str, Any]] = []
        for (truck_id, path), matches in zip(paths.items(), found, strict=True):
            moved, settled = self._match_path(tracker, path, matches, places)
            # Measured on confirmed lifts only: a lift matched alone at its arrival (a truck publishing
            # live) goes to the nearer street more often, and would make the truck's error look smaller.
            self._offsets.setdefault(truck_id, deque(maxlen=OFFSETS_KEPT)).extend(
                r["street_distance_m"] for r in settled if not r["accuracy_m"] and r["street_distance_m"] is not None)
            changes.extend(moved)
            if settled:  # the lifts confirmed now come after the path's anchors: together, the next anchors
                self._last[truck_id] = [*(r for r in path if r.get("anchor")), *settled][-ANCHORS:]
        # A lift delivered twice in the batch was matched once: its copies (the insert keeps the
        # first) get the same street.
        matched = {r["event_id"]: r for path in paths.values() for r in path if not r.get("stored")}
        for row in fresh:
            first = matched.get(row["event_id"])
            if first is not None and first is not row:
                row.update({k: first[k] for k in _MATCHED})  # type: ignore[literal-required]
        return changes

    def _fixes(self, tracker: TrackLocator, truck_id: str, path: list[dict[str, Any]]) -> list[TrackFix]:
        """The path's fixes; a lift without an accuracy of its own takes its truck's GPS error measured
        from its latest lifts where enough have been seen (else the matcher measures it on the path)."""
        measured = None
        if not all(r["accuracy_m"] for r in path):  # measured once per truck and batch, only when wanted
            measured = tracker.gps_accuracy(self._offsets.get(truck_id, ()))
        return [TrackFix(r["lat"], r["lon"], r["started_at"], r["heading_deg"], r["accuracy_m"] or measured)
                for r in path]

    def _anchors(self, session: Session, truck_id: str, first: dict[str, Any]) -> list[dict[str, Any]]:
        """The truck's last confirmed lifts before ``first``: where the path comes from, pinned."""
        cached = self._last.get(truck_id)
        if cached and timedelta(0) < first["started_at"] - cached[-1]["started_at"] <= GAP:
            return cached
        rows = session.execute(select(*_STORED).where(
            Lift.truck_id == truck_id, Lift.started_at < first["started_at"], Lift.lat.is_not(None),
            Lift.started_at >= first["started_at"] - GAP, Lift.match_provisional.is_(False))
            .order_by(Lift.started_at.desc()).limit(ANCHORS)).mappings().all()
        return [{**r, "stored": True, "anchor": True} for r in reversed(rows)]

    @staticmethod
    def _match_path(tracker: TrackLocator, path: list[dict[str, Any]], matches: list[PathMatch | None],
                    places: Mapping[str, BinPlace]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(stored lifts to update, lifts confirmed by this path: the truck's next anchors)."""
        changes: list[dict[str, Any]] = []
        settled: list[dict[str, Any]] = []
        last = path[-1]["started_at"]
        final = True  # the anchors are
        for k, (row, match) in enumerate(zip(path, matches, strict=True)):
            if row.get("anchor"):
                continue
            later = path[k + 1]["started_at"] if k + 1 < len(path) else None
            after = len(path) - 1 - k
            # Confirmed in time order only: the truck's last confirmed lifts start its next path, so a
            # lift confirmed before an earlier one (the truck came back towards that one) would put the
            # earlier lift after the anchors, out of order.
            place = place_of(row, places)
            final = final and (match is None or match.settled or place is not None or after >= CONFIRM_MAX
                               or (later is not None and later - row["started_at"] > GAP)
                               or last - row["started_at"] > GAP)
            columns = _path_columns(tracker, row, match, place)
            confidence = _street_confidence(match, place)
            if final:
                settled.append({**row, **columns, "stored": True, "anchor": True})
            if not row.get("stored"):
                row.update(columns, street_confidence=confidence, match_provisional=not final)
                continue
            if columns["street_id"] != row["street_id"] or final:
                changes.append({"row": row, "columns": columns, "street_confidence": confidence, "final": final})
        return changes, settled

    def settle(self, session: Session, changes: list[dict[str, Any]], now: datetime) -> TrackReport:
        """Write the re-matched stored lifts; move the aggregates of those that changed street."""
        moved_out: list[dict[str, Any]] = []
        moved_in: list[dict[str, Any]] = []
        confirmed: list[dict[str, Any]] = []
        for change in changes:
            row, columns = change["row"], change["columns"]
            if columns["street_id"] == row["street_id"]:  # confirmed where it was, with its final confidence
                confirmed.append(change)
                continue
            values = {**columns, "street_confidence": change["street_confidence"],
                      "match_provisional": not change["final"]}
            if self.street_level:
                drop_household(values)
            result = session.execute(
                update(Lift).where(Lift.id == row["id"], Lift.match_provisional,
                                   Lift.street_id.is_(None) if row["street_id"] is None
                                   else Lift.street_id == row["street_id"],
                                   # taken out of the tenth it was read in (``server.ingest.quality``)
                                   Lift.street_confidence.is_not_distinct_from(row["street_confidence"]))
                .values(values)
                # Counted as it stands when moved: a person may have overruled it since it was read.
                .returning(Lift.overruled_at)).first()
            if result is not None:  # another worker may have moved it first
                row = {**row, "overruled_at": result.overruled_at}
                moved_out.append(row)
                moved_in.append({**row, **columns, "street_confidence": change["street_confidence"]})
        confirmed_count = confirm_in_place(session, confirmed)  # their data-quality tenths follow
        if moved_out:
            add_to_aggregates(session, moved_out, sign=-1)  # type: ignore[arg-type]
            add_to_aggregates(session, moved_in)  # type: ignore[arg-type]
            log.debug("%d provisional lifts moved to another street by their trucks' paths", len(moved_out))
        confirmed_count += self._sweep(session, now)
        return TrackReport(len(changes), len(moved_out), confirmed_count)

    def _sweep(self, session: Session, now: datetime) -> int:
        """Confirm the provisional lifts of trucks that sent nothing for ``GAP``."""
        if self._swept is not None and now - self._swept < SWEEP_EVERY:
            return 0
        self._swept = now
        result = session.execute(stopped_trucks_lifts(now - GAP))
        return int(result.rowcount or 0)


def pin(row: LiftRow | dict[str, Any], places: Mapping[str, BinPlace]) -> int | None:
    """The street a lift's state is pinned to on its truck's path: a confirmed anchor's, or its
    registered bin's; None where the path decides."""
    if row.get("anchor"):
        return row["street_id"]  # type: ignore[no-any-return]
    place = place_of(row, places)
    return place.street_id if place is not None else None


def _path_columns(tracker: TrackLocator, row: LiftRow | dict[str, Any], match: PathMatch | None,
                  place: BinPlace | None = None) -> MatchColumns:
    """The street/address columns of a lift put on a street by its truck's path (None without one),
    or by its registered bin (``place``)."""
    columns = street_columns(None if match is None else tracker.on_street(
        match.street_id, match.segment_id, match.distance_m, match.confidence, row["lat"], row["lon"],
        row["accuracy_m"]))
    return columns if place is None else bin_columns(place, columns, row["lat"], row["lon"])


def _street_confidence(match: PathMatch | None, place: BinPlace | None) -> float | None:
    """The street posterior stored with a lift: certain for a registered bin, else the path's."""
    if place is not None:
        return 1.0
    return match.confidence if match is not None else None


@dataclass(frozen=True, slots=True)
class RematchReport:
    lifts: int
    matched: int
    unmatched: int
    changed: int


def _lifts_of(session: Session, day: date) -> list[Any]:
    return list(session.execute(select(*_STORED).where(Lift.day == day)).mappings())


def rematch_paths(session: Session, tracker: TrackLocator, progress: Callable[[int, int], None] | None = None,
                  chunk: int = 5000, bins: BinLookup | None = None, street_level: bool = False) -> RematchReport:
    """``rematch_lifts`` from each truck's path: every stored lift re-matched in its truck's time order
    (after a new street or address import, ``trivue streets rematch``), all confirmed, then the
    aggregates of those days rebuilt. ``street_level``: every lift is written without tag or address
    (``server.ingest.street_level``), a registry-placed one kept on its street. The caller commits."""
    if chunk < 2:
        raise ValueError(f"chunk must hold at least 2 lifts, got {chunk}")
    # A chunk's last lifts lack the lifts after them: they are matched again with the next chunk.
    overlap = min(CONFIRM_MAX, chunk // 2)
    total = session.scalar(select(func.count()).select_from(Lift)) or 0
    first_day = session.scalar(select(func.min(Lift.day)))
    if first_day is not None:
        # The retention purge deletes lifts at an instant, not by local day: the oldest day left may
        # have lost its first lifts while its street totals still count them (kept without limit).
        # That day is not recounted from what is left: its lifts move from their old streets to
        # their new ones instead (taken out here, put back after).
        add_to_aggregates(session, _lifts_of(session, first_day), sign=-1)
    done = matched = changed = 0
    for truck_id in session.scalars(select(Lift.truck_id).distinct().order_by(Lift.truck_id)).all():
        anchors: list[dict[str, Any]] = []
        last: tuple[datetime, int] | None = None
        while True:
            query = select(*_STORED).where(Lift.truck_id == truck_id).order_by(Lift.started_at, Lift.id).limit(chunk)
            if last is not None:  # keyset pagination on (started_at, id)
                query = query.where((Lift.started_at > last[0]) | ((Lift.started_at == last[0]) & (Lift.id > last[1])))
            rows = session.execute(query).mappings().all()
            if not rows:
                break
            path = [*anchors, *rows]
            fixes = [TrackFix(r["lat"], r["lon"], r["started_at"], r["heading_deg"], r["accuracy_m"])
                     if r["lat"] is not None and r["lon"] is not None else None for r in path]
            places = registered(session, bins, rows)
            matches = tracker.match_track(fixes, [a["street_id"] for a in anchors] + [pin(r, places) for r in rows])
            keep = len(rows) - overlap if len(rows) == chunk else len(rows)
            rows = rows[:keep]
            updates = []
            for row, match in list(zip(path, matches, strict=True))[len(anchors):len(anchors) + keep]:
                place = place_of(row, places)
                columns = _path_columns(tracker, row, match, place)
                matched += columns["street_id"] is not None
                updates.append({"id": row["id"], **columns, "match_provisional": False,
                                "street_confidence": _street_confidence(match, place)})
                if street_level:
                    drop_household(updates[-1])
                new = updates[-1]
                changed += (new["street_id"], new["address_id"]) != (row["street_id"], row["address_id"])
            session.execute(update(Lift), updates)
            anchors = [{**r, "street_id": u["street_id"]} for r, u in zip(rows[-ANCHORS:], updates[-ANCHORS:],
                                                                          strict=True)]
            last = (rows[-1]["started_at"], rows[-1]["id"])
            done += len(rows)
            if progress is not None:
                progress(done, total)
    if first_day is not None:
        add_to_aggregates(session, _lifts_of(session, first_day))
        rebuild_aggregates(session, since=first_day + timedelta(days=1))
    log.info("rematched %d lifts from their trucks' paths: %d on a street, %d changed", done, matched, changed)
    return RematchReport(done, matched, done - matched, changed)
