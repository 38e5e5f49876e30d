"""A household's right of access (RGPD art. 15): everything Trivue holds about one household key.

The DPO answers « que détenez-vous sur moi ? » within a month with one file: the address, the bins
the registry places there, the contact, the opposition, the lifts attributed to the household (day,
time, stream, truck, errors found, whether a photo is kept, GPS fix), the dead letters naming its
bins (``server.reminders.dead_letters``), the reminders addressed to it and the audit entries naming
its key. Keys and labels are French (the household reads it); the
export itself is audited (``reminders.household.access``: the key and the counts, never the data).
It is a person's right, so it works whatever ``household_level`` says, but only for an admin on the
API (a manager would otherwise read addresses the switch hides) or on the command line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, false, func, not_, or_, select
from sqlalchemy.orm import Session

from server.audit import AuditEntry, audit
from server.db import utcnow
from server.ingest.models import Evidence, Lift
from server.reminders.config import HouseholdRules
from server.reminders.dead_letters import NamedLetter, letters_naming
from server.reminders.households import check_key, lifts_named
from server.reminders.models import CHANNEL_LABELS, KIND_LABELS, STATUS_LABELS, Campaign, Contact, Item, OptOut
from server.reminders.phrases import plural
from server.reminders.targets import HouseholdKey
from server.streets.models import Address, Bin

ACCESS_ACTION = "reminders.household.access"


def _when(moment: datetime | None, zone: ZoneInfo) -> str | None:
    """A moment in the collectivité's local time with its offset (``2026-11-20T08:30:00+01:00``): the
    lifts' times are local (the collection day is), and a time without its zone reads an hour off.
    A naive value is UTC: how the database keeps them (``DateTime(timezone=True)`` on SQLite too)."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone).isoformat(timespec="seconds")


def _sent_when(text: str | None, zone: ZoneInfo) -> str | None:
    """A refused lift's start as the truck wrote it, in local time when it says its zone; else as written."""
    try:
        moment = datetime.fromisoformat(text) if text else None
    except ValueError:
        return text
    return _when(moment, zone) if moment is not None and moment.tzinfo else text


def _attributed(household: HouseholdKey, min_confidence: float) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """The household's lifts, and those placed at its address it cannot be given. A tag is the bin's;
    an address is the household's when the registry placed the lift there or its fix is as sure as
    the reminders ask (``min_address_confidence``): a fix 60 m off lands at an address with a
    confidence of a few percent, maybe a neighbour's lift, whose time, errors and position the file
    must not hand over (RGPD art. 15-4)."""
    here = lifts_named(household)
    if household.bin_id:
        return here, false()
    # No confidence at all is not sure: compared as NULL, such a lift was in neither group.
    sure = or_(Lift.registry_placed.is_(True), func.coalesce(Lift.match_confidence, 0.0) >= min_confidence)
    return and_(here, sure), and_(here, not_(sure))


def _lifts(session: Session, where: ColumnElement[bool], zone: ZoneInfo) -> list[dict[str, Any]]:
    rows = list(session.scalars(select(Lift).where(where).order_by(Lift.started_at, Lift.id)))
    photos = set(session.scalars(select(Evidence.event_id).where(Evidence.event_id.in_([r.event_id for r in rows]))))
    # "heure" is HH:MM with its offset, cut from the whole moment: a time alone has none under a ZoneInfo.
    return [{"jour": r.day.isoformat(), "heure": r.started_at.astimezone(zone).isoformat("T", "minutes")[11:],
             "flux": r.stream, "camion": r.truck_id, "identifiant": r.event_id, "étiquette_du_bac": r.bin_id,
             "adresse_rapprochée": r.address_id, "position_gps": [r.lat, r.lon] if r.lat is not None else None,
             "non_conforme": r.contaminated, "erreurs": [e.get("category") for e in r.errors or []],
             # the logic involved (art. 15-1-h): the model that judged, and a person's overruling of it
             "modèle": {"nom": r.model_name, "version": r.model_version, "sha256": r.model_sha256},
             "jugement_contesté": None if r.overruled_at is None else {
                 "le": _when(r.overruled_at, zone), "motif": r.overrule_reason, "compté": "conforme"},
             "photo_conservée": r.event_id in photos} for r in rows]


def _refused(letters: list[NamedLetter], zone: ZoneInfo) -> list[dict[str, Any]]:
    return [{"identifiant": x.id, "reçu_le": _when(x.received_at, zone), "motif": x.reason, "camion": x.truck_id,
             "étiquette_du_bac": x.tag, "levée": x.event_id, "levée_du": _sent_when(x.started_at, zone),
             "position_gps": list(x.gps) if x.gps else None, "photos": len(x.photo_letters),
             "contenu_gardé": "message entier" if x.whole else "début du message (4 ko)"} for x in letters]


def _items(session: Session, key: str, zone: ZoneInfo) -> list[dict[str, Any]]:
    rows = session.execute(select(Item, Campaign).join(Campaign, Campaign.id == Item.campaign_id)
                           .where(Item.target_key == key).order_by(Item.id)).all()
    return [{"campagne": campaign.name, "créée_le": _when(campaign.created_at, zone), "élément": item.id,
             "type": KIND_LABELS.get(item.kind, item.kind), "niveau": item.level,
             "statut": STATUS_LABELS.get(item.status, item.status),
             "canal": CHANNEL_LABELS.get(item.channel, item.channel) if item.channel else None,
             "envoyé_le": _when(item.sent_at, zone), "levées": item.lifts, "levées_non_conformes": item.contaminated,
             "catégories": item.categories, "levées_montrées": item.event_ids, "motif": item.reason,
             "note_du_relecteur": item.review_note, "détail_de_l_envoi": item.send_detail}
            for item, campaign in rows]


def household_access(session: Session, key: str, actor: str, zone: ZoneInfo,
                     min_confidence: float = HouseholdRules().min_address_confidence) -> dict[str, Any]:
    """Everything held about ``key``; the caller commits (the audit entry goes with it).
    ``min_confidence``: the reminders' ``household.min_address_confidence``."""
    key = check_key(key)  # address:03 reads address:3's contact, opposition and items
    household = HouseholdKey.parse(key)
    address_id = household.address_id
    bins = list(session.scalars(select(Bin).where(
        Bin.tag == household.bin_id if household.bin_id else Bin.address_id == address_id).order_by(Bin.tag)))
    if household.bin_id and bins and bins[0].address_id is not None:
        address_id = bins[0].address_id  # the registry places the bin: its address is the household's too
    address = session.get(Address, address_id) if address_id is not None else None
    contact, opposition = session.get(Contact, key), session.get(OptOut, key)
    attributed, vague = _attributed(household, min_confidence)
    # The id breaks ties: entries of one instant (an erasure's opt-out and erasure) came in scan order.
    trail = list(session.scalars(select(AuditEntry).where(AuditEntry.target == key)
                                 .order_by(AuditEntry.at, AuditEntry.id)))
    report: dict[str, Any] = {
        "foyer": key, "produit_le": _when(utcnow(), zone), "fuseau_horaire": zone.key, "par": actor,
        "adresse": {"identifiant": address.id, "libellé": address.label} if address else None,
        "bacs_au_registre": [{"étiquette": b.tag, "adresse": b.address_id, "importé_le": _when(b.imported_at, zone)}
                             for b in bins],
        "contact": {"nom": contact.name, "courriel": contact.email, "téléphone": contact.phone,
                    "adresse_postale": contact.postal_address, "source": contact.source,
                    "mis_à_jour_le": _when(contact.updated_at, zone)} if contact else None,
        "opposition": {"depuis": _when(opposition.at, zone), "note": opposition.note} if opposition else None,
        "levées": _lifts(session, attributed, zone),
        "levées_non_attribuées": session.scalar(select(func.count()).select_from(Lift).where(vague)) or 0,
        "messages_refusés": _refused(letters_naming(session, household), zone),
        "rappels": _items(session, key, zone),
        "journal_d_audit": [{"date": _when(e.at, zone), "qui": e.actor, "action": e.action, "détail": e.detail}
                            for e in trail],
    }
    audit(session, actor, ACCESS_ACTION, key,
          f"lifts={len(report['levées'])} items={len(report['rappels'])} contact={int(contact is not None)} "
          f"audit={len(trail)} dead_letters={len(report['messages_refusés'])}")
    return report


def access_text(report: dict[str, Any]) -> str:
    """The same report as a French text a household reads without a JSON viewer."""
    lines = [f"Données détenues par Trivue sur le foyer {report['foyer']}",
             f"Produit le {report['produit_le']} ; heures locales, fuseau {report['fuseau_horaire']} (chaque heure est "
             "suivie de son décalage sur le temps universel, UTC)", ""]
    address = report["adresse"]
    lines.append(f"Adresse : {address['libellé']}" if address else "Adresse : aucune")
    for b in report["bacs_au_registre"]:
        lines.append(f"Bac au registre : {b['étiquette']} (importé le {b['importé_le']})")
    contact = report["contact"]
    if contact:
        lines.append("Contact : " + ", ".join(f"{k.replace('_', ' ')} : {v}" for k, v in contact.items() if v))
    else:
        lines.append("Contact : aucun")
    opposition = report["opposition"]
    lines.append(f"Opposition aux rappels : depuis le {opposition['depuis']}" if opposition
                 else "Opposition aux rappels : aucune")
    lifts = report["levées"]
    lines += ["", f"Levées de bac attribuées au foyer : {len(lifts)}"]
    if vague := report["levées_non_attribuées"]:
        lines.append(f"  ({vague} " + plural(
            vague, "autre levée a été placée à cette adresse par une position GPS trop imprécise pour l'attribuer "
                   "au foyer, peut-être celle d'un voisin : elle n'est pas détaillée.)",
            "autres levées ont été placées à cette adresse par une position GPS trop imprécise pour les "
            "attribuer au foyer, peut-être celles d'un voisin : elles ne sont pas détaillées.)"))
    for lift in lifts:
        verdict = "non conforme (" + ", ".join(lift["erreurs"]) + ")" if lift["non_conforme"] else "conforme"
        if overruled := lift["jugement_contesté"]:
            verdict += f", jugement contesté le {overruled['le']} ({overruled['motif']}) : compté conforme"
        photo = ", photo conservée" if lift["photo_conservée"] else ""
        model = f", modèle {lift['modèle']['version']}"
        lines.append(f"  {lift['jour']} {lift['heure']} {lift['flux']}, camion {lift['camion']}{model} : "
                     f"{verdict}{photo}")
    lines += _refused_text(report)
    items = report["rappels"]
    lines += ["", f"Rappels adressés au foyer : {len(items)}"]
    for item in items:
        sent = f", envoyé le {item['envoyé_le']}" if item["envoyé_le"] else ""
        lines.append(f"  « {item['campagne']} », niveau {item['niveau']}, {item['statut']}"
                     f"{', ' + item['canal'] if item['canal'] else ''}{sent} : {item['motif']}")
    trail = report["journal_d_audit"]
    lines += ["", f"Entrées du journal d'audit qui nomment le foyer : {len(trail)}"]
    lines += [f"  {e['date']} {e['qui']} {e['action']}" + (f" ({e['détail']})" if e["détail"] else "") for e in trail]
    return "\n".join(lines) + "\n"


def _refused_text(report: dict[str, Any]) -> list[str]:
    letters = report["messages_refusés"]
    lines = ["", f"Messages refusés par le serveur qui nomment un bac du foyer : {len(letters)}",
             "  (retrouvés par l'étiquette RFID du bac ; un message refusé sans étiquette n'est rattaché à aucune "
             "adresse et ne peut pas être retrouvé ici)"]
    for x in letters:
        gps = f", position GPS {x['position_gps'][0]:.5f}, {x['position_gps'][1]:.5f}" if x["position_gps"] else ""
        photo = f", {x['photos']} {plural(x['photos'], 'photo', 'photos')} en attente" if x["photos"] else ""
        lines.append(f"  reçu le {x['reçu_le']} (motif {x['motif']}), camion {x['camion'] or '-'}, bac "
                     f"{x['étiquette_du_bac']}, levée du {x['levée_du'] or '?'}{gps}{photo} : {x['contenu_gardé']}")
    return lines
