"""The review card's e-mail and SMS previews are the messages the household gets, word for word,
and an e-mail announces attached photos only when it carries them."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from server.app import create_app
from server.ingest.models import Evidence
from server.reminders.campaigns import Decision, create_campaign, review
from server.reminders.config import RemindersConfig
from server.reminders.dispatch import Dispatcher
from server.reminders.households import import_contacts
from server.reminders.models import HOUSEHOLD, Campaign, Contact, Item
from server.reminders.plan import make_plan
from server.web.auth import create_token
from tests.server.reminders_city import RULES, engine_for, seed_city

TODAY = date(2026, 11, 20)


class Outbox:
    """Stands for the SMTP relay and the SMS gateway: keeps what the dispatcher hands them."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, str, tuple[Any, ...]]] = []
        self.sms: list[str] = []

    def new_message_id(self) -> str:
        return f"<{len(self.mails)}@test>"

    def send(self, to: str, subject: str, body: str, attachments: tuple[Any, ...] = (), **_: Any) -> str:
        self.mails.append((subject, body, attachments))
        return "ok"


def test_previews_are_the_sent_messages_and_photos_are_announced_only_when_attached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    channels = {
        "smtp": {"host": "127.0.0.1", "sender": "tri@example.fr"},
        "sms": {"url": "http://127.0.0.1:9/send", "sender": "ORLEANSMET"},
    }
    rules = RemindersConfig.model_validate({"channels": channels})
    (tmp_path / "rules.yaml").write_text(json.dumps({"channels": channels}))  # the server's rules too
    monkeypatch.setenv("TRIVUE_REMINDERS_RULES", str(tmp_path / "rules.yaml"))
    with engine_for("sqlite", tmp_path, False) as engine:
        city = seed_city(engine, tmp_path, TODAY)
        target = city.addresses["target"]
        with city.sessions() as session:
            campaign = create_campaign(session, make_plan(session, rules, TODAY), "Novembre", "test", rules)
            session.flush()
            items = {
                i.target_key: i
                for i in session.scalars(select(Item).where(Item.campaign_id == campaign.id, Item.kind == HOUSEHOLD))
            }
            with_photos, without = items[f"address:{target.id}"], items["bin:BAC-0042"]
            for item in (with_photos, without):
                review(session, item.id, Decision(True), "test")
            # the purge took the bin's photos (30 days): its e-mail carries none
            session.execute(delete(Evidence).where(Evidence.event_id.in_(without.event_ids)))
            import_contacts(
                session,
                f"key;email;phone\naddress:{target.id};martin@example.fr;\nbin:BAC-0042;bac@example.fr;\n",
                "test",
                "test",
            )
            session.commit()
            ids = {"photos": with_photos.id, "none": without.id}

        app = create_app(city.settings, engine, start_ingest=False)
        with city.sessions() as session:
            token = create_token(session, "manager", "test-manager")
            session.commit()
        client = TestClient(app)
        previews = {
            name: client.get(
                f"/api/reminders/items/{item_id}/preview",
                params={"channel": "email"},
                headers={"Authorization": f"Bearer {token}"},
            ).text
            for name, item_id in ids.items()
        }
        sms_preview = client.get(
            f"/api/reminders/items/{ids['photos']}/preview",
            params={"channel": "sms"},
            headers={"Authorization": f"Bearer {token}"},
        ).text

        outbox = Outbox()
        with city.sessions() as session:
            dispatcher = Dispatcher(
                session, rules, city.settings.evidence_path, tmp_path / "out", "test", TODAY, sorting_rules=RULES
            )
            dispatcher.mailer = outbox  # type: ignore[assignment]
            dispatcher.send_campaign(campaign.id)
            session.commit()
            item = session.get(Item, ids["photos"])
            sms_text = dispatcher.sms_text(
                session.get(Campaign, campaign.id), item, session.get(Contact, item.target_key)
            )

    sent = {name: mail for name, mail in zip(("photos", "none"), outbox.mails, strict=True)}
    for name, (subject, body, _attachments) in sent.items():
        assert previews[name] == f"{subject}\n\n{body}"  # the preview is what the household reads
        assert not any(line.startswith("#") for line in previews[name].splitlines())
    photos = [a for a in sent["photos"][2] if a.filename.startswith("photo-")]
    assert len(photos) == 3 and "les photos prises lors des collectes" in sent["photos"][1]
    assert [a.filename for a in sent["none"][2]] == ["courrier-tri.pdf"]
    assert "photo" not in sent["none"][1].split("Vous trouverez en pièce jointe")[1].split(".")[0]
    assert sms_preview == sms_text and "«" not in sms_preview  # the GSM text, as the gateway gets it
