"""The reminders' messages in the dashboard's two languages, French first.

Messages are written in French where they arise: that text is the record (the audit log, an
item's stored failure reason or targeting reason, the CLI with ``TRIVUE_LANG=fr``). The way out
translates them: an English page's API answers (``translated_json``, ``TranslatedRoute``) and the
CLI, English unless ``TRIVUE_LANG=fr`` (``server.reminders.command_line``). As with gettext, the French sentence is
the key: each French pattern below, with its ``{placeholders}``, has its English form. A
placeholder's value is translated in turn (the reason inside a failure line), and a French
decimal comma becomes a point. Text that no pattern knows (an SMTP server's own reply, a street
name, a campaign's name) passes unchanged; ``tests/server/test_reminders_i18n.py`` makes the
messages the code really produces and checks that none stays French.

``{name:d}`` in a French pattern matches digits only (``rue {id:d}`` must not eat "rue Hoche").
"""

from __future__ import annotations

import json
import os
import re
import string
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from server.reminders.phrases import FORMS, OFF_EN, PHRASES, agree
from server.web.dashboard import request_lang
from server.web.privacy import OFF_MESSAGE as OFF_FR

LANGUAGES = ("fr", "en")
LANG_ENV = "TRIVUE_LANG"


# Single words: statuses, channels, kinds, level actions, error categories (the letters' words).
WORDS: dict[str, str] = {
    "à relire": "to review", "approuvé": "approved", "refusé": "rejected", "envoi en cours": "sending",
    "envoyé": "sent", "nouvel essai prévu": "retry scheduled", "échec": "failed", "écarté": "set aside",
    "foyer": "household", "rue": "street", "remerciement": "thank-you",
    "courriel": "e-mail", "courrier": "postal letter", "courrier postal": "postal letter",
    "avis imprimé": "printed notice",
    "information": "information", "rappel": "reminder", "visite": "visit",
    "sacs fermés": "closed bags", "emballages": "packaging", "papiers": "paper", "verre": "glass",
    "vaisselle ou verre de table": "tableware or drinking glasses",
    "déchets alimentaires": "food waste", "textiles": "textiles", "appareils électriques": "electrical appliances",
    "piles, batteries ou bouteilles de gaz": "batteries or gas bottles",
    "médicaments ou déchets de soins": "medicines or medical waste", "autres erreurs": "other errors",
    "envoi des rappels": "sending the reminders",
    "en attente": "waiting", "aucun": "none",
    "hier": "yesterday", "repris après interruption": "resumed after an interruption",
    "bac identifié par puce RFID": "bin identified by its RFID tag",
    "opposition du foyer": "the household opted out",
    "données du foyer effacées": "the household's data were erased",
    "fichier du courrier introuvable": "letter file not found",
    "fichier du courrier illisible": "letter file unreadable",
    "impression des courriers": "printing the letters",
    "ordre : commune, code postal, rue, numéro": "order: commune, postcode, street, number",
    "commune, code postal, rue, numéro": "commune, postcode, street, number",
    "données effacées à la demande du foyer": "data erased at the household's request",
    "aucune coordonnée": "no contact details",
    "guillemet non fermé ou mal placé": "unclosed or misplaced quote",
    "texte": "text",
    "fichier ou dossier introuvable": "no such file or folder", "accès refusé": "permission denied",
    "c'est un dossier, pas un fichier": "this is a folder, not a file",
    "un élément du chemin n'est pas un dossier": "a part of the path is not a folder", "disque plein": "disk full",
    "système de fichiers en lecture seule": "read-only file system",
    OFF_FR: OFF_EN,
}

# Keys of the API's JSON whose strings are messages (not names, notes or keys people typed).
MESSAGE_FIELDS = frozenset({"reason", "send_detail", "text", "label", "action", "errors", "failed", "retrying",
                            "skipped", "recovered", "deferred", "waiting", "detail", "msg", "left_out", "order",
                            "letters_missing"})
_DECIMAL = re.compile(r"^([+−-]?\d+),(\d+)( %)?$")
_LIST_SEPARATORS = (" ; ", ", ")


def _compile(french: str) -> re.Pattern[str]:
    parts = []
    for literal, field, spec, _ in string.Formatter().parse(french):
        parts.append(re.escape(literal))
        form = FORMS.fullmatch(f"{{{field}}}") if field is not None else None
        if form:  # either form of {n|levée|levées}
            parts.append(f"(?:{re.escape(form[2])}|{re.escape(form[3])})")
        elif field is not None:
            parts.append(f"(?P<{field}>[+−-]?\\d+)" if spec == "d" else f"(?P<{field}>.+?)")
    return re.compile("".join(parts), re.DOTALL)


@cache
def _patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    # The most specific first: more literal text, then fewer placeholders.
    def literal(french: str) -> int:
        return sum(len(text) for text, *_ in string.Formatter().parse(FORMS.sub(r"\2", french)))  # a form is text

    ordered = sorted(PHRASES, key=lambda pair: -literal(pair[0]))
    return tuple((_compile(fr), en) for fr, en in ordered)


_CATEGORY_WORDS = frozenset({"sacs fermés", "emballages", "papiers", "verre", "vaisselle ou verre de table",
                             "déchets alimentaires", "textiles", "appareils électriques",
                             "piles, batteries ou bouteilles de gaz", "médicaments ou déchets de soins",
                             "autres erreurs"})
_COUNTED = re.compile(r"^(?P<word>.+) \((?P<n>\d+)\)$")


def translate(text: str, lang: str) -> str:
    """``text`` (French) in ``lang``; unchanged when ``lang`` is French or no pattern knows it."""
    if lang == "fr" or not text:
        return text
    return _translate(text, lang, depth=0) or text


def _translate(text: str, lang: str, depth: int) -> str | None:
    """The translation, or None when nothing in ``text`` is a known message."""
    if text in WORDS:
        return WORDS[text]
    decimal = _DECIMAL.match(text)
    if decimal:
        return f"{decimal[1]}.{decimal[2]}{decimal[3] or ''}"
    counted = _COUNTED.match(text)
    if counted and counted["word"] in _CATEGORY_WORDS:
        return f"{WORDS[counted['word']]} ({counted['n']})"
    if depth > 6:
        return None
    for pattern, english in _patterns():
        found = pattern.fullmatch(text)
        if found:
            values = {k: _translate(v, lang, depth + 1) or v for k, v in found.groupdict().items()}
            return agree(english, values).format(**values)
    for separator in _LIST_SEPARATORS:  # a list of known words ("verre (2), sacs fermés (1)")
        if separator in text:
            parts = _list_items(text, separator)
            done = [_translate(p, lang, depth + 1) for p in parts]
            if all(d is not None for d in done):
                return separator.lstrip().join(d for d in done if d is not None)
    return None


def _list_items(text: str, separator: str) -> list[str]:
    """``text`` cut at ``separator``, a word that holds it (« piles, batteries ou … ») kept whole."""
    glued = [(word, word.replace(separator, "\0")) for word in WORDS if separator in word]
    for word, glue in glued:
        text = text.replace(word, glue)
    return [part.replace("\0", separator) for part in text.split(separator)]


def translated_json(value: Any, lang: str, here: bool = False) -> Any:
    """A JSON answer with its message fields (``MESSAGE_FIELDS``) in ``lang``."""
    if lang == "fr":
        return value
    if isinstance(value, dict):
        return {k: translated_json(v, lang, k in MESSAGE_FIELDS) for k, v in value.items()}
    if isinstance(value, list):
        return [translated_json(v, lang, here) for v in value]
    if isinstance(value, str) and here:
        return translate(value, lang)
    return value


def cli_language(environ: Mapping[str, str] = os.environ) -> str:
    """The CLI's language: ``TRIVUE_LANG`` (fr or en), English when unset as every ``trivue`` command
    (README "Commands"); ValueError when unknown, in English: no language is known to say it in."""
    value = environ.get(LANG_ENV, "").strip().lower() or "en"
    if value not in LANGUAGES:
        raise ValueError(f"{LANG_ENV}={value!r}: unknown language, expected fr or en")
    return value


class TranslatedRoute(APIRoute):
    """A reminders API route that answers an English page in English: error details and message fields.

    The language is the dashboard's (its cookie); API clients without it get French, the record.
    """

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            lang = request_lang(request)  # the dashboard's language cookie
            try:
                response: Response = await handler(request)
            except HTTPException as error:
                if lang == "fr" or not isinstance(error.detail, str):
                    raise
                raise HTTPException(error.status_code, translate(error.detail, lang), error.headers) from None
            except RequestValidationError as error:
                if lang == "fr":
                    raise
                raise RequestValidationError(translated_json(list(error.errors()), lang)) from None
            # Routes with a response model answer a plain Response holding JSON bytes, not a JSONResponse.
            if lang == "fr" or not response.headers.get("content-type", "").startswith("application/json"):
                return response
            content = translated_json(json.loads(bytes(response.body)), lang)
            headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
            return JSONResponse(content, status_code=response.status_code, headers=headers,
                                background=response.background)

        return route
