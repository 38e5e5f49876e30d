"""``trivue --help`` all the way down: every command, option and positional says what it is for, and
the commands speak the CLI's one language (English; README "Commands")."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

import pytest

from trivue.cli import build_parser


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ("trivue",)
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Each parser of the tree with its command path, nested subcommands included."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                if child.prog.split()[-1] == name:  # an alias points at the same parser
                    yield from walk(child, (*path, name))


def test_the_walk_reaches_nested_commands() -> None:
    paths = {" ".join(path) for path, _ in walk(build_parser())}
    assert {"trivue reminders print", "trivue users add", "trivue streets import", "trivue models rollout"} <= paths
    assert len(paths) > 50, paths


def test_every_option_and_positional_has_help() -> None:
    missing = []
    for path, parser in walk(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                # each subcommand's one-line help shows in its parent's COMMAND list
                missing += [f"{' '.join(path)} {c.dest}" for c in action._choices_actions if not c.help]
            elif not action.help:  # argparse.SUPPRESS (a hidden option) is a help too
                missing.append(f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("path", [" ".join(p[1:]) for p, _ in walk(build_parser())])
def test_every_help_page_prints(path: str, capsys: Any) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([*path.split(), "--help"])
    assert done.value.code == 0
    assert "usage: trivue" in capsys.readouterr().out


def test_reminders_help_says_its_language(capsys: Any) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["reminders", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "TRIVUE_LANG=fr" in out and "French" in out


def test_reminders_bad_date_is_english_by_default(monkeypatch: Any, capsys: Any) -> None:
    monkeypatch.delenv("TRIVUE_LANG", raising=False)
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["reminders", "plan", "--since", "12/11/2026"])
    assert done.value.code == 2
    assert "'12/11/2026' is not a date (YYYY-MM-DD)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "prog"),
    [
        (["demo", "--bogus"], "trivue demo"),
        (["reminders", "plan", "--bogus"], "trivue reminders plan"),
        (["schema", "extra"], "trivue schema"),
    ],
)
def test_an_unknown_option_is_blamed_on_its_command(args: list[str], prog: str, capsys: Any) -> None:
    """argparse reported it at the top ("trivue: error: unrecognized arguments"), with the usage of
    ``trivue`` itself: nothing said which command's --help to read."""
    from trivue.cli import main

    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert (
        f"usage: {prog} " in err
        and err.strip().splitlines()[-1] == f"{prog}: error: unrecognized arguments: {args[-1]}"
    ), err
