"""Evidence photos: JPEG validation against real photos, size cap, atomic files inside the folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.ingest.evidence import EvidenceError, EvidenceStore, jpeg_dimensions


def test_dimensions_match_pillow(litter_val_images: list[Path]) -> None:
    image_module = pytest.importorskip("PIL.Image", reason="Pillow (train extra) reads the reference size")
    assert len(litter_val_images) >= 10, "the litter-items validation photos are missing"
    for path in litter_val_images[:10]:
        with image_module.open(path) as image:
            assert jpeg_dimensions(path.read_bytes()) == image.size, path.name


@pytest.mark.parametrize(("damage", "message"), [
    (lambda b: b[: len(b) // 2], "truncated JPEG"),
    (lambda b: b"\x89PNG\r\n" + b[6:], "not a JPEG"),
    (lambda b: b"", "not a JPEG"),
    (lambda b: b[:2] + b"\x00" * 200 + b[-2:], "corrupt JPEG"),
])
def test_damaged_photos_are_refused(litter_val_images: list[Path], damage: object, message: str) -> None:
    data = damage(litter_val_images[0].read_bytes())  # type: ignore[operator]
    with pytest.raises(EvidenceError, match=message) as refused:
        jpeg_dimensions(data)
    assert refused.value.reason == "bad_jpeg"


def test_store_caps_size_and_stays_in_its_folder(tmp_path: Path, litter_val_images: list[Path]) -> None:
    photo = litter_val_images[0].read_bytes()
    store = EvidenceStore(tmp_path / "evidence", max_bytes=len(photo))
    saved = store.save("benne-01", "0b9f6a1e-5c1c-4a43-9a6e-1f3c2b9d7e10", photo)
    assert store.path(saved.path).read_bytes() == photo
    assert not list((tmp_path / "evidence").rglob("*.part"))
    with pytest.raises(EvidenceError, match="exceeds") as refused:
        EvidenceStore(tmp_path / "evidence", max_bytes=len(photo) - 1).save("benne-01", "x" * 36, photo)
    assert refused.value.reason == "too_large"
    with pytest.raises(ValueError, match="leaves the evidence folder"):
        store.path("../../etc/passwd")
