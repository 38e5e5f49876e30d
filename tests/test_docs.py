"""The README and docs/ against the code: commands, settings, routes, paths and links they cite.

What can be checked mechanically is: every ``trivue ...`` command line quoted in the docs parses
with the real parser (subcommands and ``--options`` spelled as the code spells them), every
server setting is in docs/api.md's table and nothing else is, every ``METHOD /api/...`` the docs
name is a route of the app and every route of the app is named somewhere, every cited source or
test path exists, and every relative link (anchors included) resolves. Each check also counts what
it saw, so that a change in the docs' format cannot make it pass on nothing.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from trivue.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Paths the docs cite as history (a module taken out again), not as part of today's tree.
HISTORICAL = {"server/ingest/receiver.py"}


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def _command_lines(text: str) -> list[str]:
    """``trivue ...`` in inline code, and command lines in fenced blocks (continuations joined)."""
    found = [m.group(1) for m in re.finditer(r"`(trivue [^`]*)`", text)]
    in_block, pending = False, ""
    for raw in text.splitlines():
        if raw.strip().startswith("```"):
            in_block, pending = not in_block, ""
            continue
        if not in_block:
            continue
        line = (pending + " " + raw.strip()) if pending else raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        match = re.search(r"(?:^|[\s;&|(])((?:\.venv/bin/)?trivue .*)", line)
        if match:
            found.append(match.group(1))
    return found


def _check_command(root: argparse.ArgumentParser, line: str) -> str | None:
    """None when ``line`` parses as far as the docs spell it, else what is wrong."""
    if "error:" in line:  # a quoted error message, not a command
        return None
    line = line.split(" #")[0]
    for separator in ("&&", "|", ";", " > ", " 2>"):
        line = line.split(separator)[0]
    try:
        tokens = shlex.split(line)
    except ValueError:
        tokens = line.split()
    tokens = tokens[1:]
    parser, path = root, ["trivue"]
    while tokens and tokens[0] in _subparsers(parser):
        path.append(tokens[0])
        parser = _subparsers(parser)[tokens[0]]
        tokens = tokens[1:]
    word = tokens[0] if tokens else ""
    placeholder = (not word or word.startswith("-") or "/" in word or "…" in word or word.isupper()
                   or word.startswith(("[", "<", "...")))
    if _subparsers(parser) and not placeholder:
        return f"{' '.join(path)} has no subcommand {word!r}"
    known = _options(parser) | _options(root)
    for token in tokens:
        if token.startswith("--"):
            option = token.split("=")[0].rstrip(").,]")
            if option not in known:
                return f"{' '.join(path)} has no option {option}"
    return None


def test_every_quoted_command_parses_with_the_real_parser() -> None:
    root = build_parser()
    wrong, seen = [], 0
    for doc in DOCS:
        for line in _command_lines(_text(doc)):
            seen += 1
            problem = _check_command(root, line)
            if problem:
                wrong.append(f"{doc.relative_to(ROOT)}: {line!r}: {problem}")
    assert seen > 200, seen
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_a_misspelt_command() -> None:
    root = build_parser()
    assert _check_command(root, "trivue users enable camille") is None
    assert _check_command(root, "trivue users enabel camille") is not None
    assert _check_command(root, "trivue dead-letters replay --truk benne-01") is not None


def test_every_subcommand_is_documented() -> None:
    text = "\n".join(_text(doc) for doc in DOCS)
    missing = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        for name, sub in _subparsers(parser).items():
            full = " ".join([*path, name])
            if not re.search(re.escape(full) + r"(?![\w-])", text):
                missing.append(full)
            walk(sub, [*path, name])

    walk(build_parser(), ["trivue"])
    assert not missing, missing


def test_the_settings_table_is_the_server_settings() -> None:
    from server.config import ServerSettings

    table = re.search(r"\| setting \| default \| meaning \|\n\|[-|]+\|\n((?:\|.*\n)+)", _text(ROOT / "docs/api.md"))
    assert table, "docs/api.md has no settings table"
    named = {name for row in table.group(1).splitlines() for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert named == set(ServerSettings.model_fields), (
        f"in the table only: {sorted(named - set(ServerSettings.model_fields))}; "
        f"missing: {sorted(set(ServerSettings.model_fields) - named)}")


def _expand(path: str) -> list[str]:
    """``/api/opendata/streets.{csv,geojson}`` is two routes; ``{sha256}`` and ``{sha}`` are one."""
    choice = re.search(r"\{(\w+(?:,\w+)+)\}", path)
    paths = [path[:choice.start()] + c + path[choice.end():] for c in choice.group(1).split(",")] if choice else [path]
    return [re.sub(r"\{\w+\}", "{}", p) for p in paths]


@pytest.fixture(scope="module")
def openapi_routes(tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str]]:
    from server.app import create_app
    from server.config import load_settings

    settings = load_settings(env={}, data_dir=tmp_path_factory.mktemp("docs-data"), ingest_enabled=False)
    spec = create_app(settings, start_ingest=False).openapi()
    return {(method.upper(), _expand(path)[0]) for path, operations in spec["paths"].items()
            for method in operations}


def test_every_documented_route_exists(openapi_routes: set[tuple[str, str]]) -> None:
    documented = set()
    for doc in DOCS:
        for method, path in re.findall(r"\b(GET|POST|PUT|DELETE|PATCH) (/(?:api|metrics)[^\s`?|)]*)", _text(doc)):
            documented.update((method, p.rstrip(".,;:")) for p in _expand(path))
    assert len(documented) > 40, len(documented)
    assert not documented - openapi_routes, sorted(documented - openapi_routes)


def test_every_route_is_documented(openapi_routes: set[tuple[str, str]]) -> None:
    text = "\n".join(_text(doc) for doc in DOCS)
    documented = {(method, p) for method, path in re.findall(r"\b(GET|POST|PUT|DELETE|PATCH) (/[^\s`?|)]*)", text)
                  for p in _expand(path.rstrip(".,;:"))}
    assert len(openapi_routes) > 40, len(openapi_routes)
    assert not openapi_routes - documented, sorted(openapi_routes - documented)


def test_cited_paths_exist() -> None:
    roots = "tests|server|edge|vision|training|trivue|bench|deploy|docs|base|models|reminders"
    pattern = re.compile(rf"(?<![\w./-])((?:{roots})/[\w./-]*\.(?:py|md|yaml|json|sh|conf|ini|toml))(?![\w/])")
    cited, missing = set(), []
    for doc in DOCS:
        for path in pattern.findall(_text(doc)):
            cited.add(path)
            if path not in HISTORICAL and not (ROOT / path).exists():
                missing.append(f"{doc.relative_to(ROOT)}: {path}")
    assert {"tests/security/test_accounts.py", "server/web/schemas.py"} <= cited
    assert len(cited) > 100, len(cited)
    assert not missing, "\n".join(missing)


def _anchors(doc: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", _text(doc), flags=re.S)
    anchors, seen = set(re.findall(r'<a (?:name|id)="([^"]+)"', text)), {}
    for heading in re.findall(r"^#{1,6} (.*)$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_links_and_anchors_resolve() -> None:
    broken, links = [], 0
    for doc in DOCS:
        text = re.sub(r"```.*?```", "", _text(doc), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            links += 1
            path, _, anchor = target.partition("#")
            file = (doc.parent / path) if path else doc
            if not file.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such heading)")
    assert links > 50, links
    assert not broken, "\n".join(broken)


def test_quick_start_is_make_demo_and_make_test() -> None:
    quick = re.search(r"## Quick start\n\n```sh\n(.*?)```", _text(ROOT / "README.md"), flags=re.S)
    assert quick and quick.group(1).split("\n")[:-1] == ["make demo", "make test"]
