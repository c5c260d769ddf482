"""Peak IoU and PxAP against slow references written from the definitions (pixel loops, float64).

Tests taking the ``metric_path`` fixture (tests/conftest.py) run twice: with the compiled kernel and with the pure
NumPy path that replaces it where the extension is not built.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from camfix.metrics import PEAK_IOU_THRESHOLDS, PeakIoU, PxAP, cam_thresholds, peak_iou, pxap


def slow_iou_curve(maps, masks, ignore, thresholds, per_image):
    """IoU of (map > tau) with the mask per threshold, counting pixel by pixel; ignored pixels left out."""
    curve = []
    for tau in thresholds:
        inter_total = union_total = 0
        image_ious = []
        for score, mask, skip in zip(maps, masks, ignore):
            inter = union = 0
            for value, truth, ignored in zip(score.ravel(), mask.ravel(), skip.ravel()):
                if ignored and not truth:
                    continue
                predicted = value > tau
                inter += predicted and truth
                union += predicted or truth
            inter_total += inter
            union_total += union
            image_ious.append(inter / union)
        curve.append(100 * (np.mean(image_ious) if per_image else inter_total / union_total))
    return np.array(curve)


def slow_pxap(maps, masks, ignore, thresholds, reference):
    """Area under the PR curve from precision/recall at each threshold, pixel by pixel.

    Points from the highest threshold down, starting at recall 0: the reference predicts ``score >= edge``
    for the edges 2, 1 and the thresholds; continuous mode ``score > tau``. Each point adds
    precision * (recall - previous recall), skipping points with nothing predicted.
    """
    scores = np.concatenate([s[~(i & ~m)] for s, m, i in zip(maps, masks, ignore)])
    truth = np.concatenate([m[~(i & ~m)] for m, i in zip(masks, ignore)])
    if reference:
        points = [lambda s, e=e: s >= e for e in [1.0, *thresholds[::-1]]]
    else:
        points = [lambda s, t=t: s > t for t in thresholds[::-1]]
    area, previous_recall = 0.0, 0.0
    for predicted_at in points:
        predicted = predicted_at(scores)
        tp = int(np.sum(predicted & truth))
        fp = int(np.sum(predicted & ~truth))
        recall = tp / int(truth.sum())
        if tp + fp:
            area += tp / (tp + fp) * (recall - previous_recall)
        previous_recall = recall
    return 100 * area


def make_data(seed, batch=3, size=(9, 7), levels=None):
    rng = np.random.default_rng(seed)
    maps = rng.random((batch, *size))
    if levels:
        maps = np.round(maps * levels) / levels  # plateaus and values on the thresholds
    masks = rng.random((batch, *size)) < 0.4
    masks[:, 0, 0] = True  # every image has foreground
    ignore = rng.random((batch, *size)) < 0.2
    return maps, masks, ignore


# ---------------------------------------------------------------------------------------------------------------
# Peak IoU


def test_peak_iou_four_by_four_by_hand() -> None:
    score = torch.tensor(
        [
            [0.1, 0.2, 0.3, 0.4],
            [0.5, 0.6, 0.7, 0.8],
            [0.0, 0.0, 0.9, 1.0],
            [0.0, 0.0, 0.0, 0.0],
        ],
        dtype=torch.float64,
    )
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[1, 1:4] = True  # 0.6, 0.7, 0.8
    mask[2, 2:4] = True  # 0.9, 1.0
    # tau = 0.55: predicted 0.6, 0.7, 0.8, 0.9, 1.0 -> the 5 mask pixels exactly: IoU 1.
    # tau = 0.35: predicted 0.4 ... 1.0 (7 pixels) of which 5 in the mask: IoU 5/7.
    # tau = 0.95: predicted 1.0 only: IoU 1/5.
    result = peak_iou(score[None], mask[None], thresholds=[0.35, 0.55, 0.95])
    np.testing.assert_allclose(result.curve, [100 * 5 / 7, 100.0, 100 / 5], rtol=0, atol=1e-12)
    assert (result.peak, result.peak_threshold) == (100.0, 0.55)


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("levels", [None, 10])
def test_peak_iou_equals_pixel_loops(per_image, levels, metric_path) -> None:
    maps, masks, ignore = make_data(1, levels=levels)
    thresholds = np.arange(0, 1, 0.1)
    expected = slow_iou_curve(maps, masks, ignore, thresholds, per_image)
    result = peak_iou(
        torch.tensor(maps), torch.tensor(masks), torch.tensor(ignore), thresholds=thresholds,
        reduction="image" if per_image else "dataset",
    )  # fmt: skip
    np.testing.assert_allclose(result.curve, expected, rtol=0, atol=1e-9)
    assert result.peak == pytest.approx(expected.max(), abs=1e-9)
    assert result.peak_threshold == thresholds[int(np.argmax(expected))]


def test_peak_iou_default_thresholds_are_the_8bit_levels() -> None:
    assert PEAK_IOU_THRESHOLDS.tolist() == [k / 255 for k in range(256)]
    # An 8-bit saliency map passed as q / 255 in float64 (float32 q / 255 can round above k / 255).
    quantised = torch.tensor([[[0, 10], [200, 255]]], dtype=torch.float64) / 255
    mask = torch.tensor([[[False, False], [True, True]]])
    result = peak_iou(quantised, mask)
    assert result.peak == 100.0
    assert result.peak_threshold == 10 / 255  # first level keeping exactly {200, 255}


def test_peak_iou_perfect_map_shuffle_and_merge() -> None:
    maps, masks, ignore = make_data(2, batch=6)
    perfect = peak_iou(torch.tensor(masks, dtype=torch.float64), torch.tensor(masks))
    assert perfect.peak == 100.0
    for reduction in ("dataset", "image"):
        whole = PeakIoU(reduction=reduction)
        whole.update(torch.tensor(maps), torch.tensor(masks), torch.tensor(ignore))
        order = np.random.default_rng(0).permutation(6)
        shuffled = PeakIoU(reduction=reduction)
        shuffled.update(torch.tensor(maps[order]), torch.tensor(masks[order]), torch.tensor(ignore[order]))
        first, second = PeakIoU(reduction=reduction), PeakIoU(reduction=reduction)
        first.update(torch.tensor(maps[:4]), torch.tensor(masks[:4]), torch.tensor(ignore[:4]))
        second.update(torch.tensor(maps[4:]), torch.tensor(masks[4:]), torch.tensor(ignore[4:]))
        merged = first.merge(second)
        np.testing.assert_array_equal(whole.compute().curve, shuffled.compute().curve)
        np.testing.assert_array_equal(whole.compute().curve, merged.compute().curve)


def test_peak_iou_bad_input(metric_path) -> None:
    maps = torch.rand(2, 5, 5)
    masks = torch.rand(2, 5, 5) > 0.5
    with pytest.raises(ValueError, match=r"masks must have the shape of the maps \(2, 5, 5\), got \(2, 5, 4\)"):
        peak_iou(maps, masks[..., :4])
    with pytest.raises(ValueError, match="masks must be binary .* got value 2"):
        peak_iou(maps, masks.long() * 2)
    with pytest.raises(ValueError, match="maps must be finite, got 1 NaN"):
        bad = maps.clone()
        bad[1, 2, 3] = float("nan")
        peak_iou(bad, masks)
    with pytest.raises(ValueError, match="maps must not be empty"):
        PeakIoU().update(torch.rand(0, 5, 5), torch.zeros(0, 5, 5, dtype=torch.bool))
    empty = torch.zeros(2, 5, 5, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"masks\[0\] has no foreground pixel"):
        peak_iou(maps, empty, reduction="image")
    with pytest.raises(ValueError, match="no mask has a foreground pixel"):
        peak_iou(maps, empty)
    with pytest.raises(ValueError, match="reduction must be one of"):
        PeakIoU(reduction="mean")
    with pytest.raises(ValueError, match="no images"):
        PeakIoU().compute()


# ---------------------------------------------------------------------------------------------------------------
# PxAP


def reference_formula_pxap(maps, masks, ignore, thresholds):
    """wsolevaluation's MaskEvaluator: np.histogram on edges thresholds + [1, 2, 3], then its AUC formula."""
    edges = np.append(thresholds, [1.0, 2.0, 3.0])
    true_hist = np.zeros(len(edges) - 1)
    false_hist = np.zeros(len(edges) - 1)
    for score, mask, skip in zip(maps, masks, ignore):
        label = mask.astype(np.uint8) + 255 * (skip & ~mask).astype(np.uint8)
        true_hist += np.histogram(score[label == 1], bins=edges)[0]
        false_hist += np.histogram(score[label == 0], bins=edges)[0]
    tp = true_hist[::-1].cumsum()
    fn = true_hist.sum() - tp
    fp = false_hist[::-1].cumsum()
    non_zero = (tp + fp) != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    return (precision[1:] * np.diff(recall))[non_zero[1:]].sum() * 100


@pytest.mark.parametrize("levels", [None, 10, 100])
def test_pxap_reference_mode_is_the_reference_formula_bit_for_bit(levels, metric_path) -> None:
    maps, masks, ignore = make_data(3, batch=4, size=(12, 10), levels=levels)
    maps[0, 0, :3] = [1.0, 0.0, 0.5]  # the extreme values and a value on a threshold
    for interval in (0.01, 0.1, 0.001):
        thresholds = cam_thresholds(interval)
        expected = reference_formula_pxap(maps, masks, ignore, thresholds)
        result = pxap(torch.tensor(maps), torch.tensor(masks), torch.tensor(ignore), thresholds=thresholds)
        assert result.pxap == expected
        assert result.pxap == pytest.approx(slow_pxap(maps, masks, ignore, thresholds, True), abs=1e-9)


@pytest.mark.parametrize("levels", [None, 10])
def test_pxap_continuous_mode_equals_the_definition(levels, metric_path) -> None:
    maps, masks, ignore = make_data(4, batch=3, levels=levels)
    thresholds = cam_thresholds(0.1)
    result = pxap(
        torch.tensor(maps), torch.tensor(masks), torch.tensor(ignore), thresholds=thresholds, mode="continuous"
    )
    assert result.pxap == pytest.approx(slow_pxap(maps, masks, ignore, thresholds, False), abs=1e-9)


@given(
    values=st.lists(st.integers(0, 10), min_size=4, max_size=40),
    truth=st.lists(st.booleans(), min_size=4, max_size=40),
)
def test_property_pxap_reference_on_random_grids(values, truth) -> None:
    size = min(len(values), len(truth))
    maps = (np.array(values[:size], dtype=np.float64) / 10)[None, None]
    masks = np.array(truth[:size])[None, None]
    if not masks.any():
        masks[..., 0] = True
    ignore = np.zeros_like(masks)
    thresholds = cam_thresholds(0.1)
    result = pxap(torch.tensor(maps), torch.tensor(masks), thresholds=thresholds)
    assert result.pxap == reference_formula_pxap(maps, masks, ignore, thresholds)


def test_pxap_constant_maps_give_the_positive_rate_and_perfect_maps_100() -> None:
    # As the reference's own tests: a constant map's PR curve is one point, precision = share of foreground.
    masks = np.zeros((1, 10, 10), dtype=bool)
    masks[0, :3] = True
    for value in (0.0, 0.5, 1.0):
        result = pxap(torch.full((1, 10, 10), value, dtype=torch.float64), torch.tensor(masks))
        assert result.pxap == pytest.approx(30.0, abs=1e-12)
    assert pxap(torch.tensor(masks, dtype=torch.float64), torch.tensor(masks)).pxap == 100.0
    assert pxap(torch.tensor(masks, dtype=torch.float64), torch.tensor(masks), mode="continuous").pxap == 100.0


def test_pxap_ignore_never_hides_foreground_and_merge_equals_whole() -> None:
    maps, masks, _ = make_data(5, batch=4)
    everything = torch.ones(masks.shape, dtype=torch.bool)  # ignore all: only the foreground remains counted
    result = pxap(torch.tensor(maps), torch.tensor(masks), everything)
    assert result.pxap == 100.0  # no background pixel left, so every prediction is right
    whole = PxAP()
    whole.update(torch.tensor(maps), torch.tensor(masks))
    first, second = PxAP(), PxAP()
    first.update(torch.tensor(maps[:1]), torch.tensor(masks[:1]))
    second.update(torch.tensor(maps[1:]), torch.tensor(masks[1:]))
    assert first.merge(second).compute().pxap == whole.compute().pxap


def test_pxap_bad_input(metric_path) -> None:
    maps = torch.rand(1, 4, 4)
    with pytest.raises(ValueError, match="no mask has a .*foreground pixel"):
        pxap(maps, torch.zeros(1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"ignore must have the shape of the maps"):
        pxap(maps, torch.ones(1, 4, 4, dtype=torch.bool), torch.ones(1, 4, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mode must be one of"):
        PxAP(mode="fast")
    with pytest.raises(ValueError, match=r"maps must have values in \[0, 1\]"):
        pxap(maps - 1, torch.ones(1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="no images"):
        PxAP().compute()


def values_on_and_around(thresholds: np.ndarray) -> np.ndarray:
    """Every threshold, its float64 neighbours on both sides and the float32 roundings of all of them: the values
    where a wrong tie rule or a wrong guess of the bin would show."""
    on = np.append(thresholds, [0.0, 1.0])
    near = np.concatenate([on, np.nextafter(on, -1.0), np.nextafter(on, 2.0)])
    near = np.concatenate([near, near.astype(np.float32).astype(np.float64)])
    return np.unique(np.clip(near, 0.0, 1.0))


@pytest.mark.parametrize(
    "thresholds",
    [
        cam_thresholds(0.01),
        cam_thresholds(0.001),
        cam_thresholds(1e-4),
        np.array([0.25, 0.5, 0.75]),  # above 0: np.histogram leaves the values below 0.25 out of every bin
        np.array([0.0, 0.3, 1.0]),  # 1.0 twice among the reference's edges: the empty bin [1, 1)
        np.sort(np.random.default_rng(9).random(37)),  # uneven: several thresholds in one cell of the kernel table
        np.array([0.5]),
    ],
    ids=["0.01", "0.001", "1e-4", "above-0", "with-1", "uneven", "one"],
)
def test_pxap_and_peak_iou_ties_on_every_threshold(thresholds, metric_path) -> None:
    values = values_on_and_around(thresholds)
    rng = np.random.default_rng(len(thresholds))
    size = int(np.ceil(np.sqrt(len(values) / 2)))
    padded = np.resize(rng.permutation(values), 2 * size * size)
    maps = padded.reshape(2, size, size)
    masks = rng.random(maps.shape) < 0.5
    masks[:, 0, 0] = True
    ignore = rng.random(maps.shape) < 0.2
    expected = reference_formula_pxap(maps, masks, ignore, thresholds)
    result = pxap(torch.tensor(maps), torch.tensor(masks), torch.tensor(ignore), thresholds=thresholds)
    assert result.pxap == expected
    continuous = pxap(
        torch.tensor(maps), torch.tensor(masks), torch.tensor(ignore), thresholds=thresholds, mode="continuous"
    )
    assert continuous.pxap == pytest.approx(slow_pxap(maps, masks, ignore, thresholds, False), abs=1e-9)
    if len(thresholds) <= 200:  # the pixel loops take a second per thousand thresholds
        curve = peak_iou(torch.tensor(maps), torch.tensor(masks), torch.tensor(ignore), thresholds=thresholds).curve
        np.testing.assert_allclose(curve, slow_iou_curve(maps, masks, ignore, thresholds, False), rtol=0, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision_maps_count_their_exact_values(dtype, metric_path) -> None:
    maps, masks, ignore = make_data(6, batch=3, size=(16, 12))
    low = torch.tensor(maps).to(dtype)
    exact = low.double().numpy()  # every float16, bfloat16 and float32 value is exact in float64
    thresholds = cam_thresholds(0.01)
    result = pxap(low, torch.tensor(masks), torch.tensor(ignore), thresholds=thresholds)
    assert result.pxap == reference_formula_pxap(exact, masks, ignore, thresholds)
    curve = peak_iou(low, torch.tensor(masks), torch.tensor(ignore), thresholds=thresholds[::10]).curve
    np.testing.assert_allclose(curve, slow_iou_curve(exact, masks, ignore, thresholds[::10], False), atol=1e-9)


def test_strided_maps_and_masks_of_any_layout_give_the_same_numbers(metric_path) -> None:
    maps, masks, ignore = make_data(7, batch=4, size=(10, 14))
    expected = pxap(torch.tensor(maps), torch.tensor(masks), torch.tensor(ignore)).pxap
    # Transposed (not contiguous), integer 0/1 masks and a map that requires grad.
    maps_t = torch.tensor(maps.transpose(0, 2, 1).copy(), requires_grad=True).transpose(1, 2)
    masks_t = torch.tensor(masks.transpose(0, 2, 1).copy()).transpose(1, 2).to(torch.uint8)
    ignore_t = torch.tensor(ignore.transpose(0, 2, 1).copy()).transpose(1, 2).long()
    assert not maps_t.is_contiguous()
    assert pxap(maps_t, masks_t, ignore_t).pxap == expected


def test_a_bad_value_in_a_later_map_is_named(metric_path) -> None:
    maps = torch.rand(6, 5, 5, dtype=torch.float64)
    maps[4, 1, 2] = 1.5
    masks = torch.ones(6, 5, 5, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"maps must have values in \[0, 1\]"):
        PxAP().update(maps, masks)
    maps[4, 1, 2] = float("nan")
    with pytest.raises(ValueError, match="maps must be finite"):
        PeakIoU(reduction="image").update(maps, masks)
