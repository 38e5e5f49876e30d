"""Every reason a message can be a dead letter for has a French and an English label and a line on
what to do (``dead.reason.<code>`` and ``dead.help.<code>`` in ``templates/i18n``): the *Qualité des
données* page shows them, the code beside them (the CLI's and the API's filters take the code).

The reasons are those of ``DEAD_LETTER_REASONS``, checked here against the codes the ingest's source
actually refuses messages with, so that a new ``Refused("...")`` without its label fails here
instead of showing a raw code to a manager.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from server.ingest.inbox import DEAD_LETTER_REASONS
from server.ingest.letters import HELD_REASONS
from server.web.dashboard import TEMPLATES_DIR

SERVER = Path(__file__).resolve().parents[2] / "server"
# Calls whose argument at this position is a dead letter's reason.
REASON_ARGUMENT = {"Refused": 0, "EvidenceError": 0, "refuse": 2}


def _strings(node: ast.expr) -> set[str] | None:
    """The string literals ``node`` can be, None when it is not made of literals only."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):  # "invalid_json" if ... else "schema"
        body, orelse = _strings(node.body), _strings(node.orelse)
        return None if body is None or orelse is None else body | orelse
    return None


def refused_reasons() -> set[str]:
    """Every reason the server's source gives a dead letter: literal arguments of the calls above,
    and literals assigned to a variable named ``reason`` (passed on as ``Refused(reason, ...)``)."""
    found: set[str] = set()
    for path in sorted(SERVER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
                at = REASON_ARGUMENT.get(name or "")
                if at is not None and len(node.args) > at:
                    found |= _strings(node.args[at]) or set()
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "reason"
                                                      for t in node.targets):
                found |= _strings(node.value) or set()
    return found


def messages(lang: str) -> dict[str, str]:
    return json.loads((TEMPLATES_DIR / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))


def test_the_listed_reasons_are_those_the_ingest_refuses_with() -> None:
    found = refused_reasons()
    assert {"invalid_json", "unknown_stream", "store_error", "bad_jpeg", "expired"} <= found  # the scan works
    assert found == set(DEAD_LETTER_REASONS)
    assert HELD_REASONS.issubset(DEAD_LETTER_REASONS)


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_every_reason_has_a_label_and_what_to_do_and_none_is_stale(lang: str) -> None:
    words = messages(lang)
    missing = [f"dead.{kind}.{code}" for code in DEAD_LETTER_REASONS for kind in ("reason", "help")
               if not words.get(f"dead.{kind}.{code}", "").strip()]
    assert missing == [], f"{lang}.json lacks {missing}"
    stale = [key for key in words if key.startswith(("dead.reason.", "dead.help."))
             and key.split(".", 2)[2] not in DEAD_LETTER_REASONS]
    assert stale == [], f"{lang}.json labels reasons the code no longer has: {stale}"
    # A label is short (a table cell), its help one line.
    assert [c for c in DEAD_LETTER_REASONS if len(words[f"dead.reason.{c}"]) > 30] == []
    assert [c for c in DEAD_LETTER_REASONS if "\n" in words[f"dead.help.{c}"]] == []
