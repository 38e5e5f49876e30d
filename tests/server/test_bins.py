"""The bin registry: a lift whose RFID tag the registry knows lands on its address and street,
whatever its GPS fix says; the import reports what it could not place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from server.audit import AuditEntry
from server.config import ServerSettings, load_settings
from server.db import make_engine
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from server.ingest.models import Lift, MatchQualityDay, StreetDay
from server.ingest.tracks import rematch_paths
from server.migrate import upgrade_database
from server.streets.bins import BinFileError, bin_counts, bin_places, import_bins
from server.streets.importer import import_streets
from server.streets.locator import Locator
from server.streets.models import Address, Bin, Segment, Street
from server.streets.trajectory import TrackLocator
from tests.server.crossroads import lonlat, pieces
from tests.server.events import lift_event
from trivue.cli import main

T0 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
# (BAN id, number, street, x, y): address points 7 m off the centre line, as a door is.
ADDRESSES = [("99999_a001_00003", "3", "Rue A", 10.0, 7.0), ("99999_a001_00005", "5", "Rue A", 40.0, 7.0),
             ("99999_b001_00002", "2", "Rue B", -7.0, 60.0)]


def town(database_url: str) -> tuple[Engine, dict[str, int], dict[str, int]]:
    """The crossroads town with three addresses: (engine, street ids, address ids by BAN id)."""
    engine = make_engine(database_url)
    upgrade_database(engine)
    with Session(engine) as session, session.begin():
        import_streets(session, pieces())
        streets = dict(session.execute(select(Street.name, Street.id)).all())
        for key, number, street, x, y in ADDRESSES:
            lon, lat = lonlat(x, y)
            session.add(Address(street_id=streets[street], number=number, label=f"{number} {street} 99999 Testville",
                                street_name=street, street_key=street.lower(), postcode="99999", commune="Testville",
                                lat=lat, lon=lon, source_key=f"ban:{key}"))  # as `trivue addresses import` keys them
    with Session(engine) as session:
        addresses = {key.removeprefix("ban:"): address_id
                     for key, address_id in session.execute(select(Address.source_key, Address.id)).all()}
    return engine, streets, addresses  # type: ignore[return-value]


def household_settings(tmp_path: Path, database_url: str) -> ServerSettings:
    """Household level on: the lifts keep their tag and address (at street level, the default, they
    keep neither: tests/server/test_street_level_ingest.py)."""
    return load_settings(env={}, data_dir=tmp_path / "data", database_url=database_url, household_level=True)


def registry(tmp_path: Path, text: str, name: str = "parc-de-bacs.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("trajectory", [True, False], ids=["trajectory", "one-point"])
def test_a_registered_tag_puts_its_lift_on_its_address_whatever_the_fix(
        tmp_path: Path, database_url: str, trajectory: bool) -> None:
    engine, streets, addresses = town(database_url)
    with Session(engine) as session, session.begin():
        report = import_bins(session, registry(tmp_path, "puce;id_ban\nE28011600000000A;99999_a001_00003\n"))
    assert (report.added, report.unknown_address) == (1, 0)
    with Session(engine) as session:
        locator = TrackLocator.from_session(session) if trajectory else Locator.from_session(session)
    settings = household_settings(tmp_path, database_url)
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, 2**20), Metrics(), lambda _s: locator, bin_places)
    # Each fix lies 3 m from Rue B and 15 m from Rue A: by its fix alone the lift is Rue B's.
    lon, lat = lonlat(3.0, 15.0)
    events = {"registered": lift_event("benne-01", gps=(lat, lon), at=T0, bin_id="E28011600000000A"),
              "unknown tag": lift_event("benne-02", gps=(lat, lon), at=T0, bin_id="E2801160FFFFFFFF"),
              "no tag": lift_event("benne-03", gps=(lat, lon), at=T0)}
    messages = [MqttMessage(f"{settings.topic_prefix}/{e.truck_id}/lift", e.to_json().encode(),
                            T0 + timedelta(seconds=20)) for e in events.values()]
    with sessionmaker(engine)() as session, session.begin():
        assert inbox.write(session, messages) == 0
    with Session(engine) as session:
        stored = {row.event_id: row for row in session.scalars(select(Lift))}
        days = dict(session.execute(select(StreetDay.street_id, StreetDay.lifts)).all())
    registered = stored[str(events["registered"].event_id)]
    assert registered.street_id == streets["Rue A"]
    assert registered.address_id == addresses["99999_a001_00003"]
    assert registered.match_confidence == 1.0 and registered.address_distance_m == pytest.approx(10.63, abs=0.1)
    assert not registered.match_provisional, "a registered bin's street is certain at once"
    if trajectory:  # the path's state pinned to Rue A: the fix's projection on it
        assert registered.street_confidence == 1.0
        with Session(engine) as session:
            assert session.get(Segment, registered.segment_id).street_id == streets["Rue A"]  # type: ignore[union-attr]
    else:  # the fix alone matched Rue B: no segment of Rue A is made up
        assert registered.segment_id is None
    for other in ("unknown tag", "no tag"):
        assert stored[str(events[other].event_id)].street_id == streets["Rue B"], other
    assert days == {streets["Rue A"]: 1, streets["Rue B"]: 2}, "the aggregates count the lift on its address's street"


@pytest.mark.parametrize("batch", [1, 7], ids=["lift-by-lift", "one-batch"])
def test_a_registered_lift_pins_its_truck_s_path(tmp_path: Path, database_url: str, batch: int) -> None:
    """A truck comes down Rue B and turns east into Rue A. Its lift at the corner has a fix up
    Rue B; when that bin is registered on Rue A, the path is pinned there and the untagged lift
    after it, which the fix alone puts on Rue B too, follows it onto Rue A."""
    engine, streets, _ = town(database_url)
    settings = household_settings(tmp_path, database_url)
    fixes = [(0.0, 90.0), (1.0, 60.0), (0.0, 40.0), (4.0, 12.0), (6.0, 10.0), (40.0, 0.0), (70.0, 1.0)]
    truth = ["Rue B", "Rue B", "Rue B", "Rue A", "Rue A", "Rue A", "Rue A"]

    def streets_of(tagged: bool, truck: str) -> list[str]:
        with Session(engine) as session:
            locator = TrackLocator.from_session(session)
        inbox = Inbox(settings, EvidenceStore(settings.evidence_path, 2**20), Metrics(), lambda _s: locator,
                      bin_places)
        events = []
        for k, (x, y) in enumerate(fixes):
            lon, lat = lonlat(x, y)
            tag = "E2801160000000AA" if tagged and k == 3 else None
            events.append(lift_event(truck, sequence=k, gps=(lat, lon), at=T0 + timedelta(seconds=20 * k), bin_id=tag))
        messages = [MqttMessage(f"{settings.topic_prefix}/{truck}/lift", event.to_json().encode(),
                                event.started_at + timedelta(seconds=10)) for event in events]
        for start in range(0, len(messages), batch):  # lift by lift as a truck publishes, or a backlog
            with sessionmaker(engine)() as session, session.begin():
                assert inbox.write(session, messages[start:start + batch]) == 0
        names = {v: k for k, v in streets.items()}
        with Session(engine) as session:
            rows = session.execute(select(Lift.sequence, Lift.street_id).where(Lift.truck_id == truck)).all()
        return [names[street] for _, street in sorted(rows)]

    untagged = streets_of(False, "benne-04")
    assert untagged[3:5] == ["Rue B", "Rue B"], f"premise: by the fixes the corner lifts are on B ({untagged})"
    with Session(engine) as session, session.begin():
        import_bins(session, registry(tmp_path, "tag,address\nE2801160000000AA,99999_a001_00003\n"))
    assert streets_of(True, "benne-05") == truth


def test_rematch_applies_a_registry_imported_after_the_lifts(tmp_path: Path, database_url: str) -> None:
    engine, streets, addresses = town(database_url)
    settings = household_settings(tmp_path, database_url)
    with Session(engine) as session:
        locator = TrackLocator.from_session(session)
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, 2**20), Metrics(), lambda _s: locator, bin_places)
    lon, lat = lonlat(3.0, 15.0)
    event = lift_event("benne-01", gps=(lat, lon), at=T0, bin_id="E2801160000000BB")
    with sessionmaker(engine)() as session, session.begin():
        inbox.write(session, [MqttMessage(f"{settings.topic_prefix}/benne-01/lift", event.to_json().encode(), T0)])
    with Session(engine) as session, session.begin():
        import_bins(session, registry(tmp_path, "tag;address\nE2801160000000BB;99999_a001_00005\n"))
    with Session(engine) as session, session.begin():
        before = session.scalar(select(Lift.street_id))
        report = rematch_paths(session, locator, bins=bin_places)
    with Session(engine) as session:
        lift = session.scalars(select(Lift)).one()
        days = dict(session.execute(select(StreetDay.street_id, StreetDay.lifts)).all())
    assert before == streets["Rue B"] and report.changed == 1
    assert (lift.street_id, lift.address_id) == (streets["Rue A"], addresses["99999_a001_00005"])
    assert days == {streets["Rue A"]: 1}


def test_import_reports_what_it_cannot_place_and_replace_removes_the_rest(tmp_path: Path, database_url: str) -> None:
    engine, _, addresses = town(database_url)
    first = registry(tmp_path, "\n".join([
        "Numéro de puce;Clé d'interopérabilité;Volume", "TAG-1;99999_a001_00003;240", "TAG-2;99999_b001_00002;120",
        "TAG-3;99999_z999_00001;240", ";99999_a001_00005;240", "TAG-4;;240", "TAG-2;99999_a001_00005;120", ""]))
    with Session(engine) as session, session.begin():
        report = import_bins(session, first)
    assert (report.rows, report.added, report.unknown_address) == (6, 2, 1)
    assert report.errors == ["line 5: no tag", "line 6: tag 'TAG-4' has no address",
                             "line 7: tag 'TAG-2' listed again (line 3); this line is kept",
                             "line 4: tag 'TAG-3': address '99999_z999_00001' is not among the imported addresses"]
    second = registry(tmp_path, "tag;address\nTAG-2;99999_b001_00002\n", "second.csv")
    with Session(engine) as session, session.begin():
        report = import_bins(session, second, replace=True)
    assert (report.moved, report.removed) == (1, 1)
    with Session(engine) as session:
        assert dict(session.execute(select(Bin.tag, Bin.address_id)).all()) == {
            "TAG-2": addresses["99999_b001_00002"]}
        assert bin_counts(session) == (1, 1)
    # A row cut short (an export that dropped empty trailing cells) is reported, not a crash.
    short = registry(tmp_path, "Volume;Flux;Couleur;puce;id_ban\n240;emballages;jaune;TAG-9;99999_a001_00005\n240\n",
                     "short.csv")
    with Session(engine) as session, session.begin():
        report = import_bins(session, short)
    assert (report.added, report.errors) == (1, ["line 3: no tag"])
    with Session(engine) as session, pytest.raises(BinFileError, match=r"line 1: needs a tag column"):
        import_bins(session, registry(tmp_path, "numero;rue\n3;Rue A\n", "wrong.csv"))


def test_trivue_bins_import_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'trivue.db'}"
    town(url)
    path = registry(tmp_path, "tag;address\nTAG-1;99999_a001_00003\nTAG-9;nowhere\n")
    assert main(["bins", "import", str(path), "--database-url", url]) == 0
    captured = capsys.readouterr()
    assert "2 rows, 1 bins added" in captured.out and "1 with an address the server does not hold" in captured.out
    assert "line 3: tag 'TAG-9': address 'nowhere'" in captured.err
    assert main(["bins", "stats", "--database-url", url]) == 0
    assert "1 bins registered, 1 at an address on a street" in capsys.readouterr().out
    with Session(make_engine(url)) as session:  # the registry ties bins to households: audited
        entries = [(e.action, e.target, e.detail) for e in session.scalars(select(AuditEntry))]
    assert entries == [("bins.import", str(path), "2 rows, 1 added, 0 moved, 0 unchanged, 0 removed, "
                                                  "1 unknown address, replace=False")]
    bad = registry(tmp_path, "\xff\xfenot text", "bad.csv")
    bad.write_bytes(b"tag;address\n\xff\xfe;x\n")
    assert main(["bins", "import", str(bad), "--database-url", url]) == 2
    assert "save the file as CSV UTF-8" in capsys.readouterr().err
    assert main(["bins", "import", str(tmp_path / "absent.csv"), "--database-url", url]) == 2
    assert capsys.readouterr().err.strip().endswith("absent.csv: no such file")
    nothing = registry(tmp_path, "tag;address\nTAG-8;nowhere\n", "nothing.csv")
    assert main(["bins", "import", str(nothing), "--database-url", url]) == 1  # a file of which no row was kept
    assert "nothing.csv: no row imported" in capsys.readouterr().err


def test_an_inventory_with_ban_ids_finds_the_addresses_trivue_imported(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The real chain: `trivue addresses import` of a BAN file, then an inventory holding the BAN's
    own ids (``35238_1010_00001``, the *clé d'interopérabilité*), as collectivities' inventories do."""
    url = f"sqlite:///{tmp_path / 'trivue.db'}"
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "geodata"
    assert main(["streets", "import", str(fixtures / "rennes-centre.geojson"), "--commune", "Rennes",
                 "--database-url", url]) == 0
    assert main(["addresses", "import", str(fixtures / "ban-rennes-centre.csv"), "--database-url", url]) == 0
    path = registry(tmp_path, "Numéro de puce;Clé d'interopérabilité\nE2801160000000C1;35238_1010_00001\n"
                              "E2801160000000C2;35238_1010_00002\n")
    capsys.readouterr()
    assert main(["bins", "import", str(path), "--database-url", url]) == 0
    assert "2 rows, 2 bins added" in capsys.readouterr().out
    engine = make_engine(url)
    with Session(engine) as session:
        places = bin_places(session, ["E2801160000000C1", "E2801160000000C2"])
        hoche = session.scalars(select(Address.street_name).where(Address.id.in_(
            [p.address_id for p in places.values()]))).all()
    engine.dispose()
    assert len(places) == 2 and hoche == ["Rue Hoche", "Rue Hoche"]


@pytest.mark.parametrize(("trajectory", "batch"), [(True, 1), (True, 9), (False, 9)],
                         ids=["trajectory-lift-by-lift", "trajectory-one-batch", "one-point"])
def test_a_registered_lift_without_a_fix_goes_to_its_address(tmp_path: Path, database_url: str, trajectory: bool,
                                                              batch: int) -> None:
    """A truck in a tunnel, a GPS box down: the lift has its tag but no fix. The registry still
    knows where it was: its address's street, counted there and not among the lifts without GPS;
    the truck's lifts with a fix before and after it are matched as if it were not there."""
    engine, streets, addresses = town(database_url)
    with Session(engine) as session, session.begin():
        import_bins(session, registry(tmp_path, "tag;address\nE2801160000000DD;99999_a001_00005\n"))
    with Session(engine) as session:
        locator = TrackLocator.from_session(session) if trajectory else Locator.from_session(session)
    settings = household_settings(tmp_path, database_url)
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, 2**20), Metrics(), lambda _s: locator, bin_places)
    # Down Rue B, then east into Rue A (``test_a_registered_lift_pins_its_truck_s_path``): the
    # corner lifts' fixes are up Rue B. The blind registered lift comes just before them.
    fixes = [(0.0, 90.0), (1.0, 60.0), (0.0, 40.0), None, (4.0, 12.0), (6.0, 10.0), None, (40.0, 0.0), (70.0, 1.0)]
    tags = {3: "E2801160000000DD", 6: "E2801160FFFFFFFF"}  # the second tag is not in the registry

    def ingest(truck: str, day: datetime, blind: bool) -> list[Lift]:
        events = []
        for k, xy in enumerate(fixes):
            if xy is None and not blind:
                continue
            lon, lat = lonlat(*xy) if xy is not None else (0.0, 0.0)
            events.append(lift_event(truck, sequence=k, gps=None if xy is None else (lat, lon),
                                     at=day + timedelta(seconds=20 * k), bin_id=tags.get(k)))
        messages = [MqttMessage(f"{settings.topic_prefix}/{truck}/lift", event.to_json().encode(),
                                event.started_at + timedelta(seconds=10)) for event in events]
        for start in range(0, len(messages), batch):
            with sessionmaker(engine)() as session, session.begin():
                assert inbox.write(session, messages[start:start + batch]) == 0
        with Session(engine) as session:
            return list(session.scalars(select(Lift).where(Lift.truck_id == truck).order_by(Lift.sequence)))

    control = ingest("benne-07", T0, blind=False)
    lifts = {lift.sequence: lift for lift in ingest("benne-08", T0 + timedelta(days=1), blind=True)}
    tagged, untagged = lifts.pop(3), lifts.pop(6)
    assert (tagged.lat, tagged.street_id, tagged.address_id) == (None, streets["Rue A"], addresses["99999_a001_00005"])
    assert (tagged.match_confidence, tagged.street_confidence, tagged.match_provisional) == (1.0, 1.0, False)
    assert (tagged.segment_id, tagged.address_distance_m) == (None, None), "no position is made up"
    assert untagged.street_id is None, "an unknown tag without a fix stays unmatched"
    assert [lift.street_id for lift in lifts.values()] == [lift.street_id for lift in control]
    with Session(engine) as session:
        days = {(d.day, d.street_id): d.lifts for d in session.scalars(select(StreetDay))}
        quality = {q.day: (q.lifts, q.matched, q.no_gps) for q in session.scalars(select(MatchQualityDay))}
    first, second = T0.date(), T0.date() + timedelta(days=1)
    on_a = [lift for lift in control if lift.street_id == streets["Rue A"]]
    assert days[(second, streets["Rue A"])] == days[(first, streets["Rue A"])] + 1 == len(on_a) + 1
    assert days[(second, streets["Rue B"])] == days[(first, streets["Rue B"])]
    assert quality == {first: (7, 7, 0), second: (9, 8, 1)}, "only the unknown tag counts as without GPS"
    if trajectory:  # ``trivue streets rematch`` leaves it there too (its path skips fixless lifts)
        with Session(engine) as session, session.begin():
            rematch_paths(session, locator, bins=bin_places)  # type: ignore[arg-type]
        with Session(engine) as session:
            assert session.get(Lift, tagged.id).street_id == streets["Rue A"]  # type: ignore[union-attr]
