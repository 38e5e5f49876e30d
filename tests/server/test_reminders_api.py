"""``/api/reminders`` through the real app (``create_app``): roles, review, false detections,
sending, previews, erasure, the page, and the audit trail; SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from server.app import create_app
from server.audit import AuditEntry
from server.reminders.models import Item
from server.web.auth import create_token
from tests.server.reminders_city import City, engine_for, seed_city
from tests.server.test_reminders_send import pdf_text

TODAY = date(2026, 11, 20)


@pytest.fixture(params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path: Path, postgres_available: bool) -> Iterator[tuple[City, TestClient, dict[str, dict[str, str]]]]:  # noqa: E501
    with engine_for(request.param, tmp_path, postgres_available) as engine:
        city = seed_city(engine, tmp_path, TODAY)
        app = create_app(city.settings, engine, start_ingest=False)
        with city.sessions() as session:
            tokens = {role: create_token(session, role, f"test-{role}") for role in ("viewer", "manager")}
            session.commit()
        headers = {role: {"Authorization": f"Bearer {token}"} for role, token in tokens.items()}
        yield city, TestClient(app), headers


def test_roles(served) -> None:  # type: ignore[no-untyped-def]
    _city, client, headers = served
    assert client.get("/api/reminders/campaigns").status_code == 401
    for path in ("/api/reminders/campaigns", "/api/reminders/plan", "/api/reminders/households",
                 "/api/reminders/false-detections"):
        assert client.get(path, headers=headers["viewer"]).status_code == 403, path
    assert client.post("/api/reminders/campaigns", json={}, headers=headers["viewer"]).status_code == 403
    assert client.delete("/api/reminders/households/bin:BAC-0042", headers=headers["viewer"]).status_code == 403


def test_review_send_and_audit(served) -> None:  # type: ignore[no-untyped-def]
    city, client, headers = served
    manager = headers["manager"]
    a = city.addresses
    plan = client.get("/api/reminders/plan", params={"until": TODAY.isoformat()}, headers=manager).json()
    assert f"address:{a['target'].id}" in {t["key"] for t in plan["targets"]}
    response = client.post("/api/reminders/campaigns", json={"name": "Novembre", "until": TODAY.isoformat()},
                           headers=manager)
    assert response.status_code == 201 and response.json()["items"]["pending"] == len(plan["targets"])
    campaign = client.get(f"/api/reminders/campaigns/{response.json()['id']}", headers=manager).json()
    items = {i["key"]: i for i in campaign["items"]}
    target = items[f"address:{a['target'].id}"]
    assert target["label"] == a["target"].label and len(target["photos"]) == 3
    photo = client.get(target["photos"][0], headers=manager)
    assert photo.status_code == 200 and photo.content[:2] == b"\xff\xd8"

    letter = client.get(f"/api/reminders/items/{target['id']}/preview", headers=manager)
    street_part, postcode, commune = a["target"].label.rsplit(" ", 2)  # La Poste: street line down in capitals
    assert letter.headers["content-type"] == "application/pdf"
    assert f"{street_part.upper()} {postcode} {commune.upper()}" in pdf_text(letter.content)
    sms = client.get(f"/api/reminders/items/{target['id']}/preview", params={"channel": "sms"}, headers=manager)
    assert "erreurs de tri" in sms.text

    refused = client.post(f"/api/reminders/items/{target['id']}/review", json={"decision": "reject"}, headers=manager)
    assert refused.status_code == 422 and "un refus demande un motif" in refused.text
    rejected = client.post(f"/api/reminders/items/{target['id']}/review", headers=manager,
                           json={"decision": "reject", "reason": "false_detection", "note": "=bouteille en plastique"})
    assert rejected.json()["status"] == "rejected"
    export = client.get("/api/reminders/false-detections", params={"format": "csv"}, headers=manager)
    rows = list(csv.DictReader(io.StringIO(export.text)))
    listed = client.get("/api/reminders/false-detections", headers=manager).json()
    assert {r["event_id"] for r in listed} == {r["event_id"] for r in rows}
    assert {r["event_id"] for r in rows} == set(city.sessions().get(Item, target["id"]).event_ids)
    assert all(r["classes"] and r["evidence_path"] and r["note"] == "'=bouteille en plastique" for r in rows)

    street = items[f"street:{city.streets['dirty']}"]
    client.post(f"/api/reminders/items/{street['id']}/review", json={"decision": "approve"}, headers=manager)
    sent = client.post(f"/api/reminders/campaigns/{campaign['id']}/send", headers=manager).json()
    assert sent["sent"] == {"print": 1} and not sent["failed"]  # one approved item: one message
    notice = next(n for n in sent["files"] if n.startswith("avis"))
    pdf = client.get(f"/api/reminders/campaigns/{campaign['id']}/files/{notice}", headers=manager)
    assert "Rue Hoche" in pdf_text(pdf.content)
    escape = client.get(f"/api/reminders/campaigns/{campaign['id']}/files/..%2Ftrivue.db", headers=manager)
    assert escape.status_code == 404
    sheet = client.get(f"/api/reminders/campaigns/{campaign['id']}/route-sheet.pdf", headers=manager)
    assert "Toute la rue" in pdf_text(sheet.content)
    effect = client.get(f"/api/reminders/campaigns/{campaign['id']}/effect", headers=manager).json()
    assert effect["status"] == "too_few"  # sent today: nothing after the cut-off yet

    with city.sessions() as session:  # retention removed a photo: the page no longer links to it
        from server.ingest.models import Evidence

        session.delete(session.get(Evidence, street["photos"][0].split("/")[3]))
        session.commit()
    again = client.get(f"/api/reminders/campaigns/{campaign['id']}", headers=manager).json()
    assert next(i for i in again["items"] if i["id"] == street["id"])["photos"] == street["photos"][1:]

    unknown = client.delete("/api/reminders/households/bin:INCONNU", headers=manager)
    assert unknown.status_code == 404 and "rien n'a été effacé" in unknown.text
    erased = client.delete("/api/reminders/households/bin:BAC-0042", params={"note": "demande n° 12"},
                           headers=manager).json()
    assert erased["items"] == 1
    with city.sessions() as session:
        assert session.scalar(select(Item).where(Item.target_key == "bin:BAC-0042")) is None
        actions = set(session.scalars(select(AuditEntry.action).where(AuditEntry.actor == "token:test-manager")))
    assert {"reminders.campaign.create", "reminders.item.rejected", "reminders.item.approved", "reminders.send",
            "reminders.false_detections.export", "reminders.false_detections.read",
            "reminders.file.export", "reminders.route_sheet.export",
            "reminders.household.erase", "reminders.household.opt_out", "reminders.item.preview"} <= actions


def test_template_preview_and_page(served) -> None:  # type: ignore[no-untyped-def]
    _city, client, headers = served
    params = {"template": "letter", "level": 3, "categories": "dangereux"}
    text = client.get("/api/reminders/templates/preview", params=params, headers=headers["manager"])
    assert "ambassadeur du tri" in text.text and "bouteille de gaz" in text.text
    assert client.get("/api/reminders/templates/preview", params={"template": "nope"},
                      headers=headers["manager"]).status_code == 422
    # Level 0 is the thank-you (docs/reminders.md): never the visit wording of a level-3 letter.
    thanks = client.get("/api/reminders/templates/preview", params={"level": 0}, headers=headers["manager"])
    assert thanks.status_code == 200 and "Merci" in thanks.text and "ambassadeur du tri" not in thanks.text
    for template in ("letter", "email", "sms", "street"):  # household and street messages start at level 1
        refused = client.get("/api/reminders/templates/preview", params={"template": template, "level": 0},
                             headers=headers["manager"])
        assert refused.status_code == 422 and "remerciement" in refused.text, template
    page = client.get("/rappels", headers=headers["manager"])
    assert page.status_code == 200 and "Rappels de tri" in page.text and "reminders.js" in page.text
    viewer = client.get("/rappels", headers=headers["viewer"])
    assert "réservée aux gestionnaires" in viewer.text and 'id="plan-form"' not in viewer.text


def test_review_shows_channel_and_retry_endpoint(served) -> None:  # type: ignore[no-untyped-def]
    """The card says which channel each item will use, flags "aucune coordonnée" before sending,
    and ``/retry`` sends a failed item again once its contact details exist."""
    city, client, headers = served
    manager = headers["manager"]
    created = client.post("/api/reminders/campaigns", json={"until": TODAY.isoformat()}, headers=manager).json()
    campaign = client.get(f"/api/reminders/campaigns/{created['id']}", headers=manager).json()
    items = {i["key"]: i for i in campaign["items"]}
    bin_item, target = items["bin:BAC-0042"], items[f"address:{city.addresses['target'].id}"]
    assert bin_item["planned_channel"] is None and bin_item["no_contact"] is True
    assert target["planned_channel"] == "letter" and target["no_contact"] is False
    assert items[f"street:{city.streets['dirty']}"]["planned_channel"] == "print"
    client.post(f"/api/reminders/items/{bin_item['id']}/review", json={"decision": "approve"}, headers=manager)
    sent = client.post(f"/api/reminders/campaigns/{created['id']}/send", headers=manager).json()
    assert sent["sent"] == {} and "aucune coordonnée" in sent["failed"][0]
    again = client.post(f"/api/reminders/items/{bin_item['id']}/review", json={"decision": "approve"},
                        headers=manager)
    assert again.status_code == 422  # a failed item is retried, not reviewed again
    with city.sessions() as session:
        from server.reminders.households import import_contacts

        import_contacts(session, 'key,name,postal_address\nbin:BAC-0042,M. Petit,"4 rue Hoche, 35000 Rennes"\n',
                        "test", "c.csv")
        session.commit()
    assert client.post("/api/reminders/campaigns/999/retry", headers=manager).status_code == 404
    missing = client.post(f"/api/reminders/campaigns/{created['id']}/retry", params={"item_id": 999999},
                          headers=manager)  # a retry of nothing answered 200, as if it had gone well
    assert missing.status_code == 404 and "999999" in missing.text
    retried = client.post(f"/api/reminders/campaigns/{created['id']}/retry", params={"item_id": bin_item["id"]},
                          headers=manager).json()
    assert retried["requeued"] == [bin_item["id"]] and retried["sent"] == {"letter": 1}
    with city.sessions() as session:
        actions = list(session.scalars(select(AuditEntry.action).where(AuditEntry.target == f"item:{bin_item['id']}")))
    assert actions.count("reminders.send") == 1 and "reminders.item.retry" in actions


def test_a_send_request_stays_short_and_says_what_remains(served, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A 5,000-household campaign took tens of minutes in one request (a proxy cuts it at 60 s, the
    page showed nothing). A request now stops after its time slice with ``remaining``; the page calls
    again until 0. With a slice of 0 each request sends one item: every item goes, once."""
    from server.reminders import api

    monkeypatch.setattr(api, "SEND_SLICE_S", 0.0, raising=False)
    city, client, headers = served
    manager = headers["manager"]
    created = client.post("/api/reminders/campaigns", json={"until": TODAY.isoformat()}, headers=manager).json()
    items = client.get(f"/api/reminders/campaigns/{created['id']}", headers=manager).json()["items"]
    for item in items:
        client.post(f"/api/reminders/items/{item['id']}/review", json={"decision": "approve"}, headers=manager)
    reports = [client.post(f"/api/reminders/campaigns/{created['id']}/send", headers=manager).json()]
    while reports[-1].get("remaining"):
        assert len(reports) <= len(items)
        reports.append(client.post(f"/api/reminders/campaigns/{created['id']}/send", headers=manager).json())
    assert [r.get("remaining") for r in reports] == list(range(len(items) - 1, -1, -1))
    handled = sum(sum(r["sent"].values()) + len(r["failed"]) + len(r["retrying"]) for r in reports)
    assert handled == len(items)  # the bin without contact details fails, the others go
    assert any(n.startswith("feuille-de-route") for n in reports[-1]["files"])  # once all went
    with city.sessions() as session:
        sends = list(session.scalars(select(AuditEntry.target).where(AuditEntry.action == "reminders.send")))
    assert len(sends) == len(set(sends)) == len(items) - 1
