"""Batched street matching: ``Locator.locate_many`` answers exactly what ``locate`` answers, and the
ingest matches a whole batch at once without losing a lift when the locator breaks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db import make_engine, utcnow
from server.ingest.aggregates import match_rows
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from server.ingest.models import Lift
from server.streets.demo_addresses import synthesize_addresses
from server.streets.importer import import_street_file
from server.streets.locator import Locator, Match
from tests.server.conftest import RennesDatabase
from tests.server.events import lift_event
from tests.server.streets_db import FIXTURES, create_schema
from tests.server.streets_fixture import points_on_streets


def centre_locator(tmp_path: Path, with_addresses: bool) -> Locator:
    engine = create_schema(make_engine(f"sqlite:///{tmp_path / 'streets.db'}"))
    with Session(engine) as session:
        import_street_file(session, FIXTURES / "rennes-centre.geojson", "Rennes")
        if with_addresses:
            synthesize_addresses(session, "Rennes")
        session.commit()
        return Locator.from_session(session)


def random_fixes(n: int, seed: int) -> tuple[list[float], list[float], list[float | None], list[float | None]]:
    """Fixes over the Rennes centre and beyond it (unmatched), some without heading or accuracy."""
    rng = np.random.default_rng(seed)
    lats = (48.104 + rng.random(n) * 0.016).tolist()
    lons = (-1.69 + rng.random(n) * 0.022).tolist()
    headings = [float(h) if i % 3 else None for i, h in enumerate(rng.random(n) * 360)]
    accuracies = [float(a) if i % 4 else None for i, a in enumerate(rng.random(n) * 70)]
    accuracies[::7] = [0.0] * len(accuracies[::7])  # 0 means unknown, as in ``locate``
    return lats, lons, headings, accuracies


def test_locate_many_gives_exactly_the_matches_of_locate(tmp_path: Path) -> None:
    locator = centre_locator(tmp_path, with_addresses=True)
    lats, lons, headings, accuracies = random_fixes(3000, seed=5)
    one_by_one = [locator.locate(*fix) for fix in zip(lats, lons, headings, accuracies, strict=True)]
    batched = locator.locate_many(lats, lons, headings, accuracies)
    assert batched == one_by_one
    matched = [m for m in batched if m is not None]
    assert 0.3 * len(lats) < len(matched) < len(lats), "the sample has matched and unmatched fixes"
    assert any(m.address_id is not None for m in matched), "the address branch is exercised"


def test_locate_many_handles_empty_and_chunked_input(tmp_path: Path, monkeypatch: Any) -> None:
    import server.streets.locator

    locator = centre_locator(tmp_path, with_addresses=False)
    assert locator.locate_many([], []) == []
    lats, lons, _, _ = random_fixes(500, seed=8)
    monkeypatch.setattr(server.streets.locator, "LOCATE_CHUNK", 64)  # several chunks, the last one partial
    assert locator.locate_many(lats, lons) == [locator.locate(lat, lon) for lat, lon in zip(lats, lons, strict=True)]
    empty = Locator([], {})
    assert empty.locate_many(lats[:3], lons[:3]) == [None, None, None]


class PerFixOnly:
    """A locator without ``locate_many`` (a plug-in or a test double): ingest matches fix by fix."""

    def __init__(self, inner: Locator) -> None:
        self.inner = inner
        self.calls = 0

    def locate(self, lat: float, lon: float, heading_deg: float | None = None,
               accuracy_m: float | None = None) -> Match | None:
        self.calls += 1
        return self.inner.locate(lat, lon, heading_deg, accuracy_m)


class BreaksOnOneFix(PerFixOnly):
    """``locate_many`` always raises and ``locate`` raises on one latitude: a matching bug."""

    def __init__(self, inner: Locator, bad_lat: float) -> None:
        super().__init__(inner)
        self.bad_lat = bad_lat

    def locate_many(self, lats: Sequence[float], *_args: Any) -> list[Match | None]:
        raise RuntimeError("bug in the batched matcher")

    def locate(self, lat: float, lon: float, heading_deg: float | None = None,
               accuracy_m: float | None = None) -> Match | None:
        if lat == self.bad_lat:
            raise RuntimeError("bug on this fix")
        return super().locate(lat, lon, heading_deg, accuracy_m)


def test_match_rows_without_locate_many_matches_fix_by_fix(tmp_path: Path) -> None:
    locator = centre_locator(tmp_path, with_addresses=False)
    lats, lons, headings, accuracies = random_fixes(50, seed=2)
    rows = [{"lat": a, "lon": b, "heading_deg": h, "accuracy_m": c}
            for a, b, h, c in zip(lats, lons, headings, accuracies, strict=True)]
    rows.append({"lat": None, "lon": None, "heading_deg": None, "accuracy_m": None, "street_id": None})
    fallback = PerFixOnly(locator)
    match_rows(fallback, rows)
    assert fallback.calls == 50, "the fix-less row is not looked up"
    expected = locator.locate_many(lats, lons, headings, accuracies)
    assert [r["street_id"] for r in rows[:-1]] == [m.street_id if m else None for m in expected]
    assert rows[-1]["street_id"] is None


def test_a_matching_bug_stores_the_batch_and_matches_all_other_lifts(rennes_db: RennesDatabase) -> None:
    settings, sessions = rennes_db.settings, rennes_db.sessions
    points = points_on_streets(sessions, 4)
    with sessions() as session:
        locator = BreaksOnOneFix(Locator.from_session(session), bad_lat=points[0].lat)
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, 2**20), Metrics(), lambda _s: locator)
    events = [lift_event("benne-09", sequence=i, gps=(p.lat, p.lon)) for i, p in enumerate(points)]
    messages = [MqttMessage(f"{settings.topic_prefix}/benne-09/lift", e.to_json().encode(), utcnow())
                for e in events]
    with sessions() as session, session.begin():
        assert inbox.write(session, messages) == 0
    with sessions() as session:
        stored = dict(session.execute(select(Lift.event_id, Lift.street_id)).all())
    assert stored == {str(e.event_id): (None if i == 0 else p.street_id)
                      for i, (e, p) in enumerate(zip(events, points, strict=True))}
