"""The default rules against the French national guidance (2024-2026), class by class and stream by stream.

Sources: Citeo / ADEME "extension des consignes de tri" (every household packaging in the bac jaune,
emptied, loose, not nested; generalised 1 January 2023), loi AGEC art. L541-21-1 (sorting of food
waste at source generalised on 1 January 2024), Verallia / Citeo "verre" guidance (glass packaging
only: bottles, jars and pots; tableware, drinking glasses, ovenware, window glass and ceramics are
refused at the glass bank), ecosystem / Corepile (WEEE and batteries: take-back in shops and
déchèteries, never in a bin), Cyclamed and DASTRI (medicines and sharps back to pharmacies),
Refashion (textiles to TLC points).
"""

from __future__ import annotations

import pytest

from vision.rules import COCO_RULES, Disposition, SortingRules
from vision.schema import Stream

RULES = SortingRules.load()
BIN_STREAMS = (Stream.recyclables, Stream.glass, Stream.residual, Stream.biowaste, Stream.paper)


def disposition(stream: Stream, name: str) -> Disposition | None:
    return RULES.disposition(stream, name)


@pytest.mark.parametrize("stream", BIN_STREAMS)
@pytest.mark.parametrize("name", ["battery", "gas_cylinder"])
def test_fire_risks_are_an_alert_in_every_bin(stream: Stream, name: str) -> None:
    assert disposition(stream, name) == Disposition.alert


@pytest.mark.parametrize("stream", BIN_STREAMS)
@pytest.mark.parametrize("name", ["electronics", "medical", "textile", "battery", "gas_cylinder"])
def test_take_back_waste_is_accepted_in_no_bin(stream: Stream, name: str) -> None:
    """WEEE, medicines and sharps, textiles, batteries and gas cylinders have their own channels."""
    assert disposition(stream, name) not in (None, Disposition.accepted)


def test_every_household_packaging_goes_in_the_bac_jaune() -> None:
    for name in ("bottle", "can", "carton", "cup", "polystyrene", "film", "paper"):
        assert disposition(Stream.recyclables, name) == Disposition.accepted, name
    for name in ("bag", "glass", "food", "tableware"):
        assert disposition(Stream.recyclables, name) == Disposition.error, name


def test_the_glass_bank_takes_glass_packaging_only() -> None:
    assert [n for n in RULES.classes(Stream.glass) if disposition(Stream.glass, n) == Disposition.accepted] == ["glass"]
    assert disposition(Stream.glass, "tableware") == Disposition.error


def test_food_waste_belongs_in_biowaste_since_2024() -> None:
    """Loi AGEC: sorting food waste at source is general since 1 January 2024. In the residual bin it
    is missed sorting (``info``: reported, not contamination of what that bin collects), no longer
    what the bin is for, and the households' reminder no longer lists it under the residual bin."""
    assert disposition(Stream.biowaste, "food") == Disposition.accepted
    assert disposition(Stream.residual, "food") == Disposition.info
    verdict = RULES.judge(Stream.residual, {"bag": 2, "food": 3})
    assert not verdict.contaminated and verdict.score == 0.0
    assert [(e.class_, e.severity.value) for e in verdict.errors] == [("food", "info")]


def test_tableware_and_glazing_go_with_the_residual_waste() -> None:
    assert disposition(Stream.residual, "tableware") == Disposition.accepted
    assert disposition(Stream.biowaste, "tableware") == Disposition.error


def test_the_coco_fallback_does_not_take_a_wine_glass_or_a_vase_for_glass_packaging() -> None:
    coco = SortingRules.load(COCO_RULES)
    assert coco.canonical_counts({"wine glass": 1, "vase": 2}) == {"tableware": 3}
    verdict = coco.judge(Stream.glass, {"wine glass": 1})
    assert verdict.contaminated and [e.category for e in verdict.errors] == ["vaisselle"]


def test_labels_say_which_material() -> None:
    """A household reads 'bouteille' under the bac jaune and 'verre' under the glass bank: the glass
    bottle is the first error of the bac jaune, so the labels name the material."""
    assert "plastique" in RULES.label("bottle")
    assert "verre" in RULES.label("glass")
