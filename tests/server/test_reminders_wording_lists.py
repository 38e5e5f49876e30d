"""Lists of error categories in English: a category whose own label holds a comma
(« piles, batteries ou bouteilles de gaz ») must not leave the whole list in French."""

from __future__ import annotations

from server.reminders.wording import translate


def test_a_counted_list_with_the_batteries_label_is_translated() -> None:
    french = (
        "3 levées contaminées sur 4 du 06/11/2026 au 05/12/2026 (seuil : 2) ; erreurs : déchets "
        "alimentaires (1), piles, batteries ou bouteilles de gaz (1), sacs fermés (1), vaisselle ou "
        "verre de table (1) ; bac identifié par puce RFID → niveau 1 (information)"
    )
    english = translate(french, "en")
    assert (
        "errors: food waste (1), batteries or gas bottles (1), closed bags (1), tableware or drinking "
        "glasses (1);" in english
    )
    assert "piles" not in english and "sacs" not in english


def test_the_batteries_label_alone_or_last_in_a_plain_list() -> None:
    assert translate("piles, batteries ou bouteilles de gaz (2)", "en") == "batteries or gas bottles (2)"
    assert (
        translate("sacs fermés (3), piles, batteries ou bouteilles de gaz (1)", "en")
        == "closed bags (3), batteries or gas bottles (1)"
    )
    assert translate("verre, piles, batteries ou bouteilles de gaz", "en") == "glass, batteries or gas bottles"


def test_a_name_with_commas_still_passes_unchanged() -> None:
    assert translate("Rue des Lilas, Rennes", "en") == "Rue des Lilas, Rennes"
