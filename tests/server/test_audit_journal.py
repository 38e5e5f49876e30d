"""``GET /api/audit``'s filters (actor, target, action, local days or moments, paging) and the
``/journal`` page's access, on SQLite and PostgreSQL.

The page lists what the API answers; the API is where a filter could miss an entry or keep one too
many: local days around midnight, moments at the bound, paging inside a filter, refused values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from server.audit import AuditEntry
from server.web.dashboard import TEMPLATES_DIR
from tests.server.conftest import Server

T0 = datetime(2026, 12, 1, 22, 30, tzinfo=UTC)  # 23:30 in Paris, 1 December
# (at, actor, action, target, detail): inserted in this order, so ids grow with the list.
ENTRIES = [
    (datetime(2026, 11, 30, 9, 0, tzinfo=UTC), "user:alice", "login", None, None),
    (T0, "user:alice", "truck.config", "benne-01", 'stream: null -> "glass"'),
    # 00:30 on 2 December in Paris
    (datetime(2026, 12, 1, 23, 30, tzinfo=UTC), "user:bob", "truck.config", "benne-02", "conf: null -> 0.4"),
    (datetime(2026, 12, 2, 10, 0, tzinfo=UTC), "user:bob", "truck.config", "benne-01", 'stream: "glass" -> null'),
    (datetime(2026, 12, 2, 10, 5, tzinfo=UTC), "token:grafana", "lifts.list", None, "3 lifts"),
    (datetime(2026, 12, 3, 8, 0, tzinfo=UTC), "user:alice", "truck.config", "benne-01", "min_track_frames: null -> 4"),
]


@pytest.fixture
def site(make_settings: Any, run_server: Any) -> Iterator[Server]:
    with run_server(make_settings(ingest_enabled=False)) as server:
        with server.sessions() as db:
            db.add_all(AuditEntry(at=at, actor=actor, action=action, target=target, detail=detail)
                       for at, actor, action, target, detail in ENTRIES)
            db.commit()
        yield server


def entries(site: Server, **params: Any) -> list[tuple[str, str, str | None]]:
    """(at, actor, target) of what the API answers, in its order."""
    answer = site.client.get("/api/audit", params=params, headers=site.token("admin"))
    assert answer.status_code == 200, answer.text
    return [(item["at"][:16], item["actor"], item["target"]) for item in answer.json()["items"]
            if item["actor"] != "cli"]  # the tokens the tests make (token.create)


def test_actor_target_and_action_filters_keep_exactly_their_entries(site: Server) -> None:
    history = entries(site, target="benne-01", action="truck.config")
    assert history == [("2026-12-03T08:00", "user:alice", "benne-01"), ("2026-12-02T10:00", "user:bob", "benne-01"),
                       ("2026-12-01T22:30", "user:alice", "benne-01")]  # newest first
    assert [a for a, _, _ in entries(site, actor="user:bob")] == ["2026-12-02T10:00", "2026-12-01T23:30"]
    assert entries(site, actor="user:bob", target="benne-01") == [("2026-12-02T10:00", "user:bob", "benne-01")]
    assert entries(site, actor="bob") == []  # exact: a part of a name finds nothing
    assert entries(site, actor="", target="", action="") == entries(site)  # empty values are no filter
    assert len(entries(site)) == len(ENTRIES)


def test_local_days_are_the_collectivites_and_both_are_included(site: Server) -> None:
    # 23:30 UTC on 1 December is 00:30 on 2 December in Paris: it belongs to the 2nd.
    second = entries(site, since="2026-12-02", until="2026-12-02")
    assert [a for a, _, _ in second] == ["2026-12-02T10:05", "2026-12-02T10:00", "2026-12-01T23:30"]
    first = entries(site, since="2026-12-01", until="2026-12-01")
    assert [a for a, _, _ in first] == ["2026-12-01T22:30"]
    assert [a for a, _, _ in entries(site, until="2026-11-30")] == ["2026-11-30T09:00"]
    assert len(entries(site, since="2026-12-03")) == 1 + len(entries(site, since="2026-12-04"))


def test_moments_bound_to_the_second_both_included(site: Server) -> None:
    exact = entries(site, since="2026-12-02T10:00:00Z", until="2026-12-02T10:05:00Z")
    assert [a for a, _, _ in exact] == ["2026-12-02T10:05", "2026-12-02T10:00"]
    assert [a for a, _, _ in entries(site, since="2026-12-02T11:00+01:00", until="2026-12-02T11:04:59+01:00")] == [
        "2026-12-02T10:00"]
    assert entries(site, since="2026-12-02T10:00:01", until="2026-12-02T10:04:59") == []  # naive: UTC


def test_paging_with_before_id_walks_a_filtered_trail_without_gap_or_repeat(site: Server) -> None:
    admin = site.token("admin")
    seen, before = [], None
    while True:
        params = {"action": "truck.config", "limit": 2, **({"before_id": before} if before else {})}
        items = site.client.get("/api/audit", params=params, headers=admin).json()["items"]
        if not items:
            break
        seen += [item["id"] for item in items]
        before = items[-1]["id"]
    assert len(seen) == 4 and seen == sorted(seen, reverse=True) and len(set(seen)) == 4


BAD_VALUES = [
    ("since", "2026-13-01"), ("since", "20261201"), ("until", "2026-12-01 10:00"), ("since", "yesterday"),
    ("until", "0202-01-01"), ("since", "3026-01-01T00:00"), ("since", "2026-12-01T25:00"),
    ("action", "Truck Config"), ("action", "truck.config'--"), ("actor", "user:a\x00b"), ("target", "benne\n01"),
    ("target", "x" * 257), ("actor", "a" * 129),
]


def test_a_bad_value_is_a_422_naming_the_field_and_the_value(site: Server) -> None:
    # One server for all the values (a server per value cost 1.6 s each on PostgreSQL).
    admin = site.token("admin")
    for field, value in BAD_VALUES:
        answer = site.client.get("/api/audit", params={field: value}, headers=admin)
        assert answer.status_code == 422, (field, value, answer.text)
        text = json.dumps(answer.json(), ensure_ascii=False)
        assert field in text and json.dumps(value, ensure_ascii=False)[1:-1][:60] in text, (field, value, text)


def test_until_before_since_is_a_422(site: Server) -> None:
    answer = site.client.get("/api/audit", params={"since": "2026-12-02", "until": "2026-12-01"},
                             headers=site.token("admin"))
    assert answer.status_code == 422 and "until '2026-12-01' is before since '2026-12-02'" in answer.text


def test_viewers_and_managers_are_refused_the_trail_and_get_the_pages_notice(site: Server) -> None:
    for role in ("viewer", "annotator", "manager"):
        headers = site.token(role)
        assert site.client.get("/api/audit", params={"target": "benne-01"}, headers=headers).status_code == 403
        page = site.client.get("/journal", headers=headers)
        assert page.status_code == 200 and "Cette page est réservée aux administrateurs." in page.text, role
        assert "journal.js" not in page.text and 'id="journal"' not in page.text, role
        assert 'href="/journal"' not in page.text, role  # not in its menu
        assert 'href="/journal"' not in site.client.get("/flotte", headers=headers).text, role
    page = site.client.get("/journal", headers=site.token("admin"))
    assert page.status_code == 200 and "journal.js" in page.text and 'id="journal-filters"' in page.text
    assert re.search(r'<a href="/journal" aria-current="page">Journal d&#39;audit</a>', page.text)
    anonymous = site.client.get("/journal?target=benne-01&action=truck.config", follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=%2Fjournal%3Ftarget%3Dbenne-01%26action%3Dtruck.config"


def test_reading_the_trail_and_its_page_adds_nothing_to_it(site: Server) -> None:
    admin = site.token("admin")

    def count() -> int:
        with site.sessions() as db:
            return db.scalar(select(func.count()).select_from(AuditEntry)) or 0

    before = count()
    site.client.get("/journal", headers=admin)
    site.client.get("/api/audit", params={"target": "benne-01"}, headers=admin)
    assert count() == before


def test_the_pages_words_exist_in_french_and_english_with_the_same_placeholders() -> None:
    fr, en = (json.loads((TEMPLATES_DIR / "i18n" / f"{lang}.json").read_text("utf-8")) for lang in ("fr", "en"))
    template = (TEMPLATES_DIR / "dashboard" / "journal.html").read_text()
    script = (TEMPLATES_DIR.parent / "static" / "journal.js").read_text()
    used = set(re.findall(r"t\['((?:journal|fleet|filters)\.[\w.]+)'\]", template))
    used |= set(re.findall(r"""t\(["']((?:journal|fleet)\.[\w.]+)["']""", script))
    used |= {"nav.journal", "fleet.config_history", "fleet.config_history_label"}
    assert len(used) > 15, used
    for key in used:
        assert key in fr and key in en, key
        assert set(re.findall(r"\{(\w+)\}", fr[key])) == set(re.findall(r"\{(\w+)\}", en[key])), key
