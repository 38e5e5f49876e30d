"""Address import (BAN CSV, Toulouse extract), linking to streets, and the street commands."""

from __future__ import annotations

import bz2
import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from server.streets.addresses import AddressFileError, AddressImport, import_address_file
from server.streets.importer import import_street_file
from server.streets.locator import Locator
from server.streets.models import Address, Street
from server.streets.names import street_key
from tests.server.streets_db import FIXTURES, database
from trivue.cli import main

BAN = FIXTURES / "ban-rennes-centre.csv"
STREETS = FIXTURES / "rennes-centre.geojson"
BAN_ROWS = BAN.read_text(encoding="utf-8").splitlines()
# "3 Rue Hoche", mid-way along the street (number 1 stands by a square that is nearer)
HOCHE_3 = next(row.split(";") for row in BAN_ROWS if row.startswith("35238_1010_00003;"))
HOCHE_3_LAT, HOCHE_3_LON = HOCHE_3[13], HOCHE_3[12]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path, postgres_available: bool) -> Iterator[Engine]:
    with database(request.param, tmp_path, postgres_available) as engine:
        yield engine


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    with database("sqlite", tmp_path, False) as engine:
        yield engine


def load(engine: Engine, path: Path, commune: str | None = None, streets: bool = True) -> AddressImport:
    with Session(engine) as session:
        if streets:
            import_street_file(session, STREETS, "Rennes")
        report = import_address_file(session, path, commune)
        session.commit()
        return report


def linked(engine: Engine) -> dict[str, str | None]:
    """Address label -> name of the street it is linked to."""
    with Session(engine) as session:
        return dict(session.execute(select(Address.label, Street.name).outerjoin(
            Street, Street.id == Address.street_id)).all())


@pytest.mark.parametrize(("source", "osm"), [
    ("AV DU GENERAL DE CROUTTE", "Avenue du Général de Croutte"),
    ("R DE L HORLOGE", "Rue de l'Horloge"),
    ("BD DE LA LIBERTE", "Boulevard de la Liberté"),
    ("PL ST MICHEL", "Place Saint-Michel"),
    ("IMP DES ŒILLETS", "Impasse des Oeillets"),
    ("Rue du Guesclin", "Rue Du Guesclin"),
    ("CHE DE LA SALADE PONSAN", "Chemin de la Salade Ponsan"),
])
def test_street_keys_equal_across_spellings(source: str, osm: str) -> None:
    assert street_key(source) == street_key(osm)


@pytest.mark.parametrize(("one", "other"), [("Rue Hoche", "Impasse Hoche"), ("Rue Saint-Louis", "Rue Louis"),
                                            ("Place de la Mairie", "Rue de la Mairie")])
def test_street_keys_keep_different_streets_apart(one: str, other: str) -> None:
    assert street_key(one) != street_key(other)


def test_ban_addresses_link_to_their_streets(engine: Engine) -> None:
    report = load(engine, BAN)
    assert (report.format, report.rows, report.imported, report.removed) == ("ban", 53, 53, 0)
    assert report.communes == ("Rennes", "Saint-Grégoire")
    assert (report.links.by_name, report.links.by_similar_name, report.links.by_proximity,
            report.links.unlinked) == (49, 1, 1, 2)
    streets = linked(engine)
    assert streets["3 bis Rue Hoche 35000 Rennes"] == "Rue Hoche"
    assert streets["1 Place Saint Michel 35000 Rennes"] == "Place Saint-Michel"
    assert streets["2 Rue du Guesclin 35000 Rennes"] == "Rue Du Guesclin"
    assert streets["1 Impasse Hoche 35000 Rennes"] == "Rue Hoche"
    assert streets["1 Résidence les Tilleuls 35000 Rennes"] == "Rue Nationale"
    assert streets["12 Rue de Lorient 35000 Rennes"] is None
    assert streets["5 Rue de la Mairie 35760 Saint-Grégoire"] is None


def test_locate_returns_the_nearest_address_on_the_street(engine: Engine) -> None:
    load(engine, BAN)
    with Session(engine) as session:
        locator = Locator.from_session(session)
        one = session.execute(select(Address).where(Address.label == "3 Rue Hoche 35000 Rennes")).scalar_one()
        four = session.execute(select(Address).where(Address.label == "4 Rue Hoche 35000 Rennes")).scalar_one()
    # A fix in front of number 3 finds it; on the centre line between 3 and 4, facing each other
    # 18 m apart, GPS cannot tell the sides: the household is uncertain.
    match = locator.locate(one.lat, one.lon)
    assert match is not None and match.street_name == "Rue Hoche" and match.address_id == one.id
    assert match.address_distance_m == pytest.approx(0, abs=0.01) and not match.address_synthetic
    middle = locator.locate((one.lat + four.lat) / 2, (one.lon + four.lon) / 2)
    assert middle is not None and middle.street_name == "Rue Hoche" and middle.address_id in (one.id, four.id)
    assert middle.address_candidates >= 2 and middle.confidence <= middle.street_confidence / 2
    assert middle.street_confidence > 0.9
    # Left alone on its street, number 3 is the household of a fix in front of it.
    with Session(engine) as session:
        session.execute(delete(Address).where(Address.street_id == match.street_id, Address.id != one.id))
        session.commit()
        alone = Locator.from_session(session).locate(one.lat, one.lon)
    assert alone is not None and alone.address_id == one.id
    assert alone.address_candidates == 1 and alone.confidence == alone.street_confidence


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress])
def test_compressed_ban_files_are_streamed(sqlite_engine: Engine, tmp_path: Path, compress: object) -> None:
    suffix = ".gz" if compress is gzip.compress else ".bz2"
    path = tmp_path / f"adresses-35.csv{suffix}"
    path.write_bytes(compress(BAN.read_bytes()))  # type: ignore[operator]
    report = load(sqlite_engine, path)
    assert report.imported == 53 and report.links.unlinked == 2


def test_reimport_updates_in_place_and_removes_what_is_gone(engine: Engine, tmp_path: Path) -> None:
    load(engine, BAN)
    with Session(engine) as session:
        before = dict(session.execute(select(Address.source_key, Address.id)).all())
    again = load(engine, BAN, streets=False)
    assert again.removed == 0
    moved = BAN_ROWS[1].split(";")
    moved[13] = "48.112600"
    edited = tmp_path / "edited.csv"
    edited.write_text("\n".join([BAN_ROWS[0], ";".join(moved), *BAN_ROWS[3:]]) + "\n", encoding="utf-8")
    report = load(engine, edited, streets=False)
    assert report.removed == 1
    with Session(engine) as session:
        after = dict(session.execute(select(Address.source_key, Address.id)).all())
        lat = session.scalar(select(Address.lat).where(Address.source_key == f"ban:{moved[0]}"))
    assert after == {key: value for key, value in before.items() if key != f"ban:{BAN_ROWS[2].split(';')[0]}"}
    assert lat == pytest.approx(48.1126)


def test_streets_imported_after_addresses_link_them(sqlite_engine: Engine) -> None:
    report = load(sqlite_engine, BAN, streets=False)
    assert report.links.unlinked == 53
    with Session(sqlite_engine) as session:
        streets = import_street_file(session, STREETS, "Rennes")
        session.commit()
    assert streets.addresses_linked == 51


def test_toulouse_extract_with_abbreviations_and_decimal_commas(sqlite_engine: Engine, tmp_path: Path) -> None:
    rows = [
        "no;numero;lib_off;mot_directeur;sti;nrivoli;rivoli;X_CC43;Y_CC43;X_WGS84;Y_WGS84",
        "4;0004;R HOCHE;HOCHE - 0004 R HOCHE;1;1;3523800010A;1;1;-1,67730000;48,11250000",
        "2B;0002;PL ST MICHEL;MICHEL - 0002 PL ST MICHEL;1;1;3523800020B;1;1;-1,68050000;48,11300000",
        "7;0007;BD DE LA LIBERTE;LIBERTE - 0007 BD DE LA LIBERTE;1;1;3523800030C;1;1;-1,67900000;48,10650000",
    ]
    path = tmp_path / "toulouse-style.csv"
    path.write_text("\r\n".join(rows) + "\r\n", encoding="ascii")
    report = load(sqlite_engine, path, commune="Rennes")
    assert report.format == "toulouse" and report.links.by_name == 3
    streets = linked(sqlite_engine)
    assert streets == {"4 R HOCHE Rennes": "Rue Hoche", "2 bis PL ST MICHEL Rennes": "Place Saint-Michel",
                       "7 BD DE LA LIBERTE Rennes": "Boulevard de la Liberté"}


def test_real_toulouse_file(sqlite_engine: Engine, shared_dir: Path) -> None:
    path = shared_dir / "geodata" / "toulouse-addresses.csv.bz2"
    ticks: list[tuple[int, int]] = []
    with Session(sqlite_engine) as session:
        report = import_address_file(session, path, progress=lambda done, total: ticks.append((done, total)))
        session.commit()
    # progress follows the compressed bytes read, batch after batch, to the end of the file
    assert len(ticks) >= 13 and ticks[-1] == (path.stat().st_size, path.stat().st_size)
    assert [done for done, _ in ticks] == sorted(done for done, _ in ticks)
    assert (report.format, report.rows, report.imported, report.communes) == ("toulouse", 65396, 65396,
                                                                              ("Toulouse",))
    assert report.links.unlinked == 65396  # no Toulouse streets in the database
    with Session(sqlite_engine) as session:
        lat_min, lat_max, lon_min, lon_max = session.execute(select(
            func.min(Address.lat), func.max(Address.lat), func.min(Address.lon), func.max(Address.lon))).one()
        bis = session.scalar(select(func.count()).select_from(Address).where(Address.number.like("% bis")))
    assert 43.5 < lat_min < lat_max < 43.7 and 1.3 < lon_min < lon_max < 1.6
    assert bis > 1000


@pytest.mark.parametrize(("edit", "message"), [
    (lambda rows: ["numero;voie;x", *rows[1:]], "line 1: not a BAN or Toulouse address header"),
    (lambda rows: [*rows[:3], rows[3] + ";extra", *rows[4:]], "line 4: 24 fields, the header has 23"),
    (lambda rows: [*rows[:5], rows[5].replace(";-1.", ";west-1."), *rows[6:]], "line 6: bad value"),
    (lambda rows: [*rows[:3], rows[2], *rows[3:]], "line 4: duplicate address id"),
    (lambda rows: [*rows[:2], rows[2].replace(";48.", ";98."), *rows[3:]], "line 3: position .* outside"),
    (lambda rows: [*rows[:1], ""], "no"),  # header only: imports nothing, no error
])
def test_bad_address_files_name_file_and_line(sqlite_engine: Engine, tmp_path: Path, edit: object,
                                               message: str) -> None:
    path = tmp_path / "adresses-35.csv"
    path.write_text("\n".join(edit(BAN_ROWS)) + "\n", encoding="utf-8")  # type: ignore[operator]
    if message == "no":
        assert load(sqlite_engine, path).imported == 0
        return
    with pytest.raises(AddressFileError, match=f"adresses-35.csv {message}"):
        load(sqlite_engine, path)


def test_truncated_gzip_is_a_clear_error(sqlite_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "adresses-35.csv.gz"
    path.write_bytes(gzip.compress(BAN.read_bytes() * 3)[:-200])
    with pytest.raises(AddressFileError, match=r"adresses-35\.csv\.gz line \d+: (unreadable|duplicate)"):
        load(sqlite_engine, path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_commands_act_on_the_settings_database(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIVUE_DATABASE_URL", f"sqlite:///{tmp_path / 'trivue.db'}")
    code, out, _ = run(capsys, "streets", "import", str(STREETS), "--commune", "Rennes")
    assert code == 0 and "262 ways" in out and "in Rennes" in out
    code, out, _ = run(capsys, "addresses", "import", str(BAN))
    assert code == 0 and "53 addresses imported" in out and "unlinked 2" in out
    code, out, _ = run(capsys, "streets", "stats")
    assert code == 0 and "Rennes" in out and "Saint-Grégoire" in out
    code, out, _ = run(capsys, "streets", "list", "--name", "hoche")
    assert code == 0 and "Rue Hoche" in out and "Rue Nationale" not in out
    code, _, err = run(capsys, "streets", "list", "--limit", "-1")  # was the whole list; 0, an empty table
    assert code == 2 and "--limit must be 1 or more, got -1" in err
    code, out, _ = run(capsys, "streets", "locate", HOCHE_3_LAT, HOCHE_3_LON)
    assert code == 0 and out.startswith("Rue Hoche, Rennes") and "3 Rue Hoche 35000 Rennes" in out
    code, out, _ = run(capsys, "streets", "locate", "48.8566", "2.3522")
    assert code == 1 and "no street within 30 m" in out
    code, _, err = run(capsys, "addresses", "import", str(tmp_path / "missing.csv"))
    assert code == 2 and "missing.csv: no such file" in err and "Traceback" not in err


def test_failed_import_leaves_the_database_as_it_was(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'trivue.db'}"
    bad = tmp_path / "adresses-35.csv"
    bad.write_text("\n".join([*BAN_ROWS[:30], "35238_9999_00001;broken"]) + "\n", encoding="utf-8")
    code, _, err = run(capsys, "addresses", "import", str(bad), "--database-url", url)
    assert code == 2 and "adresses-35.csv line 31: 2 fields" in err
    from server.db import make_engine

    with Session(make_engine(url)) as session:
        assert session.scalar(select(func.count()).select_from(Address)) == 0


def test_rematch_moves_stored_lifts_to_new_streets(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, date, datetime

    from server.db import make_engine
    from server.ingest.models import Lift, StreetDay

    monkeypatch.setenv("TRIVUE_DATABASE_URL", f"sqlite:///{tmp_path / 'trivue.db'}")
    monkeypatch.setenv("TRIVUE_HOUSEHOLD_LEVEL", "true")  # the lifts' addresses are kept (street level: none)
    assert run(capsys, "addresses", "import", str(BAN))[0] == 0  # creates the schema, no streets yet
    engine = make_engine(f"sqlite:///{tmp_path / 'trivue.db'}")
    now = datetime(2026, 11, 20, 7, 30, tzinfo=UTC)
    with Session(engine) as session:
        for n, (lat, lon) in enumerate([(float(HOCHE_3_LAT), float(HOCHE_3_LON)), (48.8566, 2.3522)]):
            session.add(Lift(event_id=f"00000000-0000-4000-8000-00000000000{n}", truck_id="T1", sequence=n,
                             stream="emballages", started_at=now, ended_at=now, day=date(2026, 11, 20),
                             received_at=now, lat=lat, lon=lon, contaminated=n == 0, has_alert=False,
                             score=0.0, counts={}, errors=[], model_name="m", model_version="1", frames=1))
        session.commit()
    assert run(capsys, "streets", "import", str(STREETS), "--commune", "Rennes")[0] == 0
    code, out, _ = run(capsys, "streets", "rematch")
    assert code == 0 and "2 re-matched, 1 on a street, 1 unmatched" in out
    with Session(engine) as session:
        hoche = session.scalar(select(Street.id).where(Street.name == "Rue Hoche"))
        lifts = dict(session.execute(select(Lift.sequence, Lift.street_id)).all())
        address = session.scalar(select(Address.label).join(Lift, Lift.address_id == Address.id))
        days = session.scalars(select(StreetDay.street_id)).all()
    assert lifts == {0: hoche, 1: None}
    assert address == "3 Rue Hoche 35000 Rennes"
    assert hoche in days
    # The household level off (the default): a rematch keeps the streets and drops the addresses.
    monkeypatch.delenv("TRIVUE_HOUSEHOLD_LEVEL")
    code, out, _ = run(capsys, "streets", "rematch")
    assert code == 0 and "1 changed (street level: no bin tag or address kept)" in out
    with Session(engine) as session:
        assert dict(session.execute(select(Lift.sequence, Lift.street_id)).all()) == lifts
        assert session.scalars(select(Lift.address_id)).all() == [None, None]


def test_synthetic_addresses_for_a_commune_without_an_address_file(sqlite_engine: Engine) -> None:
    from server.streets.demo_addresses import SyntheticAddressError, synthesize_addresses

    with Session(sqlite_engine) as session:
        import_street_file(session, STREETS, "Rennes")
        made = synthesize_addresses(session, "Rennes", spacing_m=25, postcode="35000")
        assert made == synthesize_addresses(session, "Rennes", spacing_m=25, postcode="35000")  # replaced
        session.commit()
        rows = session.execute(select(Address.street_id, Address.synthetic, Address.label)).all()
        hoche = session.scalar(select(Street.id).where(Street.name == "Rue Hoche"))
        locator = Locator.from_session(session)
    length_km = 27.8  # of the fixture's streets; a number every 25 m on both sides
    assert len(rows) == made and 2 * length_km * 1000 / 25 * 0.8 < made < 2 * length_km * 1000 / 25 * 1.1
    assert all(r.synthetic and r.street_id is not None for r in rows)
    match = locator.locate(float(HOCHE_3_LAT), float(HOCHE_3_LON))
    assert match is not None and match.street_id == hoche and match.address_label.endswith("Rue Hoche 35000 Rennes")
    assert match.address_synthetic
    with Session(sqlite_engine) as session:
        real = import_address_file(session, BAN)
        assert real.removed == made  # real addresses supersede the made-up ones
        assert session.scalar(select(func.count()).select_from(Address).where(Address.synthetic.is_(True))) == 0
        with pytest.raises(SyntheticAddressError, match="Rennes has 52 imported addresses"):
            synthesize_addresses(session, "Rennes")
        with pytest.raises(SyntheticAddressError, match="no street in commune 'Nowhere'"):
            synthesize_addresses(session, "Nowhere")


def test_synthetic_addresses_are_numbered_in_street_order(sqlite_engine: Engine) -> None:
    """Their ids (a household's key, ``address:<id>``) follow the streets' ids, not the order a
    scan reads the streets in: ``reverse_unordered_selects`` reads them backwards."""
    from sqlalchemy import text

    from server.streets.demo_addresses import synthesize_addresses

    made = []
    with Session(sqlite_engine) as session:
        import_street_file(session, STREETS, "Rennes")
        for reverse in (0, 1):
            session.execute(text(f"PRAGMA reverse_unordered_selects = {reverse}"))
            synthesize_addresses(session, "Rennes", spacing_m=50)
            rows = session.execute(select(Address.id, Address.street_id).order_by(Address.id)).all()
            made.append([street_id for _id, street_id in rows])
    assert made[0] == sorted(made[0]) and made[1] == made[0]
