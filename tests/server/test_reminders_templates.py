"""Templates the collectivité edits: its own copies win, a broken one is named, every category renders."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from server.reminders.config import RemindersConfig, load_targeting
from server.reminders.dispatch import Dispatcher
from server.reminders.letters import letter_pdf
from server.reminders.templates import CATEGORY_LABELS, MessageTemplates, TemplateData, TemplateError, plain_text
from tests.server.edited_rules import edited_rules
from tests.server.test_reminders_send import pdf_text
from vision.rules import SortingRules

SORTING_RULES = SortingRules.load()  # the packaged French rules, the server's default
MESSAGE = TemplateData("household", 1, "Aux occupants, 1 rue A", "Rue A, Orléans", 6, 2, {"verre": 2},
                  date(2026, 10, 1), date(2026, 10, 30), today=date(2026, 11, 2))


def test_own_templates_are_looked_up_first(tmp_path: Path) -> None:
    (tmp_path / "errors").mkdir()
    own = "## Le verre, c'est dans la borne verte\nÀ Orléans : 450 bornes.\n"
    (tmp_path / "errors" / "verre.txt.j2").write_text(own)
    rules = tmp_path / "rules.yaml"
    rules.write_text("templates_dir: .\ncontact: {organisation: Orléans Métropole}\n")
    templates = MessageTemplates(load_targeting(rules), SORTING_RULES)
    text = templates.render("letter", MESSAGE)
    assert "450 bornes" in text and "1er octobre 2026" in text
    assert "Orléans Métropole" in templates.render("sms", MESSAGE)  # the letter's sender block is the layout's
    assert "borne à verre la plus proche" not in text  # the packaged paragraph was replaced
    assert "450 bornes" in pdf_text(letter_pdf(text))


def test_a_broken_template_is_named(tmp_path: Path) -> None:
    (tmp_path / "sms.txt.j2").write_text("{{ contact.organisation }} {{ nope }}")
    with pytest.raises(TemplateError, match=r"sms\.txt\.j2 : UndefinedError.*nope"):
        MessageTemplates(RemindersConfig(templates_dir=tmp_path), SORTING_RULES).render("sms", MESSAGE)
    with pytest.raises(TemplateError, match="modèle 'fax' inconnu"):
        MessageTemplates(RemindersConfig(), SORTING_RULES).render("fax", MESSAGE)


@pytest.mark.parametrize("category", [*CATEGORY_LABELS, "nouvelle_categorie"])
@pytest.mark.parametrize("level", [1, 2, 3])
def test_every_category_and_level_renders(category: str, level: int) -> None:
    templates = MessageTemplates(RemindersConfig(), SORTING_RULES)
    message = TemplateData("household", level, "Aux occupants", "Rue A", 4, 2, {category: 2}, date(2026, 10, 1),
                      date(2026, 10, 30))
    letter = templates.render("letter", message)
    assert "Ce que nous avons vu" in letter and "À faire" in letter and "Une question ?" in letter
    assert ("ambassadeur du tri" in letter) == (level == 3)
    assert "refus" not in letter.lower()  # never a threat to stop collecting the bin
    body = plain_text(templates.render("email", message).partition("\n")[2])
    assert "#" not in body and "[photo]" not in body
    assert len(templates.render("sms", message)) < 320


def test_the_first_letter_counts_collections_not_errors() -> None:
    """3 contaminated lifts holding glass twice, a bag and food: the letter said « nos équipes ont relevé
    3 erreurs de tri » above four errors, when 3 counts the collections (as the e-mail says, « 3 levées »)."""
    message = TemplateData("household", 1, "Aux occupants", "Rue A", 9, 3, {"verre": 2, "sac_ferme": 1,
                                                                            "biodechet": 1},
                           date(2026, 10, 1), date(2026, 10, 30))
    letter = " ".join(MessageTemplates(RemindersConfig(), SORTING_RULES).render("letter", message).split())
    assert "3 erreurs" not in letter
    assert "erreurs de tri dans le bac présenté à cette adresse à 3 reprises" in letter


def consignes(text: str) -> dict[str, str]:
    """The letter's "what goes in each bin" list: bin label -> what it accepts."""
    listed = text.partition("## Les consignes de tri de votre commune")[2]
    return dict(line[2:].rstrip(".").split(" : ", 1) for line in listed.splitlines() if line.startswith("- "))


def test_the_consignes_are_the_servers_rules_file_not_the_packaged_one(tmp_path: Path) -> None:
    """A collectivité that hands out compostable bags and whose paper bank takes paper only tells
    its households so: the letters print the rules file the server is configured with."""
    packaged = consignes(MessageTemplates(RemindersConfig(), SORTING_RULES).render("letter", MESSAGE))
    assert packaged["Biodéchets"] == "déchets alimentaires"
    assert packaged["Papiers"] == "papier, brique ou carton"  # the default is unchanged
    own = SortingRules.load(edited_rules(tmp_path))
    listed = consignes(MessageTemplates(RemindersConfig(), own).render("letter", MESSAGE))
    assert listed["Biodéchets"] == "déchets alimentaires, sac compostable"
    assert listed["Papiers"] == "papier"
    assert list(listed) == list(packaged)  # every bin, in the file's order
    # The sender too: the dispatcher's letters and previews use the rules it is handed.
    sender = Dispatcher(None, RemindersConfig(), tmp_path, tmp_path, "test", sorting_rules=own)  # type: ignore[arg-type]
    assert sender.templates.rules == MessageTemplates(RemindersConfig(), own).rules


def test_a_category_the_rules_added_is_said_in_its_classes_words(tmp_path: Path) -> None:
    """A category of the deployment's own rules (compostable bags in the wrong bin) headed the letter's
    paragraph with its code, "Sac compostable" being what households know it by."""
    import dataclasses

    from tests.server.edited_rules import COMPOSTABLE_CATEGORY

    path = edited_rules(tmp_path)  # its category renamed to a code that reads as no words: "bio_k"
    path.write_text(path.read_text(encoding="utf-8").replace(COMPOSTABLE_CATEGORY, "bio_k"), encoding="utf-8")
    own = SortingRules.load(path)
    message = dataclasses.replace(MESSAGE, categories={"bio_k": 2})
    letter = MessageTemplates(RemindersConfig(), own).render("letter", message)
    assert "## Sac compostable" in letter and "bio k" not in letter.lower() and "bio_k" not in letter, letter
    assert "- sac compostable (2 fois)" in MessageTemplates(RemindersConfig(), own).render("email", message)


def test_a_stream_the_collectivite_does_not_collect_is_not_in_the_letters(tmp_path: Path) -> None:
    # No separate paper collection here: the copy has no paper stream, so no "Papiers" bin is promised.
    own = SortingRules.load(edited_rules(tmp_path, drop_streams=("paper",)))
    listed = consignes(MessageTemplates(RemindersConfig(), own).render("street", MESSAGE))
    assert "Papiers" not in listed and listed["Emballages (bac jaune)"].startswith("bouteille ou flacon en plastique")
    # household.streams chooses whom to target, not which bins exist: every bin stays in the letter.
    targeted = RemindersConfig.model_validate({"household": {"streams": ["recyclables"]}})
    assert list(consignes(MessageTemplates(targeted, own).render("letter", MESSAGE))) == list(listed)


def test_a_server_with_its_own_rules_file_prints_them_in_the_letter_preview(make_settings: Any, run_server: Any,
                                                                           tmp_path: Path) -> None:
    settings = make_settings(ingest_enabled=False, sorting_rules=edited_rules(tmp_path / "regles"))
    with run_server(settings) as server:
        manager = server.token("manager")
        for template in ("letter", "street"):
            preview = server.client.get("/api/reminders/templates/preview", headers=manager,
                                        params={"template": template, "format": "text"})
            assert preview.status_code == 200, preview.text
            listed = consignes(preview.text)
            assert listed["Biodéchets"] == "déchets alimentaires, sac compostable", template
            assert listed["Papiers"] == "papier", template


def test_the_letter_preview_is_addressed_in_the_collectivites_own_commune(make_settings: Any,
                                                                          run_server: Any) -> None:
    from server.streets.models import Address, Street

    with run_server(make_settings(ingest_enabled=False)) as server:
        manager = server.token("manager")
        blank = server.client.get("/api/reminders/templates/preview", headers=manager, params={"template": "street"})
        assert blank.status_code == 200 and "Orléans" not in blank.text  # no streets yet: no city made up
        with server.sessions() as session:
            for index, commune in enumerate(("Cap-d'Ail", "Beausoleil", "Beausoleil")):
                session.add(Street(name=f"Avenue {index}", name_key=f"avenue {index}", commune=commune,
                                   geometry="{}", length_m=10.0))
            session.add(Address(source_key="06012_0001_00001", number="1", label="1 Avenue 1 06240 Beausoleil",
                                street_name="Avenue 1", street_key="avenue 1", postcode="06240",
                                commune="Beausoleil", lat=43.74, lon=7.42))
            session.commit()
        for template in ("street", "letter"):
            text = server.client.get("/api/reminders/templates/preview", headers=manager,
                                     params={"template": template}).text
            assert "Orléans" not in text and "45000" not in text, template
        street = server.client.get("/api/reminders/templates/preview", headers=manager,
                                   params={"template": "street"}).text
        assert "Aux habitants : Avenue 1, Beausoleil" in street  # the commune with the most streets


def test_the_data_notice_speaks_of_what_identified_the_household() -> None:
    """The letter's data-protection section said « l'identifiant de votre bac » to a household found
    by its address (key ``address:...``, no bin tag read): it now says what was actually used."""
    from server.reminders.models import Campaign, Item

    class NoRows:  # the dispatcher asks for the street's and the address's names: none here
        def get(self, *_: Any) -> None:
            return None

        def scalar(self, *_: Any) -> None:
            return None

    sender = Dispatcher(NoRows(), RemindersConfig(), Path("."), Path("."), "test",  # type: ignore[arg-type]
                        sorting_rules=SORTING_RULES)
    campaign = Campaign(name="Octobre", since=date(2026, 10, 1), until=date(2026, 10, 31))
    letters = {}
    for key, bin_id, address_id in (("bin:BAC-0042", "BAC-0042", None), ("address:12", None, 12)):
        item = Item(id=1, campaign_id=1, kind="household", level=1, target_key=key, bin_id=bin_id,
                    address_id=address_id, lifts=4, contaminated=2, categories={"verre": 2}, reason="")
        letters[key] = sender.templates.render("letter", sender.message(campaign, item))
    assert "l'identifiant de votre bac" in letters["bin:BAC-0042"]
    assert "identifiant de votre bac" not in letters["address:12"] and "votre adresse" in letters["address:12"]
