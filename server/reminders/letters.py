"""PDF documents: household letters and street notices (from the rendered templates) and the
ambassadeurs' route sheet (streets and addresses to visit, in walking order, with the errors).

A household letter goes in a DL window envelope (220 × 110 mm, window 100 × 45 mm at 20 mm from
the right and 15 mm from the bottom, the French standard position): the A4 folded in three shows
the address block printed at 110 mm from the left and 50 mm from the top; the sender's block sits
top left, fold marks in the margin. The folded sheet (210 × 99 mm) moves up to 10 mm sideways and
11 mm up and down in the envelope, so the window shows the sheet's x 100-190 mm and y 50-84 mm
always, and x 90-200 mm, y 39-95 mm at most: the address fits the first (its font shrinks, down
to 8 pt, until its widest line does), and nothing else is printed in the second, as the sorting
machines read the lowest line in the window as the postcode and commune. The place and date line
("Orléans, le 5 décembre 2026") sits above the window's reach. A letter whose second page would
hold only its closing lines is laid out tighter, else broken before its rules section, so page 2
is never a lonely signature. Text lines get French no-break spaces (``server.reminders.typography``).

fpdf2 with the DejaVu fonts of the operating system (``fonts-dejavu-core``) so every French
character prints; nothing is downloaded. Photos are the privacy-blurred evidence JPEGs.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fontTools import ttLib
from fpdf import FPDF
from fpdf.fonts import SubsetMap

from server.reminders.typography import french_spacing

log = logging.getLogger(__name__)

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
FONT = "DejaVu"
PHOTO_HEIGHT_MM = 62
PHOTOS_SHOWN = 2  # side by side under the text; the e-mail attaches them all
WINDOW_X_MM, WINDOW_Y_MM, WINDOW_W_MM = 110, 50, 78  # the address, always inside a DL window
WINDOW_REACH_MM = (90, 39, 200, 95)  # what the window can show of the sheet, however it slid (x0, y0, x1, y1)
DATE_Y_MM = 30  # the place and date line, above the window's reach
ADDRESS_PT = (11, 10.5, 10, 9.5, 9, 8.5, 8)  # the largest size at which every address line fits
BODY_TOP_MM = 100  # below the first fold (99 mm): nothing of the letter shows through the window
FOLDS_MM = (99, 198)
LONELY_TAIL_MM = 80  # a last page this short holds only the closing lines


class LetterError(RuntimeError):
    pass


def font_files() -> tuple[Path, Path]:
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    raise LetterError("polices DejaVu introuvables (installez fonts-dejavu-core) : les courriers en ont besoin "
                      "pour le texte français")


# DejaVu parsed once per process, per style. fpdf2 parses the whole font (6,000 glyphs) in every
# add_font: 0.2-0.5 s a document, twice a document, up to three layouts a letter; a 5,000-household
# campaign spent most of its hours there.
_PARSED: dict[str, Any] = {}


def _add_font(pdf: FPDF, style: str, path: Path) -> None:
    """``pdf.add_font(FONT, style, path)``, reusing the metrics parsed by an earlier document.

    What a document changes in its font is its own, made fresh for each (letters are made in several
    threads at once): the glyph subset it fills while writing, the fontTools font the output subsets
    in place (opening a font lazily reads only its table directory), the descriptor the output numbers
    as a PDF object; the widths and the cmap are copied (a dict copy, not a parse).
    """
    key = f"{FONT.lower()}{style}"
    parsed = _PARSED.get(key)
    if parsed is None:
        scratch = FPDF()  # never output: the shared font's own ttfont is never subset
        scratch.add_font(FONT, style, str(path))
        parsed = _PARSED[key] = scratch.fonts[key]
    font = copy.copy(parsed)
    font.i = len(pdf.fonts) + 1
    font.ttfont = ttLib.TTFont(str(path), recalcTimestamp=False, lazy=True)
    font.subset = SubsetMap(font)
    font.missing_glyphs, font.biggest_size_pt, font._hbfont = [], 0, None
    font.desc, font.cw = copy.copy(parsed.desc), copy.copy(parsed.cw)
    font.cmap, font.glyph_ids = dict(parsed.cmap), dict(parsed.glyph_ids)
    pdf.fonts[key] = font


def new_pdf(title: str, landscape: bool = False) -> FPDF:
    pdf = FPDF(orientation="L" if landscape else "P", format="A4")
    regular, bold = font_files()
    _add_font(pdf, "", regular)
    _add_font(pdf, "B", bold)
    pdf.set_title(title)
    pdf.set_creator("Trivue")
    pdf.set_auto_page_break(True, margin=18)
    pdf.set_margins(20, 18, 20)
    pdf.add_page()
    return pdf


@dataclass(frozen=True, slots=True)
class LetterHeader:
    """What a mailed letter carries above its text: sender, addressee (window), place and date."""

    sender: tuple[str, ...]  # the service's name, then its postal address lines
    addressee: tuple[str, ...]  # La Poste block (server.postal.address_block)
    dated: str  # "Orléans, le 20 novembre 2026" (or "Le 20 novembre 2026" without a place)


@dataclass(frozen=True, slots=True)
class _Layout:
    photo_mm: float = PHOTO_HEIGHT_MM
    size: float = 10.5
    leading: float = 5.4
    gap: float = 3.0
    break_before: str | None = None  # heading that starts page 2


TIGHT = _Layout(photo_mm=44, size=10, leading=4.9, gap=2.0)


def letter_pdf(text: str, photos: Sequence[Path] = (), title: str = "Courrier",
               header: LetterHeader | None = None) -> bytes:
    """Lay out a rendered letter; ``[photo]`` places the photos (nothing when it has none);
    with ``header``, the window-envelope layout (see the module docstring)."""
    pdf = _render(text, photos, title, header, _Layout())
    if _lonely_tail(pdf):
        pdf = _render(text, photos, title, header, TIGHT)
    if _lonely_tail(pdf) and "## Les consignes de tri de votre commune" in text:
        pdf = _render(text, photos, title, header, _Layout(break_before="## Les consignes de tri de votre commune"))
    return bytes(pdf.output())


def _lonely_tail(pdf: FPDF) -> bool:
    return pdf.page > 1 and pdf.get_y() - pdf.t_margin < LONELY_TAIL_MM


def _render(text: str, photos: Sequence[Path], title: str, header: LetterHeader | None, layout: _Layout) -> FPDF:
    pdf = new_pdf(title)
    if header is not None:
        _header(pdf, header)
    for line in text.splitlines():
        if layout.break_before and line == layout.break_before and pdf.page == 1:
            pdf.add_page()
        _line(pdf, french_spacing(line), photos, layout)
    return pdf


def _header(pdf: FPDF, header: LetterHeader) -> None:
    pdf.set_xy(pdf.l_margin, 15)
    for n, line in enumerate(header.sender):
        pdf.set_font(FONT, "B" if n == 0 else "", 10 if n == 0 else 9)
        pdf.set_x(pdf.l_margin)
        pdf.cell(85, 4.6, line, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 10)
    pdf.set_xy(WINDOW_X_MM, DATE_Y_MM)
    pdf.cell(pdf.w - pdf.r_margin - WINDOW_X_MM, 5, french_spacing(header.dated))
    size = _address_size(pdf, header.addressee)
    pdf.set_xy(WINDOW_X_MM, WINDOW_Y_MM)
    for line in header.addressee:
        pdf.set_x(WINDOW_X_MM)
        pdf.cell(WINDOW_W_MM, size * 0.47, line, new_x="LEFT", new_y="NEXT")
    pdf.set_draw_color(160, 160, 160)
    for y in FOLDS_MM:  # where to fold for the window to show the address
        pdf.line(4, y, 8, y)
    pdf.set_draw_color(0, 0, 0)
    pdf.set_xy(pdf.l_margin, BODY_TOP_MM)


def _address_size(pdf: FPDF, lines: Sequence[str]) -> float:
    """The font size (set on ``pdf``) at which the widest address line stays inside the window."""
    for size in ADDRESS_PT:
        pdf.set_font(FONT, "", size)
        if max((pdf.get_string_width(line) for line in lines), default=0) <= WINDOW_W_MM:
            return size
    log.warning("address line wider than the envelope's window even at %s pt: %s", ADDRESS_PT[-1], lines)
    return ADDRESS_PT[-1]


def _line(pdf: FPDF, line: str, photos: Sequence[Path], layout: _Layout = _Layout()) -> None:
    width = pdf.epw
    if line.startswith("## "):
        pdf.ln(2)
        pdf.set_font(FONT, "B", 11.5)
        pdf.multi_cell(width, 6, line[3:], new_x="LMARGIN", new_y="NEXT")
    elif line.startswith("# "):
        pdf.set_font(FONT, "B", 15)
        pdf.multi_cell(width, 8, line[2:], new_x="LMARGIN", new_y="NEXT")
    elif line.strip() == "[photo]":
        _photos(pdf, photos, layout.photo_mm)
    elif line.startswith("- "):
        pdf.set_font(FONT, "", layout.size - 0.5)
        pdf.set_x(pdf.l_margin + 4)
        pdf.multi_cell(width - 4, layout.leading - 0.4, "• " + line[2:], new_x="LMARGIN", new_y="NEXT")
    elif not line.strip():
        pdf.ln(layout.gap)
    else:
        pdf.set_font(FONT, "", layout.size)
        pdf.multi_cell(width, layout.leading, line, new_x="LMARGIN", new_y="NEXT")


def shown_photos(photos: Sequence[tuple[str, Path]]) -> list[str]:
    """The lifts whose photos a letter given ``photos`` (lift, file) prints, as ``_photos`` picks them."""
    return [event for event, path in photos if path.is_file()][:PHOTOS_SHOWN]


def _photos(pdf: FPDF, photos: Sequence[Path], height: float = PHOTO_HEIGHT_MM) -> None:
    kept = [p for p in photos if p.is_file()]
    if not kept:  # as the e-mail: photos are spoken of only when the letter has some (lifts may have none)
        return
    kept = kept[:PHOTOS_SHOWN]
    pdf.set_font(FONT, "", 9)
    taken = ("Photos prises par la caméra du camion lors des collectes" if len(kept) > 1
             else "Photo prise par la caméra du camion lors de la collecte")  # two side by side: plural
    pdf.multi_cell(pdf.epw, 5, f"{taken} (visages et plaques floutés) :", new_x="LMARGIN", new_y="NEXT")
    if pdf.get_y() + height > pdf.h - pdf.b_margin:
        pdf.add_page()
    top, width = pdf.get_y() + 1, (pdf.epw - 4) / 2
    for n, path in enumerate(kept):  # side by side, each fitted in its box
        try:
            pdf.image(str(path), x=pdf.l_margin + n * (width + 4), y=top, w=width, h=height,
                      keep_aspect_ratio=True)
        except Exception as error:  # a damaged photo must not stop the letter
            log.warning("photo %s not printable: %s", path, error)
    pdf.set_y(top + height + 3)


@dataclass(frozen=True, slots=True)
class Stop:
    """One line of the route sheet: an address (or a stretch of street) and what to talk about."""

    place: str
    errors: str
    lifts: str
    action: str
    stream: str  # « Verre, Emballages (bac jaune) »: the bins the errors were found in, most first


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
    pdf.multi_cell(0, 5.5, f"Levées du {period}. Ordre de passage : numéros impairs le long de la rue, puis pairs au "
                   "retour ; cocher une fois la visite faite et noter son résultat.", new_x="LMARGIN", new_y="NEXT")
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
    # The last column is left blank for the ambassadeur's pen: absent, spoken with, notice left.
    with pdf.table(col_widths=(7, 54, 42, 58, 34, 32, 48), text_align="LEFT", line_height=5.5,
                   headings_style=_heading_style()) as table:
        table.row(["✓", "Adresse / tronçon", "Flux", "Erreurs à aborder", "Levées", "Action", "Résultat de la visite"])
        for stop in street.stops:  # the last cell: two lines to write on
            table.row(["☐", stop.place, stop.stream, stop.errors, stop.lifts, stop.action, "\n"])


def _heading_style():  # type: ignore[no-untyped-def]
    from fpdf.fonts import FontFace

    return FontFace(emphasis="BOLD", fill_color=(230, 236, 230))
