"""mIoU (LID Track 1) against per-class pixel loops, with the compiled confusion kernel and with the pure torch path
(the ``metric_path`` fixture of tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from camfix.metrics import MeanIoU, mean_iou


def slow_per_class_iou(preds: np.ndarray, targets: np.ndarray, num_classes: int, ignore: int):
    ious = []
    for c in range(num_classes):
        inter = union = 0
        for p, t in zip(preds.ravel(), targets.ravel()):
            if t == ignore:
                continue
            inter += p == c and t == c
            union += p == c or t == c
        ious.append(100 * inter / union if union else float("nan"))
    return np.array(ious)


def test_three_by_three_by_hand(metric_path) -> None:
    preds = torch.tensor([[[0, 0, 1], [1, 1, 1], [2, 2, 0]]])
    targets = torch.tensor([[[0, 0, 0], [1, 1, 255], [2, 1, 0]]])
    # class 0: predicted {(0,0),(0,1),(2,2)}, true {(0,0),(0,1),(0,2),(2,2)}: 3 / 4.
    # class 1: predicted {(0,2),(1,0),(1,1)} (the ignored (1,2) leaves), true {(1,0),(1,1),(2,1)}: 2 / 4.
    # class 2: predicted {(2,0),(2,1)}, true {(2,0)}: 1 / 2. mean: (75 + 50 + 50) / 3.
    result = mean_iou(preds, targets, num_classes=3)
    np.testing.assert_allclose(result.per_class, [75.0, 50.0, 50.0])
    assert result.miou == pytest.approx(175 / 3, abs=1e-12)
    assert result.confusion.sum() == 8  # one ignored pixel


def test_equals_pixel_loops_and_absent_classes_are_left_out(metric_path) -> None:
    rng = np.random.default_rng(0)
    preds = rng.integers(0, 4, (3, 6, 5))  # class 4 never appears anywhere
    targets = rng.integers(0, 4, (3, 6, 5))
    targets[rng.random(targets.shape) < 0.1] = 255
    result = mean_iou(torch.tensor(preds), torch.tensor(targets), num_classes=5)
    expected = slow_per_class_iou(preds, targets, 5, 255)
    np.testing.assert_allclose(result.per_class, expected, rtol=0, atol=1e-12, equal_nan=True)
    assert np.isnan(result.per_class[4])
    assert result.miou == pytest.approx(np.nanmean(expected), abs=1e-12)
    assert result.as_dict()["per_class_iou"][4] is None


def test_perfect_prediction_shuffle_and_merge(metric_path) -> None:
    rng = np.random.default_rng(1)
    targets = torch.tensor(rng.integers(0, 3, (4, 5, 5)))
    assert mean_iou(targets, targets, 3).miou == 100.0
    preds = torch.tensor(rng.integers(0, 3, (4, 5, 5)))
    whole = mean_iou(preds, targets, 3)
    order = torch.randperm(4)
    assert mean_iou(preds[order], targets[order], 3).miou == whole.miou
    first, second = MeanIoU(3), MeanIoU(3)
    first.update(preds[:1], targets[:1])
    second.update(preds[1:], targets[1:])
    assert first.merge(second).compute().miou == whole.miou


def test_bad_input(metric_path) -> None:
    labels = torch.zeros(1, 3, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"preds must hold labels in \[0, 2\], got values in \[0, 3\]"):
        mean_iou(labels + torch.tensor(3) * (torch.arange(9).reshape(1, 3, 3) == 4), labels, 3)
    with pytest.raises(ValueError, match=r"targets must hold labels in \[0, 2\] or 255, got 7"):
        mean_iou(labels, labels + 7, 3)
    with pytest.raises(ValueError, match="targets must have the shape of preds"):
        mean_iou(labels, labels[:, :2], 3)
    with pytest.raises(TypeError, match="preds must be an integer tensor"):
        mean_iou(labels.float(), labels, 3)
    with pytest.raises(ValueError, match="ignore_index must not be a class index"):
        MeanIoU(3, ignore_index=1)
    with pytest.raises(ValueError, match="no labelled pixels"):
        mean_iou(labels, labels + 255, 3)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64])
def test_every_integer_type_and_layout_counts_the_same(dtype, metric_path) -> None:
    rng = np.random.default_rng(2)
    preds = rng.integers(0, 6, (3, 8, 7))
    targets = rng.integers(0, 6, (3, 8, 7))
    targets[rng.random(targets.shape) < 0.1] = 127 if dtype == torch.int8 else 255
    ignore = 127 if dtype == torch.int8 else 255
    expected = slow_per_class_iou(preds, targets, 6, ignore)
    # Transposed tensors of the dtype: not contiguous.
    pred_t = torch.tensor(preds.transpose(0, 2, 1).copy()).to(dtype).transpose(1, 2)
    target_t = torch.tensor(targets.transpose(0, 2, 1).copy()).to(dtype).transpose(1, 2)
    result = mean_iou(pred_t, target_t, 6, ignore_index=ignore)
    np.testing.assert_allclose(result.per_class, expected, rtol=0, atol=1e-12, equal_nan=True)
    assert result.confusion.sum() == (targets != ignore).sum()
    outside = 6 if dtype == torch.uint8 else -1
    bad = target_t.clone()
    bad[1, 2, 3] = outside
    with pytest.raises(ValueError, match=rf"targets must hold labels in \[0, 5\] or {ignore}, got {outside}"):
        mean_iou(pred_t, bad, 6, ignore_index=ignore)
