"""Campaigns: a plan stored as items that wait for a person's decision, and the review itself.

Nothing is sent from here. A reviewer approves an item, or rejects it with a reason; a rejection
for a false detection files the item's lifts in ``reminder_false_detections`` (exportable, for
the next training round). Every decision and every export is written to the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.audit import audit
from server.db import utcnow
from server.ingest.models import Evidence, Lift
from server.labels.store import deleted_detections
from server.reminders.config import RemindersConfig
from server.reminders.models import (
    APPROVED,
    PENDING,
    REJECT_REASONS,
    REJECTED,
    STATUS_LABELS,
    Campaign,
    FalseDetection,
    Item,
)
from server.reminders.targets import Plan
from server.web.csvexport import rows_csv
from vision.rules import SortingRules
from vision.schema import Severity


class CampaignError(ValueError):
    """A refused operation on a campaign or item (wrong state, missing reason), in French."""


class NotFound(CampaignError):
    """An unknown campaign or item: the API answers 404, the CLI one line and exit code 2."""


def create_campaign(session: Session, plan: Plan, name: str, actor: str, rules: RemindersConfig,
                    street_id: int | None = None) -> Campaign:
    """Store ``plan`` (optionally only what concerns one street) as pending items; the caller commits."""
    if len(name.strip()) > 200:  # the column's size: PostgreSQL refused a longer one with a traceback
        raise CampaignError(f"nom de campagne de {len(name.strip())} caractères : 200 au plus")
    targets = [t for t in plan.targets if street_id is None or t.street_id == street_id]
    if not targets:
        where = f" pour la rue {street_id}" if street_id is not None else ""
        raise CampaignError(f"le plan ne propose aucun message{where} pour les levées du {plan.since:%d/%m/%Y} au "
                            f"{plan.until:%d/%m/%Y} : rien à relire"
                            + (f" (période calme : {plan.quiet})" if plan.quiet else ""))
    campaign = Campaign(name=name.strip() or f"Campagne du {plan.until:%d/%m/%Y}", created_by=actor,
                        created_at=utcnow(), since=plan.since, until=plan.until,
                        rules=rules.model_dump(mode="json", exclude={"channels"}))
    session.add(campaign)
    session.flush()
    for t in targets:
        session.add(Item(campaign_id=campaign.id, kind=t.kind, level=t.level, target_key=t.key,
                         street_id=t.street_id, address_id=t.address_id, bin_id=t.bin_id, lifts=t.lifts,
                         contaminated=t.contaminated, categories=t.categories, event_ids=list(t.event_ids),
                         reason=t.reason, unattributed=t.unattributed,
                         unattributed_categories=t.unattributed_categories, streams=t.streams, status=PENDING))
    audit(session, actor, "reminders.campaign.create", f"campaign:{campaign.id}",
          f"{len(targets)} items, lifts {plan.since}..{plan.until}")
    return campaign


def get_campaign(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"la campagne {campaign_id} n'existe pas")
    return campaign


def campaign_summaries(session: Session, limit: int | None = None, before: int | None = None,
                       only: int | None = None) -> list[dict[str, Any]]:
    """Campaigns newest first (by id) with their items per status: at most ``limit``, those made
    before campaign ``before``, or campaign ``only``. Only their items are counted."""
    query = select(Campaign).order_by(Campaign.id.desc()).limit(limit)
    if before is not None:
        query = query.where(Campaign.id < before)
    if only is not None:
        query = query.where(Campaign.id == only)
    campaigns = list(session.scalars(query))
    counts: dict[int, dict[str, int]] = {}
    for campaign_id, status, n in session.execute(
            select(Item.campaign_id, Item.status, func.count()).where(Item.campaign_id.in_([c.id for c in campaigns]))
            .group_by(Item.campaign_id, Item.status)
            .order_by(Item.campaign_id, Item.status)):  # the page shows the counts in this order
        counts.setdefault(campaign_id, {})[status] = n
    return [{"id": c.id, "name": c.name, "created_at": c.created_at.isoformat(), "created_by": c.created_by,
             "since": c.since.isoformat(), "until": c.until.isoformat(),
             "started_at": c.started_at.isoformat() if c.started_at else None, "items": counts.get(c.id, {})}
            for c in campaigns]


def campaign_page(session: Session, limit: int, cursor: int | None) -> dict[str, Any]:
    """One page of ``GET /api/reminders/campaigns``, as ``/api/lifts`` pages: ``next_cursor`` (the
    page's oldest campaign) gives the next one, None on the last page."""
    found = campaign_summaries(session, limit + 1, cursor)
    page = found[:limit]
    return {"items": page, "next_cursor": str(page[-1]["id"]) if len(found) > limit else None}


@dataclass(frozen=True, slots=True)
class Decision:
    approve: bool
    reason: str | None = None  # one of REJECT_REASONS when rejecting
    note: str | None = None


def review(session: Session, item_id: int, decision: Decision, actor: str) -> Item:
    """Approve or reject a pending (or approved, not yet sent) item; the caller commits.

    The row is locked until then (PostgreSQL): a send's claim waits and finds the decision, instead
    of claiming an approved item that this review then marked rejected while it went out.
    """
    item = session.get(Item, item_id, with_for_update=True, populate_existing=True)
    if item is None:
        raise NotFound(f"l'élément {item_id} n'existe pas")
    if item.status not in (PENDING, APPROVED):
        raise CampaignError(f"l'élément {item_id} est « {STATUS_LABELS.get(item.status, item.status)} » : seuls les "
                            "éléments à relire ou approuvés se relisent (un échec se renvoie avec « Réessayer »)")
    if not decision.approve and decision.reason not in REJECT_REASONS:
        raise CampaignError(f"un refus demande un motif parmi {', '.join(REJECT_REASONS)} (reçu : {decision.reason!r})")
    item.status = APPROVED if decision.approve else REJECTED
    item.reviewed_by, item.reviewed_at = actor, utcnow()
    item.review_reason = None if decision.approve else decision.reason
    item.review_note = (decision.note or "").strip()[:2000] or None
    if not decision.approve and decision.reason == "false_detection":
        _file_false_detections(session, item, actor)
    audit(session, actor, f"reminders.item.{item.status}", f"item:{item.id}",
          f"{item.target_key} level {item.level}" + (f" reason={decision.reason}" if not decision.approve else ""))
    return item


def _file_false_detections(session: Session, item: Item, actor: str) -> None:
    known = set(session.scalars(select(FalseDetection.event_id).where(FalseDetection.event_id.in_(item.event_ids))))
    lifts = session.scalars(select(Lift).where(Lift.event_id.in_(item.event_ids)))
    for lift in lifts:
        if lift.event_id in known:
            continue
        session.add(FalseDetection(item_id=item.id, event_id=lift.event_id, truck_id=lift.truck_id,
                                   stream=lift.stream, model_version=f"{lift.model_name}:{lift.model_version}",
                                   errors=lift.errors, evidence_sha256=lift.evidence_sha256,
                                   note=item.review_note, reported_by=actor, reported_at=utcnow()))


FALSE_DETECTION_COLUMNS = ("event_id", "truck_id", "stream", "model_version", "classes", "categories",
                           "evidence_sha256", "evidence_path", "note", "reported_by", "reported_at", "item_id")


def false_detections(session: Session, sorting_rules: SortingRules) -> list[dict[str, Any]]:
    """Lifts rejected in review, then photos whose model boxes annotators deleted (server.labels; the
    categories of their classes from the server's ``sorting_rules``)."""
    paths = dict(session.execute(select(Evidence.event_id, Evidence.path)
                                 .join(FalseDetection, FalseDetection.event_id == Evidence.event_id)).all())
    rows = []
    for fd in session.scalars(select(FalseDetection).order_by(FalseDetection.id)):
        wrong = [e for e in fd.errors if e.get("severity") != Severity.info]
        rows.append({"event_id": fd.event_id, "truck_id": fd.truck_id, "stream": fd.stream,
                     "model_version": fd.model_version,
                     "classes": ";".join(sorted({e["class"] for e in wrong})),
                     "categories": ";".join(sorted({e["category"] for e in wrong})),
                     "evidence_sha256": fd.evidence_sha256, "evidence_path": paths.get(fd.event_id),
                     "note": fd.note, "reported_by": fd.reported_by, "reported_at": fd.reported_at.isoformat(),
                     "item_id": fd.item_id})
    return rows + deleted_detections(session, sorting_rules)


def export_false_detections(session: Session, actor: str, sorting_rules: SortingRules) -> str:
    """CSV of every false detection (one row per lift), audited; the caller commits."""
    rows = false_detections(session, sorting_rules)
    # Notes and user names are typed by people: every cell is neutralised against formulas.
    text = rows_csv(FALSE_DETECTION_COLUMNS, rows)
    audit(session, actor, "reminders.false_detections.export", None, f"{len(rows)} rows")
    return text


def items_of(session: Session, campaign_id: int, status: str | None = None) -> list[Item]:
    query = select(Item).where(Item.campaign_id == campaign_id).order_by(Item.kind, Item.street_id, Item.id)
    if status:
        query = query.where(Item.status == status)
    return list(session.scalars(query))
