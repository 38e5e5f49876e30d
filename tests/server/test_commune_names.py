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
