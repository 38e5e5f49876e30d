"""The YAML files that steer training (the mapping, the field map, the comparison gates) are read as
strictly as every other settings file: a key written twice, or a file saved in Latin-1, is refused in
one line naming the file. PyYAML keeps a repeated key's last value: ``repeat: 3`` further down a
source silently overrode the ``repeat: 1`` its author read, and a Latin-1 file ended in a traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from training.compare import CompareError, load_gates
from training.datasets import DatasetError, load_mapping
from training.field import load_field_map

MAPPING = """name: merged
classes: [bag, bottle]
sources:
  coco:
    path: coco
    map: {bottle: bottle}
    repeat: 1
    repeat: 3
"""
FIELD_MAP = "repeat: 1\nmap: {bag: bag}\nmap: {bottle: bottle}\n"
GATES = "max_class_drop: 0.03\nmin_boxes: 20\nmax_class_drop: 0.5\n"

LOADERS: dict[str, tuple[Callable[[Path], object], type[Exception], str]] = {
    "mapping": (load_mapping, DatasetError, MAPPING),
    "field map": (lambda path: load_field_map(path, ["bag", "bottle"]), DatasetError, FIELD_MAP),
    "gates": (load_gates, CompareError, GATES),
}


@pytest.mark.parametrize("kind", LOADERS)
def test_a_key_given_twice_is_refused_with_its_lines(tmp_path: Path, kind: str) -> None:
    load, error, text = LOADERS[kind]
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(error, match=r"spec\.yaml: not valid YAML .*given twice \(line \d+ and line \d+\)"):
        load(path)


@pytest.mark.parametrize("kind", LOADERS)
def test_a_file_not_in_utf8_is_one_line_naming_it(tmp_path: Path, kind: str) -> None:
    load, error, text = LOADERS[kind]
    path = tmp_path / "spec.yaml"
    path.write_bytes(f"# modèle réglé à la déchèterie\n{text}".encode("latin-1"))
    with pytest.raises(error, match=r"spec\.yaml: cannot read"):
        load(path)


@pytest.mark.parametrize("kind", LOADERS)
def test_an_unknown_key_names_the_key_and_the_known_ones(tmp_path: Path, kind: str) -> None:
    load, error, _ = LOADERS[kind]
    path = tmp_path / "spec.yaml"
    path.write_text("colour: blue\n", encoding="utf-8")
    with pytest.raises(error, match=r"spec\.yaml: unknown key 'colour' \(known: [a-z0-9_, ]+\)"):
        load(path)


def test_every_bad_field_is_named_with_its_value(tmp_path: Path) -> None:
    path = tmp_path / "gates.yaml"
    path.write_text("max_class_drop: -1\nmin_boxes: many\n", encoding="utf-8")
    with pytest.raises(CompareError) as refused:
        load_gates(path)
    assert "max_class_drop: Input should be greater than or equal to 0 (got -1)" in str(refused.value)
    assert "min_boxes: Input should be a valid integer" in str(refused.value) and "'many'" in str(refused.value)
