"""Sorting rules: which classes each waste stream accepts, and how bad every other class is.

Rules are data (``rules_fr.yaml``, overridable per deployment). ``judge(stream, counts)`` turns
the items counted in a lift into the errors, the contaminated flag and the score that travel in
the LiftEvent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from base.strict_yaml import describe, read_mapping
from vision.schema import ErrorItem, Severity, Stream
from vision.severity import CATEGORY_PATTERN, SEVERITY_WEIGHTS

log = logging.getLogger(__name__)

DEFAULT_RULES = Path(__file__).with_name("rules_fr.yaml")
COCO_RULES = Path(__file__).with_name("rules_coco.yaml")

# SEVERITY_WEIGHTS (score = sum(count * weight)) and CATEGORY_PATTERN: vision.severity, part of the
# wire contract, whose reader checks a lift's score and categories against them.


class Disposition(StrEnum):
    """What a stream's rules say of a class: accepted, or wrong with a severity (same words)."""

    accepted = "accepted"
    info = Severity.info.value
    error = Severity.error.value
    alert = Severity.alert.value


ACCEPTED = Disposition.accepted


class RulesError(ValueError):
    """Rules that cannot be used; the message names the file, stream or class at fault."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClassRule(_Strict):
    label: str = Field(min_length=1, description="French label shown to managers and households")
    category: str = Field(min_length=1, pattern=CATEGORY_PATTERN, description="Error category in reports")


class StreamRule(_Strict):
    label: str = Field(min_length=1)
    accepted: list[str] = Field(default_factory=list)
    info: list[str] = Field(default_factory=list)
    error: list[str] = Field(default_factory=list)
    alert: list[str] = Field(default_factory=list)

    def dispositions(self) -> dict[str, Disposition]:
        table: dict[str, Disposition] = {}
        for disposition in Disposition:
            for name in getattr(self, disposition.value):
                if name in table:
                    raise ValueError(f"class '{name}' is both {table[name]} and {disposition}")
                table[name] = disposition
        return table


class RulesFile(_Strict):
    version: int = Field(default=1, ge=1, le=1)
    name: str
    base: str | None = None
    classes: dict[str, ClassRule]
    aliases: dict[str, str] = Field(default_factory=dict, description="model class -> rule class")
    ignore: list[str] = Field(default_factory=list, description="model classes that are not waste")
    streams: dict[Stream, StreamRule]

    @model_validator(mode="after")
    def _known_classes(self) -> RulesFile:
        for stream, rule in self.streams.items():
            unknown = sorted(set(rule.dispositions()) - set(self.classes))
            if unknown:
                raise ValueError(f"stream '{stream.value}' names classes not declared in 'classes': {unknown}")
        bad_alias = sorted(t for t in self.aliases.values() if t not in self.classes)
        if bad_alias:
            raise ValueError(f"aliases point to undeclared classes: {bad_alias}")
        return self


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the rules say about one lift."""

    errors: tuple[ErrorItem, ...]
    contaminated: bool
    score: float


def _read_yaml(path: Path) -> dict:
    data = read_mapping(path, RulesError, "rules file")
    base = data.get("base")
    if base:
        merged = _read_yaml(path.parent / base)
        merged.update({k: v for k, v in data.items() if k not in ("base",)})
        return merged
    return data


class SortingRules:
    """Loaded, validated rules; ``judge`` is pure and cheap (called once per lift)."""

    def __init__(self, spec: RulesFile, source: str = "<rules>") -> None:
        self.spec, self.source = spec, source
        self._table = {stream: rule.dispositions() for stream, rule in spec.streams.items()}

    @classmethod
    def load(cls, path: Path | str | None = None) -> SortingRules:
        path = Path(path) if path else DEFAULT_RULES
        data = _read_yaml(path)
        try:
            return cls(RulesFile.model_validate(data), str(path))
        except ValidationError as error:
            raise RulesError(describe(error, str(path), root="rules", limit=400)) from None

    @property
    def streams(self) -> tuple[Stream, ...]:
        return tuple(self.spec.streams)

    def canonical(self, model_class: str) -> str | None:
        """Rule class for a model class name, or None when the class is ignored (not waste)."""
        if model_class in self.spec.ignore:
            return None
        return self.spec.aliases.get(model_class, model_class)

    def label(self, name: str) -> str:
        rule = self.spec.classes.get(name)
        return rule.label if rule else name

    @property
    def categories(self) -> tuple[str, ...]:
        """The error categories of the classes, each once, in the order the classes come in the file."""
        return tuple(dict.fromkeys(rule.category for rule in self.spec.classes.values()))

    def category_label(self, category: str) -> str:
        """A category in the rules' own words, the labels of its classes (``Pile ou batterie, Bouteille
        de gaz``): for a category a deployment added and no translation file names."""
        labels = [rule.label for rule in self.spec.classes.values() if rule.category == category]
        return ", ".join(labels) or category

    def disposition(self, stream: Stream, name: str) -> Disposition | None:
        return self._table.get(stream, {}).get(name)

    def check_model(self, model_classes: Iterable[str], stream: Stream) -> list[str]:
        """Refuse a model with classes the stream does not cover; return rule classes it cannot see.

        A class with no rule would be silently ignored on every lift: better not to start.
        """
        if stream not in self._table:
            raise RulesError(f"{self.source}: no rules for stream '{stream.value}'")
        covered = self._table[stream]
        seen: set[str] = set()
        for model_class in model_classes:
            name = self.canonical(model_class)
            if name is None:
                continue
            if name not in covered:
                raise RulesError(
                    f"{self.source}: model class '{model_class}' has no rule for stream '{stream.value}' "
                    "(add it to accepted/info/error/alert or to ignore)"
                )
            seen.add(name)
        return sorted(set(covered) - seen)

    def classes(self, stream: Stream) -> list[str]:
        """Every rule class the stream has a disposition for, in file order."""
        return list(self._table.get(stream, {}))

    def canonical_counts(self, counts: Mapping[str, int]) -> dict[str, int]:
        """Model-class counts -> rule-class counts (aliases merged, ignored classes dropped)."""
        merged: dict[str, int] = {}
        for model_class, count in counts.items():
            name = self.canonical(model_class)
            if name is not None and count > 0:
                merged[name] = merged.get(name, 0) + int(count)
        return merged

    def judge(self, stream: Stream, counts: Mapping[str, int]) -> Verdict:
        """Errors, contaminated flag and score for the items counted in one lift."""
        table = self._table.get(stream)
        if table is None:
            raise RulesError(f"{self.source}: no rules for stream '{stream.value}'")
        errors: list[ErrorItem] = []
        score = 0.0
        for name, count in sorted(self.canonical_counts(counts).items()):
            disposition = table.get(name)
            if disposition is None:
                raise RulesError(f"{self.source}: class '{name}' has no rule for stream '{stream.value}'")
            if disposition == ACCEPTED:
                continue
            severity = Severity(disposition)
            category = self.spec.classes[name].category
            errors.append(ErrorItem.model_validate(
                {"class": name, "count": count, "category": category, "severity": severity}
            ))
            score += count * SEVERITY_WEIGHTS[severity]
        contaminated = any(e.severity is not Severity.info for e in errors)
        return Verdict(tuple(errors), contaminated, score)
