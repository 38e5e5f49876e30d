"""Templates the collectivité edits: its own copies win, a broken one is named, every category renders."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from server.reminders.config import RemindersConfig, load_targeting
from server.reminders.letters import letter_pdf
from server.reminders.templates import CATEGORY_LABELS, MessageTemplates, TemplateData, TemplateError, plain_text
from tests.server.test_reminders_send import pdf_text

MESSAGE = TemplateData("household", 1, "Aux occupants, 1 rue A", "Rue A, Orléans", 6, 2, {"verre": 2},
                  date(2026, 10, 1), date(2026, 10, 30), today=date(2026, 11, 2))


def test_own_templates_are_looked_up_first(tmp_path: Path) -> None:
    (tmp_path / "errors").mkdir()
    own = "## Le verre, c'est dans la borne verte\nÀ Orléans : 450 bornes.\n"
    (tmp_path / "errors" / "verre.txt.j2").write_text(own)
    rules = tmp_path / "rules.yaml"
    rules.write_text("templates_dir: .\ncontact: {organisation: Orléans Métropole}\n")
    templates = MessageTemplates(load_targeting(rules))
    text = templates.render("letter", MESSAGE)
    assert "450 bornes" in text and "1er octobre 2026" in text
    assert "Orléans Métropole" in templates.render("sms", MESSAGE)  # the letter's sender block is the layout's
    assert "borne à verre la plus proche" not in text  # the packaged paragraph was replaced
    assert "450 bornes" in pdf_text(letter_pdf(text))


def test_a_broken_template_is_named(tmp_path: Path) -> None:
    (tmp_path / "sms.txt.j2").write_text("{{ contact.organisation }} {{ nope }}")
    with pytest.raises(TemplateError, match=r"sms\.txt\.j2 : UndefinedError.*nope"):
        MessageTemplates(RemindersConfig(templates_dir=tmp_path)).render("sms", MESSAGE)
    with pytest.raises(TemplateError, match="modèle 'fax' inconnu"):
        MessageTemplates(RemindersConfig()).render("fax", MESSAGE)


@pytest.mark.parametrize("category", [*CATEGORY_LABELS, "nouvelle_categorie"])
@pytest.mark.parametrize("level", [1, 2, 3])
def test_every_category_and_level_renders(category: str, level: int) -> None:
    templates = MessageTemplates(RemindersConfig())
    message = TemplateData("household", level, "Aux occupants", "Rue A", 4, 2, {category: 2}, date(2026, 10, 1),
                      date(2026, 10, 30))
    letter = templates.render("letter", message)
    assert "Ce que nous avons vu" in letter and "À faire" in letter and "Une question ?" in letter
    assert ("ambassadeur du tri" in letter) == (level == 3)
    assert "refus" not in letter.lower()  # never a threat to stop collecting the bin
    body = plain_text(templates.render("email", message).partition("\n")[2])
    assert "#" not in body and "[photo]" not in body
    assert len(templates.render("sms", message)) < 320
