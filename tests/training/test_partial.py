"""Partial labels: a source's unlabelled classes carry no loss, and mosaics stay within a source."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ultralytics")

from training.partial import PartialLabelLoss, SameSourceMosaic, class_masks, source_of  # noqa: E402


def test_source_of_reads_the_merged_file_name() -> None:
    assert source_of("/x/images/train/hopper-bags__abc.jpg") == "hopper-bags"
    assert source_of("/x/plain.jpg") == ""


def test_class_masks() -> None:
    masks = class_masks({"bags": [0], "litter": [1, 2]}, 4)
    assert masks["bags"].tolist() == [1, 0, 0, 0]
    assert masks["litter"].tolist() == [0, 1, 1, 0]


def tiny_model(nc: int):
    from types import SimpleNamespace

    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel("yolov8n.yaml", nc=nc, verbose=False)
    model.args = SimpleNamespace(box=7.5, cls=0.5, dfl=1.5)
    return model


def batch(files: list[str]) -> dict:
    torch.manual_seed(0)
    return {
        "img": torch.rand(len(files), 3, 64, 64),
        "im_file": files,
        "batch_idx": torch.tensor([0.0, 1.0]),
        "cls": torch.tensor([[0.0], [1.0]]),  # image 0 labels a class-0 box, image 1 a class-1 box
        "bboxes": torch.tensor([[0.5, 0.5, 0.4, 0.4], [0.5, 0.5, 0.3, 0.3]]),
    }


def cls_loss(criterion, model, data: dict) -> float:
    model.train()
    preds = model(data["img"])
    _, items = criterion(preds, data)
    return float(items[1]) if not isinstance(items, dict) else float(list(items.values())[1])


def test_masked_classes_carry_no_classification_loss() -> None:
    """Raising the class-2 logits everywhere changes the naive loss, not the masked one (no source
    labels class 2); raising class 0 changes both (source `bags` labels it)."""
    from ultralytics.utils.loss import v8DetectionLoss

    model = tiny_model(3)
    data = batch(["/d/bags__a.jpg", "/d/litter__b.jpg"])
    masked = PartialLabelLoss(model, class_masks({"bags": [0], "litter": [1]}, 3))
    naive = v8DetectionLoss(model)
    before = (cls_loss(masked, model, data), cls_loss(naive, model, data))
    head = model.model[-1]
    with torch.no_grad():
        for branch in head.cv3:
            branch[-1].bias[2] += 5.0  # every anchor now scores class 2 high
    after = (cls_loss(masked, model, data), cls_loss(naive, model, data))
    assert after[0] == pytest.approx(before[0], rel=1e-5)
    assert after[1] > before[1] * 1.5
    with torch.no_grad():
        for branch in head.cv3:
            branch[-1].bias[0] += 5.0
    assert cls_loss(masked, model, data) > after[0] * 1.5


def test_an_image_of_an_unknown_source_keeps_every_class() -> None:
    model = tiny_model(2)
    data = batch(["/d/plain_a.jpg", "/d/plain_b.jpg"])
    masked = PartialLabelLoss(model, class_masks({"bags": [0]}, 2))
    from ultralytics.utils.loss import v8DetectionLoss

    assert cls_loss(masked, model, data) == pytest.approx(cls_loss(v8DetectionLoss(model), model, data), rel=1e-5)


def test_mosaic_partners_come_from_the_same_source() -> None:
    mosaic = SameSourceMosaic.__new__(SameSourceMosaic)
    mosaic.n, mosaic.dataset = 4, list(range(10))
    mosaic.by_source = {"a": [0, 1, 2], "b": [3, 4, 5, 6, 7, 8, 9]}
    for source, pool in mosaic.by_source.items():
        mosaic.current = source
        for _ in range(50):
            picks = mosaic.get_indexes()
            assert len(picks) == 3 and set(picks) <= set(pool)


def test_a_naive_run_keeps_the_source_lists_but_masks_nothing() -> None:
    from training.partial import masked

    sources = {"bags": [0], "litter": [1, 2]}
    assert masked({"trivue_sources": sources}) == sources
    assert masked({"trivue_sources": sources, "trivue_missing_labels": "mask"}) == sources
    assert masked({"trivue_sources": sources, "trivue_missing_labels": "naive"}) == {}
    assert masked({}) == {}
