"""``/api/reminders/...``: plan, campaigns, review, previews, sending, effect, households' rights.

Everything here is household-level or acts on households: managers and admins only (the same
dependencies as the core API), and every read of personal data, export and send is audited.
``mount_reminders(app, settings)`` adds these routes, the review pages and the reminders' tables.
"""

from __future__ import annotations

import importlib.util
import logging
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query, Response
from fastapi.responses import FileResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from server.auth import audit
from server.bounds import Day, RowId
from server.campaigns import (
    CampaignError,
    Decision,
    NotFound,
    campaign_summaries,
    create_campaign,
    export_false_detections,
    false_detections,
    get_campaign,
    items_of,
    review,
)
from server.config import ConfigError, ServerSettings
from server.deps import Manager, SameOrigin, SessionDep
from server.households_api import household_routes
from server.localtime import local_today
from server.messages import CATEGORY_LABELS, TEMPLATES, Message, MessageTemplates, TemplateError
from server.privacy import STREET_LEVEL_FILES, refusal, street_level_effect
from server.reminder_config import RULES_ENV, ReminderConfigError, RemindersConfig, load_rules
from server.reminder_sending import planned_channel, requeue
from server.reminder_store import (
    APPROVED,
    FAILED,
    HOUSEHOLD,
    PENDING,
    REJECT_REASONS,
    RETRY,
    SENT,
    Contact,
    Item,
    upgrade_reminders,
)
from server.reminders import make_plan
from server.targets import Plan

log = logging.getLogger(__name__)


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", max_length=200)
    since: Day | None = None
    until: Day | None = None
    street_id: RowId | None = Field(default=None, description="only what the plan says about this street")

    @model_validator(mode="after")
    def _ordered(self) -> CampaignIn:
        # Checked here, not by the planner (whose ValueError was a 500); until defaults to yesterday.
        until = self.until or date.today() - timedelta(days=1)
        if self.since and self.since > until:
            raise ValueError(f"la fin {until} est avant le début {self.since}")
        return self


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject"]
    reason: Literal["false_detection", "wrong_household", "not_appropriate", "other"] | None = None
    note: str | None = Field(default=None, max_length=2000)


def plan_json(plan: Plan) -> dict[str, Any]:
    return {"since": plan.since.isoformat(), "until": plan.until.isoformat(), "quiet": plan.quiet,
            "street_only_lifts": plan.street_only_lifts, "unmatched_lifts": plan.unmatched_lifts,
            "targets": [{"kind": t.kind, "level": t.level, "action": t.action, "key": t.key, "label": t.label,
                         "street_id": t.street_id, "lifts": t.lifts, "contaminated": t.contaminated,
                         "categories": t.categories, "photos": len(t.event_ids), "reason": t.reason}
                        for t in plan.targets],
            "skipped": [{"key": s.key, "label": s.label, "reason": s.reason} for s in plan.skipped]}


def item_json(item: Item, labels: dict[int, str], streets: dict[int, str], config: RemindersConfig,
              kept: set[str], channels: dict[int, str | None] | None = None) -> dict[str, Any]:
    """An item for the page and integrators; ``kept``: event ids whose photo is still on file (retention);
    ``channels``: the channel a send would use for items not sent yet (None: no contact details)."""
    action = config.levels[item.level - 1].action if 0 < item.level <= len(config.levels) else "remerciement"
    return {"id": item.id, "kind": item.kind, "level": item.level, "action": action, "key": item.target_key,
            "label": labels.get(item.id, item.target_key), "street_id": item.street_id,
            "street": streets.get(item.street_id or -1, ""), "lifts": item.lifts, "contaminated": item.contaminated,
            "categories": [{"category": c, "label": CATEGORY_LABELS.get(c, c), "lifts": n}
                           for c, n in sorted(item.categories.items(), key=lambda kv: -kv[1])],
            "photos": [f"/api/lifts/{e}/evidence.jpg" for e in item.event_ids if e in kept], "reason": item.reason,
            "status": item.status, "reviewed_by": item.reviewed_by,
            "reviewed_at": item.reviewed_at.isoformat() if item.reviewed_at else None,
            "review_reason": item.review_reason, "review_note": item.review_note, "channel": item.channel,
            "sent_at": item.sent_at.isoformat() if item.sent_at else None, "send_detail": _detail(item),
            "attempts": item.attempts,
            "next_attempt_at": item.next_attempt_at.isoformat() if item.next_attempt_at else None,
            "planned_channel": (channels or {}).get(item.id),
            "no_contact": item.id in (channels or {}) and (channels or {})[item.id] is None,
            "file": f"/api/reminders/campaigns/{item.campaign_id}/files/{Path(item.send_detail).name}"
            if item.status == SENT and item.channel in ("letter", "print") and item.send_detail else None}


def _detail(item: Item) -> str | None:
    # A printed item's detail is a path on the server: only its file name is the reader's business.
    if item.status == SENT and item.channel in ("letter", "print") and item.send_detail:
        return Path(item.send_detail).name
    return item.send_detail


def _labels(db: Any, items: list[Item]) -> tuple[dict[int, str], dict[int, str]]:
    from server.streets import Address, Street

    street_ids = {i.street_id for i in items if i.street_id is not None}
    streets = {s.id: f"{s.name}, {s.commune}" for s in db.scalars(select(Street).where(Street.id.in_(street_ids)))}
    address_ids = {i.address_id for i in items if i.address_id is not None}
    addresses = dict(db.execute(select(Address.id, Address.label).where(Address.id.in_(address_ids))).all())
    labels = {}
    for item in items:
        if item.bin_id:
            labels[item.id] = f"bac {item.bin_id}" + (f" ({addresses[item.address_id]})"
                                                     if item.address_id in addresses else "")
        elif item.kind == "household":
            labels[item.id] = addresses.get(item.address_id, item.target_key)
        else:
            labels[item.id] = streets.get(item.street_id or -1, item.target_key)
    return labels, streets


def _channels(db: Any, items: list[Item], config: RemindersConfig) -> dict[int, str | None]:
    """The channel each item not sent yet would go by, so a reviewer sees "aucune coordonnée" before sending."""
    from server.streets import Address

    waiting = [i for i in items if i.status in (PENDING, APPROVED, RETRY, FAILED)]
    keys = [i.target_key for i in waiting if i.kind == HOUSEHOLD]
    contacts = {c.key: c for c in db.scalars(select(Contact).where(Contact.key.in_(keys)))} if keys else {}
    address_ids = {i.address_id for i in waiting if i.address_id is not None}
    labelled = set(db.scalars(select(Address.id).where(Address.id.in_(address_ids), Address.label.is_not(None))))
    out = {}
    for item in waiting:
        contact = contacts.get(item.target_key)
        postal = bool(contact and contact.postal_address) or item.address_id in labelled
        out[item.id] = planned_channel(item, contact, config, postal)
    return out


def _kept(db: Any, items: list[Item]) -> set[str]:
    from server.store import Evidence

    wanted = list({e for i in items for e in i.event_ids})
    return set(db.scalars(select(Evidence.event_id).where(Evidence.event_id.in_(wanted)))) if wanted else set()


def _fail(error: Exception, code: int = 422) -> HTTPException:
    return HTTPException(404 if isinstance(error, NotFound) else code, str(error))


class Reminders:
    """What the routes share: the rules, the templates, the folders."""

    def __init__(self, settings: ServerSettings, config: RemindersConfig) -> None:
        self.settings = settings
        self.config = config
        self.templates = MessageTemplates(config)
        self.out_root = settings.data_dir / "reminders"

    @property
    def households(self) -> bool:
        """The server's household-level switch (``server.privacy``): off, reminders are street level."""
        return self.settings.household_level

    def check_item(self, item: Item | None) -> None:
        if item is not None and item.kind == HOUSEHOLD and not self.households:
            raise refusal("Ce rappel est adressé à un foyer")

    def dispatcher(self, db: Any, actor: str, campaign_id: int) -> Any:
        from server.dispatch import Dispatcher

        return Dispatcher(db, self.config, self.settings.evidence_path, self.out_root / f"campagne-{campaign_id}",
                          actor, local_today(self.settings.zone))


def reminders_router(rem: Reminders) -> APIRouter:
    router = APIRouter(prefix="/api/reminders", tags=["reminders"])
    _plan_routes(router, rem)
    _review_routes(router, rem)
    _send_routes(router, rem)
    household_routes(router, rem.settings)
    return router


def _plan_routes(router: APIRouter, rem: Reminders) -> None:
    @router.get("/rules", summary="The targeting rules in force (secrets are never in them)")
    def rules(who: Manager) -> dict[str, Any]:
        return rem.config.model_dump(mode="json")

    @router.get("/plan", summary="Dry run: who would get what and why (nothing is stored)")
    def plan(db: SessionDep, who: Manager, since: Day | None = None, until: Day | None = None) -> dict[str, Any]:
        until = until or local_today(rem.settings.zone) - timedelta(days=1)
        if since and since > until:
            raise HTTPException(422, f"le début {since} est après la fin {until}")
        result = plan_json(make_plan(db, rem.config, until, since, households=rem.households))
        audit(db, who.actor, "reminders.plan.read", None, f"lifts {result['since']}..{result['until']}")
        db.commit()
        return result

    @router.post("/campaigns", status_code=201, summary="Store the plan as a campaign; items wait for review")
    def create(body: CampaignIn, db: SessionDep, who: Manager) -> dict[str, Any]:
        until = body.until or local_today(rem.settings.zone) - timedelta(days=1)
        try:
            plan = make_plan(db, rem.config, until, body.since, households=rem.households)
            campaign = create_campaign(db, plan, body.name, who.actor, rem.config, body.street_id)
        except CampaignError as error:
            raise HTTPException(422, str(error)) from None
        db.commit()
        return next(c for c in campaign_summaries(db) if c["id"] == campaign.id)

    @router.get("/campaigns", summary="Campaigns, newest first, with their items per status")
    def campaigns(db: SessionDep, who: Manager) -> list[dict[str, Any]]:
        return campaign_summaries(db)

    @router.get("/templates/preview", summary="A template rendered on example data (text or PDF)")
    def preview(who: Manager, template: str = "letter", level: int = Query(default=1, ge=0, le=3),
                categories: str = "verre,sac_ferme", format: Literal["text", "pdf"] = "text") -> Response:
        cats = {c.strip(): 2 for c in categories.split(",") if c.strip()}
        today = local_today(rem.settings.zone)
        message = Message("household", level, "Aux occupants, 12 rue de l'Exemple 45000 Orléans",
                          "Rue de l'Exemple, Orléans", 9, 3, cats, today - timedelta(days=30),
                          today - timedelta(days=1), "rue propre : 0 levée contaminée sur 40", today)
        try:
            text = rem.templates.render(template, message)
        except TemplateError as error:
            raise HTTPException(422, str(error)) from None
        if format == "text":
            return PlainTextResponse(text)
        from server.letters import letter_pdf

        return Response(letter_pdf(text, [], title=f"Aperçu {template}"), media_type="application/pdf")

    @router.get("/templates", summary="Template names the collectivité can edit")
    def templates(who: Manager) -> dict[str, Any]:
        return {"templates": list(TEMPLATES), "categories": CATEGORY_LABELS,
                "folder": str(rem.config.templates_dir) if rem.config.templates_dir else None}


def _review_routes(router: APIRouter, rem: Reminders) -> None:
    @router.get("/campaigns/{campaign_id}", summary="A campaign and its items, with evidence photo links")
    def campaign(campaign_id: RowId, db: SessionDep, who: Manager, status: str | None = None) -> dict[str, Any]:
        try:
            found = get_campaign(db, campaign_id)
        except CampaignError as error:
            raise _fail(error) from None
        items = items_of(db, campaign_id, status)
        hidden = 0
        if not rem.households:  # items made while households were on: their addresses stay unseen
            shown = [i for i in items if i.kind != HOUSEHOLD]
            hidden, items = len(items) - len(shown), shown
        labels, streets = _labels(db, items)
        kept, channels = _kept(db, items), _channels(db, items, rem.config)
        audit(db, who.actor, "reminders.campaign.read", f"campaign:{campaign_id}",
              f"{len(items)} items" + (f", {hidden} household items hidden" if hidden else ""))
        db.commit()
        summary = next(c for c in campaign_summaries(db) if c["id"] == found.id)
        return {**summary, "counts": summary["items"],
                "items": [item_json(i, labels, streets, rem.config, kept, channels) for i in items],
                "reject_reasons": list(REJECT_REASONS), "household_level": rem.households,
                "hidden_household_items": hidden}

    @router.post("/items/{item_id}/review", summary="Approve, or reject with a reason")
    def review_item(item_id: RowId, body: ReviewIn, db: SessionDep, who: Manager) -> dict[str, Any]:
        rem.check_item(db.get(Item, item_id))
        try:
            item = review(db, item_id, Decision(body.decision == "approve", body.reason, body.note), who.actor)
        except CampaignError as error:
            raise _fail(error) from None
        db.commit()
        labels, streets = _labels(db, [item])
        return item_json(item, labels, streets, rem.config, _kept(db, [item]), _channels(db, [item], rem.config))

    @router.get("/items/{item_id}/preview", summary="The item's real message (PDF letter, e-mail or SMS text)")
    def item_preview(item_id: RowId, db: SessionDep, who: Manager,
                     channel: Literal["letter", "email", "sms"] = "letter") -> Response:
        item = db.get(Item, item_id)
        if item is None:
            raise HTTPException(404, f"l'élément {item_id} n'existe pas")
        rem.check_item(item)
        dispatcher = rem.dispatcher(db, who.actor, item.campaign_id)
        campaign = get_campaign(db, item.campaign_id)
        contact = db.get(Contact, item.target_key) if item.kind == HOUSEHOLD else None
        message = dispatcher.message(campaign, item, dispatcher.recipient(item, contact) or None, contact)
        audit(db, who.actor, "reminders.item.preview", f"item:{item_id}", channel)
        db.commit()
        if channel == "letter":
            return Response(dispatcher.letter_bytes(campaign, item, message), media_type="application/pdf")
        return PlainTextResponse(rem.templates.render(channel, message))


def _send_routes(router: APIRouter, rem: Reminders) -> None:
    # No body to refuse a form by: the same-origin check keeps another site from making a browser send.
    @router.post("/campaigns/{campaign_id}/send", summary="Send the approved items (only those)",
                 dependencies=[SameOrigin])
    def send(campaign_id: RowId, db: SessionDep, who: Manager) -> dict[str, Any]:
        return _send(db, who.actor, campaign_id)

    @router.post("/campaigns/{campaign_id}/retry", dependencies=[SameOrigin],
                 summary="Failed items (or one of them) back to approved, then send them")
    def retry(campaign_id: RowId, db: SessionDep, who: Manager, item_id: RowId | None = None) -> dict[str, Any]:
        try:
            get_campaign(db, campaign_id)
        except CampaignError as error:
            raise _fail(error) from None
        if not rem.households and any(i.kind == HOUSEHOLD for i in items_of(db, campaign_id, FAILED)):
            raise refusal("Cette campagne contient des rappels adressés à des foyers ; rien n'a été renvoyé")
        requeued = requeue(db, campaign_id, who.actor, item_id)
        db.commit()
        return {"requeued": requeued, **_send(db, who.actor, campaign_id)}

    def _send(db: Any, actor: str, campaign_id: int) -> dict[str, Any]:
        if not rem.households:
            waiting = [i for i in items_of(db, campaign_id, APPROVED) if i.kind == HOUSEHOLD]
            if waiting:
                raise refusal(f"Cette campagne contient {len(waiting)} rappel(s) approuvé(s) adressé(s) à des "
                              "foyers ; rien n'a été envoyé")
        try:
            report = rem.dispatcher(db, actor, campaign_id).send_campaign(campaign_id)
        except CampaignError as error:
            raise _fail(error) from None
        db.commit()
        return {"sent": report.sent, "failed": report.failed, "retrying": report.retrying,
                "skipped": report.skipped, "recovered": report.recovered, "deferred": report.deferred,
                "files": [p.name for p in report.files]}

    @router.get("/campaigns/{campaign_id}/files/{name}", summary="A generated PDF (letters, notices, route sheet)")
    def file(campaign_id: RowId, name: str, db: SessionDep, who: Manager) -> FileResponse:
        folder = (rem.out_root / f"campagne-{campaign_id}").resolve()
        path = (folder / name).resolve()
        if path.parent != folder or path.suffix != ".pdf" or not path.is_file():
            raise HTTPException(404, f"pas de fichier {name!r} dans la campagne {campaign_id}")
        if not rem.households and not name.startswith(STREET_LEVEL_FILES):  # letters, route sheets name homes
            raise refusal("Ce document nomme des foyers")
        audit(db, who.actor, "reminders.file.export", f"campaign:{campaign_id}", name)
        db.commit()
        return FileResponse(path, media_type="application/pdf", filename=name)

    @router.get("/campaigns/{campaign_id}/route-sheet.pdf", summary="The ambassadeurs' route sheet")
    def route_sheet(campaign_id: RowId, db: SessionDep, who: Manager) -> Response:
        from server.letters import route_sheet_pdf
        from server.route import route_streets

        try:
            campaign = get_campaign(db, campaign_id)
        except CampaignError as error:
            raise _fail(error) from None
        period = f"{campaign.since:%d/%m/%Y} au {campaign.until:%d/%m/%Y}"
        items = [i for i in items_of(db, campaign_id) if rem.households or i.kind != HOUSEHOLD]
        pdf = route_sheet_pdf(campaign.name, period, route_streets(db, items))
        audit(db, who.actor, "reminders.route_sheet.export", f"campaign:{campaign_id}")
        db.commit()
        return Response(pdf, media_type="application/pdf")

    @router.get("/campaigns/{campaign_id}/effect", summary="Before/after vs matched streets (JSON or CSV)")
    def effect(campaign_id: RowId, db: SessionDep, who: Manager, format: Literal["json", "csv"] = "json") -> Any:
        from server.effect import effect_csv, measure
        from server.store import utcnow

        try:
            report = measure(db, get_campaign(db, campaign_id), rem.config.effect, utcnow(),
                             rem.config.household.streams)
            db.commit()  # controls matched for a campaign sent before they were stored: now frozen
        except CampaignError as error:
            raise _fail(error) from None
        if not rem.households:
            report = street_level_effect(report)
        if format == "csv":
            audit(db, who.actor, "reminders.effect.export", f"campaign:{campaign_id}")
            db.commit()
            return PlainTextResponse(effect_csv(report), media_type="text/csv")
        return report

    @router.get("/false-detections", summary="Lifts rejected as false detections (JSON or CSV, for retraining)")
    def false_detection_list(db: SessionDep, who: Manager, format: Literal["json", "csv"] = "json") -> Any:
        if format == "csv":
            text = export_false_detections(db, who.actor)
            db.commit()
            return PlainTextResponse(text, media_type="text/csv",
                                     headers={"Content-Disposition": 'attachment; filename="fausses-detections.csv"'})
        return false_detections(db)


def mount_reminders(app: FastAPI, settings: ServerSettings, config: RemindersConfig | None = None) -> None:
    """Reminders' tables, API routes and pages on ``app`` (called by ``create_app``)."""
    try:
        config = config or load_rules()
    except ReminderConfigError as error:  # a bad rules file stops start-up with its reason
        raise ConfigError(f"{RULES_ENV}: {error}") from None
    engine = app.state.ctx.sessions.kw["bind"]
    upgrade_reminders(engine)
    rem = Reminders(settings, config)
    app.state.reminders = rem
    app.include_router(reminders_router(rem))
    if importlib.util.find_spec("server.dashboard") is not None:  # headless installs serve the API only
        from server.reminders_pages import reminders_page_router

        app.include_router(reminders_page_router(settings))
    log.info("reminders mounted (rules: %s)", "file" if config != RemindersConfig() else "defaults")

