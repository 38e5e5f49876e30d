"""Every reminders string exists in French and in English, with the same placeholders, and the
page switched to English shows the English words."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from server.reminders.models import STATUSES
from server.reminders.pages import I18N

TODAY = date(2026, 11, 20)
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
    """Keys in reminders.js, reminders-effect.js and the page template: none falls back to its raw name."""
    root = Path(__file__).resolve().parents[2] / "server"
    script = "".join((root / "static" / name).read_text() for name in ("reminders.js", "reminders-effect.js",
                                                                            "reminders-optouts.js"))
    used = set(re.findall(r"""t\(["'](rem\.[\w.]+)["']""", script))
    used |= set(re.findall(r"t\['(rem\.[\w.]+)'\]", (root / "templates" / "reminders" / "review.html").read_text()))
    used = {k for k in used if not k.endswith(".")}  # prefixes ("rem.status." + status) are checked above
    assert len(used) > 40, used  # the patterns still find the page's keys
    missing = {k for k in used if k not in messages("fr") or k not in messages("en")}
    assert not missing, missing



PLURAL = re.compile(r"\{(\w+)\|((?:[^|{}]|\{\w+\})*)\|((?:[^|{}]|\{\w+\})*)\}")


def test_counts_on_the_page_agree_with_their_noun() -> None:
    """« (0 levées) », « 1 contact(s) ajouté(s) »: every count the page writes with a noun takes the
    language's plural (``{n|levée|levées}``, French 0 and 1 singular), never « (s) »; both languages
    pluralise the same counts."""
    fr, en = messages("fr"), messages("en")
    for lang, words in (("fr", fr), ("en", en)):
        assert not [k for k, v in words.items() if "(s)" in v], lang
    for words in (fr, en):  # a form names a count the message writes (English agrees less often)
        for key, text in words.items():
            assert all("{" + name + "}" in text for name, *_ in PLURAL.findall(text)), key
    root = Path(__file__).resolve().parents[2] / "server" / "static"
    script = "".join((root / name).read_text() for name in ("reminders.js", "reminders-effect.js",
                                                                            "reminders-optouts.js"))
    used = set(re.findall(r"""tn\(["'](rem\.[\w.]+)["']""", script))
    assert used and all(k in fr and k in en for k in used), used

# --- Server-side messages (server.reminders.wording): the catalogue, the CLI and the API -------------

FRENCH_WORDS = re.compile(r"\b(levées?|élément|éléments|campagne|envoyés?|foyers?|aucune?|niveau|seuil|refusée?s?|"
                          r"ajouté|relire|approuvé|courrier|imprimé|échecs?|période|attendu|n'existe|contient|"
                          r"comptées|erreurs|ciblées|témoins|équilibre|méthode|tirages|avant|après|coordonnée|"
                          r"supprimé|anonymisé|ligne|clé|prévu|conclure|envoi|fichier|numéro|rue)\b", re.IGNORECASE)
ENGLISH_WORDS = re.compile(r"\b(the|and|items?|sent|failed|household|street|lifts?|campaign|none|level|retry|"
                           r"approved|rejected|added|updated|refused|line|before|after|file|number)\b")


def sample(spec: str) -> str:
    return "12" if spec == "d" else "Xyz 7"


def test_every_phrase_has_an_english_form_with_the_same_placeholders() -> None:
    import string

    from server.reminders.phrases import FORMS, count, plural
    from server.reminders.wording import PHRASES, translate

    def agreed(text: str, values: dict[str, str], lang: str) -> str:  # {n|levée|levées} for its count
        return FORMS.sub(lambda m: plural(count(values[m[1]]), m[2], m[3], lang), text)

    for french, english in PHRASES:
        fields = {f: s for _, f, s, _ in string.Formatter().parse(french) if f and "|" not in f}
        assert {f for _, f, _, _ in string.Formatter().parse(english) if f and "|" not in f} == set(fields), french
        assert {m[1] for m in FORMS.finditer(french + english)} <= set(fields), french
        literal = "".join(text for text, *_ in string.Formatter().parse(FORMS.sub(r"\2", french)))
        # A pattern that is all placeholder would eat any text; "a : b" is the one joiner (a file and its problem).
        assert len(literal.strip()) >= 3 or french == "{source} : {error}", french
        values = {f: sample(s) for f, s in fields.items()}
        written = agreed(french, values, "fr").replace(":d}", "}").format(**values)
        assert translate(written, "en") == agreed(english, values, "en").format(**values), french


def test_words_and_numbers_inside_messages_are_translated_too() -> None:
    from server.reminders.wording import translate

    assert translate("élément 3 (bin:BAC-0042) : aucune coordonnée", "en") == \
        "item 3 (bin:BAC-0042): no contact details"
    assert translate("rue propre : 0 levée contaminée sur 24 (0,0 %)", "en") == \
        "clean street: 0 contaminated lifts out of 24 (0.0 %)"
    assert translate("rue Hoche", "en") == "rue Hoche"  # a name, not "rue {id}"
    # the mail server's own words stay as they are
    assert translate("SMTP relay:25 : (421, b'busy')", "en") == "SMTP relay:25: (421, b'busy')"
    assert translate("la campagne 9 n'existe pas", "fr") == "la campagne 9 n'existe pas"


def _city_env(tmp_path: Path, monkeypatch: Any, lang: str) -> Any:
    from tests.server.reminders_city import engine_for, seed_city

    with engine_for("sqlite", tmp_path, False) as engine:
        city = seed_city(engine, tmp_path, TODAY)
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", city.settings.db_url)
    monkeypatch.setenv("TRIVUE_HOUSEHOLD_LEVEL", "true")
    monkeypatch.setenv("TRIVUE_LANG", lang)
    return city


BAD = 17  # the runs from here on are refusals


def _walk_cli(tmp_path: Path, capsys: Any) -> tuple[str, list[tuple[tuple[str, ...], int, str]]]:
    """Every ``trivue reminders`` command, its normal path then its refusals; what they printed."""
    from trivue.cli import main

    contacts = tmp_path / "contacts.csv"
    contacts.write_bytes("clé;nom;courriel;téléphone;adresse;étage\nbin:BAC-0042;M. Durand;;06 98 76 54 32;\n"
                         "maison;X;;;\nbin:B2;Y;pas-un-courriel;;\n".encode("cp1252"))
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"")
    runs: list[tuple[tuple[str, ...], int, str]] = []
    window = ("--since", "2026-10-22", "--until", TODAY.isoformat())
    for args in (("plan", *window), ("create", "--until", TODAY.isoformat(), "--name", "N"),
                 ("items", "--campaign", "1"), ("review", "1", "--reject", "false_detection"),
                 ("review", "1", "--approve"), ("review", "3", "--approve"), ("review", "4", "--approve"),
                 ("send", "--campaign", "1"), ("contacts", str(contacts)), ("items", "--campaign", "1"),
                 ("retry", "--campaign", "1"), ("report", "--campaign", "1"), ("opt-out", "bin:BAC-0042"),
                 ("access", "bin:BAC-0042", "--out", str(tmp_path / "acces.txt")), ("erase", "bin:BAC-0042"),
                 ("false-detections", str(tmp_path / "fd.csv")),
                 ("plan", *window),  # now with everything set aside, and why
                 ("items", "--campaign", "999"), ("send", "--campaign", "999"), ("retry", "--campaign", "999"),
                 ("report", "--campaign", "999"), ("review", "999999", "--approve"),
                 ("plan", "--since", "2026-11-10", "--until", "2026-11-01"),
                 ("create", "--until", "2020-01-01"), ("contacts", str(bad)), ("contacts", str(tmp_path / "no.csv")),
                 ("opt-out", "maison-12"), ("erase", "bin:INCONNU"),
                 ("print", "--campaign", "1", "--out", str(tmp_path / "courriers.pdf")),  # no letter was sent
                 ("print", "--campaign", "999", "--out", str(tmp_path / "courriers.pdf"))):
        code = main(["reminders", *args])
        captured = capsys.readouterr()
        runs.append((args, code, captured.out + captured.err))
    return "\n".join(text for *_, text in runs), runs


def _data(text: str, city: Any) -> str:
    for label in (*[a.label for a in city.addresses.values()], "Rue Hoche, Rennes", "Rue Saint-Georges, Rennes",
                  "Rue Kléber, Rennes"):
        text = text.replace(label, " ")
    text = re.sub(r"\b(bin|address|street|erased):[\w-]+", " ", text)
    return re.sub(r"\S+\.(pdf|csv)\b|`[^`]*`", " ", text)  # file names and commands are the same in both


@pytest.mark.parametrize("lang", ["", "en"])
def test_the_cli_speaks_english_by_default(tmp_path: Path, monkeypatch: Any, capsys: Any, lang: str) -> None:
    """English as every other command (README "Commands"), and with TRIVUE_LANG=en: every command's output
    and refusals, one line and exit code 2 on bad input."""
    city = _city_env(tmp_path, monkeypatch, lang)
    text, runs = _walk_cli(tmp_path, capsys)
    assert "campaign 999 does not exist" in text and "item 999999 does not exist" in text
    assert "is after --until" in text and "line 3: key 'maison'" in text and "invalid e-mail 'pas-un-courriel'" in text
    assert "columns ignored: étage" in text
    assert "no data for household bin:INCONNU" in text and "Too few lifts to conclude" in text
    assert "campaign 1: no letter to print" in text
    assert all(code == 2 and len(out.strip().splitlines()) == 1 for args, code, out in runs[BAD:]), runs[BAD:]
    assert "Traceback" not in text
    left = sorted({m.group(0) for m in FRENCH_WORDS.finditer(_data(text, city))})
    assert not left, (left, [line for line in text.splitlines() if FRENCH_WORDS.search(_data(line, city))])


def test_the_cli_speaks_french_when_asked(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    city = _city_env(tmp_path, monkeypatch, "fr")
    text, runs = _walk_cli(tmp_path, capsys)
    assert "la campagne 999 n'existe pas" in text and "ligne 3 : clé 'maison'" in text
    assert all(code == 2 for _, code, _ in runs[BAD:])
    left = sorted({m.group(0) for m in ENGLISH_WORDS.finditer(_data(text, city))})
    assert not left, (left, text)


def test_an_unknown_language_is_refused_in_one_line(monkeypatch: Any, capsys: Any, tmp_path: Path) -> None:
    from trivue.cli import main

    monkeypatch.chdir(tmp_path)
    for name in ("TRIVUE_DATA_DIR", "TRIVUE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRIVUE_LANG", "de")
    assert main(["reminders", "items", "--campaign", "1"]) == 2
    err = capsys.readouterr().err
    assert "TRIVUE_LANG='de'" in err and "expected fr or en" in err and len(err.strip().splitlines()) == 1
    # Refused before anything is opened: it made and migrated ./trivue-data/trivue.db first.
    assert list(tmp_path.iterdir()) == []


def test_the_api_answers_an_english_page_in_english(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.web.auth import create_token
    from tests.server.reminders_city import engine_for, seed_city

    with engine_for("sqlite", tmp_path, False) as engine:
        city = seed_city(engine, tmp_path, TODAY)
        with city.sessions() as session:
            token = create_token(session, "manager", "test-manager")
            session.commit()
        client = TestClient(create_app(city.settings, engine, start_ingest=False))
        auth = {"Authorization": f"Bearer {token}"}
        french = client.get("/api/reminders/campaigns/999", headers=auth).json()["detail"]
        client.cookies.set("trivue_lang", "en")
        english = client.get("/api/reminders/campaigns/999", headers=auth)
        plan = client.get("/api/reminders/plan", params={"since": "2026-10-22", "until": TODAY.isoformat()},
                          headers=auth).json()
        invalid = client.post("/api/reminders/campaigns", json={"since": "2026-11-10", "until": "2026-11-01"},
                              headers=auth).json()
    assert french == "la campagne 999 n'existe pas"
    assert english.status_code == 404 and english.json()["detail"] == "campaign 999 does not exist"
    assert plan["targets"] and all("contaminated lift" in t["reason"] for t in plan["targets"]), plan["targets"]
    assert "the end 2026-11-01 is before the start 2026-11-10" in invalid["detail"][0]["msg"]
