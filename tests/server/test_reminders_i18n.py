"""Every reminders string exists in French and in English, with the same placeholders, and the
page switched to English shows the English words."""

from __future__ import annotations

import json
import re
from pathlib import Path

from server.reminders.models import STATUSES
from server.reminders.pages import I18N

PLACEHOLDER = re.compile(r"\{(\w+)\}")


def messages(lang: str) -> dict[str, str]:
    return json.loads((I18N / f"{lang}.json").read_text(encoding="utf-8"))


def test_french_and_english_have_the_same_strings() -> None:
    fr, en = messages("fr"), messages("en")
    assert set(fr) == set(en), set(fr) ^ set(en)
    for key in fr:
        assert fr[key].strip() and en[key].strip(), key
        assert set(PLACEHOLDER.findall(fr[key])) == set(PLACEHOLDER.findall(en[key])), key
    translated = [k for k in fr if fr[k] != en[k] and len(fr[k]) > 8]
    assert len(translated) > 0.9 * len([k for k in fr if len(fr[k]) > 8])  # not copies of the French


def test_every_status_and_channel_has_words_in_both_languages() -> None:
    for lang in ("fr", "en"):
        words = messages(lang)
        assert all(f"rem.status.{s}" in words for s in STATUSES), lang
        assert all(f"rem.channel.{c}" in words for c in ("email", "sms", "letter", "print")), lang


def test_every_key_the_page_uses_exists() -> None:
    """Keys in reminders.js and the page template: none falls back to its raw name."""
    root = Path(__file__).resolve().parents[2] / "server"
    used = set(re.findall(r"""t\(["'](rem\.[\w.]+)["']""", (root / "static" / "reminders.js").read_text()))
    used |= set(re.findall(r"t\['(rem\.[\w.]+)'\]", (root / "templates" / "reminders" / "review.html").read_text()))
    used = {k for k in used if not k.endswith(".")}  # prefixes ("rem.status." + status) are checked above
    missing = {k for k in used if k not in messages("fr") or k not in messages("en")}
    assert not missing, missing
