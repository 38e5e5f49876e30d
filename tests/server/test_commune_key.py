"""``commune_key``: OSM, bin registries and people abbreviate « Saint » and « Sainte » in commune
names (« St-Jean-de-Braye », « Ste-Geneviève-des-Bois »), BAN and the INSEE do not: a whole word
``st`` is ``saint`` and ``ste`` is ``sainte`` in the key, never letters inside a word (Stenay,
Estrées). Checked through the callers too: address linking and ``streets list --commune``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from server.db import make_engine
from server.streets.addresses import import_address_file
from server.streets.importer import import_street_file, matching_commune, street_rows
from server.streets.models import Address, Street
from server.streets.names import commune_key
from tests.server.streets_db import FIXTURES, create_schema


@pytest.mark.parametrize(("typed", "official"), [
    ("St-Jean-de-Braye", "Saint-Jean-de-Braye"),
    ("St Jean de Braye", "Saint-Jean-de-Braye"),
    ("ST-JEAN-DE-BRAYE", "Saint-Jean-de-Braye"),
    ("St.-Jean-de-Braye", "Saint-Jean-de-Braye"),
    ("Ste-Geneviève-des-Bois", "Sainte-Geneviève-des-Bois"),
    ("ste genevieve des bois", "Sainte-Geneviève-des-Bois"),
    ("Estrées-St-Denis", "Estrées-Saint-Denis"),
    ("La Chapelle-St-Mesmin", "La Chapelle-Saint-Mesmin"),
    ("St-Martin-d’Hères", "Saint-Martin-d'Hères"),
    ("saint jean de braye", "Saint-Jean-de-Braye"),
    ("cap d'ail", "Cap-d’Ail"),
])
def test_abbreviated_and_official_spellings_share_a_key(typed: str, official: str) -> None:
    assert commune_key(typed) == commune_key(official)


@pytest.mark.parametrize(("name", "key"), [
    ("Stenay", "stenay"),  # "st" inside a word is no abbreviation
    ("Stains", "stains"),
    ("Estrées-St-Denis", "estrees-saint-denis"),
    ("Ste-Foy-lès-Lyon", "sainte-foy-les-lyon"),
    ("Steenvoorde", "steenvoorde"),
    ("Saint-Étienne", "saint-etienne"),
    ("Oste", "oste"),
])
def test_only_whole_words_are_expanded(name: str, key: str) -> None:
    assert commune_key(name) == key


@pytest.mark.parametrize(("one", "other"), [
    ("St-Denis", "Sainte-Denis"),  # st is saint, never sainte
    ("Ste-Marie", "Saint-Marie"),
    ("Stenay", "Saintenay"),
    ("Estrées-St-Denis", "Estrées-Denis"),
    ("St-Denis", "Saint-Denis-en-Val"),
    ("Sts", "Saint"),
])
def test_different_communes_keep_different_keys(one: str, other: str) -> None:
    assert commune_key(one) != commune_key(other)


def test_matching_commune_finds_the_official_spelling() -> None:
    names = ["Orléans", "Saint-Jean-de-Braye", "Sainte-Geneviève-des-Bois", "Stenay"]
    assert matching_commune(names, "St-Jean-de-Braye") == "Saint-Jean-de-Braye"
    assert matching_commune(names, "Ste Geneviève des Bois") == "Sainte-Geneviève-des-Bois"
    assert matching_commune(names, "Saintenay") is None


@pytest.fixture
def osm_engine(tmp_path: Path) -> Iterator[Engine]:
    """Streets whose commune OSM spells with « St- »."""
    engine = create_schema(make_engine(f"sqlite:///{tmp_path / 'streets.db'}"))
    with Session(engine) as session:
        import_street_file(session, FIXTURES / "rennes-centre.geojson", "St-Jean-de-Braye")
        session.commit()
    yield engine
    engine.dispose()


def test_addresses_of_the_official_name_link_to_streets_spelt_with_st(osm_engine: Engine, tmp_path: Path) -> None:
    rows = [
        "no;numero;lib_off;mot_directeur;sti;nrivoli;rivoli;X_CC43;Y_CC43;X_WGS84;Y_WGS84",
        "4;0004;R HOCHE;HOCHE - 0004 R HOCHE;1;1;4528400010A;1;1;-1,67730000;48,11250000",
        "7;0007;BD DE LA LIBERTE;LIBERTE - 0007 BD DE LA LIBERTE;1;1;4528400030C;1;1;-1,67900000;48,10650000",
    ]
    path = tmp_path / "sjdb.csv"
    path.write_text("\r\n".join(rows) + "\r\n", encoding="ascii")
    with Session(osm_engine) as session:
        report = import_address_file(session, path, "Saint-Jean-de-Braye")
        session.commit()
        query = select(Address.label, Street.name).join(Street, Street.id == Address.street_id)
        linked = dict(session.execute(query).all())
    assert (report.links.by_name, report.links.unlinked) == (2, 0)
    assert linked == {"4 R HOCHE Saint-Jean-de-Braye": "Rue Hoche",
                      "7 BD DE LA LIBERTE Saint-Jean-de-Braye": "Boulevard de la Liberté"}


@pytest.mark.parametrize("typed", ["Saint-Jean-de-Braye", "saint jean de braye", "ST JEAN DE BRAYE"])
def test_streets_list_finds_a_commune_spelt_with_st(osm_engine: Engine, typed: str) -> None:
    with Session(osm_engine) as session:
        rows = street_rows(session, typed, None, 5)
    assert len(rows) == 5 and {row.commune for row in rows} == {"St-Jean-de-Braye"}
