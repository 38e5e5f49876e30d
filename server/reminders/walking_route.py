"""The ambassadeurs' route: streets of a campaign and their addresses in walking order.

Addresses are ordered by their position along the street's main axis (the principal direction
of its vertices): odd numbers from one end of the street to the other, then even numbers back,
since French streets number one side odd and the other even and an ambassadeur should not cross
between two doors; an address without a number comes last. Low-confidence lifts never appear as
an address: they are summed per street.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.ingest.models import Lift
from server.reminders.letters import RouteStreet, Stop
from server.reminders.models import APPROVED, HOUSEHOLD, SENT, STREET, Contact, Item
from server.reminders.phrases import plural
from server.reminders.targets import HouseholdKey
from server.reminders.templates import CATEGORY_LABELS, most_first
from server.streets.models import Address, Street
from server.web.dashboard import messages

ACTIONS = {1: "information envoyée", 2: "rappel envoyé", 3: "visite"}


def axis_positions(coords: Sequence[tuple[float, float]], points: Sequence[tuple[float, float]]) -> list[float]:
    """Position of each (lon, lat) point along the main axis of ``coords`` (metres, arbitrary origin)."""
    if not coords:
        return [0.0] * len(points)
    lat0 = sum(c[1] for c in coords) / len(coords)
    kx = math.cos(math.radians(lat0)) * 111_320.0
    xs = [c[0] * kx for c in coords]
    ys = [c[1] * 110_540.0 for c in coords]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    angle = 0.5 * math.atan2(2 * sxy, sxx - syy)  # direction of the largest spread
    ux, uy = math.cos(angle), math.sin(angle)
    return [(p[0] * kx - mx) * ux + (p[1] * 110_540.0 - my) * uy for p in points]


NO_NUMBER = 10**9  # an address without a house number sorts after every numbered one


def house_number(label: str) -> tuple[int, str]:
    match = re.match(r"\s*(\d+)\s*(\w*)", label)
    return (int(match.group(1)), match.group(2)) if match else (NO_NUMBER, label)


def walking_key(position: float, label: str) -> tuple[int, float, tuple[int, str]]:
    """Sort key of an address on the sheet: its side (odd, even, no number), then along the axis,
    the even side walked back (5 m steps, so that numbers decide between close doors)."""
    number = house_number(label)
    side = 2 if number[0] == NO_NUMBER else (0 if number[0] % 2 else 1)  # odd, even, no number
    step = round(position / 5)
    return side, -step if side == 1 else step, (-number[0], number[1]) if side == 1 else number


def figures_text(contaminated: int, lifts: int) -> str:
    """« 3 contaminées sur 5 levées »: what an ambassadeur can say at the door (was « 3 / 5 »)."""
    return (f"{contaminated} {plural(contaminated, 'contaminée', 'contaminées')} sur "
            f"{lifts} {plural(lifts, 'levée', 'levées')}")


def errors_text(categories: dict[str, int]) -> str:
    return ", ".join(f"{CATEGORY_LABELS.get(c, c)} ({n})" for c, n in
                     most_first(categories)) or "—"


def streams_text(streams: dict[str, int] | None) -> str:
    """« Verre, Emballages (bac jaune) »: the streams most first, in the dashboard's French words
    (the letters' too: the rules file names them alike)."""
    words = messages("fr")
    return ", ".join(words.get(f"stream.{s}", s) for s, _ in most_first(streams or {})) or "—"


def _photo_streams(session: Session, items: list[Item]) -> dict[int, dict[str, int]]:
    """Streams of items planned before they were kept (r0008): those of their photos' lifts still stored."""
    older = {i.id: i.event_ids for i in items if i.streams is None and i.event_ids}
    wanted = sorted({e for events in older.values() for e in events})
    stream_of = dict(session.execute(select(Lift.event_id, Lift.stream).where(Lift.event_id.in_(wanted))).tuples()
                     .all()) if wanted else {}
    return {item: dict(Counter(stream_of[e] for e in events if e in stream_of)) for item, events in older.items()}


def route_streets(session: Session, items: Iterable[Item]) -> list[RouteStreet]:
    """Blocks of the route sheet: approved or sent street items and household visits, per street."""
    # An erased or expired household (no address, no bin) is nobody to visit: no empty block for it.
    chosen = [i for i in items if i.status in (APPROVED, SENT) and (i.kind == STREET or (
        i.kind == HOUSEHOLD and i.level >= 3 and (i.address_id is not None or bool(i.bin_id))))]
    by_street: dict[int, list[Item]] = defaultdict(list)
    for item in chosen:
        if item.street_id is not None:
            by_street[item.street_id].append(item)
    streets = {s.id: s for s in session.scalars(select(Street).where(Street.id.in_(list(by_street))))}
    address_ids = [i.address_id for i in chosen if i.kind == HOUSEHOLD and i.address_id is not None]
    addresses = {a.id: a for a in session.scalars(select(Address).where(Address.id.in_(address_ids)))}
    # A bin whose lifts had no sure address is found through the bin registry (its postal address).
    bin_keys = [i.target_key for i in chosen if i.bin_id and i.address_id not in addresses]
    bin_places = {key: f"bac {HouseholdKey.parse(key).bin_id} — {place}" for key, place in session.execute(
        select(Contact.key, Contact.postal_address).where(Contact.key.in_(bin_keys))) if place}
    older = _photo_streams(session, chosen)
    stream_of = {i.id: streams_text(i.streams if i.streams is not None else older.get(i.id)) for i in chosen}
    blocks = []
    for street_id, street_items in sorted(by_street.items(), key=lambda kv: _street_name(streets, kv[0])):
        blocks.append(_block(streets.get(street_id), street_items, addresses, bin_places, stream_of))
    return blocks


def _street_name(streets: dict[int, Any], street_id: int) -> str:
    street = streets.get(street_id)
    return f"{street.commune} {street.name}" if street else f"~{street_id}"


def _block(street: Any, items: list[Item], addresses: dict[int, Any], bin_places: dict[str, str],
           stream_of: dict[int, str]) -> RouteStreet:
    name = f"{street.name}, {street.commune}" if street else "Rue inconnue"
    coords = _coords(street.geometry) if street else []
    visits = [i for i in items if i.kind == HOUSEHOLD and i.address_id in addresses]
    points = [(addresses[i.address_id].lon, addresses[i.address_id].lat) for i in visits]
    positions = axis_positions(coords, points)
    ordered = sorted(zip(positions, visits, strict=True),
                     key=lambda pv: walking_key(pv[0], addresses[pv[1].address_id].label))
    stops = [Stop(addresses[i.address_id].label, errors_text(i.categories), figures_text(i.contaminated, i.lifts),
                  ACTIONS.get(i.level, "visite"), stream_of[i.id]) for _, i in ordered]
    bins = [i for i in items if i.kind == HOUSEHOLD and i.address_id not in addresses and i.bin_id]
    stops += [Stop(bin_places.get(i.target_key) or f"bac {i.bin_id} (adresse : registre des bacs)",
                   errors_text(i.categories), figures_text(i.contaminated, i.lifts), ACTIONS.get(i.level, "visite"),
                   stream_of[i.id]) for i in bins]
    visits += bins
    street_items = [i for i in items if i.kind == STREET]
    totals: Counter[str] = Counter()
    for item in street_items:
        totals.update(item.categories)
    if street_items:
        s = street_items[0]
        # The line's figure is what its label says: the lifts no household could be sure of (84 in
        # the demo), out of the street's contaminated ones (161); a campaign made before r0005 did
        # not store them and says only the street's figures, without claiming "sans adresse sûre".
        # Its errors are those lifts' too (r0006); one made before says they are the whole street's.
        errors = errors_text(dict(totals))
        if s.unattributed is None or (not visits and s.unattributed >= s.contaminated):
            # Every contaminated lift without a household (household level off: nobody is sought)
            # is the whole street's figure; « bacs sans adresse sûre, 15 sur 15 » implied a search.
            place, figure = "Toute la rue", figures_text(s.contaminated, s.lifts)
        else:
            place = "Toute la rue (bacs sans adresse sûre)"
            figure = f"{s.unattributed} sur {s.contaminated} {plural(s.contaminated, 'contaminée', 'contaminées')}"
            if s.unattributed_categories is not None:
                errors = errors_text(s.unattributed_categories)
            elif errors != "—":
                errors = f"toute la rue : {errors}"
        stops.append(Stop(place, errors, figure, "déposer l'avis dans les boîtes aux lettres", stream_of[s.id]))
    if visits or not street_items:
        summary = (f"{len(visits)} {plural(len(visits), 'adresse', 'adresses')} à visiter"
                   + (", avis à distribuer dans toute la rue" if street_items else ""))
    else:  # a street-level block: « 0 adresse à visiter » read as if households had been sought
        summary = "Avis à distribuer dans toute la rue"
    return RouteStreet(name, summary, tuple(stops))


def _coords(geometry: str) -> list[tuple[float, float]]:
    try:
        shape = json.loads(geometry)
    except (TypeError, ValueError):
        return []
    lines = shape.get("coordinates", []) if shape.get("type") == "MultiLineString" else [shape.get("coordinates", [])]
    return [(float(c[0]), float(c[1])) for line in lines for c in line]
