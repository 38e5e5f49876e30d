"""PDF documents: household letters and street notices (from the rendered templates) and the
ambassadeurs' route sheet (streets and addresses to visit, in walking order, with the errors).

fpdf2 with the DejaVu fonts of the operating system (``fonts-dejavu-core``) so every French
character prints; nothing is downloaded. Photos are the privacy-blurred evidence JPEGs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fpdf import FPDF

log = logging.getLogger(__name__)

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
FONT = "DejaVu"
PHOTO_HEIGHT_MM = 62


class LetterError(RuntimeError):
    pass


def _font_files() -> tuple[Path, Path]:
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    raise LetterError("DejaVu fonts not found (install fonts-dejavu-core): letters need them for French text")


def new_pdf(title: str, landscape: bool = False) -> FPDF:
    pdf = FPDF(orientation="L" if landscape else "P", format="A4")
    regular, bold = _font_files()
    pdf.add_font(FONT, "", str(regular))
    pdf.add_font(FONT, "B", str(bold))
    pdf.set_title(title)
    pdf.set_creator("Trivue")
    pdf.set_auto_page_break(True, margin=18)
    pdf.set_margins(20, 18, 20)
    pdf.add_page()
    return pdf


def letter_pdf(text: str, photos: Sequence[Path] = (), title: str = "Courrier") -> bytes:
    """Lay out a rendered letter; ``[photo]`` places the photos (or says they are no longer kept)."""
    pdf = new_pdf(title)
    for line in text.splitlines():
        _line(pdf, line, photos)
    return bytes(pdf.output())


def _line(pdf: FPDF, line: str, photos: Sequence[Path]) -> None:
    width = pdf.epw
    if line.startswith("## "):
        pdf.ln(2)
        pdf.set_font(FONT, "B", 11.5)
        pdf.multi_cell(width, 6, line[3:], new_x="LMARGIN", new_y="NEXT")
    elif line.startswith("# "):
        pdf.set_font(FONT, "B", 15)
        pdf.multi_cell(width, 8, line[2:], new_x="LMARGIN", new_y="NEXT")
    elif line.strip() == "[photo]":
        _photos(pdf, photos)
    elif line.startswith("- "):
        pdf.set_font(FONT, "", 10)
        pdf.set_x(pdf.l_margin + 4)
        pdf.multi_cell(width - 4, 5, "• " + line[2:], new_x="LMARGIN", new_y="NEXT")
    elif not line.strip():
        pdf.ln(3)
    else:
        pdf.set_font(FONT, "", 10.5)
        pdf.multi_cell(width, 5.4, line, new_x="LMARGIN", new_y="NEXT")


def _photos(pdf: FPDF, photos: Sequence[Path]) -> None:
    kept = [p for p in photos if p.is_file()]
    if not kept:
        pdf.set_font(FONT, "", 9)
        pdf.multi_cell(pdf.epw, 5, "(Photo de la collecte non conservée : les photos sont effacées après "
                                   "quelques semaines.)", new_x="LMARGIN", new_y="NEXT")
        return
    pdf.set_font(FONT, "", 9)
    pdf.multi_cell(pdf.epw, 5, "Photo prise par la caméra du camion lors de la collecte (visages et "
                               "plaques floutés) :", new_x="LMARGIN", new_y="NEXT")
    if pdf.get_y() + PHOTO_HEIGHT_MM > pdf.h - pdf.b_margin:
        pdf.add_page()
    top, width = pdf.get_y() + 1, (pdf.epw - 4) / 2
    for n, path in enumerate(kept[:2]):  # side by side, each fitted in its box
        try:
            pdf.image(str(path), x=pdf.l_margin + n * (width + 4), y=top, w=width, h=PHOTO_HEIGHT_MM,
                      keep_aspect_ratio=True)
        except Exception as error:  # a damaged photo must not stop the letter
            log.warning("photo %s not printable: %s", path, error)
    pdf.set_y(top + PHOTO_HEIGHT_MM + 3)


@dataclass(frozen=True, slots=True)
class Stop:
    """One line of the route sheet: an address (or a stretch of street) and what to talk about."""

    place: str
    errors: str
    lifts: str
    action: str


@dataclass(frozen=True, slots=True)
class RouteStreet:
    name: str
    summary: str
    stops: tuple[Stop, ...]


def route_sheet_pdf(campaign: str, period: str, streets: Sequence[RouteStreet]) -> bytes:
    """The ambassadeurs' sheet: one block per street, addresses in walking order, a box to tick."""
    pdf = new_pdf(f"Feuille de route — {campaign}", landscape=True)
    pdf.set_font(FONT, "B", 15)
    pdf.cell(0, 9, f"Feuille de route des ambassadeurs du tri — {campaign}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 10)
    pdf.cell(0, 6, f"Levées du {period}. Ordre de passage le long de chaque rue ; cocher une fois la visite faite.",
             new_x="LMARGIN", new_y="NEXT")
    if not streets:
        pdf.cell(0, 8, "Aucune rue ni adresse approuvée à visiter.", new_x="LMARGIN", new_y="NEXT")
    for street in streets:
        _route_street(pdf, street)
    return bytes(pdf.output())


def _route_street(pdf: FPDF, street: RouteStreet) -> None:
    if pdf.get_y() + 30 > pdf.h - pdf.b_margin:
        pdf.add_page()
    pdf.ln(4)
    pdf.set_font(FONT, "B", 12)
    pdf.cell(0, 7, street.name, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 9.5)
    pdf.multi_cell(0, 5, street.summary, new_x="LMARGIN", new_y="NEXT")
    with pdf.table(col_widths=(8, 70, 90, 30, 40), text_align="LEFT", line_height=5.5,
                   headings_style=_heading_style()) as table:
        table.row(["✓", "Adresse / tronçon", "Erreurs à aborder", "Levées", "Action"])
        for stop in street.stops:
            table.row(["☐", stop.place, stop.errors, stop.lifts, stop.action])


def _heading_style():  # type: ignore[no-untyped-def]
    from fpdf.fonts import FontFace

    return FontFace(emphasis="BOLD", fill_color=(230, 236, 230))
