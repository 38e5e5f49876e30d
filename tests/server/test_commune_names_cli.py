"""``--communes`` by name: ``trivue users add``, ``users communes`` and ``tokens create`` take a
commune's name (however typed: case, accents, hyphens) as well as its code INSEE, resolved from the
names and codes the imported streets and addresses carry; the codes are what is stored and audited,
the confirmation says the names beside them. A name that matches no commune, two codes, or a
commune whose code nothing said is one line naming it, and nothing is stored."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audit import AuditEntry
from server.db import make_engine
from server.streets.models import Address, Street
from server.web.accounts import ApiToken, User
from tests.server.test_accounts_cli import cli_env, one_line_error  # noqa: F401 - the fixture
from tests.server.test_cli import run

PASSWORD = "un mot de passe long\n"
SARAN, INGRE, SAINT_JEAN, CHAPELLE = "45302", "45169", "45284", "45075"
# name, commune, code INSEE (None: nothing said it)
STREETS = [("Rue de la Mairie", "Saran", SARAN), ("Rue du Bourg", "Ingré", INGRE),
           ("Rue de Paris", "Saint-Jean-de-Braye", SAINT_JEAN), ("Rue Sans Code", "Olivet", None),
           ("Rue de la République", "Saint-Denis", "93066")]
# Addresses only: a commune whose streets are not imported, and a homonym of another code.
ADDRESSES = [("Rue de l'Église", "La Chapelle-Saint-Mesmin", CHAPELLE), ("Rue de Paris", "Saint Denis", "97411")]


def seed(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streets and addresses as imports leave them, in the database the CLI made."""
    assert run(["users", "list"], monkeypatch) == 0  # migrates the empty database
    geometry = json.dumps({"type": "MultiLineString", "coordinates": [[[1.9, 47.9], [1.91, 47.91]]]})
    with Session(make_engine(url)) as session:
        session.add_all([Street(name=name, commune=commune, code_insee=code, name_key=name.lower(),
                                geometry=geometry, length_m=100.0) for name, commune, code in STREETS])
        session.add_all([Address(number="1", label=f"1 {street} {commune}", street_name=street,
                                 street_key=street.lower(), commune=commune, code_insee=code, lat=47.9, lon=1.9)
                         for street, commune, code in ADDRESSES])
        session.commit()


def stored(url: str) -> tuple[dict[str, list[str] | None], dict[str, list[str] | None], list[tuple[str, str]]]:
    """Accounts' and tokens' communes, and the audit trail of scopes."""
    with Session(make_engine(url)) as session:
        users = {u.name: u.communes for u in session.scalars(select(User))}
        tokens = {t.name: t.communes for t in session.scalars(select(ApiToken))}
        trail = [(e.action, e.detail) for e in session.scalars(
            select(AuditEntry).where(AuditEntry.action.in_(["user.add", "user.communes", "token.create"]))
            .order_by(AuditEntry.id))]
    return users, tokens, trail


def test_an_account_is_given_its_communes_by_name(cli_env: str, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    seed(cli_env, monkeypatch)
    capsys.readouterr()
    assert run(["users", "add", "mairie-saran", "--role", "viewer", "--communes", "saran, INGRE"],
               monkeypatch, PASSWORD) == 0
    err = capsys.readouterr().err
    assert "user mairie-saran added with role viewer, limited to the communes 45169 (Ingré), 45302 (Saran)" in err
    assert "warning" not in err  # both codes are on streets
    # Mixed with a code (spaces separate a code from a name's words), spaces for hyphens, and a
    # commune known by its addresses only.
    assert run(["users", "communes", "mairie-saran", "45234 saint jean de braye", "la chapelle saint-mesmin"],
               monkeypatch) == 0
    err = capsys.readouterr().err
    assert ("mairie-saran now sees the communes 45075 (La Chapelle-Saint-Mesmin), 45234, "
            "45284 (Saint-Jean-de-Braye) only") in err
    # Neither 45234 (a code no data names) nor 45075 (addresses only) is on a street yet.
    assert "warning: no street has the code INSEE 45234 yet" in err
    assert "warning: no street has the code INSEE 45075 yet" in err
    users, _, trail = stored(cli_env)
    assert users == {"mairie-saran": ["45075", "45234", "45284"]}
    assert trail == [("user.add", "role=viewer communes=45169,45302"),
                     ("user.communes", "45169,45302 -> 45075,45234,45284")]


def test_a_token_is_given_its_communes_by_name(cli_env: str, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                               capsys: pytest.CaptureFixture[str]) -> None:
    seed(cli_env, monkeypatch)
    capsys.readouterr()
    assert run(["tokens", "create", "--role", "viewer", "--name", "sig-sjdb",
                "--communes", "Saint Jean de Braye,45302,SARAN"], monkeypatch) == 0
    out, err = capsys.readouterr()
    assert out.strip().startswith("trv_")
    assert "token 'sig-sjdb' (viewer), limited to the communes 45284 (Saint-Jean-de-Braye), 45302 (Saran) created" \
        in err
    _, tokens, trail = stored(cli_env)
    assert tokens == {"sig-sjdb": ["45284", "45302"]}
    assert trail == [("token.create", "role=viewer communes=45284,45302")]


def test_a_commune_abbreviated_st_is_found_under_its_full_name(cli_env: str, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """OSM, bin registries and people write « St- » (and « Ste- ») for « Saint- »: the name typed
    that way is the commune the imports spell in full, not « no commune named ... »."""
    seed(cli_env, monkeypatch)
    capsys.readouterr()
    assert run(["users", "add", "mairie-sjdb", "--role", "viewer", "--communes", "St-Jean-de-Braye"],
               monkeypatch, PASSWORD) == 0
    err = capsys.readouterr().err
    assert "user mairie-sjdb added with role viewer, limited to the communes 45284 (Saint-Jean-de-Braye)" in err
    assert run(["users", "communes", "mairie-sjdb", "st jean de braye,La Chapelle-St-Mesmin"], monkeypatch) == 0
    assert "now sees the communes 45075 (La Chapelle-Saint-Mesmin), 45284 (Saint-Jean-de-Braye) only" \
        in capsys.readouterr().err
    users, _, _ = stored(cli_env)
    assert users == {"mairie-sjdb": ["45075", "45284"]}


COMMANDS = {
    "users add": lambda communes: ["users", "add", "x-mairie", "--role", "viewer", "--communes", communes],
    "users communes": lambda communes: ["users", "communes", "mairie", communes],
    "tokens create": lambda communes: ["tokens", "create", "--role", "viewer", "--name", "x-sig",
                                       "--communes", communes],
}
REFUSED = [
    # Two communes of one name (Saint-Denis, Seine-Saint-Denis, and Saint-Denis, La Réunion).
    ("45302,saint-denis", ["'saint-denis'", "93066", "97411"]),
    # A typo: the closest names held.
    ("Sarran", ["no commune named 'Sarran'", "Saran"]),
    ("45302,Saint-Jean-de-Brai", ["no commune named 'Saint-Jean-de-Brai'", "Saint-Jean-de-Braye"]),
    # Nothing close: the communes imported, each once (Saint-Denis and Saint Denis are one name).
    ("Quimper", ["no commune named 'Quimper'", "the communes imported: Ingré, La Chapelle-Saint-Mesmin, Olivet, "
                 "Saint-Denis, Saint-Jean-de-Braye, Saran"]),
    # Streets without a code INSEE: the name is known, its code is not.
    ("Olivet", ["'Olivet'", "no code INSEE"]),
    # A code mistyped stays a code's error.
    ("4530", ["invalid code INSEE '4530'"]),
]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("communes,said", REFUSED)
def test_a_name_that_names_no_one_commune_is_refused(cli_env: str, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                     capsys: pytest.CaptureFixture[str], command: str,
                                                     communes: str, said: list[str]) -> None:
    seed(cli_env, monkeypatch)
    assert run(["users", "add", "mairie", "--role", "viewer", "--communes", SARAN], monkeypatch, PASSWORD) == 0
    before = stored(cli_env)
    capsys.readouterr()
    assert run(COMMANDS[command](communes), monkeypatch, PASSWORD) == 2
    error = one_line_error(capsys, command.split()[0])
    for words in said:
        assert words in error
    assert stored(cli_env) == before  # nothing stored, nothing audited


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_name_before_any_import_says_how_to_import(cli_env: str, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                     capsys: pytest.CaptureFixture[str], command: str) -> None:
    assert run(["users", "list"], monkeypatch) == 0  # the database made: its log line is no error
    capsys.readouterr()
    assert run(COMMANDS[command]("Saran"), monkeypatch, PASSWORD) == 2
    error = one_line_error(capsys, command.split()[0])
    assert "'Saran'" in error and "no streets are imported yet" in error and "trivue streets import" in error
    assert stored(cli_env)[:2] == ({}, {})
