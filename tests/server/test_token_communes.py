"""An API token limited to some communes (a mairie's GIS pulling its street figures): ``trivue tokens
create --communes`` stores the codes INSEE as ``users add --communes`` does, ``tokens list`` and the
audit trail show them, and a request with the token sees its communes only, gets a 404 for another
commune's street, lift or photo, and a 403 on the routes not opened to scoped accounts."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audit import AuditEntry
from server.db import make_engine
from server.web.auth import AuthError, create_token
from tests.server.test_accounts_cli import cli_env, one_line_error  # noqa: F401 - the fixture
from tests.server.test_cli import run
from tests.server.test_commune_scope import ORLEANS, SAINT_JEAN, Site, site, street_ids  # noqa: F401 - the fixture


def listed(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    assert run(["tokens", "list"], monkeypatch) == 0
    return {row[1]: row for row in (line.split("\t") for line in capsys.readouterr().out.splitlines())}


def test_a_token_is_created_with_its_communes_listed_and_audited(cli_env: str,  # noqa: F811
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["tokens", "create", "--role", "viewer", "--name", "sig-orleans",
                "--communes", "45284, 45234 45234"], monkeypatch) == 0
    out, err = capsys.readouterr()
    assert out.strip().startswith("trv_")
    assert "limited to the communes 45234, 45284" in err
    # No street imported here: the codes are said to match none, as for an account.
    assert "warning: no street has the code INSEE 45234 yet: sig-orleans sees nothing" in err
    assert run(["tokens", "create", "--role", "manager", "--name", "metropole"], monkeypatch) == 0
    capsys.readouterr()
    rows = listed(capsys, monkeypatch)
    # The scope after the first characters: the id, name, role, truck and state keep their places.
    assert rows["sig-orleans"][2:6] == ["viewer", "-", rows["sig-orleans"][4], "communes 45234,45284"]
    assert rows["metropole"][5] == "all communes" and rows["metropole"][-1] == "active"
    with Session(make_engine(cli_env)) as session:
        trail = [(e.target, e.detail) for e in session.scalars(
            select(AuditEntry).where(AuditEntry.action == "token.create").order_by(AuditEntry.id))]
    assert trail == [("sig-orleans", "role=viewer communes=45234,45284"), ("metropole", "role=manager")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("argv,said", [
    (["--role", "viewer", "--communes", "Orléans"], "commune 'Orléans': no streets are imported yet"),
    (["--role", "viewer", "--communes", "4523"], "invalid code INSEE '4523'"),
    (["--role", "viewer", "--communes", " , "], "--communes: no code INSEE given"),
    # A truck's token belongs to a truck, not to communes (no account is a truck either).
    (["--role", "truck", "--truck-id", "benne-07", "--communes", "45234"], "--communes is not for truck tokens"),
    (["--role", "truck", "--truck-id", "benne-07", "--communes", "Saran"], "--communes is not for truck tokens"),
])
def test_a_bad_token_scope_is_one_line_naming_it(cli_env: str, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                 capsys: pytest.CaptureFixture[str], argv: list[str],
                                                 said: str) -> None:
    assert run(["tokens", "list"], monkeypatch) == 0  # the database made: its log line is no error
    capsys.readouterr()
    assert run(["tokens", "create", *argv], monkeypatch) == 2
    assert said in one_line_error(capsys, "tokens")
    assert run(["tokens", "list"], monkeypatch) == 0
    assert capsys.readouterr().out == ""  # nothing stored


def bearer(site: Site, role: str, communes: list[str] | None) -> dict[str, str]:  # noqa: F811
    with site.server.sessions() as session:
        token = create_token(session, role, f"sig-{role}", communes=communes)
        session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_a_scoped_token_sees_its_communes_only(site: Site) -> None:  # noqa: F811
    sig, metropole = bearer(site, "viewer", [ORLEANS]), bearer(site, "manager", None)
    assert street_ids(site.get("/api/streets", metropole)) == {1, 2, 3, 4}
    assert street_ids(site.get("/api/streets", sig)) == {1, 2}
    assert street_ids(site.get("/api/streets.geojson", sig)) == {1, 2}
    assert street_ids(site.get("/api/error-rates", sig, category="verre")) == {1, 2}
    assert site.get("/api/me", sig).json()["communes"] == [ORLEANS]
    assert site.get("/api/streets/1", sig).json()["commune"] == "Orléans"
    for street in (3, 4):  # another commune's, and one whose commune no code says
        assert site.get(f"/api/streets/{street}", sig).status_code == 404
    assert site.get("/api/streets", sig, commune="Saint-Jean-de-Braye").status_code == 422


def test_a_scoped_manager_token_gets_a_404_for_another_communes_lift(site: Site) -> None:  # noqa: F811
    sig = bearer(site, "manager", [SAINT_JEAN])
    assert {item["event_id"] for item in site.get("/api/lifts", sig).json()["items"]} == {site.lifts[3]}
    assert site.get(f"/api/lifts/{site.lifts[3]}", sig).status_code == 200
    for street in (1, 4):
        assert site.get(f"/api/lifts/{site.lifts[street]}", sig).status_code == 404
        assert site.get(f"/api/lifts/{site.lifts[street]}/evidence.jpg", sig).status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_scoped_admin_token_is_refused_the_routes_not_opened_to_communes(site: Site) -> None:  # noqa: F811
    sig = bearer(site, "admin", [ORLEANS])  # the highest role: only the scope can refuse it
    for path in ("/api/trucks", "/api/audit", "/api/data-quality", "/metrics", "/api/opendata/streets.csv"):
        answer = site.get(path, sig)
        assert answer.status_code == 403, path
        assert "communes" in answer.json()["detail"] and ORLEANS in answer.json()["detail"], path
    assert site.get("/api/trucks", bearer(site, "admin", None)).status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_create_token_checks_the_scope_as_add_user_does(site: Site) -> None:  # noqa: F811
    with site.server.sessions() as session:
        with pytest.raises(AuthError, match="invalid code INSEE"):
            create_token(session, "viewer", "x", communes=["Saran"])
        with pytest.raises(AuthError, match="no code INSEE given"):
            create_token(session, "viewer", "x", communes=[])
        with pytest.raises(AuthError, match="not for truck tokens"):
            create_token(session, "truck", "truck:b", "b", communes=[ORLEANS])
        create_token(session, "viewer", "corse", communes=[" 2a004 ", "2A004"])
        session.commit()
    from server.web.accounts import ApiToken

    with site.server.sessions() as session:
        assert session.scalar(select(ApiToken.communes).where(ApiToken.name == "corse")) == ["2A004"]
