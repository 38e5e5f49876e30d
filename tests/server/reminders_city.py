"""A small city for the reminders tests: real Rennes streets and BAN addresses, lifts stored by
the server's own ingest (``server.inbox.Inbox`` with the real street matcher and evidence store).

Households are placed on real addresses: a GPS fix on the address with 3 m accuracy matches it
with high confidence; a fix with 60 m accuracy matches only its street (low address confidence).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from base.paths import SHARED_DIR
from server.config import ServerSettings
from server.db import make_engine
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from server.migrate import upgrade_database
from server.reminders.campaigns import Decision, create_campaign, review
from server.reminders.config import RemindersConfig
from server.reminders.dispatch import Dispatcher
from server.reminders.models import HOUSEHOLD, Item, upgrade_reminders
from server.reminders.plan import make_plan
from tests.server.streets_db import FIXTURES, postgres_database
from vision.rules import SortingRules
from vision.schema import Evidence, GpsFix, LiftEvent, ModelInfo, Stream

MODEL = ModelInfo(name="trivue-waste", version="2026.11.1")
RULES = SortingRules.load()
PHOTO_DIR = SHARED_DIR / "datasets" / "litter-items" / "images" / "val"


def photo_bytes(n: int) -> bytes:
    """A real JPEG: a litter photo from the shared data when present, else one drawn with Pillow."""
    photos = sorted(PHOTO_DIR.glob("*.jpg")) if PHOTO_DIR.is_dir() else []
    if photos:
        return photos[n % len(photos)].read_bytes()
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (320, 240), (90, 110, 90))
    ImageDraw.Draw(image).rectangle((100 + n, 80, 220, 200), fill=(20, 120, 40))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


@contextmanager
def engine_for(kind: str, folder: Path, postgres_up: bool) -> Iterator[Engine]:
    """An engine on an empty database at the newest core and reminders schema."""
    import pytest

    if kind == "postgresql" and not postgres_up:
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    if kind == "sqlite":
        engine = make_engine(f"sqlite:///{folder / 'trivue.db'}")
        upgrade_database(engine)
        upgrade_reminders(engine)
        yield engine
        engine.dispose()
        return
    with postgres_database("trivue_reminders") as url:
        engine = make_engine(url)
        upgrade_database(engine)
        upgrade_reminders(engine)
        try:
            yield engine
        finally:
            engine.dispose()


@dataclass
class City:
    settings: ServerSettings
    sessions: sessionmaker[Session]
    today: date
    addresses: dict[str, Any] = field(default_factory=dict)  # role -> Address row
    events: dict[str, list[str]] = field(default_factory=dict)  # role -> event ids
    streets: dict[str, int] = field(default_factory=dict)  # role -> street id
    _sequence: int = 0
    _locator: Any = None

    def inbox(self, session: Session) -> Inbox:
        from server.streets.locator import Locator

        # Built once: the city's streets and addresses never change after seeding, and building the
        # index again for each of the ~55 seeded lifts was most of every reminders test's setup.
        if self._locator is None:
            self._locator = Locator.from_session(session)
        locator = self._locator
        return Inbox(self.settings, EvidenceStore(self.settings.evidence_path, 2**22), Metrics(), lambda _s: locator)

    def lift(self, session: Session, role: str, point: tuple[float, float], days_ago: float,
             items: dict[str, int], accuracy: float = 3.0, bin_id: str | None = None, photo: bool = True,
             truck: str = "benne-01", stream: Stream = Stream.recyclables) -> str:
        """Ingest one lift (and its photo when contaminated) through the server's Inbox."""
        verdict = RULES.judge(stream, items)
        when = datetime.combine(self.today, datetime.min.time(), UTC) + timedelta(hours=8) - timedelta(days=days_ago)
        jpeg = photo_bytes(self._sequence) if verdict.contaminated and photo else None
        self._sequence += 1
        event = LiftEvent(
            event_id=uuid.uuid4(), truck_id=truck, sequence=self._sequence, stream=stream,
            started_at=when, ended_at=when + timedelta(seconds=8),
            gps=GpsFix(lat=point[0], lon=point[1], accuracy_m=accuracy), bin_id=bin_id, counts=items,
            errors=list(verdict.errors), contaminated=verdict.contaminated, score=verdict.score, model=MODEL,
            frames=50, evidence=_evidence(jpeg) if jpeg else None)
        prefix = self.settings.topic_prefix
        messages = [MqttMessage(f"{prefix}/{truck}/lift", event.to_json().encode(), when)]
        if jpeg:
            messages.append(MqttMessage(f"{prefix}/{truck}/evidence/{event.event_id}", jpeg, when))
        self.inbox(session).write(session, messages)
        self.events.setdefault(role, []).append(str(event.event_id))
        return str(event.event_id)


def _evidence(jpeg: bytes) -> Evidence:
    from server.ingest.evidence import jpeg_dimensions

    width, height = jpeg_dimensions(jpeg)
    return Evidence(sha256=hashlib.sha256(jpeg).hexdigest(), width=width, height=height)


def sure_addresses(session: Session) -> list[Any]:
    """Addresses a 3 m fix on them matches with confidence >= 0.8 (one candidate, clear street)."""
    from server.streets.locator import Locator
    from server.streets.models import Address

    locator = Locator.from_session(session)
    sure = []
    for address in session.scalars(select(Address).where(Address.street_id.is_not(None)).order_by(Address.id)):
        match = locator.locate(address.lat, address.lon, accuracy_m=3.0)
        if match and match.address_id == address.id and match.confidence >= 0.8:
            sure.append(address)
    return sure


DIRTY = ({"glass": 1}, {"bag": 1}, {"glass": 1, "food": 1})
CLEAN = {"bottle": 2, "can": 1}


def seed_city(engine: Engine, folder: Path, today: date, household_level: bool = True) -> City:
    """Streets, addresses and the households of the plan tests; see the module docstring.

    The reminders' tests are about households: their server has the household level on, said here
    (the default is off, ``server.web.privacy``); pass ``household_level=False`` for the street-level run.
    """
    from server.streets.addresses import import_address_file
    from server.streets.importer import import_street_file

    settings = ServerSettings(data_dir=folder, database_url=str(engine.url.render_as_string(hide_password=False)),
                              cookie_secure=False, household_level=household_level)
    sessions = sessionmaker(engine, expire_on_commit=False)
    city = City(settings, sessions, today)
    with sessions() as session:
        import_street_file(session, FIXTURES / "rennes-centre.geojson", commune="Rennes")
        import_address_file(session, FIXTURES / "ban-rennes-centre.csv")
        session.commit()
        _households(city, session)
        session.commit()
    return city


def send_household_campaign(city: City, today: date, root: Path | None = None, folder: Path | None = None,
                            level: int | None = None) -> tuple[int, Path]:
    """The city's campaign, its household items approved (at ``level`` when given: 3 is a visit on
    the route sheet) and sent into ``folder`` (default ``<root>/campagne-<id>``, ``root`` the server's
    reminders folder by default); the campaign's id and that folder."""
    rules = RemindersConfig()
    with city.sessions() as session:
        campaign = create_campaign(session, make_plan(session, rules, today), "Novembre", "test", rules)
        session.flush()
        for item in session.scalars(select(Item).where(Item.campaign_id == campaign.id, Item.kind == HOUSEHOLD)):
            if level is not None:
                item.level = level
            review(session, item.id, Decision(True), "test")
        session.commit()
        folder = folder or (root or city.settings.data_dir / "reminders") / f"campagne-{campaign.id}"
        Dispatcher(session, rules, city.settings.evidence_path, folder, "test", today,
                   sorting_rules=RULES).send_campaign(campaign.id)
        session.commit()
        return campaign.id, folder


def _households(city: City, session: Session) -> None:
    sure = sure_addresses(session)
    by_street: dict[int, list[Any]] = {}
    for address in sure:
        by_street.setdefault(address.street_id, []).append(address)
    # The dirty street has three sure households; the others are elsewhere.
    dirty_street = max(by_street, key=lambda s: len(by_street[s]))
    a, b, c = by_street[dirty_street][:3]
    others = [x for x in sure if x.street_id != dirty_street]
    d, e = others[0], next(x for x in others if x.street_id != others[0].street_id)
    city.addresses.update(target=a, once=b, opted_out=c, bin_home=d, clean=e)
    city.streets.update(dirty=dirty_street, clean=e.street_id)
    here = lambda x: (x.lat, x.lon)  # noqa: E731
    for n, days in enumerate((3, 9, 17)):  # three contaminated lifts in 30 days: level 1
        city.lift(session, "target", here(a), days, DIRTY[n])
    for days in (5, 12):
        city.lift(session, "target", here(a), days, CLEAN)
    city.lift(session, "once", here(b), 6, DIRTY[1])  # one only: below the threshold
    for days in (4, 11):
        city.lift(session, "opted_out", here(c), days, DIRTY[0])
    for days in (2, 8):  # an RFID bin, with a poor fix: attribution by the tag
        city.lift(session, "bin", here(d), days, DIRTY[2], accuracy=60.0, bin_id="BAC-0042")
    for n in range(6):  # poor fixes on the dirty street: street-level only
        city.lift(session, "blurred", here(a), 1 + n * 4, DIRTY[n % 3], accuracy=60.0, photo=False)
    for n in range(16):  # enough clean lifts to judge the dirty street's rate
        city.lift(session, "street_clean", here(b), n * 1.8, CLEAN, accuracy=60.0)
    for n in range(24):  # a clean street: thanks
        city.lift(session, "clean", here(e), n * 1.2, CLEAN)


class Relay:
    """aiosmtpd handler of a local SMTP relay: keeps what it accepts, refuses recipients named
    ``later…`` (451, temporary) and ``nobody…`` (550, permanent), and can stall one recipient's
    DATA after keeping it, so that a test can kill the sender before it hears "250"."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []  # (to, Message-ID)
        self.raw: list[bytes] = []
        self.stall_on: str | None = None
        self.stalled = threading.Event()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.startswith("later"):
            return "451 4.3.0 mailbox busy, try again later"
        if address.startswith("nobody"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import email

        message = email.message_from_bytes(envelope.content)
        self.messages.append((envelope.rcpt_tos[0], str(message["Message-ID"]).strip()))  # unfolded
        self.raw.append(envelope.content)
        if self.stall_on and envelope.rcpt_tos[0] == self.stall_on:
            self.stalled.set()
            await asyncio.sleep(60)
        return "250 OK"
