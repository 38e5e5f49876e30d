"""The house's rules, enforced: import-linter's contracts (pyproject.toml), imports inside functions
seen by them, no find_spec for shipped modules, no module over 400 lines."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

from base.paths import REPO_ROOT

PACKAGES = ("base", "vision", "edge", "training", "server", "trivue")
MAX_LINES = 400


def modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            if "versions" in parts or parts[-1] == "env":  # Alembic scripts, run by Alembic from their folders
                continue
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def function_imports(path: Path) -> Iterator[tuple[tuple[str, ...], int]]:
    """``(candidates, line)`` of every project import inside a function (or a method): the module
    imported, or for ``from package import name`` either the package or its submodule ``name``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found = [(node.module, *(f"{node.module}.{alias.name}" for alias in node.names))]
            elif isinstance(node, ast.Import):
                found = [(alias.name,) for alias in node.names]
            else:
                continue
            yield from ((names, node.lineno) for names in found if names[0].split(".")[0] in PACKAGES)


def test_import_linter_contracts_are_kept() -> None:
    assert lint_imports(config_filename=str(REPO_ROOT / "pyproject.toml"), no_cache=True) == 0


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def test_contracts_see_imports_inside_functions(graph: grimp.ImportGraph) -> None:
    # A lazy import must not hide a dependency from the contracts: every one is an edge of the
    # graph that import-linter checks (grimp reads function bodies as well as module tops).
    found = [(module, imported, line) for module, path in modules() for imported, line in function_imports(path)]
    assert found, "no import inside a function at all: this test would prove nothing"
    known = graph.modules
    unseen = [f"{module}:{line} -> {names[0]}" for module, names, line in found
              if not any(name in known and graph.direct_import_exists(importer=module, imported=name)
                         for name in names)]
    assert unseen == []


def test_server_imports_inside_functions_only_in_command_modules() -> None:
    # Commands import their handlers' modules lazily so that `trivue --help` loads no FastAPI;
    # everywhere else in server/ a dependency is declared at the top, where a reader sees it.
    lazy = [f"{module}:{line} -> {names[0]}" for module, path in modules() if module.startswith("server.")
            and module.rsplit(".", 1)[-1] not in ("cli", "command_line") for names, line in function_imports(path)]
    assert lazy == []


@pytest.mark.parametrize(("module", "path"), list(modules()), ids=lambda v: v if isinstance(v, str) else "")
def test_module_is_small_and_asks_for_no_shipped_module(module: str, path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_LINES, f"{module}: {len(text.splitlines())} lines"
    assert "find_spec(" not in text, f"{module}: every project module ships; import it"
