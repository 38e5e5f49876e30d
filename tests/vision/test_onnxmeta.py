"""ONNX metadata read without onnxruntime: what the server records of a model, and refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from base.paths import MODELS_DIR
from vision.onnxmeta import OnnxMetaError, parse_model_file, read_metadata, with_metadata

SHIPPED = MODELS_DIR / "trivue-waste.onnx"


def test_the_shipped_models_facts_match_onnxruntimes_reading() -> None:
    from vision.model import Detector

    facts, detector = parse_model_file(SHIPPED), Detector(SHIPPED)
    assert facts.names == detector.names and facts.imgsz == detector.meta.imgsz
    assert (facts.name, facts.version) == (detector.meta.name, detector.meta.version)
    # The metrics as onnxruntime reads them (the shipped model's figures change with each model).
    card = json.loads(detector.session.get_modelmeta().custom_metadata_map["trivue_metrics"])
    assert facts.metrics == card and 0 < facts.metrics["map50"] <= 1 and not facts.quantised
    assert parse_model_file(MODELS_DIR / "trivue-waste-int8.onnx").quantised


def test_with_metadata_changes_metadata_only(tmp_path: Path) -> None:
    data = SHIPPED.read_bytes()
    changed = with_metadata(data, {"trivue_version": "9", "extra": "é"})
    meta = read_metadata(changed)
    assert meta["trivue_version"] == "9" and meta["extra"] == "é"
    assert {k: v for k, v in meta.items() if k not in ("trivue_version", "extra")} == {
        k: v for k, v in read_metadata(data).items() if k != "trivue_version"}
    assert with_metadata(data, {"trivue_version": "9", "extra": "é"}) == changed  # deterministic


@pytest.mark.parametrize("content,words", [
    (b"", "no IR version or no graph"),
    (b"hello, world", "corrupt or truncated"),
    (SHIPPED.read_bytes()[:4096], "a field runs past the end of the file"),
    (b"\x08\x07", "no IR version or no graph"),  # an IR version and nothing else
])
def test_what_is_not_a_model_is_refused_with_the_reason(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "x.onnx"
    path.write_bytes(content)
    with pytest.raises(OnnxMetaError, match="not an ONNX model") as error:
        parse_model_file(path)
    assert words in str(error.value) and str(path) in str(error.value)


@pytest.mark.parametrize("updates,words", [
    ({"names": "[1, 2]"}, "not an {id: name} mapping"),
    ({"names": "{1: 'a'}"}, "ids are not 0..0"),
    ({"imgsz": "'big'"}, "'imgsz' is not an input size"),
    ({"task": "segment"}, "not an object detector"),
])
def test_metadata_a_detector_needs_is_checked(tmp_path: Path, updates: dict[str, str], words: str) -> None:
    path = tmp_path / "x.onnx"
    path.write_bytes(with_metadata(SHIPPED.read_bytes(), updates))
    with pytest.raises(OnnxMetaError, match=words):
        parse_model_file(path)


def test_reading_metadata_loads_no_vision_stack() -> None:
    code = "import sys, vision.onnxmeta; print(sorted({'numpy', 'onnxruntime', 'cv2'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
