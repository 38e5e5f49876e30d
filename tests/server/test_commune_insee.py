"""Each street's commune as French public data names it: its code INSEE (code officiel géographique),
known from real data only: the BAN addresses linked to it, ``--insee`` at the street import, or
the ``ref:INSEE`` of the OSM commune boundary holding it; never guessed from a name. On SQLite and
PostgreSQL, with the fixture files of tests/fixtures/geodata and the shared Monaco extract."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, Table, func, insert, inspect, select, text
from sqlalchemy.orm import Session

from server.streets.addresses import import_address_file
from server.streets.importer import import_street_file
from server.streets.models import Address, Street
from tests.server.streets_db import FIXTURES, database
from trivue.cli import main

BAN = FIXTURES / "ban-rennes-centre.csv"
STREETS = FIXTURES / "rennes-centre.geojson"
RENNES, SAINT_GREGOIRE = "35238", "35278"


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path, postgres_available: bool) -> Iterator[Engine]:
    with database(request.param, tmp_path, postgres_available) as engine:
        yield engine


def codes(engine: Engine) -> dict[str, str | None]:
    """Street name -> its code INSEE, for the streets of Rennes."""
    with Session(engine) as session:
        return dict(session.execute(select(Street.name, Street.code_insee).where(Street.commune == "Rennes")).all())


def streets_with_addresses(engine: Engine) -> set[str]:
    with Session(engine) as session:
        return set(session.scalars(select(Street.name).join(Address, Address.street_id == Street.id)
                                   .where(Street.commune == "Rennes", Address.commune == "Rennes")))


def test_streets_take_the_code_of_their_ban_addresses(engine: Engine) -> None:
    with Session(engine) as session:
        import_street_file(session, STREETS, "Rennes")
        session.commit()
    assert set(codes(engine).values()) == {None}, "a commune name alone gives no code"
    with Session(engine) as session:
        import_address_file(session, BAN)
        session.commit()
        by_address = dict(session.execute(select(Address.commune, Address.code_insee).distinct()).all())
    assert by_address == {"Rennes": RENNES, "Saint-Grégoire": SAINT_GREGOIRE}
    found = codes(engine)
    with_addresses = streets_with_addresses(engine)
    assert "Rue Hoche" in with_addresses and len(with_addresses) == 8
    assert {name for name, code in found.items() if code == RENNES} == with_addresses
    assert {code for name, code in found.items() if name not in with_addresses} == {None}, "never guessed"


def _border_files(tmp_path: Path) -> tuple[Path, Path]:
    """Rennes' streets plus one Saint-Grégoire street, and the BAN fixture where five of Rue
    Hoche's seven addresses say they are in Saint-Grégoire (the far side of a commune border
    that Rennes' way crosses): they link to Rennes' Rue Hoche (same name within 60 m)."""
    data = json.loads(STREETS.read_text(encoding="utf-8"))
    neighbour = json.loads(json.dumps(data["features"][0]))
    neighbour["properties"] = {**neighbour["properties"], "name": "Rue de la Mairie", "commune": "Saint-Grégoire"}
    streets = tmp_path / "streets.geojson"
    for feature in data["features"]:
        feature["properties"]["commune"] = "Rennes"
    data["features"].append(neighbour)
    streets.write_text(json.dumps(data), encoding="utf-8")
    lines = BAN.read_text(encoding="utf-8").splitlines()
    moved = 0
    for index, line in enumerate(lines):
        fields = line.split(";")
        if fields[4] == "Rue Hoche" and moved < 5:
            fields[5:8] = ["35760", SAINT_GREGOIRE, "Saint-Grégoire"]
            lines[index] = ";".join(fields)
            moved += 1
    assert moved == 5
    addresses = tmp_path / "adresses.csv"
    addresses.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return streets, addresses


def test_a_street_counts_only_the_addresses_of_its_own_commune(engine: Engine, tmp_path: Path) -> None:
    streets, addresses = _border_files(tmp_path)
    with Session(engine) as session:
        import_street_file(session, streets)
        import_address_file(session, addresses)
        session.commit()
        hoche = session.scalars(select(Street).where(Street.name == "Rue Hoche", Street.commune == "Rennes")).one()
        towns = session.scalars(select(Address.code_insee).where(Address.street_id == hoche.id)).all()
    # 2 Rennes numbers and Impasse Hoche (not in OSM: linked by its name's word) against 5 across the border
    assert sorted(towns) == [*[RENNES] * 3, *[SAINT_GREGOIRE] * 5], "the border addresses link to it"
    assert hoche.code_insee == RENNES, "a Rennes street is never given its neighbour's code"


def test_a_tie_between_two_codes_leaves_the_street_without_one(engine: Engine, tmp_path: Path) -> None:
    # Two communes of one name: Rue Hoche's 8 addresses (7 numbers and Impasse Hoche, linked to
    # it) split 4 and 4 between two codes, all under "Rennes".
    lines = BAN.read_text(encoding="utf-8").splitlines()
    hoche = [i for i, line in enumerate(lines) if line.split(";")[4] == "Rue Hoche"]
    assert len(hoche) == 7
    for index in hoche[:4]:
        fields = lines[index].split(";")
        fields[6] = "35999"
        lines[index] = ";".join(fields)
    path = tmp_path / "adresses.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with Session(engine) as session:
        import_street_file(session, STREETS, "Rennes")
        import_address_file(session, path)
        session.commit()
    assert codes(engine)["Rue Hoche"] is None
    assert codes(engine)["Rue Nationale"] == RENNES


@pytest.mark.parametrize("bad", ["3523", "352380", "35 23", "2C001", "ABCDE", "3523A", "35-238"])
def test_a_ban_file_with_an_impossible_code_is_refused(engine: Engine, tmp_path: Path, bad: str) -> None:
    from server.streets.addresses import AddressFileError

    lines = BAN.read_text(encoding="utf-8").splitlines()
    fields = lines[3].split(";")
    fields[6] = bad
    lines[3] = ";".join(fields)
    path = tmp_path / "adresses.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    refused = re.escape(f"line 4: bad value (code INSEE {bad!r}")
    with Session(engine) as session, pytest.raises(AddressFileError, match=refused):
        import_address_file(session, path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def code_row(stats: str, commune: str) -> tuple[str, str]:
    """(codes, streets without one) of ``commune`` in the second table of ``trivue streets stats``."""
    table = stats[stats.index("code INSEE"):]
    cells = next(line for line in table.splitlines() if commune in line).split("│")
    return cells[2].strip(), cells[3].strip()


@pytest.mark.parametrize(("argv", "message"), [
    (["--commune", "Rennes", "--insee", "3523"], "--insee '3523': a code INSEE is 5 characters"),
    (["--commune", "Rennes", "--insee", "2C238"], "--insee '2C238': a code INSEE is 5 characters"),
    (["--commune", "Rennes", "--insee", "35 238"], "--insee '35 238': a code INSEE is 5 characters"),
    (["--insee", "35238"], "--insee 35238 names one commune: give its name with --commune"),
])
def test_streets_import_refuses_a_bad_insee_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str], argv: list[str],
                                                   message: str) -> None:
    monkeypatch.setenv("TRIVUE_DATABASE_URL", f"sqlite:///{tmp_path / 'trivue.db'}")
    code, _, err = run(capsys, "streets", "import", str(STREETS), *argv)
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "trivue.db").exists(), "refused before the database is opened"


def test_streets_import_insee_option_and_stats(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", database_url)
    code, _, err = run(capsys, "streets", "import", str(STREETS), "--commune", "Rennes")
    assert code == 0, err
    code, out, err = run(capsys, "streets", "stats")
    assert code == 0 and code_row(out, "Rennes") == ("", "139"), out  # every street lacks a code
    assert "trivue addresses import" in err
    code, out, err = run(capsys, "streets", "import", str(STREETS), "--commune", "Rennes", "--insee", RENNES)
    assert code == 0 and "code INSEE 35238" in out, err
    engine_url_codes = _codes_at(database_url)
    assert set(engine_url_codes.values()) == {RENNES} and len(engine_url_codes) == 139
    code, out, err = run(capsys, "streets", "stats")
    assert code_row(out, "Rennes") == (RENNES, "0"), out
    assert "without a code INSEE" not in err
    # Corsica's codes have a letter: accepted in either case, stored as the COG writes them.
    code, _, err = run(capsys, "streets", "import", str(STREETS), "--commune", "Ajaccio", "--insee", "2a004")
    assert code == 0, err
    assert set(_codes_at(database_url, "Ajaccio").values()) == {"2A004"}


def _codes_at(url: str, commune: str = "Rennes") -> dict[str, str | None]:
    from server.db import make_engine

    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return dict(session.execute(select(Street.name, Street.code_insee)
                                        .where(Street.commune == commune)).all())
    finally:
        engine.dispose()


def test_osm_boundaries_give_their_ref_insee(shared_dir: Path, tmp_path: Path) -> None:
    with database("sqlite", tmp_path, False) as engine, Session(engine) as session:
        import_street_file(session, shared_dir / "geodata" / "monaco.osm.pbf")
        session.commit()
        found = dict(session.execute(select(Street.commune, func.min(Street.code_insee))
                                     .group_by(Street.commune)).all())
        spread = session.scalar(select(func.count(Street.code_insee.distinct())).where(Street.commune == "Beausoleil"))
    # The codes of the extract's boundaries (ref:INSEE); Monaco is no French commune: none.
    assert found == {"Beausoleil": "06012", "Cap-d'Ail": "06032", "La Turbie": "06150", "Monaco": None}
    assert spread == 1


def test_upgrade_then_address_reimport_gives_existing_streets_their_codes(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A database of 0009 (streets and BAN addresses, no codes anywhere) upgraded: the columns are
    there, empty, and stats count the streets without one; importing the same BAN file again
    fills them in place (address ids kept). Downgrading keeps the streets and addresses."""
    from alembic import command

    from server.db import make_engine
    from server.migrate import alembic_config, head_revision, upgrade_database

    engine = make_engine(database_url)
    config = alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0009")
        scratch = make_engine(f"sqlite:///{tmp_path / 'scratch.db'}")
        upgrade_database(scratch)
        with Session(scratch) as session:
            import_street_file(session, STREETS, "Rennes")
            import_address_file(session, BAN)
            session.commit()
        with scratch.connect() as source, engine.begin() as target:
            for name in ("streets", "addresses"):
                old = Table(name, MetaData(), autoload_with=target)  # the table as 0009 left it
                rows = [{k: v for k, v in r.items() if k in old.c} for r in source.execute(
                    select(Table(name, MetaData(), autoload_with=source))).mappings()]
                target.execute(insert(old), rows)
        scratch.dispose()
        assert upgrade_database(engine) == head_revision()
        assert {"code_insee"} <= {c["name"] for c in inspect(engine).get_columns("streets")}
        with Session(engine) as session:
            ids = dict(session.execute(select(Address.source_key, Address.id)).all())
            assert session.scalar(select(func.count()).where(Street.code_insee.is_not(None))) == 0
        monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("TRIVUE_DATABASE_URL", database_url)
        code, out, _ = run(capsys, "streets", "stats")
        assert code == 0 and code_row(out, "Rennes") == ("", "139"), out
        code, _, err = run(capsys, "addresses", "import", str(BAN))
        assert code == 0, err
        with Session(engine) as session:
            assert dict(session.execute(select(Address.source_key, Address.id)).all()) == ids
            linked = session.scalar(select(func.count(Street.id.distinct()))
                                    .join(Address, Address.street_id == Street.id).where(Address.commune == "Rennes"))
            assert session.scalar(select(func.count()).where(Street.code_insee == RENNES)) == linked == 8
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0009")
        assert "code_insee" not in {c["name"] for c in inspect(engine).get_columns("streets")}
        with engine.connect() as connection:
            assert connection.execute(text("SELECT COUNT(*) FROM addresses")).scalar_one() == len(ids)
    finally:
        engine.dispose()

