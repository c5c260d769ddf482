"""Box metrics against slow references written from the definitions.

- ``reference_way_ious``: clovaai/wsolevaluation's procedure, one threshold at a time (quantise, cv2.threshold
  on ``int(tau * max)``, findContours RETR_TREE, largest contourArea or every contour, boundingRect with its
  ``x + w`` clamp, IoU with +1 areas in plain Python ints).
- ``continuous_ious``: flood-fill labelling in Python loops, largest component by pixel count, inclusive boxes.

camfix's one-sweep kernel and its per-threshold OpenCV fallback must both equal them exactly.
"""

from __future__ import annotations

import math
import random
from typing import Sequence

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from references import Box, component_box, reference_components

import camfix.metrics as metrics
from camfix.metrics import BoxAccuracy, box_accuracy, box_iou_curves, cam_thresholds, max_box_acc, max_box_acc_v2
from camfix.metrics import _native



def iou(a: Box, b: Box) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = iw * ih
    return inter / ((a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter)


def reference_way_ious(score_map: np.ndarray, gt: Sequence[Box], thresholds: Sequence[float]):
    """Per threshold: IoU of the largest contour's box and best IoU over all contour boxes (the reference)."""
    height, width = score_map.shape
    image = (score_map.astype(np.float64) * 255).astype(np.uint8)
    single, multi = [], []
    for tau in thresholds:
        _, binary = cv2.threshold(image, int(tau * np.max(image)), 255, cv2.THRESH_BINARY)
        contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]

        def box(contour) -> Box:
            x, y, w, h = cv2.boundingRect(contour)
            return (x, y, min(x + w, width - 1), min(y + h, height - 1))

        if len(contours) == 0:
            largest, every = [(0, 0, 0, 0)], [(0, 0, 0, 0)]
        else:
            largest = [box(max(contours, key=cv2.contourArea))]
            every = [box(c) for c in contours]
        single.append(max(iou(b, g) for b in largest for g in gt))
        multi.append(max(iou(b, g) for b in every for g in gt))
    return np.array(single), np.array(multi)


def continuous_ious(score_map: np.ndarray, gt: Sequence[Box], thresholds: Sequence[float]):
    single, multi = [], []
    for tau in thresholds:
        regions = reference_components(score_map.astype(np.float64) > tau)
        if not regions:
            single.append(0.0)
            multi.append(0.0)
            continue
        boxes = [component_box(r) for r in regions]
        ious = [max(iou(b, g) for g in gt) for b in boxes]
        largest = max(range(len(regions)), key=lambda i: (len(regions[i]), -i))  # first in raster order wins
        single.append(ious[largest])
        multi.append(max(ious))
    return np.array(single), np.array(multi)


def random_box(rng: random.Random, height: int, width: int) -> Box:
    x0, x1 = sorted(rng.randrange(width) for _ in range(2))
    y0, y1 = sorted(rng.randrange(height) for _ in range(2))
    return (x0, y0, x1, y1)


def random_map(rng: np.random.Generator, kind: str, height: int, width: int) -> np.ndarray:
    if kind == "noise":
        return rng.random((height, width))
    if kind == "levels":  # few distinct values: plateaus, equal areas, ties
        return rng.integers(0, 4, (height, width)) / 3.0
    if kind == "rings":  # concentric bands: components with holes and islands inside them
        y, x = np.mgrid[:height, :width]
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        radius = np.hypot(y - cy, x - cx)
        return (np.cos(radius * rng.uniform(0.8, 2.0)) + 1) / 2 * rng.uniform(0.3, 1.0)
    small = rng.random((3, 3)).astype(np.float32) ** 2  # smooth, CAM-like: a low-resolution map upsampled
    smooth = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    smooth -= smooth.min()
    return smooth / smooth.max() if smooth.max() > 0 else smooth


# ---------------------------------------------------------------------------------------------------------------
# Hand-computed cases


def test_four_by_four_by_hand(metric_path) -> None:
    # x:   0    1    2    3
    score = np.array(
        [
            [0.0, 0.2, 0.2, 0.0],  # y 0
            [0.0, 0.9, 0.8, 0.0],  # y 1
            [0.0, 0.7, 0.0, 0.0],  # y 2
            [0.0, 0.0, 0.0, 0.6],  # y 3
        ]
    )
    gt = torch.tensor([[1, 1, 2, 2]])
    maps = torch.tensor(score)[None]
    # Reference at tau = 0.5: uint8 values 229, 204, 178, 153, 51; threshold int(0.5 * 229) = 114 keeps the
    # L of (1,1), (2,1), (1,2) and the lone (3,3). Contour areas: the L's triangle 0.5, the lone pixel 0.
    # boundingRect of the L is x=1, y=1, w=2, h=2, so the box is (1, 1, 1+2, 1+2) = (1, 1, 3, 3): 9 pixels, of
    # which the 4 of the ground truth: IoU 4/9. Every box: the lone pixel's (3, 3, 3, 3) scores 0.
    curves = box_iou_curves(maps, gt, [0.5])
    assert curves.single.tolist() == [[4 / 9]]
    assert curves.multi.tolist() == [[4 / 9]]
    # Continuous at tau = 0.5: the same pixels; the largest component (3 pixels) has the inclusive box
    # (1, 1, 2, 2), the ground truth itself.
    curves = box_iou_curves(maps, gt, [0.5], mode="continuous")
    assert curves.single.tolist() == [[1.0]]
    assert curves.multi.tolist() == [[1.0]]
    # tau = 0.95: the reference's threshold int(0.95 * 229) = 217 is relative to the maximum, which always stays
    # (box (1, 1, 2, 2) of the one pixel (1, 1)); continuous mode's absolute 0.95 leaves nothing: no box, IoU 0.
    assert box_iou_curves(maps, gt, [0.95]).single.tolist() == [[1.0]]
    assert box_iou_curves(maps, gt, [0.95], mode="continuous").single.tolist() == [[0.0]]
    # An all-zero map has no contour at any threshold: the reference's box (0, 0, 0, 0), one pixel.
    zeros = torch.zeros(1, 4, 4, dtype=torch.float64)
    assert box_iou_curves(zeros, gt, [0.0, 0.5]).multi.tolist() == [[0.0, 0.0]]
    assert box_iou_curves(zeros, torch.tensor([[0, 0, 1, 0]]), [0.5]).single.tolist() == [[1 / 2]]


def test_a_hole_gives_a_box_in_reference_multi_mode(metric_path) -> None:
    # An 8x8 square with a 2x2 hole at x, y in 3..4. OpenCV traces the outer contour, box (0, 0, min(8, 7), 7),
    # and the hole contour through the pixels around the hole, x, y in 2..5: boundingRect (2, 2, 4, 4) gives the
    # box (2, 2, 6, 6) -- exactly the ground truth here.
    score = np.ones((8, 8))
    score[3:5, 3:5] = 0.0
    gt = torch.tensor([[2, 2, 6, 6]])
    curves = box_iou_curves(torch.tensor(score)[None], gt, [0.5])
    assert curves.multi.tolist() == [[1.0]]
    assert curves.single.tolist() == [[25 / 64]]  # the outer box (0, 0, 7, 7) has 64 pixels
    continuous = box_iou_curves(torch.tensor(score)[None], gt, [0.5], mode="continuous")
    assert continuous.multi.tolist() == [[25 / 64]]  # components only: no hole boxes


def test_largest_contour_ties_go_to_the_one_opencv_lists_first(metric_path) -> None:
    # Two 2x2 squares of equal contour area (1.0): OpenCV lists contours bottom-up, so max() keeps the lower one.
    score = np.zeros((7, 7))
    score[0:2, 4:6] = 1.0
    score[4:6, 0:2] = 1.0
    lower = torch.tensor([[0, 4, 1, 5]])
    single = box_iou_curves(torch.tensor(score)[None], lower, [0.5]).single
    assert single.tolist() == [[iou((0, 4, 2, 6), (0, 4, 1, 5))]]
    # Continuous: equal pixel counts, the first in raster order (the upper one) wins.
    upper = torch.tensor([[4, 0, 5, 1]])
    assert box_iou_curves(torch.tensor(score)[None], upper, [0.5], mode="continuous").single.tolist() == [[1.0]]


def test_top1_loc_by_hand() -> None:
    score = torch.zeros(4, 10, 10, dtype=torch.float64)
    score[:, 2:8, 2:8] = 1.0
    score[3] = 0.0  # a map with no foreground: never localized
    gt = torch.tensor([[2, 2, 7, 7]] * 4)
    result = box_accuracy(score, gt, torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 0, 4]), mode="continuous")
    assert result.gt_known_loc == 75.0  # 3 of 4 boxes are right
    assert result.top1_loc == 50.0  # and 2 of those have the right class
    assert result.max_box_acc == result.gt_known_loc
    assert result.best_threshold == 0.0


# ---------------------------------------------------------------------------------------------------------------
# Against the slow references


@pytest.mark.parametrize("kind", ["noise", "levels", "rings", "smooth"])
def test_reference_mode_equals_the_reference_loop(metric_path, kind) -> None:
    rng = np.random.default_rng(abs(hash(kind)) % 2**32)
    pyrng = random.Random(1)
    thresholds = cam_thresholds(0.01)
    for _ in range(6):
        height, width = (int(v) for v in rng.integers(1, 20, 2))
        maps = np.stack([random_map(rng, kind, height, width) for _ in range(3)])
        gt = [[random_box(pyrng, height, width) for _ in range(pyrng.randint(1, 3))] for _ in range(3)]
        curves = box_iou_curves(torch.tensor(maps), [torch.tensor(g) for g in gt], thresholds)
        for index in range(3):
            single, multi = reference_way_ious(maps[index], gt[index], thresholds)
            np.testing.assert_array_equal(curves.single[index].numpy(), single)
            np.testing.assert_array_equal(curves.multi[index].numpy(), multi)


@pytest.mark.parametrize("kind", ["noise", "levels", "rings", "smooth"])
def test_continuous_mode_equals_flood_fill(metric_path, kind) -> None:
    rng = np.random.default_rng(7 + len(kind))
    pyrng = random.Random(2)
    for _ in range(5):
        height, width = (int(v) for v in rng.integers(1, 14, 2))
        thresholds = np.sort(rng.choice(np.arange(0, 1, 0.05), size=int(rng.integers(1, 8)), replace=False))
        maps = np.stack([random_map(rng, kind, height, width) for _ in range(2)])
        gt = [[random_box(pyrng, height, width)] for _ in range(2)]
        curves = box_iou_curves(torch.tensor(maps), [torch.tensor(g) for g in gt], thresholds, mode="continuous")
        for index in range(2):
            single, multi = continuous_ious(maps[index], gt[index], thresholds)
            np.testing.assert_array_equal(curves.single[index].numpy(), single)
            np.testing.assert_array_equal(curves.multi[index].numpy(), multi)


@given(
    values=st.lists(st.integers(0, 4), min_size=1, max_size=64),
    width=st.integers(1, 8),
    scale=st.sampled_from([1.0, 0.5, 0.77]),
    box=st.tuples(st.integers(0, 7), st.integers(0, 7), st.integers(0, 7), st.integers(0, 7)),
)
def test_property_reference_mode_on_small_maps(values, width, scale, box) -> None:
    height = max(1, len(values) // width)
    score = (np.resize(np.array(values, dtype=np.float64), (height, width)) / 4) * scale
    gt = (min(box[0], box[2]) % width, min(box[1], box[3]) % height, 0, 0)
    gt = (gt[0], gt[1], max(gt[0], max(box[0], box[2]) % width), max(gt[1], max(box[1], box[3]) % height))
    thresholds = cam_thresholds(0.1)
    curves = box_iou_curves(torch.tensor(score)[None], torch.tensor([gt]), thresholds)
    single, multi = reference_way_ious(score, [gt], thresholds)
    np.testing.assert_array_equal(curves.single[0].numpy(), single)
    np.testing.assert_array_equal(curves.multi[0].numpy(), multi)


def test_native_equals_opencv_on_cam_like_maps(monkeypatch) -> None:
    if _native.load() is None:
        pytest.skip("no C compiler: the native sweep is unavailable")
    rng = np.random.default_rng(3)
    maps = torch.tensor(np.stack([random_map(rng, "smooth", 48, 48) for _ in range(4)]))
    gt = [torch.tensor([[5, 8, 30, 40], [20, 2, 47, 20]])] * 4
    for mode in ("reference", "continuous"):
        for thresholds in (cam_thresholds(0.01), cam_thresholds(0.001)):
            native = box_iou_curves(maps, gt, thresholds, mode=mode)
            with monkeypatch.context() as patch:
                patch.setattr(_native, "load", lambda: None)
                slow = box_iou_curves(maps, gt, thresholds, mode=mode)
            torch.testing.assert_close(native.single, slow.single, rtol=0, atol=0)
            torch.testing.assert_close(native.multi, slow.multi, rtol=0, atol=0)


def test_native_sweep_decides_ties_and_flags_only_uncertain_holes() -> None:
    library = _native.load()
    if library is None:
        pytest.skip("no C compiler: the native sweep is unavailable")
    # A 0/1 map at threshold 0.5: the foreground is the 1s. Two equal squares: the sweep itself must break the
    # tie as OpenCV does (no fallback needed).
    levels = np.zeros((7, 7))
    levels[0:2, 4:6] = 1
    levels[4:6, 0:2] = 1
    gt = [np.array([[0, 4, 1, 5]], dtype=np.int64)]
    half = np.array([0.5])
    single, _, ambiguous = _native.box_ious(library, levels[None], half, gt, True, True, False)
    assert ambiguous.tolist() == [[False]]
    assert single.tolist() == [[iou((0, 4, 2, 6), (0, 4, 1, 5))]]
    # A 5x5 ring (contour area 16, but counted area 2 + at least 2 per hole: 4) next to a solid 3x4 block (area
    # 6): the counts alone cannot order them, so the level is flagged for OpenCV.
    levels = np.zeros((7, 12))
    levels[1:6, 1:6] = 1
    levels[2:5, 2:5] = 0
    levels[1:5, 8:11] = 1
    _, _, ambiguous = _native.box_ious(library, levels[None], half, gt, True, True, False)
    assert ambiguous.tolist() == [[True]]
    curves = box_iou_curves(torch.tensor(levels, dtype=torch.float64)[None], torch.tensor([[1, 1, 5, 5]]), [0.5])
    assert curves.single.tolist() == [[iou((1, 1, 6, 6), (1, 1, 5, 5))]]  # the ring wins, as in OpenCV


def test_max_box_acc_equals_the_reference_formula() -> None:
    # MaxBoxAcc: counts of iou >= delta/100 per threshold, * 100. / count, max over thresholds.
    rng = np.random.default_rng(11)
    maps = np.stack([random_map(rng, "smooth", 16, 16) for _ in range(6)])
    gt = [[(2, 3, 12, 14)], [(0, 0, 15, 15)], [(4, 4, 9, 9), (10, 1, 15, 6)], [(1, 1, 5, 5)], [(3, 8, 14, 15)],
          [(6, 0, 15, 9)]]  # fmt: skip
    thresholds = cam_thresholds(0.01)
    per_image = [reference_way_ious(maps[i], gt[i], thresholds) for i in range(6)]
    expected = {}
    for delta in (30, 50, 70):
        for which in (0, 1):
            correct = np.zeros(len(thresholds))
            for ious in per_image:
                correct[np.where(np.asarray(ious[which]) >= (delta / 100))[0]] += 1
            expected[delta, which] = (correct * 100.0 / float(6)).max()
    result = box_accuracy(torch.tensor(maps), [torch.tensor(g) for g in gt])
    assert result.max_box_acc == expected[50, 0]
    assert result.max_by_iou() == {d: expected[d, 0] for d in (30, 50, 70)}
    assert result.max_box_acc_v2 == np.average([expected[d, 1] for d in (30, 50, 70)])
    assert max_box_acc(torch.tensor(maps), [torch.tensor(g) for g in gt]) == expected[50, 0]
    assert max_box_acc_v2(torch.tensor(maps), [torch.tensor(g) for g in gt]) == result.max_box_acc_v2


# ---------------------------------------------------------------------------------------------------------------
# Properties


@pytest.mark.parametrize("mode", ["reference", "continuous"])
def test_a_perfect_map_scores_100(mode) -> None:
    maps = torch.zeros(3, 40, 40, dtype=torch.float64)
    boxes = torch.tensor([[3, 4, 20, 30], [10, 10, 39, 39], [0, 0, 15, 12]])
    for index, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        maps[index, y0 : y1 + 1, x0 : x1 + 1] = 1.0
    result = box_accuracy(maps, boxes, mode=mode)
    assert result.max_box_acc == 100.0
    assert result.max_box_acc_v2 == 100.0
    assert result.max_by_iou(multi=True) == {30: 100.0, 50: 100.0, 70: 100.0}


def test_shuffling_images_changes_nothing() -> None:
    rng = np.random.default_rng(5)
    maps = torch.tensor(np.stack([random_map(rng, "smooth", 20, 20) for _ in range(8)]))
    boxes = torch.tensor([random_box(random.Random(i), 20, 20) for i in range(8)])
    order = torch.randperm(8)
    first = box_accuracy(maps, boxes, torch.arange(8), torch.arange(8) % 3)
    second = box_accuracy(maps[order], boxes[order], torch.arange(8)[order], (torch.arange(8) % 3)[order])
    assert first.as_dict() == second.as_dict()
    np.testing.assert_array_equal(first.multi_accuracy, second.multi_accuracy)


def test_two_accumulators_merged_equal_one() -> None:
    rng = np.random.default_rng(6)
    maps = torch.tensor(np.stack([random_map(rng, "rings", 18, 18) for _ in range(6)]))
    boxes = [torch.tensor([random_box(random.Random(i), 18, 18)]) for i in range(6)]
    whole = BoxAccuracy()
    whole.update(maps, boxes)
    first, second = BoxAccuracy(), BoxAccuracy()
    first.update(maps[:2], boxes[:2])
    second.update(maps[2:], boxes[2:])
    merged = first.merge(second).compute()
    assert merged.as_dict() == whole.compute().as_dict()
    np.testing.assert_array_equal(merged.single_accuracy, whole.compute().single_accuracy)
    assert whole.sync().compute().as_dict() == whole.compute().as_dict()  # no process group: a plain copy


def test_reset_and_state_size() -> None:
    metric = BoxAccuracy(cam_thresholds(0.001))
    metric.update(torch.rand(2, 8, 8), torch.tensor([[0, 0, 3, 3]] * 2))
    assert metric.correct_single.shape == (3, 1000)  # O(thresholds): no per-image state
    metric.reset()
    assert int(metric.num_images) == 0 and int(metric.correct_single.sum()) == 0
    with pytest.raises(ValueError, match="no images"):
        metric.compute()


def test_float32_maps_are_evaluated_in_float64() -> None:
    rng = np.random.default_rng(9)
    score = random_map(rng, "smooth", 24, 24).astype(np.float32)
    gt = [(3, 3, 15, 20)]
    thresholds = cam_thresholds(0.01)
    curves = box_iou_curves(torch.tensor(score)[None], torch.tensor(gt), thresholds)
    single, multi = reference_way_ious(score.astype(np.float64), gt, thresholds)
    np.testing.assert_array_equal(curves.single[0].numpy(), single)


@pytest.mark.parametrize("mode", ["reference", "continuous"])
def test_workers_and_map_dtypes_do_not_change_the_numbers(metric_path, mode) -> None:
    # float32 and float16 maps reach the sweep as they are (converted there): same numbers as their float64
    # values; any number of threads (more than maps too) gives the same curves.
    rng = np.random.default_rng(12)
    maps = torch.tensor(np.stack([random_map(rng, kind, 20, 26) for kind in ("noise", "levels", "rings", "smooth")]))
    gt = [torch.tensor([[2, 3, 15, 12]]), torch.tensor([[0, 0, 25, 19], [4, 4, 9, 9]])] * 2
    thresholds = cam_thresholds(0.01)
    for dtype in (torch.float32, torch.float16):
        low = maps.to(dtype)
        expected = box_iou_curves(low.double(), gt, thresholds, mode=mode, workers=1)
        for workers in (1, 2, 7):
            curves = box_iou_curves(low, gt, thresholds, mode=mode, workers=workers)
            torch.testing.assert_close(curves.single, expected.single, rtol=0, atol=0)
            torch.testing.assert_close(curves.multi, expected.multi, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.25, 1.0 + 1e-6])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bad_map_values_are_named_on_both_paths(metric_path, value, dtype) -> None:
    # The compiled sweep checks values as it reads them; the error still names the value, in any map of the batch.
    maps = torch.rand(5, 9, 7, dtype=dtype)
    maps[3, 8, 6] = value
    expected = "maps must be finite" if not math.isfinite(value) else r"maps must have values in \[0, 1\]"
    for mode in ("reference", "continuous"):
        for workers in (1, 2):
            with pytest.raises(ValueError, match=expected):
                box_iou_curves(maps, torch.tensor([[0, 0, 3, 3]] * 5), mode=mode, workers=workers)


def test_bad_input_raises_clear_errors() -> None:
    maps = torch.rand(2, 8, 8)
    boxes = torch.tensor([[0, 0, 3, 3], [1, 1, 2, 2]])
    with pytest.raises(ValueError, match=r"maps must have shape \(N, H, W\)"):
        box_iou_curves(torch.rand(8, 8), boxes[:1])
    with pytest.raises(ValueError, match="maps must be finite, got 1 NaN"):
        bad = maps.clone()
        bad[0, 0, 0] = float("nan")
        box_iou_curves(bad, boxes)
    with pytest.raises(ValueError, match=r"maps must have values in \[0, 1\]"):
        box_iou_curves(maps * 2, boxes)
    with pytest.raises(ValueError, match="maps must not be empty"):
        box_iou_curves(torch.rand(0, 8, 8), [])
    with pytest.raises(ValueError, match=r"boxes\[1\] is \[1, 1, 8, 2\]: a box must be .*<= 7"):
        box_iou_curves(maps, torch.tensor([[0, 0, 3, 3], [1, 1, 8, 2]]))
    with pytest.raises(ValueError, match=r"boxes\[0\] is \[3, 0, 2, 3\]: a box must be"):
        box_iou_curves(maps, torch.tensor([[3, 0, 2, 3], [1, 1, 2, 2]]))
    with pytest.raises(ValueError, match=r"boxes\[0\] is \[-1, 0, 2, 3\]: a box must be"):
        box_iou_curves(maps, torch.tensor([[-1, 0, 2, 3], [1, 1, 2, 2]]))
    with pytest.raises(ValueError, match=r"boxes\[1\] must have shape \(M, 4\) with M >= 1"):
        box_iou_curves(maps, [torch.tensor([[0, 0, 1, 1]]), torch.zeros(0, 4, dtype=torch.long)])
    with pytest.raises(ValueError, match=r"boxes must have one entry per map \(2\), got 1"):
        box_iou_curves(maps, boxes[:1])
    with pytest.raises(TypeError, match=r"boxes\[0\] must hold integer pixel indices .*, got dtype torch.bool$"):
        box_iou_curves(maps, [torch.zeros(1, 4, dtype=torch.bool)] * 2)
    with pytest.raises(TypeError, match=r"^boxes must hold integer pixel indices .*, got dtype torch.float32; round"):
        box_iou_curves(maps, boxes.float())
    with pytest.raises(ValueError, match="mode must be one of"):
        box_iou_curves(maps, boxes, mode="exact")
    with pytest.raises(ValueError, match=r"workers must be an int >= 1, got 0"):
        box_iou_curves(maps, boxes, workers=0)
    with pytest.raises(TypeError, match="workers must be an int"):
        BoxAccuracy(workers=1.5)
    with pytest.raises(ValueError, match="thresholds must be strictly increasing"):
        box_iou_curves(maps, boxes, [0.5, 0.2])
    with pytest.raises(ValueError, match=r"thresholds must be finite and in \[0, 1\]"):
        box_iou_curves(maps, boxes, [0.5, 1.5])
    with pytest.raises(ValueError, match="must contain 50"):
        BoxAccuracy(iou_thresholds=(30, 70))
    with pytest.raises(ValueError, match="given together"):
        BoxAccuracy().update(maps, boxes, pred_classes=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"target_classes must have shape \(2,\)"):
        BoxAccuracy().update(maps, boxes, torch.tensor([1, 2]), torch.tensor([1]))
    metric = BoxAccuracy()
    metric.update(maps, boxes, torch.tensor([1, 2]), torch.tensor([1, 2]))
    metric.update(maps, boxes)
    with pytest.raises(ValueError, match="top-1 loc needs classes for every image: 2 of 4"):
        metric.compute()
    with pytest.raises(ValueError, match="other has another thresholds than this BoxAccuracy: 10 values instead"):
        BoxAccuracy().merge(BoxAccuracy(cam_thresholds(0.1)))
    with pytest.raises(TypeError, match="other must be a BoxAccuracy"):
        BoxAccuracy().merge(metrics.PxAP())


def test_the_public_names_are_exported() -> None:
    for name in metrics.__all__:
        assert hasattr(metrics, name), name
