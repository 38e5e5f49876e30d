"""Counts written by the server agree with their noun (« 0 levée », « 2 levées »; "1 lift", "0 lifts"),
as the Rappels page's ``{n|levée|levées}`` does: no « levée(s) » left in what residents or managers read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.reminders.phrases import plural
from server.reminders.wording import translate

ROOT = Path(__file__).resolve().parents[2]
# Where the server and the trivue command write the text residents and managers read.
TEXT_SOURCES = [*sorted((ROOT / "server" / "reminders").rglob("*.py")),
                *sorted((ROOT / "server" / "templates" / "reminders").rglob("*.j2")),
                ROOT / "trivue" / "demo" / "effect.py", ROOT / "trivue" / "sim" / "run.py"]


def test_no_parenthesised_plural_is_left_in_the_server_s_text() -> None:
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for path in TEXT_SOURCES
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(r"\w\(s\)", line) and not line.lstrip().startswith("#")]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(("n", "fr", "en"), [(0, "levée", "lifts"), (1, "levée", "lift"), (2, "levées", "lifts"),
                                             (1250, "levées", "lifts")])
def test_plural_follows_each_language_s_rule(n: int, fr: str, en: str) -> None:
    assert plural(n, "levée", "levées") == fr
    assert plural(n, "lift", "lifts", "en") == en


@pytest.mark.parametrize(("n", "fr", "en"), [
    (0, "rue propre : 0 levée contaminée sur 4 (0,0 %)", "clean street: 0 contaminated lifts out of 4 (0.0 %)"),
    (1, "rue propre : 1 levée contaminée sur 4 (25,0 %)", "clean street: 1 contaminated lift out of 4 (25.0 %)"),
    (2, "rue propre : 2 levées contaminées sur 4 (50,0 %)", "clean street: 2 contaminated lifts out of 4 (50.0 %)"),
])
def test_a_counted_sentence_agrees_in_french_and_in_english(n: int, fr: str, en: str) -> None:
    from types import SimpleNamespace

    from server.reminders.targets import thanks_reason

    assert thanks_reason(4, n, (0, 0), SimpleNamespace(min_lifts=1, max_rate=1.0)) == fr
    assert translate(fr, "en") == en


def test_the_effect_verdict_counts_its_lifts_properly() -> None:
    text = "Trop peu de levées pour conclure : 1 levée dans le plus petit groupe et période, il en faut au moins " \
           "30 (ou pas de rue comparable)."
    assert translate(text, "en").startswith("Too few lifts to conclude: 1 lift in the smallest group")
    assert translate(text.replace(": 1 levée", ": 0 levée"), "en").startswith("Too few lifts to conclude: 0 lifts ")
