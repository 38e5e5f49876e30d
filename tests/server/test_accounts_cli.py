"""``trivue users`` and ``trivue tokens`` as an administrator runs them: a token found and revoked by
its listed id, an account disabled, given a new password or role, and bad input as one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import load_settings
from tests.server.test_cli import run


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> str:
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", database_url)
    return database_url


def one_line_error(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"trivue {command}: error: ") and err.count("\n") == 1, err
    return err


def test_a_token_is_listed_with_its_id_and_revoked_by_it(cli_env: str, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["tokens", "create", "--role", "viewer", "--name", "grafana"], monkeypatch) == 0
    grafana = capsys.readouterr().out.strip()
    assert run(["tokens", "create", "--role", "truck", "--truck-id", "benne-07"], monkeypatch) == 0
    truck = capsys.readouterr().out.strip()
    assert run(["tokens", "list"], monkeypatch) == 0
    listed = capsys.readouterr().out
    assert grafana not in listed and truck not in listed  # only the first characters, never the token
    lines = [line.split("\t") for line in listed.splitlines()]
    assert [(row[1], row[2], row[3], row[4], row[-1]) for row in lines] == [
        ("grafana", "viewer", "-", grafana[:10] + "...", "active"),
        ("truck:benne-07", "truck", "benne-07", truck[:10] + "...", "active")]
    truck_id = lines[1][0]
    assert run(["tokens", "revoke", truck_id], monkeypatch) == 0
    assert f"token {truck_id} 'truck:benne-07' revoked" in capsys.readouterr().err
    assert run(["tokens", "revoke", truck_id], monkeypatch) == 2
    assert "already revoked" in one_line_error(capsys, "tokens")
    assert run(["tokens", "list"], monkeypatch) == 0
    assert capsys.readouterr().out.splitlines()[1].split("\t")[-1].startswith("revoked ")
    with TestClient(create_app(load_settings(ingest_enabled=False))) as client:
        assert client.get("/api/streets", headers={"Authorization": f"Bearer {grafana}"}).status_code == 200
        assert client.get("/api/trucks/benne-07/config",
                          headers={"Authorization": f"Bearer {truck}"}).status_code == 401


def test_an_account_is_disabled_enabled_given_a_password_and_a_role(
        cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["users", "add", "camille", "--role", "manager"], monkeypatch, "un mot de passe long\n") == 0
    # https: the session cookie is Secure.
    with TestClient(create_app(load_settings(ingest_enabled=False)), base_url="https://trivue.test") as client:
        def signed_in(password: str = "un mot de passe long") -> int:
            return client.post("/api/login", json={"name": "camille", "password": password}).status_code

        assert signed_in() == 200
        assert run(["users", "role", "camille", "viewer"], monkeypatch) == 0
        assert client.get("/api/lifts").status_code == 403  # the open session is a viewer's now
        assert run(["users", "disable", "camille"], monkeypatch) == 0
        assert client.get("/api/streets").status_code == 401 and signed_in() == 401
        assert run(["users", "list"], monkeypatch) == 0
        assert "camille\tviewer\tdisabled" in capsys.readouterr().out
        assert run(["users", "enable", "camille"], monkeypatch) == 0
        assert signed_in() == 200
        assert run(["users", "passwd", "camille"], monkeypatch, "court\n") == 2
        assert "trivue users: error: password too short" in capsys.readouterr().err
        assert run(["users", "passwd", "camille"], monkeypatch, "un tout nouveau mot de passe\n") == 0
        assert client.get("/api/streets").status_code == 401  # the session opened before is over
        assert signed_in() == 401 and signed_in("un tout nouveau mot de passe") == 200


@pytest.mark.parametrize("argv,stdin,words", [
    (["users", "disable", "nobody"], "", "no user 'nobody'"),
    (["users", "passwd", "nobody"], "un mot de passe long\n", "no user 'nobody'"),
    (["users", "role", "nobody", "admin"], "", "no user 'nobody'"),
    (["users", "add", "x" * 65, "--role", "viewer"], "un mot de passe long\n", "invalid user name"),
    (["users", "add", "Camille", "--role", "viewer"], "un mot de passe long\n", "too close to the existing 'camille'"),
    (["users", "add", "ｃａｍｉｌｌｅ", "--role", "viewer"], "un mot de passe long\n", "too close"),
    (["users", "add", "dom", "--role", "viewer"], "x" * 1025 + "\n", "password too long"),
    (["tokens", "create", "--role", "viewer", "--name", "x" * 65], "", "invalid token name"),
    (["tokens", "revoke", "999"], "", "no token with id 999"),
    # It said "... got None": the option missing, named as such.
    (["tokens", "create", "--role", "truck"], "", "--role truck needs --truck-id: the truck the token is for"),
])
def test_bad_input_is_one_line_and_exit_2(cli_env: str, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str], argv: list[str], stdin: str,
                                          words: str) -> None:
    assert run(["users", "add", "camille", "--role", "manager"], monkeypatch, "un mot de passe long\n") == 0
    capsys.readouterr()
    assert run(argv, monkeypatch, stdin) == 2
    assert words in one_line_error(capsys, argv[0])


def test_users_list_flags_look_alike_names_added_before_they_were_refused(
        cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from sqlalchemy.orm import Session

    from server.db import make_engine
    from server.web.accounts import User

    assert run(["users", "add", "Alice", "--role", "admin"], monkeypatch, "un mot de passe long\n") == 0
    assert run(["users", "add", "bob", "--role", "viewer"], monkeypatch, "un mot de passe long\n") == 0
    with Session(make_engine(cli_env)) as session:  # as an older version let it be added
        session.add(User(name="alice", password_hash="x", role="viewer"))
        session.commit()
    capsys.readouterr()
    assert run(["users", "list"], monkeypatch) == 0
    out, err = capsys.readouterr()
    assert [line.split("\t")[0] for line in out.splitlines()] == ["Alice", "alice", "bob"]
    assert err.count("warning:") == 1 and "'Alice', 'alice' differ only by case or width" in err, err
