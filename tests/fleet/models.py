"""Real second models for the fleet tests, derived deterministically from the shipped one.

``with_metadata`` keeps the graph and weights byte for byte and changes metadata only: another
version is another file (another sha256) that onnxruntime loads and that sees what the shipped
model sees; renamed classes make a real model whose classes the rules do not know.
"""

from __future__ import annotations

import ast
from pathlib import Path

from base.paths import MODELS_DIR
from vision.onnxmeta import parse_model_file, read_metadata, with_metadata

SHIPPED = MODELS_DIR / "trivue-waste.onnx"
SHIPPED_INT8 = MODELS_DIR / "trivue-waste-int8.onnx"
CARD = MODELS_DIR / "trivue-waste.md"
# The shipped model's version, as its metadata says: a newly shipped model needs no test edited.
SHIPPED_VERSION = parse_model_file(SHIPPED).version
SHIPPED_MAP50 = parse_model_file(SHIPPED).metrics["map50"]


def derived(folder: Path, version: str, rename: dict[str, str] | None = None, source: Path = SHIPPED) -> Path:
    """The shipped model as ``version`` (and classes renamed), written to ``folder``; its card beside it."""
    data = source.read_bytes()
    updates = {"trivue_version": version}
    if rename:
        names = ast.literal_eval(read_metadata(data)["names"])  # the {id: name} literal Ultralytics writes
        updates["names"] = repr({i: rename.get(n, n) for i, n in names.items()})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"trivue-waste-{version}.onnx"
    path.write_bytes(with_metadata(data, updates))
    path.with_suffix(".md").write_text(f"# trivue-waste {version}\n\nDerived from the shipped model for tests.\n")
    return path
