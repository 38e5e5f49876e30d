"""``trivue users`` gives a mairie's account its communes (codes INSEE, or names: see
test_commune_names_cli.py), changes or lifts that scope,
shows it in ``users list`` and refuses a code that is none, as one line naming it (exit 2)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audit import AuditEntry
from server.db import make_engine
from tests.server.test_accounts_cli import cli_env, one_line_error  # noqa: F401 - the fixture
from tests.server.test_cli import run

PASSWORD = "un mot de passe long\n"


def listed(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    assert run(["users", "list"], monkeypatch) == 0
    return {row[0]: row[-1] for row in (line.split("\t") for line in capsys.readouterr().out.splitlines())}


def test_an_account_is_given_its_communes_changed_and_freed(cli_env: str, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["users", "add", "mairie-orleans", "--role", "viewer", "--communes", "45234, 45284"],
               monkeypatch, PASSWORD) == 0
    assert run(["users", "add", "metropole", "--role", "manager"], monkeypatch, PASSWORD) == 0
    capsys.readouterr()
    assert listed(capsys, monkeypatch) == {"mairie-orleans": "communes 45234,45284", "metropole": "all communes"}
    assert run(["users", "communes", "mairie-orleans", "45234"], monkeypatch) == 0
    err = capsys.readouterr().err
    assert "mairie-orleans now sees the communes 45234 only" in err
    # No street imported here: the code is said to match none (a typo would read the same).
    assert "warning: no street has the code INSEE 45234 yet" in err
    assert listed(capsys, monkeypatch)["mairie-orleans"] == "communes 45234"
    assert run(["users", "communes", "mairie-orleans", "--all"], monkeypatch) == 0
    capsys.readouterr()
    assert listed(capsys, monkeypatch)["mairie-orleans"] == "all communes"
    with Session(make_engine(cli_env)) as session:
        trail = [(e.action, e.detail) for e in session.scalars(
            select(AuditEntry).where(AuditEntry.action == "user.communes").order_by(AuditEntry.id))]
    assert trail == [("user.communes", "45234,45284 -> 45234"), ("user.communes", "45234 -> all")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("argv,said", [
    # A name is looked up in the imported streets and addresses (tests/server/test_commune_names_cli.py).
    (["users", "add", "x-mairie", "--role", "viewer", "--communes", "Orléans"],
     "commune 'Orléans': no streets are imported yet"),
    (["users", "add", "x-mairie", "--role", "viewer", "--communes", "452345"], "invalid code INSEE '452345'"),
    (["users", "add", "x-mairie", "--role", "viewer", "--communes", " , "], "--communes: no code INSEE given"),
    (["users", "communes", "nobody", "45234"], "no user 'nobody'"),
    (["users", "communes", "nobody"], "give the account's communes (codes INSEE or names), or --all"),
    (["users", "communes", "nobody", "45234", "--all"], "communes or --all, not both"),
])
def test_a_bad_scope_is_one_line_naming_it(cli_env: str, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                           capsys: pytest.CaptureFixture[str], argv: list[str], said: str) -> None:
    assert run(["users", "list"], monkeypatch) == 0  # the database made: its log line is no error
    capsys.readouterr()
    assert run(argv, monkeypatch, PASSWORD) == 2
    assert said in one_line_error(capsys, "users")
