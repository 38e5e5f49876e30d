"""What the reminders API answers about plans and items: JSON-ready rows for the page and integrators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from server.ingest.models import Evidence
from server.reminders.config import RemindersConfig
from server.reminders.models import APPROVED, FAILED, HOUSEHOLD, PENDING, RETRY, SENT, Channel, Contact, Item
from server.reminders.sending import planned_channel
from server.reminders.targets import Plan
from server.reminders.templates import CATEGORY_LABELS, most_first
from server.streets.models import Address, Street


def plan_json(plan: Plan, street_id: int | None = None) -> dict[str, Any]:
    """The plan; with ``street_id``, what it says about that street only (its lifts without a sure
    household, not the city's: the street page's campaign)."""
    def mine(other: int | None) -> bool:
        return street_id is None or other == street_id

    street_only = plan.street_only_lifts if street_id is None else plan.street_only_by_street.get(street_id, 0)
    # The city's count beside the targeted streets' own (401 against 206): said apart, each for what it is.
    targeted = {t.street_id for t in plan.targets
                if t.kind == "street" and t.street_id is not None and mine(t.street_id)}
    return {"since": plan.since.isoformat(), "until": plan.until.isoformat(), "quiet": plan.quiet,
            "street_only_lifts": street_only, "unmatched_lifts": plan.unmatched_lifts if street_id is None else 0,
            "street_only_targeted": sum(plan.street_only_by_street.get(s, 0) for s in targeted),
            "targeted_streets": len(targeted),
            "targets": [{"kind": t.kind, "level": t.level, "action": t.action, "key": t.key, "label": t.label,
                         "street_id": t.street_id, "lifts": t.lifts, "contaminated": t.contaminated,
                         "categories": t.categories, "photos": len(t.event_ids), "reason": t.reason}
                        for t in plan.targets if mine(t.street_id)],
            "skipped": [{"key": s.key, "label": s.label, "reason": s.reason, "street_id": s.street_id}
                        for s in plan.skipped if mine(s.street_id)]}


def item_json(item: Item, labels: dict[int, str], streets: dict[int, str], config: RemindersConfig,
              kept: set[str], channels: dict[int, str | None] | None = None) -> dict[str, Any]:
    """An item for the page and integrators; ``kept``: event ids whose photo is still on file (retention);
    ``channels``: the channel a send would use for items not sent yet (None: no contact details)."""
    action = config.levels[item.level - 1].action if 0 < item.level <= len(config.levels) else "remerciement"
    return {"id": item.id, "kind": item.kind, "level": item.level, "action": action, "key": item.target_key,
            "label": labels.get(item.id, item.target_key), "street_id": item.street_id,
            "street": streets.get(item.street_id or -1, ""), "lifts": item.lifts, "contaminated": item.contaminated,
            "categories": [{"category": c, "label": CATEGORY_LABELS.get(c, c), "lifts": n}
                           for c, n in most_first(item.categories)],
            "photos": [f"/api/lifts/{e}/evidence.jpg" for e in item.event_ids if e in kept], "reason": item.reason,
            "status": item.status, "reviewed_by": item.reviewed_by,
            "reviewed_at": item.reviewed_at.isoformat() if item.reviewed_at else None,
            "review_reason": item.review_reason, "review_note": item.review_note, "channel": item.channel,
            "sent_at": item.sent_at.isoformat() if item.sent_at else None, "send_detail": send_detail(item),
            "attempts": item.attempts,
            "next_attempt_at": item.next_attempt_at.isoformat() if item.next_attempt_at else None,
            "planned_channel": (channels or {}).get(item.id),
            "no_contact": item.id in (channels or {}) and (channels or {})[item.id] is None,
            "file": f"/api/reminders/campaigns/{item.campaign_id}/files/{Path(item.send_detail).name}"
            if item.status == SENT and item.channel in (Channel.letter, Channel.print) and item.send_detail else None}


def send_detail(item: Item) -> str | None:
    # A printed item's detail is a path on the server: only its file name is the reader's business.
    if item.status == SENT and item.channel in (Channel.letter, Channel.print) and item.send_detail:
        return Path(item.send_detail).name
    return item.send_detail


def item_labels(db: Any, items: list[Item]) -> tuple[dict[int, str], dict[int, str]]:
    street_ids = {i.street_id for i in items if i.street_id is not None}
    streets = {s.id: f"{s.name}, {s.commune}" for s in db.scalars(select(Street).where(Street.id.in_(street_ids)))}
    address_ids = {i.address_id for i in items if i.address_id is not None}
    addresses = dict(db.execute(select(Address.id, Address.label).where(Address.id.in_(address_ids))).all())
    labels = {}
    for item in items:
        if item.bin_id:
            labels[item.id] = f"bac {item.bin_id}" + (f" ({addresses[item.address_id]})"
                                                     if item.address_id in addresses else "")
        elif item.kind == HOUSEHOLD:
            labels[item.id] = addresses.get(item.address_id, item.target_key)
        else:
            labels[item.id] = streets.get(item.street_id or -1, item.target_key)
    return labels, streets


def planned_channels(db: Any, items: list[Item], config: RemindersConfig) -> dict[int, str | None]:
    """The channel each item not sent yet would go by, so a reviewer sees "aucune coordonnée" before sending."""
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


def kept_photos(db: Any, items: list[Item]) -> set[str]:
    wanted = list({e for i in items for e in i.event_ids})
    return set(db.scalars(select(Evidence.event_id).where(Evidence.event_id.in_(wanted)))) if wanted else set()
