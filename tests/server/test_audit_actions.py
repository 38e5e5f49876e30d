"""Every action the server can write to the audit trail has a French and an English label
(``audit.action.<code>`` in ``templates/i18n``): the *Journal d'audit* shows the label, with the code
beside it, and offers the labelled actions in its filter.

The actions are collected from the source, so a new ``audit(...)`` call without its label fails
here instead of showing a raw code to an admin: each call's action is a string literal, a module
constant (``ACCESS_ACTION``) or an f-string this test knows how to expand. Anything else fails,
asking for its expansion below, rather than being skipped.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path

from server.labels.store import ACTIONS as LABEL_ACTIONS
from server.reminders.models import APPROVED, REJECTED
from server.web.dashboard import TEMPLATES_DIR

SERVER = Path(__file__).resolve().parents[2] / "server"
# The f-string actions, by their source text: every value their placeholder can take there.
EXPANSIONS: dict[str, tuple[str, ...]] = {
    # server.reminders.campaigns.review: an item is approved or rejected, never anything else.
    "f'reminders.item.{item.status}'": (f"reminders.item.{APPROVED}", f"reminders.item.{REJECTED}"),
    # server.labels.store.decide: every decision (undo is audited by _undo as labels.undo).
    "f'labels.{decision.action}'": tuple(f"labels.{action}" for action in LABEL_ACTIONS),
}


def _constants(tree: ast.Module) -> dict[str, str]:
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def _action_argument(call: ast.Call) -> ast.expr | None:
    if len(call.args) >= 3:
        return call.args[2]
    return next((k.value for k in call.keywords if k.arg == "action"), None)


def _values(action: ast.expr | None, constants: dict[str, str]) -> tuple[str, ...] | None:
    """The strings ``action`` can be, or None when this test cannot tell."""
    if isinstance(action, ast.Constant) and isinstance(action.value, str):
        return (action.value,)
    if isinstance(action, ast.Name) and action.id in constants:
        return (constants[action.id],)
    if isinstance(action, ast.JoinedStr):
        return EXPANSIONS.get(ast.unparse(action))
    if isinstance(action, ast.IfExp):  # "user.disable" if disabled else "user.enable"
        either = _values(action.body, constants), _values(action.orelse, constants)
        return None if None in either else either[0] + either[1]  # type: ignore[operator]
    return None


def _audited(path: Path, problems: list[str]) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    constants = _constants(tree)
    yield from (value for name, value in constants.items() if name.endswith("_ACTION"))
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "audit"):
            continue
        action = _action_argument(node)
        values = _values(action, constants)
        if values is None:
            where = f"{path.relative_to(SERVER.parent)}:{node.lineno}"
            problems.append(f"{where}: action {ast.unparse(action) if action else None!r} (add it to EXPANSIONS)")
        else:
            yield from values


def server_actions() -> set[str]:
    problems: list[str] = []
    found = {
        action
        for path in sorted(SERVER.rglob("*.py"))
        if path.name != "audit.py"
        for action in _audited(path, problems)
    }
    assert problems == [], problems
    return found


def labels(lang: str) -> dict[str, str]:
    messages = json.loads((TEMPLATES_DIR / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
    return {
        key.removeprefix("audit.action."): text for key, text in messages.items() if key.startswith("audit.action.")
    }


def test_the_scan_finds_the_actions_of_every_part_of_the_server() -> None:
    actions = server_actions()
    assert len(actions) >= 60, sorted(actions)
    assert {
        "login",
        "login.failed",
        "login.locked",
        "evidence.read",
        "truck.config",
        "truck.model",
        "reminders.household.access",
        "reminders.route_sheet.export",
        "reminders.item.approved",
        "labels.accept",
        "labels.undo",
        "model.halt",
        "retention.purge",
        "user.enable",
    } <= actions


def test_every_audited_action_has_a_french_and_an_english_label_and_no_label_is_stale() -> None:
    actions = server_actions()
    for lang in ("fr", "en"):
        known = labels(lang)
        assert sorted(actions - known.keys()) == [], f"{lang}: actions without a label"
        assert sorted(known.keys() - actions) == [], f"{lang}: labels of actions the server never writes"
        assert all(text.strip() and text != code for code, text in known.items()), lang
    # Two actions under one label could not be told apart in the journal's filter.
    for lang in ("fr", "en"):
        texts = list(labels(lang).values())
        assert len(texts) == len(set(texts)), lang
