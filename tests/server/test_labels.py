"""Labelling through the HTTP API: the queue and its filters, each decision, undo, audit, privacy, expiry."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from server.audit import AuditEntry
from server.ingest.models import Evidence, Lift
from server.labels.models import LabelPhoto
from server.retention import purge_expired
from server.web.auth import create_token
from tests.server.conftest import Server
from tests.server.edited_rules import COMPOSTABLE, COMPOSTABLE_CATEGORY, COMPOSTABLE_LABEL, edited_rules
from tests.server.photos import BAG, BOTTLE, photo_event, seed_photos
from vision.rules import SortingRules
from vision.schema import LiftEvent


@pytest.fixture
def api(make_settings: Any, run_server: Any) -> Iterator[Server]:
    with run_server(make_settings(ingest_enabled=False, evidence_retention_days=30)) as server:
        yield server


@pytest.fixture
def photos(api: Server) -> list[str]:
    old_day = datetime.now(UTC) - timedelta(days=3)
    batch = [photo_event(1), photo_event(2, reason="sample", boxes=[BOTTLE]),
             photo_event(3, truck="benne-02", reason="uncertain", boxes=[BOTTLE], at=old_day),
             photo_event(4, wire="1.0")]  # a 1.0 truck: boxes drawn on the photo, not for labelling
    seed_photos(api.settings, api.sessions, batch)
    return [str(event.event_id) for event, _ in batch]


def decide(api: Server, who: dict[str, str], event_id: str, **body: Any) -> Any:
    return api.client.post(f"/api/labels/photos/{event_id}/decisions", json=body, headers=who)


def test_the_queue_filters_and_counts(api: Server, photos: list[str]) -> None:
    who = api.token("annotator")
    everything = api.client.get("/api/labels/queue", headers=who).json()
    assert [i["event_id"] for i in everything["items"]] == [photos[2], photos[0], photos[1]]  # collection order
    assert (everything["total"], everything["done"]) == (3, 0)
    for params, expected in [({"reason": "sample"}, [photos[1]]), ({"class": "bag"}, [photos[0]]),
                             ({"truck_id": "benne-02"}, [photos[2]]),
                             ({"since": (datetime.now(UTC) - timedelta(days=1)).date().isoformat()},
                              [photos[0], photos[1]])]:
        got = api.client.get("/api/labels/queue", params=params, headers=who).json()
        assert [i["event_id"] for i in got["items"]] == expected, params
    assert api.client.get("/api/labels/queue", params={"reason": "whim"}, headers=who).status_code == 422


def test_each_decision_undo_and_the_audit_trail(api: Server, photos: list[str]) -> None:
    who, event = api.token("annotator"), photos[0]
    photo = api.client.get(f"/api/labels/photos/{event}", headers=who).json()
    assert photo["reason"] == "contaminated" and photo["status"] == "todo"
    assert [(b["id"], b["class"], b["state"], b["origin"]) for b in photo["boxes"]] == [
        (1, "bag", "pending", "model"), (2, "bottle", "pending", "model")]
    assert "address" not in photo and "bin_id" not in photo and "gps" not in photo  # the hopper only
    image = api.client.get(photo["image_url"], headers=who)
    assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"

    assert decide(api, who, event, action="accept", box_id=1).json()["boxes"][0]["state"] == "accepted"
    moved = decide(api, who, event, action="move", box_id=2, x1=0.45, y1=0.5, x2=0.75, y2=0.95).json()
    assert moved["boxes"][1].items() >= {"x1": 0.45, "x2": 0.75, "state": "accepted", "edited": True}.items()
    added = decide(api, who, event, action="add", **{"class": "gas_cylinder"}, x1=0.0, y1=0.0, x2=0.2, y2=0.2)
    assert added.json()["boxes"][2].items() >= {"id": 3, "class": "gas_cylinder", "origin": "human"}.items()
    assert decide(api, who, event, action="delete", box_id=1).json()["boxes"][0]["state"] == "deleted"
    undone = decide(api, who, event, action="undo").json()  # the delete is taken back
    assert undone["boxes"][0]["state"] == "accepted"
    done = decide(api, who, event, action="done").json()
    assert done["status"] == "done" and all(b["state"] == "accepted" for b in done["boxes"])
    assert decide(api, who, photos[1], action="unusable").json()["status"] == "unusable"
    queue = api.client.get("/api/labels/queue", headers=who).json()
    assert (queue["total"], queue["done"]) == (3, 2)

    with api.sessions() as session:
        trail = session.execute(select(AuditEntry.action, AuditEntry.actor, AuditEntry.at)
                                .where(AuditEntry.action.like("labels.%")).order_by(AuditEntry.id)).all()
    assert [a for a, _, _ in trail] == ["labels.accept", "labels.move", "labels.add", "labels.delete", "labels.undo",
                                        "labels.done", "labels.unusable"]
    assert {actor for _, actor, _ in trail} == {"token:test-annotator"} and all(at for _, _, at in trail)


def test_a_deleted_model_box_is_a_false_detection(api: Server, photos: list[str]) -> None:
    who = api.token("annotator")
    decide(api, who, photos[0], action="delete", box_id=2)
    report = api.client.get("/api/reminders/false-detections", headers=api.token("manager")).json()
    (row,) = [r for r in report if r["event_id"] == photos[0]]
    assert row["classes"] == "bottle" and row["reported_by"] == "token:test-annotator" and row["item_id"] is None
    decide(api, who, photos[0], action="undo")
    report = api.client.get("/api/reminders/false-detections", headers=api.token("manager")).json()
    assert not [r for r in report if r["event_id"] == photos[0]]


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"action": "add", "class": "unicorn", "x1": 0.1, "y1": 0.1, "x2": 0.2, "y2": 0.2}, 422, "unknown class 'unicorn'"),
    ({"action": "add", "class": "bag", "x1": 0.3, "y1": 0.1, "x2": 0.2, "y2": 0.2}, 422, "empty box"),
    # Thinner than a pixel: was kept, and exported as a YOLO box 0.000000 wide.
    ({"action": "add", "class": "bag", "x1": 0.3, "y1": 0.1, "x2": 0.3000004, "y2": 0.2}, 422, "under 0.001"),
    ({"action": "add", "class": "bag", "x1": 0.1, "y1": 0.1, "x2": 1.2, "y2": 0.2}, 422, "less than or equal to 1"),
    ({"action": "add", "class": "bag", "x1": 0.1}, 422, "all of x1, y1, x2, y2"),
    ({"action": "delete", "box_id": 9}, 422, "no box 9"),
    ({"action": "undo"}, 422, "nothing to undo"),
])
def test_bad_decisions_are_refused_and_change_nothing(api: Server, photos: list[str], body: dict[str, Any],
                                                      status: int, message: str) -> None:
    response = decide(api, api.token("annotator"), photos[0], **body)
    assert response.status_code == status and message in response.text
    with api.sessions() as session:
        assert session.get(LabelPhoto, photos[0]) is None


def test_an_expired_photo_cannot_be_labelled(api: Server, photos: list[str]) -> None:
    who = api.token("annotator")
    with api.sessions() as session, session.begin():  # past retention, the hourly purge not run yet
        session.execute(update(Evidence).where(Evidence.event_id == photos[0])
                        .values(received_at=datetime.now(UTC) - timedelta(days=31)))
    for body in ({"action": "accept", "box_id": 1}, {"action": "add", "class": "battery", "x1": 0.1, "y1": 0.1,
                                                     "x2": 0.2, "y2": 0.2}, {"action": "unusable"}):
        response = decide(api, who, photos[0], **body)
        assert response.status_code == 410 and f"the photo of lift {photos[0]} expired on " in response.json()["detail"]
    with api.sessions() as session:  # refused, and nothing written: no label, no audit entry
        assert session.get(LabelPhoto, photos[0]) is None
        assert not session.scalars(select(AuditEntry).where(AuditEntry.action.like("labels.%"))).all()
    decide(api, who, photos[1], action="done")
    with api.sessions() as session, session.begin():  # the purge deletes the photo and its labels
        purge_expired(session, api.client.app.state.ctx.evidence, api.settings,
                      now=datetime.now(UTC) + timedelta(days=40))
    for event in photos[:2]:
        response = decide(api, who, event, action="done")
        assert response.status_code == 410 and "is no longer on the server" in response.json()["detail"]
    with api.sessions() as session:
        assert session.scalars(select(LabelPhoto)).all() == []


def test_roles_and_old_trucks(api: Server, photos: list[str]) -> None:
    for role, expected in [("viewer", 403), ("annotator", 200), ("manager", 200), ("admin", 200)]:
        assert api.client.get("/api/labels/queue", headers=api.token(role)).status_code == expected, role
    annotator = api.token("annotator")
    assert api.client.get("/api/lifts", headers=annotator).status_code == 403  # no household-level data
    assert api.client.get(f"/api/lifts/{photos[0]}/evidence.jpg", headers=annotator).status_code == 403
    old = api.client.get(f"/api/labels/photos/{photos[3]}", headers=annotator)
    assert old.status_code == 422 and "wire 1.0 truck" in old.json()["detail"]
    with api.sessions() as session:
        reasons = dict(session.execute(select(Lift.event_id, Lift.evidence_reason)).all())
    assert [reasons[e] for e in photos] == ["contaminated", "sample", "uncertain", "contaminated"]
    classes = api.client.get("/api/labels/classes", headers=annotator).json()
    assert {"battery", "gas_cylinder", "food", "textile"} <= {c["name"] for c in classes}


def test_the_lift_detail_carries_the_photo_boxes_for_the_street_page(api: Server, photos: list[str]) -> None:
    manager = api.token("manager")
    detail = api.client.get(f"/api/lifts/{photos[0]}", headers=manager).json()
    assert detail["evidence"]["reason"] == "contaminated"
    assert [b["class"] for b in detail["evidence"]["boxes"]] == ["bag", "bottle"]
    old = api.client.get(f"/api/lifts/{photos[3]}", headers=manager).json()  # 1.0: boxes drawn on the photo
    assert old["evidence"]["boxes"] == []


@pytest.mark.parametrize(("lang", "title", "shortcut"), [("fr", "Annotation des photos", "Ctrl+Z : annuler"),
                                                         ("en", "Photo annotation", "Ctrl+Z: undo")])
def test_the_page_in_french_and_english(api: Server, lang: str, title: str, shortcut: str) -> None:
    api.client.cookies.set("trivue_lang", lang)
    page = api.client.get("/annotation", headers=api.token("annotator"))
    assert page.status_code == 200 and title in page.text and shortcut in page.text
    assert "vendor/konva/konva.min.js" in page.text and "script-src 'self'" in page.headers["content-security-policy"]


def test_the_queue_is_driven_by_the_photos_not_by_every_lift(tmp_path: Any) -> None:
    """Photos are kept 30 days, lifts for years: SQLite must find each photo's lift by its event id,
    never walk the lifts in time order (it did: 180 ms at a million lifts, growing with the table)."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from server.db import make_engine
    from server.labels.queue import QueueFilter, queue
    from server.migrate import upgrade_database

    engine = make_engine(f"sqlite:///{tmp_path / 'trivue.db'}")
    upgrade_database(engine)
    seen: list[tuple[str, Any]] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, sql, params, *_: seen.append((sql, params)))
    with Session(engine) as session:
        queue(session, QueueFilter(), SortingRules.load(), 30, 365)
    reads = [(sql, params) for sql, params in seen if "FROM lifts" in sql]
    assert len(reads) == 1, [sql for sql, _ in seen]
    with engine.connect() as connection:
        plan = [str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {reads[0][0]}", reads[0][1])]
    assert not [step for step in plan if step.startswith("SCAN lifts")], plan
    assert any(step.startswith("SEARCH lifts USING INDEX") and "event_id=?" in step for step in plan), plan


def annotator(api: Server, name: str) -> dict[str, str]:
    with api.sessions() as session:
        token = create_token(session, "annotator", name)
        session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_undo_never_takes_back_someone_else_s_later_decision(api: Server, photos: list[str]) -> None:
    ann, bob, event = annotator(api, "ann"), annotator(api, "bob"), photos[0]
    decide(api, ann, event, action="add", **{"class": "can"}, x1=0.6, y1=0.1, x2=0.8, y2=0.3)
    decide(api, bob, event, action="delete", box_id=1)
    # Before: ann's undo put back the photo as it was before her box, so bob's deletion went too.
    response = decide(api, ann, event, action="undo")
    assert response.status_code == 422 and "changed this photo after your last decision (delete at " in response.text
    boxes = api.client.get(f"/api/labels/photos/{event}", headers=ann).json()["boxes"]
    assert [(b["class"], b["state"]) for b in boxes] == [("bag", "deleted"), ("bottle", "pending"), ("can", "accepted")]
    assert decide(api, bob, event, action="undo").status_code == 200  # bob's own, latest, decision
    assert decide(api, ann, event, action="undo").json()["boxes"][2:] == []  # now ann's is the latest


def test_the_taxonomy_is_the_servers_rules_file(make_settings: Any, run_server: Any, tmp_path: Any) -> None:
    """A deployment that added a class to its rules (the trucks' file, and the server's sorting_rules)
    labels it: the classes API, a box's class, the queue's class filter, the false-detections report."""
    rules = SortingRules.load(edited_rules(tmp_path / "regles"))
    with run_server(make_settings(ingest_enabled=False, sorting_rules=rules.source)) as api:
        seen, data = photo_event(1, boxes=[BAG])  # counted by the packaged rules; its box is the new class
        body = json.loads(seen.to_json())
        body["evidence"]["detections"] = [{**BAG, "class": COMPOSTABLE}]
        seed_photos(api.settings, api.sessions, [(LiftEvent.model_validate(body), data), photo_event(2)])
        who = api.token("annotator")
        classes = api.client.get("/api/labels/classes", headers=who).json()
        assert [c["name"] for c in classes] == list(rules.spec.classes)  # file order, the new class last
        assert classes[-1] == {"name": COMPOSTABLE, "label": COMPOSTABLE_LABEL, "category": COMPOSTABLE_CATEGORY}
        queue = api.client.get("/api/labels/queue", params={"class": COMPOSTABLE}, headers=who).json()
        (event,) = [item["event_id"] for item in queue["items"]]
        other = next(i["event_id"] for i in api.client.get("/api/labels/queue", headers=who).json()["items"]
                     if i["event_id"] != event)
        added = decide(api, who, other, action="add", **{"class": COMPOSTABLE}, x1=0.1, y1=0.1, x2=0.3, y2=0.3)
        assert added.status_code == 200 and added.json()["boxes"][-1]["class"] == COMPOSTABLE
        decide(api, who, event, action="delete", box_id=1)  # the model saw a compostable bag that is not there
        report = api.client.get("/api/reminders/false-detections", headers=api.token("manager")).json()
        (row,) = [r for r in report if r["event_id"] == event]
        assert (row["classes"], row["categories"]) == (COMPOSTABLE, COMPOSTABLE_CATEGORY)


@pytest.mark.parametrize("labelled_before", [False, True], ids=["untouched", "labelled"])
def test_two_annotators_deciding_at_once_on_one_photo_keep_both_decisions(
        api: Server, photos: list[str], monkeypatch: pytest.MonkeyPatch, labelled_before: bool) -> None:
    """Two annotators start at the head of the same queue, so on the same photo. Ann's decision is read
    and held while Bob's is saved: it must be applied after Bob's, not over it. Before, Ann's write put
    the photo back as she had read it: Bob's deletion was gone while his audit entry and undo step
    stayed."""
    from server.labels import store

    ann, bob, event = annotator(api, "ann"), annotator(api, "bob"), photos[0]
    if labelled_before:
        assert decide(api, bob, event, action="accept", box_id=2).status_code == 200
    reading, saved = threading.Event(), threading.Event()
    real_store = store.store

    def held_store(*args: Any) -> Any:  # the write, under the photo's lock (a refusal is decided before it)
        if args[-1] == "token:ann":  # Ann's: she has read the photo and applied her add; Bob decides now
            reading.set()
            saved.wait(2)  # with the photo locked, Bob waits for Ann instead: go on after a while
        return real_store(*args)

    monkeypatch.setattr(store, "store", held_store)
    answers: dict[str, Any] = {}

    def take(name: str, who: dict[str, str], body: dict[str, Any]) -> None:
        try:
            answers[name] = decide(api, who, event, **body).status_code
        except Exception as error:  # the TestClient raises a server error: that is the finding
            answers[name] = repr(error)[:300]
        finally:
            if name == "bob":
                saved.set()

    first = threading.Thread(target=take, args=("ann", ann, {"action": "add", "class": "can", "x1": 0.6, "y1": 0.1,
                                                             "x2": 0.8, "y2": 0.3}))
    first.start()
    assert reading.wait(10)
    second = threading.Thread(target=take, args=("bob", bob, {"action": "delete", "box_id": 1}))
    second.start()
    first.join(30)
    second.join(30)
    assert answers == {"ann": 200, "bob": 200}
    boxes = api.client.get(f"/api/labels/photos/{event}", headers=ann).json()["boxes"]
    assert [(b["class"], b["state"]) for b in boxes] == [
        ("bag", "deleted"), ("bottle", "accepted" if labelled_before else "pending"), ("can", "accepted")]
    # one after the other, Bob's the latest: each undo takes back its own decision only
    assert decide(api, ann, event, action="undo").status_code == 422
    assert [(b["class"], b["state"]) for b in decide(api, bob, event, action="undo").json()["boxes"]][::2] == [
        ("bag", "pending"), ("can", "accepted")]
    assert [b["class"] for b in decide(api, ann, event, action="undo").json()["boxes"]] == ["bag", "bottle"]


def test_the_queue_leaves_out_photos_past_their_labelling_date(api: Server, photos: list[str]) -> None:
    """A photo expires for labelling at the start of its last day (UTC) but the hourly purge deletes it
    only once its retention has fully run: hours in which the queue, oldest first, began with photos
    that every page load opened into a 410."""
    who = api.token("annotator")
    oldest = photos[2]
    last_day = datetime.now(UTC).replace(hour=0, minute=0, second=1, microsecond=0)
    with api.sessions() as session, session.begin():  # expires today: a few hours before the purge takes it
        session.execute(update(Evidence).where(Evidence.event_id == oldest)
                        .values(received_at=last_day - timedelta(days=api.settings.evidence_retention_days)))
    assert decide(api, who, oldest, action="done").status_code == 410
    queue = api.client.get("/api/labels/queue", headers=who).json()
    assert [i["event_id"] for i in queue["items"]] == [photos[0], photos[1]] and queue["total"] == 2
    first = api.client.get(f"/api/labels/photos/{queue['items'][0]['event_id']}", headers=who)
    assert first.status_code == 200


def test_the_labelling_photo_is_never_kept_by_a_browser(api: Server, photos: list[str]) -> None:
    """A household's bin on an annotator's (shared) office computer: no browser or proxy keeps it,
    as the evidence route (``no-store``); it said ``private, max-age=3600``."""
    answer = api.client.get(f"/api/labels/photos/{photos[0]}/photo.jpg", headers=api.token("annotator"))
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    assert answer.headers["cache-control"] == "no-store"


def test_a_decision_taken_on_a_photo_someone_changed_since_is_refused_naming_them(
        api: Server, photos: list[str]) -> None:
    """Two annotators on one photo (both start at the head of the same queue) each add the bags the
    model missed: each add was applied to the photo as the other left it, so every missed bag went
    twice into the export, and neither was told. A decision naming the photo's version it was taken
    on is refused (409, naming who changed it) once someone else changed it since; one's own
    decisions still in flight are no conflict, and a script sending no version decides as before."""
    ann, bob, event = annotator(api, "ann"), annotator(api, "bob"), photos[0]
    seen = api.client.get(f"/api/labels/photos/{event}", headers=ann).json()["version"]
    bag = {"class": "bag", "x1": 0.6, "y1": 0.1, "x2": 0.8, "y2": 0.3}
    assert decide(api, bob, event, action="add", version=seen, **bag).status_code == 200
    twice = decide(api, ann, event, action="add", version=seen, **bag)
    assert twice.status_code == 409 and "bob" in twice.json()["detail"] and "add at" in twice.json()["detail"]
    boxes = api.client.get(f"/api/labels/photos/{event}", headers=ann).json()
    assert [b["class"] for b in boxes["boxes"]] == ["bag", "bottle", "bag"] and boxes["version"] > seen
    # Bob's next decisions, sent before the answer to his add came back, are his own: no conflict.
    assert decide(api, bob, event, action="accept", box_id=1, version=seen).status_code == 200
    fresh = api.client.get(f"/api/labels/photos/{event}", headers=ann).json()["version"]
    finished = decide(api, ann, event, action="done", version=fresh).json()
    assert finished["status"] == "done"
    # A decision Bob saw, undone since, makes his view stale too: it shows a photo that is no more.
    assert decide(api, ann, event, action="undo").status_code == 200
    assert decide(api, bob, event, action="delete", box_id=2, version=finished["version"]).status_code == 409
    assert decide(api, bob, event, action="delete", box_id=2).status_code == 200  # no version: as before


def test_a_second_annotator_is_not_handed_the_photo_the_first_has_open(api: Server, photos: list[str]) -> None:
    """Two or three annotators at once all got the same queue, so the same photo: they labelled it
    twice, then leapfrogged to the same next one. A photo another annotator opened or decided on in
    the last minutes goes to the end of one's queue (still there, the count unchanged), for a while."""
    ann, bob = annotator(api, "ann"), annotator(api, "bob")
    head = api.client.get("/api/labels/queue", headers=ann).json()["items"][0]["event_id"]
    assert api.client.get(f"/api/labels/photos/{head}/photo.jpg", headers=ann).status_code == 200
    theirs = api.client.get("/api/labels/queue", headers=bob).json()
    assert [i["event_id"] for i in theirs["items"]] == [photos[0], photos[1], head] and theirs["total"] == 3
    assert api.client.get("/api/labels/queue", headers=ann).json()["items"][0]["event_id"] == head  # her own
    # Bob takes the next one; ann, back from it, is handed the third
    assert decide(api, bob, photos[0], action="accept", box_id=1).status_code == 200
    assert [i["event_id"] for i in api.client.get("/api/labels/queue", headers=ann).json()["items"]] == [
        head, photos[1], photos[0]]
    with api.sessions() as session, session.begin():  # a while later, the photos are free again
        session.execute(update(AuditEntry).values(at=datetime.now(UTC) - timedelta(minutes=11)))
    assert api.client.get("/api/labels/queue", headers=bob).json()["items"][0]["event_id"] == head
