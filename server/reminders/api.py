"""``/api/reminders/...``: plan, campaigns, review, previews, sending, effect, households' rights.

Everything here is household-level or acts on households: managers and admins only (the same
dependencies as the core API), and every read of personal data, export and send is audited.
``mount_reminders(app, settings, sorting_rules)`` adds these routes, the review pages and the reminders' tables.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import date, timedelta
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query, Response
from fastapi.responses import FileResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from server.audit import audit
from server.config import ConfigError, ServerSettings
from server.db import utcnow
from server.localtime import local_today
from server.reminders import schemas
from server.reminders.campaigns import (
    CampaignError,
    Decision,
    NotFound,
    campaign_page,
    campaign_summaries,
    create_campaign,
    export_false_detections,
    false_detections,
    get_campaign,
    items_of,
    review,
)
from server.reminders.config import RULES_ENV, ReminderConfigError, RemindersConfig, load_targeting
from server.reminders.dispatch import Dispatcher
from server.reminders.effect import effect_csv, measure
from server.reminders.households_api import household_routes
from server.reminders.letters import LetterError, letter_pdf, route_sheet_pdf
from server.reminders.mailroom.api import print_routes
from server.reminders.models import (
    APPROVED,
    FAILED,
    HOUSEHOLD,
    REJECT_REASONS,
    Contact,
    Item,
    ItemStatus,
    upgrade_reminders,
)
from server.reminders.pages import reminders_page_router
from server.reminders.phrases import plural
from server.reminders.plan import make_plan
from server.reminders.preview import preview_message
from server.reminders.private_route import PrivateRoute
from server.reminders.sending import OUTGOING, requeue
from server.reminders.templates import CATEGORY_LABELS, TEMPLATES, MessageTemplates, Retention, TemplateError
from server.reminders.views import item_json, item_labels, kept_photos, plan_json, planned_channels
from server.reminders.walking_route import route_streets
from server.web.bounds import Day, RowId
from server.web.deps import Manager, SameOrigin, SessionDep
from server.web.privacy import STREET_LEVEL_FILES, refusal, street_level_effect
from vision.rules import SortingRules

log = logging.getLogger(__name__)
# A send request stops claiming items after this many seconds and says how many remain; the page
# calls again until none do. A 5,000-household campaign takes tens of minutes: in one request it
# outlived every proxy's timeout (nginx: 60 s) and the page showed nothing meanwhile.
SEND_SLICE_S = 20.0


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


def _fail(error: Exception, code: int = 422) -> HTTPException:
    return HTTPException(404 if isinstance(error, NotFound) else code, str(error))


class Reminders:
    """What the routes share: the targeting rules, the sorting rules, the templates, the folders."""

    def __init__(self, settings: ServerSettings, config: RemindersConfig, sorting_rules: SortingRules) -> None:
        self.settings = settings
        self.config = config
        self.sorting_rules = sorting_rules
        self.templates = MessageTemplates(config, sorting_rules, Retention.of(settings))
        self.out_root = settings.data_dir / "reminders"

    @property
    def households(self) -> bool:
        """The server's household-level switch (``server.privacy``): off, reminders are street level."""
        return self.settings.household_level

    def check_item(self, item: Item | None) -> None:
        if item is not None and item.kind == HOUSEHOLD and not self.households:
            raise refusal("Ce rappel est adressé à un foyer")

    def dispatcher(self, db: Any, actor: str, campaign_id: int) -> Any:
        return Dispatcher(db, self.config, self.settings.evidence_path, self.out_root / f"campagne-{campaign_id}",
                          actor, local_today(self.settings.zone), sorting_rules=self.sorting_rules,
                          zone=self.settings.zone, retention=Retention.of(self.settings))


def reminders_router(rem: Reminders) -> APIRouter:
    router = APIRouter(prefix="/api/reminders", tags=["reminders"], route_class=PrivateRoute)
    _plan_routes(router, rem)
    _review_routes(router, rem)
    _send_routes(router, rem)
    household_routes(router, rem.settings, rem.config.household.min_address_confidence)
    print_routes(router, rem.settings, rem.out_root)
    return router


def _plan_routes(router: APIRouter, rem: Reminders) -> None:
    @router.get("/rules", summary="The targeting rules in force (secrets are never in them)",
                response_model=RemindersConfig)
    def rules(who: Manager) -> dict[str, Any]:
        return rem.config.model_dump(mode="json")

    @router.get("/plan", summary="Dry run: who would get what and why (nothing is stored)",
                response_model=schemas.PlanOut)
    def plan(db: SessionDep, who: Manager, since: Day | None = None, until: Day | None = None,
             street_id: RowId | None = None) -> dict[str, Any]:  # only what the plan says about this street
        until = until or local_today(rem.settings.zone) - timedelta(days=1)
        if since and since > until:
            raise HTTPException(422, f"le début {since} est après la fin {until}")
        result = plan_json(make_plan(db, rem.config, until, since, households=rem.households), street_id)
        audit(db, who.actor, "reminders.plan.read", None, f"lifts {result['since']}..{result['until']}")
        db.commit()
        return result

    @router.post("/campaigns", status_code=201, summary="Store the plan as a campaign; items wait for review",
                 response_model=schemas.CampaignSummary)
    def create(body: CampaignIn, db: SessionDep, who: Manager) -> dict[str, Any]:
        until = body.until or local_today(rem.settings.zone) - timedelta(days=1)
        try:
            plan = make_plan(db, rem.config, until, body.since, households=rem.households)
            campaign = create_campaign(db, plan, body.name, who.actor, rem.config, body.street_id)
        except CampaignError as error:
            raise HTTPException(422, str(error)) from None
        db.commit()
        return campaign_summaries(db, only=campaign.id)[0]

    @router.get("/campaigns", summary="Campaigns, newest first, paginated, with their items per status",
                response_model=schemas.CampaignPage)
    def campaigns(db: SessionDep, who: Manager, limit: int = Query(default=100, ge=1, le=1000),
                  cursor: RowId | None = None) -> dict[str, Any]:
        return campaign_page(db, limit, cursor)

    @router.get("/templates/preview", summary="A template rendered on example data (text or PDF)",
                response_class=PlainTextResponse, responses={200: {"content": {"application/pdf": {}}}})
    def preview(who: Manager, db: SessionDep, template: str | None = None, level: int = Query(default=1, ge=0, le=3),
                categories: str = "verre,sac_ferme", format: Literal["text", "pdf"] = "text") -> Response:
        # Level 0 is a thank-you (models.Item.level); households and streets start at 1. A level-0
        # letter fell through to the templates' last branch, the visit, and showed a wording no
        # item of level 0 ever gets.
        template = template or ("thanks" if level == 0 else "letter")
        if level == 0 and template != "thanks":
            raise HTTPException(422, f"niveau 0 : c'est le remerciement (template=thanks), pas le modèle {template!r} "
                                "(niveaux 1 à 3)")
        cats = {c.strip(): 2 for c in categories.split(",") if c.strip()}
        message = preview_message(db, level, cats, local_today(rem.settings.zone))  # the collectivité's own streets
        try:
            text = rem.templates.render(template, message)
        except TemplateError as error:
            raise HTTPException(422, str(error)) from None
        if format == "text":
            return PlainTextResponse(text)

        return Response(letter_pdf(text, [], title=f"Aperçu {template}"), media_type="application/pdf")

    @router.get("/templates", summary="Template names the collectivité can edit", response_model=schemas.TemplateList)
    def templates(who: Manager) -> dict[str, Any]:
        return {"templates": list(TEMPLATES), "categories": CATEGORY_LABELS,
                "folder": str(rem.config.templates_dir) if rem.config.templates_dir else None}


def _review_routes(router: APIRouter, rem: Reminders) -> None:
    @router.get("/campaigns/{campaign_id}", summary="A campaign and its items, with evidence photo links",
                response_model=schemas.CampaignDetail)
    def campaign(campaign_id: RowId, db: SessionDep, who: Manager, status: ItemStatus | None = None) -> dict[str, Any]:
        try:
            found = get_campaign(db, campaign_id)
        except CampaignError as error:
            raise _fail(error) from None
        items = items_of(db, campaign_id, status.value if status else None)
        hidden = 0
        if not rem.households:  # items made while households were on: their addresses stay unseen
            shown = [i for i in items if i.kind != HOUSEHOLD]
            hidden, items = len(items) - len(shown), shown
        labels, streets = item_labels(db, items)
        kept, channels = kept_photos(db, items), planned_channels(db, items, rem.config)
        audit(db, who.actor, "reminders.campaign.read", f"campaign:{campaign_id}",
              f"{len(items)} items" + (f", {hidden} household items hidden" if hidden else ""))
        db.commit()
        summary = campaign_summaries(db, only=found.id)[0]
        # What the send confirmation says: the approved messages by channel, whatever the filter shows.
        approved = [i for i in items_of(db, campaign_id, APPROVED.value) if rem.households or i.kind != HOUSEHOLD]
        by_channel = Counter((planned_channels(db, approved, rem.config).get(i.id) or "none") for i in approved)
        return {**summary, "counts": summary["items"], "approved_channels": dict(by_channel),
                "items": [item_json(i, labels, streets, rem.config, kept, channels) for i in items],
                "reject_reasons": list(REJECT_REASONS), "household_level": rem.households,
                "hidden_household_items": hidden}

    @router.post("/items/{item_id}/review", summary="Approve, or reject with a reason", response_model=schemas.ItemOut,
                 responses=schemas.HOUSEHOLD_OFF)
    def review_item(item_id: RowId, body: ReviewIn, db: SessionDep, who: Manager) -> dict[str, Any]:
        rem.check_item(db.get(Item, item_id))
        try:
            item = review(db, item_id, Decision(body.decision == "approve", body.reason, body.note), who.actor)
        except CampaignError as error:
            raise _fail(error) from None
        db.commit()
        labels, streets = item_labels(db, [item])
        photos, channel = kept_photos(db, [item]), planned_channels(db, [item], rem.config)
        return item_json(item, labels, streets, rem.config, photos, channel)

    @router.get("/items/{item_id}/preview", summary="The item's real message (PDF letter, e-mail or SMS text)",
                response_class=Response, responses={200: {"content": {"application/pdf": {}, "text/plain": {}}},
                                                     **schemas.HOUSEHOLD_OFF})
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
        try:  # a template the collectivité edited can be broken: say which, not a 500
            if channel == "letter":
                shown: Response = Response(dispatcher.letter_bytes(campaign, item, message),
                                           media_type="application/pdf")
            elif channel == "email":  # word for word what the household gets (marks removed, typography)
                subject, body, _photos = dispatcher.email_text(campaign, item, contact)
                shown = PlainTextResponse(f"{subject}\n\n{body}")
            else:
                shown = PlainTextResponse(dispatcher.sms_text(campaign, item, contact))
        except (TemplateError, LetterError) as error:
            raise HTTPException(422, str(error)) from None
        audit(db, who.actor, "reminders.item.preview", f"item:{item_id}", channel)
        db.commit()
        return shown


def _send_routes(router: APIRouter, rem: Reminders) -> None:
    # No body to refuse a form by: the same-origin check keeps another site from making a browser send.
    @router.post("/campaigns/{campaign_id}/send", summary="Send the approved items (only those)",
                 dependencies=[SameOrigin], response_model=schemas.SendReport, responses=schemas.HOUSEHOLD_OFF)
    def send(campaign_id: RowId, db: SessionDep, who: Manager) -> dict[str, Any]:
        return _send(db, who.actor, campaign_id)

    @router.post("/campaigns/{campaign_id}/retry", dependencies=[SameOrigin], response_model=schemas.RetryReport,
                 responses=schemas.HOUSEHOLD_OFF,
                 summary="Failed items (or one of them) back to approved, then send them")
    def retry(campaign_id: RowId, db: SessionDep, who: Manager, item_id: RowId | None = None) -> dict[str, Any]:
        try:
            get_campaign(db, campaign_id)
        except CampaignError as error:
            raise _fail(error) from None
        if not rem.households and any(i.kind == HOUSEHOLD and i.status in (FAILED, *OUTGOING)
                                      for i in items_of(db, campaign_id)):
            raise refusal("Cette campagne contient des rappels adressés à des foyers ; rien n'a été renvoyé")
        requeued = requeue(db, campaign_id, who.actor, item_id)
        if item_id is not None and not requeued:  # a retry of nothing looked like a send that went well
            raise HTTPException(404, f"pas d'élément {item_id} en échec dans la campagne {campaign_id}")
        db.commit()
        return {"requeued": requeued, **_send(db, who.actor, campaign_id)}

    def _send(db: Any, actor: str, campaign_id: int) -> dict[str, Any]:
        if not rem.households:
            waiting = [i for i in items_of(db, campaign_id) if i.kind == HOUSEHOLD and i.status in OUTGOING]
            if waiting:
                held = plural(len(waiting), "rappel approuvé adressé", "rappels approuvés adressés")
                raise refusal(f"Cette campagne contient {len(waiting)} {held} à des "
                              "foyers ; rien n'a été envoyé")
        try:
            report = rem.dispatcher(db, actor, campaign_id).send_campaign(
                campaign_id, deadline=time.monotonic() + SEND_SLICE_S)
        except CampaignError as error:
            raise _fail(error) from None
        db.commit()
        return {"sent": report.sent, "failed": report.failed, "retrying": report.retrying,
                "skipped": report.skipped, "recovered": report.recovered, "deferred": report.deferred,
                "waiting": report.waiting, "remaining": report.remaining,
                "files": [p.name for p in report.files]}

    @router.get("/campaigns/{campaign_id}/files/{name}", summary="A generated PDF (letters, notices, route sheet)",
                response_class=FileResponse, responses={200: {"content": {"application/pdf": {}}},
                                                        **schemas.HOUSEHOLD_OFF})
    def file(campaign_id: RowId, name: str, db: SessionDep, who: Manager) -> FileResponse:
        folder = (rem.out_root / f"campagne-{campaign_id}").resolve()
        path = None if "\0" in name else (folder / name).resolve()  # a NUL byte made resolve() raise: a 500
        if path is None or path.parent != folder or path.suffix != ".pdf" or not path.is_file():
            raise HTTPException(404, f"pas de fichier {name!r} dans la campagne {campaign_id}")
        if not rem.households and not name.startswith(STREET_LEVEL_FILES):  # letters, route sheets name homes
            raise refusal("Ce document nomme des foyers")
        audit(db, who.actor, "reminders.file.export", f"campaign:{campaign_id}", name)
        db.commit()
        return FileResponse(path, media_type="application/pdf", filename=name)

    @router.get("/campaigns/{campaign_id}/route-sheet.pdf", summary="The ambassadeurs' route sheet",
                response_class=Response, responses={200: {"content": {"application/pdf": {}}}})
    def route_sheet(campaign_id: RowId, db: SessionDep, who: Manager) -> Response:

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

    @router.get("/campaigns/{campaign_id}/effect", summary="Before/after vs matched streets (JSON or CSV)",
                response_model=schemas.EffectReport, responses={200: {"content": {"text/csv": {}}}})
    def effect(campaign_id: RowId, db: SessionDep, who: Manager, format: Literal["json", "csv"] = "json") -> Any:

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
        # The JSON holds the CSV's rows, each household's key and rates among them: a read, audited alike.
        households = sum(1 for unit in report.get("units", []) if unit.get("group") == "household")
        audit(db, who.actor, "reminders.effect.read", f"campaign:{campaign_id}", f"{households} household units")
        db.commit()
        return report

    @router.get("/false-detections", summary="Lifts rejected as false detections (JSON or CSV, for retraining)",
                response_model=list[schemas.FalseDetectionOut], responses={200: {"content": {"text/csv": {}}}})
    def false_detection_list(db: SessionDep, who: Manager, format: Literal["json", "csv"] = "json") -> Any:
        if format == "csv":
            text = export_false_detections(db, who.actor, rem.sorting_rules)
            db.commit()
            return PlainTextResponse(text, media_type="text/csv",
                                     headers={"Content-Disposition": 'attachment; filename="fausses-detections.csv"'})
        rows = false_detections(db, rem.sorting_rules)
        # The same rows as the CSV (lift ids, trucks, reviewers' notes): read alike, audited alike.
        audit(db, who.actor, "reminders.false_detections.read", None, f"{len(rows)} rows")
        db.commit()
        return rows


def mount_reminders(app: FastAPI, settings: ServerSettings, sorting_rules: SortingRules,
                    config: RemindersConfig | None = None) -> None:
    """Reminders' tables, API routes and pages on ``app`` (called by ``create_app``, which loaded the
    settings' ``sorting_rules``: the local rules the letters print)."""
    try:
        config = config or load_targeting()
        config.check_streams([stream.value for stream in sorting_rules.streams])
    except ReminderConfigError as error:  # a bad rules file stops start-up with its reason
        raise ConfigError(f"{RULES_ENV}: {error}") from None
    engine = app.state.ctx.sessions.kw["bind"]
    upgrade_reminders(engine)
    rem = Reminders(settings, config, sorting_rules)
    app.state.reminders = rem
    app.include_router(reminders_router(rem))
    app.include_router(reminders_page_router(settings, sorting_rules))
    log.info("reminders mounted (rules: %s)", "file" if config != RemindersConfig() else "defaults")

