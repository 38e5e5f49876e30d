"""Counts agree with their noun on every dashboard page, as on the Rappels page: a message writes
``{n|photo annotée|photos annotées}`` and ``Trivue.t`` picks the form by the page's language's rules
(French 0 and 1 singular); « 0 photo(s) annotée(s) » and "1 message(s)" were left on the pages."""

from __future__ import annotations

import json
import re

import pytest

from server.web.dashboard import TEMPLATES_DIR
from tests.dashboard.conftest import Browser

FORM = re.compile(r"\{(\w+)\|((?:[^|{}]|\{\w+\})*)\|((?:[^|{}]|\{\w+\})*)\}")


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_no_message_writes_a_plural_in_brackets(lang: str) -> None:
    messages = json.loads((TEMPLATES_DIR / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in messages.items() if re.search(r"\w\((s|x|es)\)", v)} == {}
    for key, text in messages.items():  # a form agrees with a number its message is given
        assert all("{" + name + "}" in text for name, *_ in FORM.findall(text)), key


def test_the_pages_choose_the_form_by_the_languages_rules(browser: Browser) -> None:
    said = {}
    browser.login(path="/annotation")
    for lang, switch in (("fr", "English"), ("en", "Français")):
        browser.page.wait_for_selector(f"html[lang={lang}]")
        said[lang] = browser.page.evaluate(
            "() => [0, 1, 2, 1.5].map(n => Trivue.t('ann.progress', {done: n, total: 3}))"
            " .concat([Trivue.t('ann.progress'), Trivue.agree('{n|one|other}', {n: 'deux'}),"
            " Trivue.t('common.n_lifts', {n: Trivue.fmt.num(1)}),"
            " Trivue.t('common.n_lifts', {n: Trivue.fmt.num(1234)})])")
        browser.page.get_by_role("link", name=switch).click()  # a cookie: the other language
    # Without a number the message stays as written; a count the page formatted (« 1 234 ») is read back.
    assert said["fr"] == ["0 photo annotée sur 3", "1 photo annotée sur 3", "2 photos annotées sur 3",
                          "1.5 photo annotée sur 3", "{done} {done|photo annotée|photos annotées} sur {total}",
                          "{n|one|other}", "1 levée", "1\u202f234 levées"]
    assert said["en"][:3] == ["0 of 3 photos labelled", "1 of 3 photos labelled", "2 of 3 photos labelled"]
    assert said["en"][-2:] == ["1 lift", "1,234 lifts"]
