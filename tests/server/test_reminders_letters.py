"""Letters a household would expect: La Poste's address block in a DL window, the sender's block,
« Madame, » / « Monsieur, » as French letters greet, no page 2 holding only the closing lines.
Rendered to PNG (pypdfium2) and checked where the ink is; the image is kept for a person to look
at (``TRIVUE_SCREENSHOT_DIR``)."""

from __future__ import annotations

import io
import os
from datetime import date
from pathlib import Path

import pytest
from pypdf import PdfReader

from server.reminders.config import RemindersConfig
from server.reminders.letters import WINDOW_W_MM, WINDOW_X_MM, WINDOW_Y_MM, LetterHeader, letter_pdf
from server.reminders.postal import AddressError, address_block, greeting, last_line
from server.reminders.templates import MessageTemplates, TemplateData
from tests.server.reminders_city import RULES, photo_bytes

DPI = 100
MM = DPI / 25.4


def test_address_block_follows_la_poste() -> None:
    block = address_block("Mme Martin", "Résidence Les Tilleuls, Bâtiment B, 12 avenue de la République, "
                                        "45140 Saint-Jean-de-la-Ruelle")
    assert block == ["Mme Martin", "Résidence Les Tilleuls", "Bâtiment B", "12 AVENUE DE LA REPUBLIQUE",
                     "45140 SAINT JEAN DE LA RUELLE"]
    assert last_line("45000", "Orléans.") == "45000 ORLEANS"
    long = address_block("Aux occupants", "Appartement 12, escalier C, 3e étage, Résidence du Parc des Expositions "
                                          "et du Grand Jardin, 7 rue de Bourgogne, 45000 Orléans")
    assert len(long) <= 6 and all(len(line) <= 38 for line in long)
    assert long[0] == "Aux occupants" and long[-2] == "7 RUE DE BOURGOGNE" and long[-1] == "45000 ORLEANS"
    with pytest.raises(AddressError, match="code postal"):
        address_block("X", "rue sans commune")


def test_greeting_follows_french_letter_convention() -> None:
    """« Madame, » / « Monsieur, » alone: never the name (it was « Madame Léa Martin, »)."""
    assert greeting("Mme Martin") == "Madame," and greeting("M. Durand") == "Monsieur,"
    assert greeting("Mme Léa Martin") == "Madame," and greeting("Monsieur  Paul Durand") == "Monsieur,"
    assert greeting("Madame Martin") == "Madame,"
    assert greeting(None) == "Madame, Monsieur," and greeting("Aux occupants") == "Madame, Monsieur,"
    assert greeting("Léa Martin") == "Madame, Monsieur," and greeting("Mme et M. Martin") == "Madame, Monsieur,"


def test_a_letter_without_photos_says_nothing_of_photos(tmp_path: Path) -> None:
    """Lifts that never had a photo: no « photos effacées après quelques semaines » (as the e-mail)."""
    for photos in (0, 1):
        text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(
            household_letter(tmp_path, {"verre": 2}, photos=photos))).pages).split())
        body = text[:text.index("Vos données personnelles")]  # the privacy notice describes the processing
        assert ("photo" in body.lower()) == bool(photos), (photos, body)
        assert "effacées" not in body


def test_the_photo_caption_agrees_with_the_photos_printed(tmp_path: Path) -> None:
    """Two photos side by side under « Photo prise … lors de la collecte » (singular)."""
    for photos, caption in ((1, "Photo prise par la caméra du camion lors de la collecte"),
                            (2, "Photos prises par la caméra du camion lors des collectes")):
        text = " ".join(PdfReader(io.BytesIO(household_letter(tmp_path, {"verre": 2}, photos=photos)))
                        .pages[0].extract_text().split())
        assert caption in text, (photos, text)


def render(pdf: bytes) -> list:  # type: ignore[type-arg]
    import pypdfium2

    document = pypdfium2.PdfDocument(pdf)
    return [document[n].render(scale=DPI / 72).to_pil().convert("L") for n in range(len(document))]


def ink(image, box_mm: tuple[float, float, float, float]) -> float:  # type: ignore[no-untyped-def]
    """Share of dark pixels in a box given in millimetres (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = (round(v * MM) for v in box_mm)
    pixels = list(image.crop((x0, y0, x1, y1)).getdata())
    return sum(p < 128 for p in pixels) / len(pixels)


def household_letter(tmp_path: Path, categories: dict[str, int], photos: int = 2) -> bytes:
    config = RemindersConfig(contact={"organisation": "Orléans Métropole — Service déchets",
                                      "postal_address": ["5 place du 6 juin 1944", "45000 ORLEANS"],
                                      "phone": "02 38 79 22 22", "website": "www.orleans-metropole.fr"})
    message = TemplateData("household", 1, "Mme Martin", "Rue de Bourgogne, Orléans", 9, 3, categories,
                      date(2026, 10, 22), date(2026, 11, 20), today=date(2026, 11, 21), name="Mme Martin",
                      address="12 rue de Bourgogne, 45000 Orléans", reference="R1-7")
    text = MessageTemplates(config, RULES).render("letter", message)
    files = []
    for n in range(photos):
        path = tmp_path / f"photo-{n}.jpg"
        path.write_bytes(photo_bytes(n))
        files.append(path)
    header = LetterHeader(("Orléans Métropole — Service déchets", "5 place du 6 juin 1944", "45000 ORLEANS"),
                          tuple(address_block("Mme Martin", message.address)), "Le 21 novembre 2026")
    return letter_pdf(text, files, "Courrier", header)


def test_letter_for_a_window_envelope(tmp_path: Path) -> None:
    pdf = household_letter(tmp_path, {"verre": 2, "sac_ferme": 1})
    pages = render(pdf)
    shots = Path(os.environ.get("TRIVUE_SCREENSHOT_DIR") or tmp_path)
    pages[0].save(shots / "courrier-page-1.png")
    first = pages[0]
    # The address block shows through the DL window (100 x 45 mm at 20 mm from the right, 50 mm down)...
    assert ink(first, (WINDOW_X_MM, WINDOW_Y_MM, WINDOW_X_MM + WINDOW_W_MM, WINDOW_Y_MM + 20)) > 0.01
    # ... and nothing else does: the window minus the address lines and the date is blank.
    assert ink(first, (100, WINDOW_Y_MM - 4, WINDOW_X_MM - 1, 95)) == 0
    assert ink(first, (20, 15, 100, 30)) > 0.005  # the sender's block, top left
    text = " ".join(PdfReader(io.BytesIO(pdf)).pages[0].extract_text().split())
    assert "Mme Martin 12 RUE DE BOURGOGNE 45000 ORLEANS" in text
    assert "Madame, " in text and "Madame Martin" not in text
    assert "Orléans Métropole — Service déchets 5 place du 6 juin 1944" in text


def test_no_page_two_with_only_the_closing_lines(tmp_path: Path) -> None:
    """However many error paragraphs, a last page is never just the signature."""
    pages_of = []
    for categories in ({"verre": 1}, {"verre": 2, "sac_ferme": 1}, {"verre": 2, "sac_ferme": 1, "biodechet": 1},
                       {"verre": 1, "sac_ferme": 1, "biodechet": 1, "textile": 1, "deee": 1},
                       {"verre": 1, "sac_ferme": 1, "biodechet": 1, "textile": 1, "deee": 1, "dangereux": 1,
                        "papier": 1}):
        pdf = household_letter(tmp_path, categories)
        pages = PdfReader(io.BytesIO(pdf)).pages
        pages_of.append(len(pages))
        if len(pages) > 1:
            last = " ".join(pages[-1].extract_text().split())
            assert len(last) > 400, (sorted(categories), last)  # more than "Une question ? ... Merci"
    assert pages_of[-1] > 1, pages_of  # seven error paragraphs do not fit one page: the check ran


def test_fonts_are_parsed_once_not_for_every_letter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 5,000-household campaign makes 5,000 letters: fpdf2 parsed DejaVu (6,000 glyphs) twice for
    each layout tried, up to three a letter, about 0.6 s a letter, hours for the campaign."""
    from fpdf import fonts

    parsed = []
    parse = fonts.TTFFont.__init__

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        parsed.append(args[1])
        parse(self, *args, **kwargs)

    monkeypatch.setattr(fonts.TTFFont, "__init__", counting)
    letters = [household_letter(tmp_path, {"verre": 2, "sac_ferme": n}, photos=1) for n in range(1, 4)]
    assert len(parsed) <= 2, parsed  # regular and bold, once per process (0 when an earlier test did it)
    for pdf in letters:  # each letter still embeds its own, complete font subset
        text = " ".join(PdfReader(io.BytesIO(pdf)).pages[0].extract_text().split())
        assert "Madame, " in text and "Orléans Métropole — Service déchets" in text
        assert ink(render(pdf)[0], (WINDOW_X_MM, WINDOW_Y_MM, WINDOW_X_MM + WINDOW_W_MM, WINDOW_Y_MM + 20)) > 0.01
