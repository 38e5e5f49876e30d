"""The mail room's letters are marked printed only once the whole print file is made and handed over:
a download that breaks (the client gone, a letter failing to join) or a command whose file could
not be written marks none, a letter skipped meanwhile is not marked, and the count does not open
every letter's PDF again at each look (the page counts twice at each look and after a download)."""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pypdf.errors import PdfReadError
from sqlalchemy import Engine, select

from server.app import create_app
from server.reminders.mailroom import print_run as print_run_module
from server.reminders.mailroom.print_file import PdfJoiner
from server.reminders.mailroom.print_run import mark_printed, print_run
from server.reminders.models import Item
from server.web.auth import create_token
from tests.server.reminders_city import City, engine_for, seed_city
from tests.server.test_reminders_print import TODAY, folder, mail_room_campaign
from trivue.cli import main


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with engine_for("sqlite", tmp_path, False) as made:
        yield made


@pytest.fixture
def city(engine: Engine, tmp_path: Path) -> City:
    return seed_city(engine, tmp_path, TODAY)


def printed(city: City) -> list[int]:
    with city.sessions() as session:
        return sorted(session.scalars(select(Item.id).where(Item.printed_at.is_not(None))))


def manager(city: City) -> dict[str, str]:
    with city.sessions() as session:
        token = create_token(session, "manager", "test-manager")
        session.commit()
    return {"Authorization": f"Bearer {token}"}


def failing_after(letters: int, error: Callable[[], BaseException], monkeypatch: pytest.MonkeyPatch) -> None:
    """The joiner copies ``letters`` letters, then fails with ``error`` (a corrupt letter, a full disk)."""
    add, calls = PdfJoiner.add, []

    def add_then_fail(joiner: PdfJoiner, source: Path) -> tuple[bytes, int]:
        calls.append(source)
        if len(calls) > letters:
            raise error()
        return add(joiner, source)

    monkeypatch.setattr(PdfJoiner, "add", add_then_fail)


def test_a_download_failing_midway_marks_nothing(city: City, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    campaign_id, _homes = mail_room_campaign(city)
    api = TestClient(create_app(city.settings, engine, start_ingest=False))
    url, headers = f"/api/reminders/campaigns/{campaign_id}/letters.pdf", manager(city)
    with monkeypatch.context() as patched:
        failing_after(3, lambda: PdfReadError("letter damaged since the count"), patched)
        with pytest.raises(PdfReadError):
            api.get(url, headers=headers)
    assert printed(city) == []  # the mail room never got the file: "new only" must still give them all
    whole = api.get(url, headers=headers)
    assert whole.status_code == 200 and whole.content.rstrip().endswith(b"%%EOF")
    assert len(printed(city)) == 8


def test_a_client_gone_midway_marks_nothing(city: City, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over a real server: the client reads the first bytes and hangs up while the file is being joined."""
    import uvicorn

    campaign_id, _homes = mail_room_campaign(city)
    headers = manager(city)
    add, joined, hung_up = PdfJoiner.add, [], threading.Event()

    def slow_add(joiner: PdfJoiner, source: Path) -> tuple[bytes, int]:
        joined.append(source)
        if len(joined) == 1:  # the file's head has left; its first letter waits until the client is gone
            assert hung_up.wait(10)
            time.sleep(0.5)  # the server sees the connection closed
        return add(joiner, source)

    monkeypatch.setattr(PdfJoiner, "add", slow_add)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(city.settings, engine, start_ingest=False), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/api/reminders/campaigns/{campaign_id}/letters.pdf"
        with httpx.stream("GET", url, headers=headers, timeout=10) as response:
            assert response.status_code == 200
            first = next(response.iter_raw())
            assert first.startswith(b"%PDF")
        hung_up.set()  # the connection is closed: the client left with a part of the file
        deadline = time.monotonic() + 5
        while len(joined) < 2 and time.monotonic() < deadline:  # nothing more is joined for nobody
            time.sleep(0.1)
        assert len(joined) == 1 and printed(city) == []
        whole = httpx.get(url, headers=headers, timeout=30)  # the mail room tries again, to the end
        assert whole.status_code == 200 and whole.content.rstrip().endswith(b"%%EOF")
        assert len(printed(city)) == 8
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.parametrize(
    "error",
    [lambda: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), lambda: PdfReadError("letter damaged since the count")],
    ids=["disk full", "damaged letter"],
)
def test_the_command_marks_only_a_file_written_whole(
    city: City, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Callable[[], BaseException]
) -> None:
    campaign_id, _homes = mail_room_campaign(city)
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", city.settings.db_url)
    monkeypatch.setenv("TRIVUE_HOUSEHOLD_LEVEL", "true")
    out = tmp_path / "courriers.pdf"
    with monkeypatch.context() as patched:
        failing_after(3, error, patched)
        try:
            code = main(["reminders", "print", "--campaign", str(campaign_id), "--out", str(out)])
        except PdfReadError:
            code = None
    assert code in (2, None) and not out.exists() and not list(tmp_path.glob("*.partiel"))
    assert printed(city) == []
    assert main(["reminders", "print", "--campaign", str(campaign_id), "--out", str(out)]) == 0
    assert len(printed(city)) == 8


def test_a_letter_skipped_meanwhile_is_not_marked(city: City) -> None:
    """A letter deleted between the count and the file (an erasure at that moment) is not in the file:
    it must not be marked printed with the others."""
    campaign_id, homes = mail_room_campaign(city)
    with city.sessions() as session:
        run = print_run(session, campaign_id, folder(city, campaign_id))
        (folder(city, campaign_id) / f"courrier-campagne-{campaign_id}-{homes['arc']}.pdf").unlink()
        b"".join(run.pdf())
        assert mark_printed(session, run, "test") == 7
        session.commit()
    assert homes["arc"] not in printed(city) and len(printed(city)) == 7


def test_a_letter_is_counted_once_until_its_file_changes(city: City, monkeypatch: pytest.MonkeyPatch) -> None:
    campaign_id, homes = mail_room_campaign(city)
    opened: list[Any] = []
    reader = print_run_module.PdfReader
    monkeypatch.setattr(print_run_module, "PdfReader", lambda stream: opened.append(stream) or reader(stream))
    first = print_run(city.sessions(), campaign_id, folder(city, campaign_id))
    assert len(opened) == 8
    again = print_run(city.sessions(), campaign_id, folder(city, campaign_id))
    assert len(opened) == 8 and again.pages == first.pages  # nothing opened again
    letter = folder(city, campaign_id) / f"courrier-campagne-{campaign_id}-{homes['arc']}.pdf"
    rewritten = letter.stat().st_mtime_ns + 1_000_000_000  # a retry or a photo purge rewrote it
    os.utime(letter, ns=(rewritten, rewritten))
    print_run(city.sessions(), campaign_id, folder(city, campaign_id))
    assert len(opened) == 9
    letter.write_bytes(b"not a pdf any more")
    assert (
        f"élément {homes['arc']} : fichier du courrier illisible"
        in print_run(city.sessions(), campaign_id, folder(city, campaign_id)).left_out
    )
