"""A commune typed at the command line is found as the imports spell it: case, accents, hyphens and
the typographic apostrophe (« Cap-d’Ail », « cap d'ail ») do not matter, as in address linking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from server.db import make_engine
from server.streets.demo_addresses import SyntheticAddressError, synthesize_addresses
from server.streets.importer import import_street_file, street_rows
from server.streets.models import Address
from tests.server.streets_db import FIXTURES, create_schema
from trivue.cli import main

COMMUNE = "Cap-d'Ail"  # as the OSM boundary and the BAN spell it


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_schema(make_engine(f"sqlite:///{tmp_path / 'streets.db'}"))
    with Session(engine) as session:
        import_street_file(session, FIXTURES / "rennes-centre.geojson", COMMUNE)
        session.commit()
    yield engine
    engine.dispose()


@pytest.mark.parametrize("typed", [COMMUNE, "Cap-d’Ail", "cap d'ail", "CAP-D-AIL"])
def test_streets_list_finds_the_commune_however_typed(engine: Engine, typed: str) -> None:
    with Session(engine) as session:
        rows = street_rows(session, typed, None, 5)
    assert len(rows) == 5 and {row.commune for row in rows} == {COMMUNE}


def test_synthetic_addresses_go_to_the_commune_as_imported(engine: Engine) -> None:
    with Session(engine) as session:
        assert synthesize_addresses(session, "Cap-d’Ail") > 0
        assert set(session.scalars(select(Address.commune).distinct())) == {COMMUNE}
        with pytest.raises(SyntheticAddressError, match=r"no street in commune 'Menton'.*Cap-d'Ail"):
            synthesize_addresses(session, "Menton")


@pytest.mark.parametrize("typed", ["l'", "L’", "de la", " - ", "du"])
def test_a_name_with_nothing_to_search_for_is_refused_not_every_street(
        engine: Engine, typed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``--name "l'"``: its key is empty once articles and punctuation are set aside, and an empty key
    is contained in every name: every street was listed."""
    with Session(engine) as session, pytest.raises(ValueError, match="nothing to search for"):
        street_rows(session, None, typed, 5)
    monkeypatch.setenv("TRIVUE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")  # refused before any query
    assert main(["streets", "list", "--name", typed]) == 2
    err = capsys.readouterr().err
    assert f"--name {typed!r}: nothing to search for" in err and "Traceback" not in err


def test_a_name_with_a_word_still_finds_its_streets(engine: Engine) -> None:
    with Session(engine) as session:
        rows = street_rows(session, None, "RUE DE L’HERMINE", 50)
    assert [row.name for row in rows] == ["Rue de l'Hermine"]


def test_streets_list_of_a_commune_without_streets_names_those_with_some(
        engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/streets.md: given a commune without streets, ``--commune`` names the communes that have
    some. ``trivue streets list --commune Menton`` printed an empty table, exit 0: a typo read as a
    commune without streets, while the API answers it with a 422 naming them."""
    refusal = r"--commune 'Menton': no street is in it.*Cap-d'Ail"
    with Session(engine) as session, pytest.raises(ValueError, match=refusal):
        street_rows(session, "Menton", None, 5)
    monkeypatch.setenv("TRIVUE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    assert main(["streets", "import", str(FIXTURES / "rennes-centre.geojson"), "--commune", COMMUNE]) == 0
    capsys.readouterr()
    assert main(["streets", "list", "--commune", "Menton"]) == 2
    err = capsys.readouterr().err
    assert "--commune 'Menton': no street is in it; the communes with streets: Cap-d'Ail" in err, err
