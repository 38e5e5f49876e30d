"""The sorting rules and the words people read stay one: every error category of the shipped rules
has its dashboard filter and labels, its reminders' paragraph and its English; every class keeps in
the dashboard the label the rules give it; the consignes households receive follow the rules."""

from __future__ import annotations

from datetime import date

import pytest
import yaml

from server.reminders.config import RemindersConfig
from server.reminders.templates import CATEGORY_LABELS, PACKAGED, MessageTemplates, TemplateData
from server.reminders.wording import WORDS
from server.web.dashboard import messages
from vision.rules import COCO_RULES, DEFAULT_RULES, SortingRules

RULES = {path.name: SortingRules.load(path).spec for path in (DEFAULT_RULES, COCO_RULES)}
RULES_FR = SortingRules.load(DEFAULT_RULES)
SHIPPED_CATEGORIES = sorted({rule.category for spec in RULES.values() for rule in spec.classes.values()})


@pytest.mark.parametrize("category", SHIPPED_CATEGORIES)
def test_every_category_has_its_words(category: str) -> None:
    # The dashboard's error-type filter offers the categories of the server's rules file; each one
    # shipped has its own words in both languages (one a deployment adds shows its classes' labels).
    for lang in ("fr", "en"):
        assert messages(lang).get(f"cat.{category}"), (lang, category)
    assert category in CATEGORY_LABELS  # the reminders' "errors seen" line
    assert CATEGORY_LABELS[category] in WORDS  # ... and its English on the English pages
    assert (PACKAGED / "errors" / f"{category}.txt.j2").is_file()  # its own paragraph, not "autre"


@pytest.mark.parametrize("name", sorted(RULES["rules_fr.yaml"].classes))
def test_the_dashboard_names_each_class_as_the_rules_do(name: str) -> None:
    assert messages("fr")[f"class.{name}"] == RULES["rules_fr.yaml"].classes[name].label
    assert messages("en").get(f"class.{name}")


def test_the_consignes_follow_the_rules() -> None:
    message = TemplateData("street", 1, "Aux habitants", "Rue A", 10, 3, {"biodechet": 2}, date(2026, 10, 1),
                           date(2026, 10, 30))
    letter = MessageTemplates(RemindersConfig(), RULES_FR).render("street", message)
    consignes = letter.partition("## Les consignes de tri de votre commune")[2]
    residual = next(line for line in consignes.splitlines() if line.startswith("- Ordures ménagères"))
    assert "alimentaires" not in residual  # food waste goes to the biowaste since 2024
    assert "bouteille ou flacon en plastique" in consignes and "bouteille, pot ou bocal en verre" in consignes


def _without_biowaste(tmp_path) -> SortingRules:
    spec = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    del spec["streams"]["biowaste"]  # a collectivité that collects no biowaste (composting at home)
    path = tmp_path / "regles.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return SortingRules.load(path)


@pytest.mark.parametrize("template", ["street", "letter"])
def test_no_letter_promises_a_biowaste_bin_the_rules_do_not_collect(tmp_path, template: str) -> None:
    message = TemplateData("street", 1, "Aux habitants", "Rue A", 10, 3, {"biodechet": 2, "sac_ferme": 1},
                           date(2026, 10, 1), date(2026, 10, 30))
    local = MessageTemplates(RemindersConfig(), _without_biowaste(tmp_path)).render(template, message)
    assert "bac à biodéchets" not in local and "composteur" in local
    national = MessageTemplates(RemindersConfig(), RULES_FR).render(template, message)
    assert national.count("bac à biodéchets") == 2  # the food paragraph and the closed bags'
