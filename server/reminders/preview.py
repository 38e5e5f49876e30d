"""The example a template preview is rendered with: a street of the collectivité's own streets."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.reminders.templates import TemplateData
from server.streets.models import Address, Street

EXAMPLE_STREET = "Rue de l'Exemple"  # before any street import: no commune is made up


def example_place(session: Session) -> tuple[str, str]:
    """``(street line, postal line)`` of the preview: the first street of the commune holding the most
    streets, with a postcode of that commune's addresses when it has some. The preview was addressed
    to « Rue de l'Exemple, Orléans » whatever the collectivité."""
    commune = session.execute(select(Street.commune).group_by(Street.commune)
                              .order_by(func.count().desc(), Street.commune).limit(1)).scalar()
    if commune is None:
        return EXAMPLE_STREET, EXAMPLE_STREET
    name = session.scalar(select(func.min(Street.name)).where(Street.commune == commune))
    postcode = session.scalar(select(func.min(Address.postcode))
                              .where(Address.commune == commune, Address.postcode != ""))
    return f"{name}, {commune}", f"{name} {postcode + ' ' if postcode else ''}{commune}"


def preview_message(session: Session, level: int, categories: dict[str, int], today: date) -> TemplateData:
    """Level 0 is the thank-you; 9 lifts, 3 of them contaminated, over the last 30 days."""
    street, postal = example_place(session)
    return TemplateData("thanks" if level == 0 else "household", level, f"Aux occupants, 12 {postal}", street,
                        9, 3, categories, today - timedelta(days=30), today - timedelta(days=1),
                        "rue propre : 0 levée contaminée sur 40", today)
