"""The one reader behind the YAML files that steer training: the mapping (``training.datasets``),
the field map (``training.field``) and the comparison gates (``training.compare``).

Read through ``base.strict_yaml`` like every settings file, so a key written twice, a file that is
not UTF-8 or not a mapping is refused in one line naming the file (``yaml.safe_load`` kept a
repeated key's last value without a word). A misspelt key is named with the keys that are known
where it stands: the fields it leaves missing are its consequence, not the mistake to fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError

from base.strict_yaml import describe, read_mapping

MESSAGE_LIMIT = 400  # one line in a terminal, even for a file with many mistakes

Spec = TypeVar("Spec", bound=BaseModel)


def load_spec(path: Path, model: type[Spec], error: type[Exception], kind: str) -> Spec:
    """The file at ``path`` as a ``model``; ``error`` raised with one line naming the file (``kind``
    says what was looked for when the file is absent)."""
    path = Path(path)
    data = read_mapping(path, error, kind)
    try:
        return model.model_validate(data)
    except ValidationError as failure:
        raise error(problem(failure, path, model)) from None


def problem(failure: ValidationError, path: Path, model: type[BaseModel]) -> str:
    """Unknown keys alone when there are some, each with the keys known beside it; otherwise every
    bad field with its value."""
    unknown = []
    for item in failure.errors():
        if item["type"] == "extra_forbidden":
            where = ".".join(str(step) for step in item["loc"])
            unknown.append(f"unknown key '{where}' (known: {', '.join(known_keys(model, item['loc'][:-1]))})")
    if unknown:
        return f"{path}: {'; '.join(unknown)}"[:MESSAGE_LIMIT]
    return describe(failure, str(path), root="(top level)", limit=MESSAGE_LIMIT)


def known_keys(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """The fields of the model that stands at ``loc`` in ``model`` (a dict's key steps over it:
    ``sources.coco`` is a ``SourceSpec``); none when ``loc`` leads to no model."""
    current: type[BaseModel] = model
    steps = list(loc)
    while steps:
        field = current.model_fields.get(str(steps.pop(0)))
        if field is None:
            return []
        annotation = field.annotation
        if get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
            if steps:
                steps.pop(0)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        current = annotation
    return list(current.model_fields)
