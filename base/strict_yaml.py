"""The one strict YAML reader and validation-error formatter behind every settings and rules file.

Every file is a mapping at the top level, read as UTF-8; every failure is one line that names the
file, then each bad field with the value it had, so that an operator fixes it without a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from base.credentials import mask_credentials, mask_url

MESSAGE_LIMIT = 600  # one line in a terminal or a journal, even for a file with many mistakes


class _UniqueKeys(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping: PyYAML keeps the last one
    silently, so ``port: 8000`` further down a file quietly overrode the ``port`` an operator read."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *defaults``: its keys may be overridden
                continue
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            if isinstance(key, str | int | float | bool) and key in seen:
                lines = f"line {seen[key].line + 1} and line {key_node.start_mark.line + 1}"
                raise yaml.constructor.ConstructorError(None, None, f"{key!r} given twice ({lines})")
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def read_mapping(path: Path, error: type[Exception], kind: str = "configuration file") -> dict[str, Any]:
    """The YAML mapping in ``path`` (an empty file is ``{}``); ``error`` raised with a one-line message."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeys)  # a SafeLoader
    except FileNotFoundError:
        raise error(f"{path}: {kind} not found") from None
    except (OSError, UnicodeDecodeError) as failure:
        raise error(f"{path}: cannot read ({failure})") from None
    except yaml.YAMLError as failure:
        raise error(f"{path}: not valid YAML ({' '.join(str(failure).split())})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def blamed(error: ValidationError, origin: Callable[[tuple[int | str, ...]], str | list[str]]) -> str:
    """Where an error's bad values were set, each place once: ``origin(loc)`` names the place that set
    the field at ``loc`` (the file, the command line), or the environment variables that did (a list,
    gathered into one ``environment (...)``). A value from TRIVUE_PORT=abc or a flag was blamed on the
    YAML file, and the installer searched the file for a value that was not there."""
    places: list[str] = []
    variables: list[str] = []
    for item in error.errors():
        found = origin(item["loc"])
        if isinstance(found, list):
            variables += found
        else:
            places.append(found)
    if variables:
        places.append(f"environment ({', '.join(sorted(set(variables)))})")
    return ", ".join(dict.fromkeys(places))


def describe(error: ValidationError, source: str, *, root: str = "settings",
             wording: Mapping[str, str] | None = None, limit: int = MESSAGE_LIMIT) -> str:
    """Every bad field with its value on one line: ``source: port: Input should be ... (got 'abc')``.

    ``wording`` replaces pydantic's message for some error types (``{"extra_forbidden": "unknown
    setting"}``) and drops its "Value error, " prefix, for readers who never met pydantic; the
    value is left out when it is a whole mapping (a rule across fields), which would only repeat
    the file.
    """
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or root
        if wording and item["type"] in wording:
            parts.append(f"{where}: {wording[item['type']]}")
            continue
        # Pydantic's own words for developers' files; plain words (no "Value error, ") for installers.
        message = item["msg"] if wording is None else item["msg"].removeprefix("Value error, ")
        value = item.get("input")
        if isinstance(value, str):  # before repr(): a quote in a password would end the match
            value = mask_url(value)
        # A check that names the value it got ("needs low < high, got [0.5, 0.25]") is not repeated;
        # one that says "got" without it (pydantic's "got a number with a fractional part") keeps it.
        named = repr(value) in message.partition(", got ")[2]
        got = f" (got {value!r})" if "input" in item and not isinstance(value, dict) and not named else ""
        parts.append(f"{where}: {message}{got}")
    # A broker or database URL's password is a value like any other here: masked, as in the logs.
    return mask_credentials(f"{source}: {'; '.join(parts)}")[:limit]
