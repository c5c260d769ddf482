"""PaS: camfix.percentile against numpy and a sort-based reference, thresholds and masks (strict '>', ties),
and percentile_box against a pure-python 8-connected flood fill (mask_to_box: test_boxes.py)."""

from __future__ import annotations

import inspect
import math
from typing import Callable, Sequence

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from nets import TimmStyleNet, TorchvisionResNet
from references import largest_component_boxes, reference_is_constant

import camfix
from camfix import (
    NO_BOX,
    mask_to_box,
    normalize_maps,
    percentile,
    percentile_box,
    percentile_normalize,
    percentile_threshold,
    resize_maps,
    threshold_masks,
)


def reference_percentile(values: Sequence[float], pct: float) -> float:
    """The pct-th percentile by its definition: linear interpolation between the order statistics around
    position pct / 100 * (n - 1) of the sorted values (numpy's default ``method="linear"``)."""
    ordered = sorted(float(v) for v in values)
    position = pct / 100.0 * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (position - lower) * (ordered[upper] - ordered[lower])


def reference_threshold(map2d: np.ndarray, theta: float, pct: float, dtype: torch.dtype = torch.float64) -> float:
    """PaS threshold theta * percentile_pct; the maximum for a map of ``dtype`` constant up to float noise."""
    values = map2d.ravel()
    if reference_is_constant(values, dtype):
        return float(values.max())
    return theta * reference_percentile(values, pct)


maps_any_sign = st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6)).flatmap(
    lambda shape: arrays(np.float64, shape, elements=st.floats(-100, 100, allow_subnormal=False))
)
pcts = st.one_of(st.sampled_from([0.0, 50.0, 90.0, 98.0, 100.0]), st.floats(0, 100))


# ------------------------------------------------------------------------------------------------------ percentile


@given(maps=maps_any_sign, pct=pcts)
def test_percentile_matches_numpy_and_reference(maps: np.ndarray, pct: float) -> None:
    result = percentile(torch.from_numpy(maps), pct)
    assert result.shape == (maps.shape[0],) and result.dtype == torch.float64
    expected = [reference_percentile(m.ravel(), pct) for m in maps]
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(result.numpy(), np.percentile(maps.reshape(len(maps), -1), pct, axis=1),
                               rtol=1e-12, atol=1e-12)


def test_percentile_extremes_and_1x1() -> None:
    maps = torch.rand(3, 5, 7)
    assert torch.equal(percentile(maps, 100), maps.amax(dim=(1, 2)))
    assert torch.equal(percentile(maps, 0), maps.amin(dim=(1, 2)))
    single = torch.tensor([[[0.3]], [[0.0]]])
    for pct in (0, 37.5, 98, 100):
        assert torch.equal(percentile(single, pct), torch.tensor([0.3, 0.0]))


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-6), (torch.float16, 1e-3), (torch.bfloat16, 8e-3)])
def test_percentile_dtypes(dtype: torch.dtype, tol: float) -> None:
    maps = torch.rand(2, 9, 11).to(dtype)
    result = percentile(maps, 97.3)
    assert result.dtype == dtype
    expected = np.percentile(maps.double().numpy().reshape(2, -1), 97.3, axis=1)
    np.testing.assert_allclose(result.double().numpy(), expected, rtol=tol, atol=tol)


def test_percentile_non_contiguous() -> None:
    maps = torch.rand(2, 8, 6).transpose(1, 2)
    assert not maps.is_contiguous()
    assert torch.equal(percentile(maps, 90), percentile(maps.contiguous(), 90))


def test_percentile_beyond_torch_quantile_size_limit() -> None:
    # torch.quantile refuses inputs of more than 2**24 elements; a 4100 x 4100 map has 16.8M.
    maps = torch.rand(1, 4100, 4100)
    expected = np.percentile(maps.numpy().ravel(), 98.5)
    np.testing.assert_allclose(percentile(maps, 98.5).item(), expected, rtol=1e-6)


# ------------------------------------------------------------------------------------------ thresholds and masks

# Values on a coarse dyadic grid make ties between a pixel and the threshold frequent, and exact.
tie_prone_maps = st.tuples(st.integers(1, 2), st.integers(1, 5), st.integers(1, 5)).flatmap(
    lambda shape: arrays(np.float64, shape, elements=st.sampled_from([0.0, 0.125, 0.25, 0.5, 0.75, 1.0]))
)
theta_locs = st.one_of(st.sampled_from([0.0, 0.25, 0.35, 0.5, 1.0]), st.floats(0, 1))


@given(maps=tie_prone_maps, theta=theta_locs, pct=pcts)
def test_threshold_masks_strict_greater_than(maps: np.ndarray, theta: float, pct: float) -> None:
    tensor = torch.from_numpy(maps)
    thresholds = percentile_threshold(tensor, theta, pct)
    masks = threshold_masks(tensor, theta, pct)
    assert masks.dtype == torch.bool and masks.shape == maps.shape
    for index, single in enumerate(maps):
        tau = reference_threshold(single, theta, pct)
        assert thresholds[index].item() == tau
        assert masks[index].tolist() == [[bool(v > tau) for v in row] for row in single]


def test_ties_at_the_threshold_are_background() -> None:
    # pct 100 and theta 0.5: tau = 0.5 exactly; the pixels equal to 0.5 are not foreground.
    maps = torch.tensor([[[1.0, 0.5, 0.5], [0.25, 0.5, 0.75]]])
    assert threshold_masks(maps, theta=0.5, pct=100).tolist() == [[[True, False, False], [False, False, True]]]


def test_threshold_defaults_are_the_papers() -> None:
    maps = torch.rand(2, 10, 10)
    # theta_loc 0.35 (ECCV code), percentile 98 (LID paper)
    assert torch.equal(percentile_threshold(maps), 0.35 * percentile(maps, 98))
    assert torch.equal(threshold_masks(maps), maps > (0.35 * percentile(maps, 98))[:, None, None])


def test_all_zero_and_normalised_constant_maps_give_empty_masks() -> None:
    zeros = torch.zeros(2, 4, 5)
    constant = normalize_maps(torch.full((1, 4, 5), 3.0))
    for maps in (zeros, constant):
        assert not threshold_masks(maps).any()
        assert percentile_box(maps).tolist() == [list(NO_BOX)] * len(maps)


def test_1x1_maps_are_constant() -> None:
    # A 1x1 map has no contrast: like a constant map, no foreground at any theta (it normalises to zeros).
    maps = torch.tensor([[[0.7]], [[0.0]]])
    assert torch.equal(percentile_threshold(maps, 0.35, 98), maps.flatten())
    for theta in (0.0, 0.35, 1.0):
        assert not threshold_masks(maps, theta, 98).any()
    assert percentile_box(maps).tolist() == [list(NO_BOX)] * 2
    assert percentile_box(maps[0]).tolist() == list(NO_BOX)  # one 1x1 map
    assert torch.equal(percentile_normalize(maps), torch.zeros_like(maps))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_threshold_dtypes(dtype: torch.dtype) -> None:
    maps = torch.rand(2, 6, 7).to(dtype)
    assert percentile_threshold(maps).dtype == dtype
    assert torch.equal(threshold_masks(maps), maps > percentile_threshold(maps)[:, None, None])


# ----------------------------------------------------------------------------------------------- percentile_box


def test_percentile_box_recovers_cam_at_pct_100_and_pas_keeps_the_object() -> None:
    # A 10x10 object of 0.3 with one outlier pixel of 1.0: the max-based threshold 0.35 * 1.0 keeps only the
    # outlier; the 98th percentile (0.3, the object covers 25% of the map) gives 0.105 and keeps the object.
    cam = torch.zeros(1, 20, 20)
    cam[0, 5:15, 3:13] = 0.3
    cam[0, 8, 6] = 1.0
    assert percentile_box(cam, theta=0.35, pct=100).tolist() == [[6, 8, 6, 8]]
    assert percentile_box(cam, theta=0.35, pct=98).tolist() == [[3, 5, 12, 14]]
    assert torch.equal(percentile_box(cam), percentile_box(cam, 0.35, 98))  # defaults


@given(maps=tie_prone_maps, theta=theta_locs, pct=pcts)
def test_percentile_box_is_the_box_of_the_threshold_mask(maps: np.ndarray, theta: float, pct: float) -> None:
    tensor = torch.from_numpy(maps)
    boxes = percentile_box(tensor, theta, pct)
    for box, mask in zip(boxes.tolist(), threshold_masks(tensor, theta, pct).numpy()):
        assert tuple(box) in largest_component_boxes(mask) or (not mask.any() and tuple(box) == NO_BOX)


# ------------------------------------------------------------------------------------------------ one (H, W) map


@given(maps=tie_prone_maps, theta=theta_locs, pct=pcts)
def test_one_map_equals_a_batch_of_one(maps: np.ndarray, theta: float, pct: float) -> None:
    for single in torch.from_numpy(maps):
        batch = single[None]
        value = percentile(single, pct)
        assert value.shape == () and torch.equal(value, percentile(batch, pct)[0])
        assert value.item() == pytest.approx(reference_percentile(single.numpy().ravel(), pct), rel=1e-12, abs=1e-12)
        tau = percentile_threshold(single, theta, pct)
        assert tau.shape == () and torch.equal(tau, percentile_threshold(batch, theta, pct)[0])
        assert tau.item() == reference_threshold(single.numpy(), theta, pct)
        mask = threshold_masks(single, theta, pct)
        assert mask.shape == single.shape and torch.equal(mask, threshold_masks(batch, theta, pct)[0])
        assert mask.tolist() == [[bool(v > tau.item()) for v in row] for row in single.tolist()]
        normalised = percentile_normalize(single, pct)
        assert normalised.shape == single.shape and torch.equal(normalised, percentile_normalize(batch, pct)[0])
        box = mask_to_box(mask)
        assert box.shape == (4,) and box.dtype == torch.int64 and torch.equal(box, mask_to_box(mask[None])[0])
        assert tuple(box.tolist()) in largest_component_boxes(mask.numpy()) or (
            not mask.any() and tuple(box.tolist()) == NO_BOX
        )
        assert torch.equal(percentile_box(single, theta, pct), box)
        assert torch.equal(percentile_box(cam=single, theta=theta, pct=pct), box)


def test_one_map_non_contiguous_and_low_precision() -> None:
    single = normalize_maps(torch.rand(9, 7) ** 3).t()
    assert not single.is_contiguous()
    assert torch.equal(percentile_box(single), percentile_box(single.contiguous()[None])[0])
    for dtype in (torch.float16, torch.bfloat16):
        low = single.to(dtype)
        assert percentile_threshold(low).dtype == dtype and percentile_threshold(low).shape == ()
        assert torch.equal(threshold_masks(low), threshold_masks(low[None])[0])


def test_percentile_box_signature() -> None:
    assert list(inspect.signature(percentile_box).parameters) == ["cam", "theta", "pct"]


# ------------------------------------------------------------------------------ maps constant up to float noise


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
def test_resized_constant_maps_give_no_box(dtype: torch.dtype, mode: str) -> None:
    """The map of a constant or 1x1 feature map, resized: noise of a few eps, no box, normalised or not."""
    constants = torch.tensor([0.0, 0.3, 1.0, 2.2325754, 7.7, 123.456], dtype=dtype)
    for in_size, size in (((1, 1), (224, 224)), ((2, 3), (64, 48)), ((7, 7), (100, 77))):
        resized = resize_maps(constants[:, None, None].expand(-1, *in_size), size, mode=mode)
        for maps in (resized, normalize_maps(resized)):
            assert torch.equal(percentile_threshold(maps), maps.amax(dim=(1, 2)))
            for theta in (0.0, 0.35):
                assert not threshold_masks(maps, theta).any()
            assert percentile_box(maps).tolist() == [list(NO_BOX)] * len(constants)
            assert torch.equal(percentile_normalize(maps), torch.zeros_like(maps))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_small_real_range_still_gives_boxes(dtype: torch.dtype) -> None:
    # A range of 1e-3 of the magnitude is a real map: PaS as usual, unnormalised (offset 1000) or normalised.
    cam = torch.full((1, 20, 20), 1000.0, dtype=dtype)
    cam[0, 5:15, 3:13] += 1.0
    assert percentile_box(cam, theta=0.9995, pct=100).tolist() == [[3, 5, 12, 14]]
    assert percentile_box(normalize_maps(cam)).tolist() == [[3, 5, 12, 14]]


near_constant_cases = st.tuples(
    st.sampled_from([torch.float64, torch.float32, torch.float16, torch.bfloat16]),
    st.floats(1e-3, 1e3),
    st.floats(-9, -1),  # log10 of the relative amplitude of the noise, across every dtype's tolerance
    st.integers(0, 2**31 - 1),
    theta_locs.filter(lambda theta: theta < 1),
)


@given(case=near_constant_cases)
def test_threshold_path_agrees_with_normalize_maps(case: tuple) -> None:
    """A map has foreground (theta < 1) exactly when it does not normalise to zeros: one rule for both."""
    dtype, constant, log_amplitude, seed, theta = case
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(2, 5, 6, generator=generator, dtype=torch.float64)
    maps = (constant * (1 + 10.0**log_amplitude * noise)).to(dtype)
    has_foreground = threshold_masks(maps, theta).any(dim=(1, 2))
    assert has_foreground.tolist() == normalize_maps(maps).any(dim=(1, 2)).tolist()
    assert has_foreground.tolist() == [not reference_is_constant(m.ravel(), dtype) for m in maps.double().numpy()]
    has_box = percentile_box(maps, theta) != torch.tensor(NO_BOX)
    assert has_box.all(dim=1).tolist() == has_foreground.tolist()


@pytest.mark.parametrize("make_model, image_size", [(TorchvisionResNet, (32, 32)), (TorchvisionResNet, (17, 29)),
                                                    (TimmStyleNet, (4, 3))])
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_localize_with_1x1_feature_maps_gives_no_box(
    make_model: Callable[[], torch.nn.Module], image_size: tuple, interpolation: str
) -> None:
    # ResNet features are 1/32 of the image, TimmStyleNet's 1/4 (rounded up): 1x1 here. Resized to the image the
    # one value picks up noise that a plain min-max normalisation stretches to a full-image box.
    model = make_model()
    images = torch.randn(2, 3, *image_size)
    for size in (None, (224, 224)):
        result = camfix.localize(model, images, image_size=size, interpolation=interpolation)
        assert torch.equal(result.maps, torch.zeros_like(result.maps))
        assert not result.masks.any()
        assert result.boxes.tolist() == [list(NO_BOX)] * 2
        assert result.thresholds.tolist() == [0.0, 0.0]


def test_localize_with_2x2_feature_maps_still_gives_boxes() -> None:
    result = camfix.localize(TorchvisionResNet(), torch.randn(2, 3, 64, 64))
    assert result.masks.any(dim=(1, 2)).all() and (result.boxes >= 0).all()


# ------------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("pct", [-1, 100.5, float("nan"), float("inf")])
def test_bad_pct_value(pct: float) -> None:
    with pytest.raises(ValueError, match=r"pct must be in \[0, 100\]"):
        percentile(torch.rand(1, 3, 3), pct)
    with pytest.raises(ValueError, match="pct must be"):
        percentile_box(torch.rand(1, 3, 3), 0.35, pct)


@pytest.mark.parametrize("pct", ["98", None, True])
def test_bad_pct_type(pct: object) -> None:
    with pytest.raises(TypeError, match="pct must be a real number"):
        percentile(torch.rand(1, 3, 3), pct)  # type: ignore[arg-type]


@pytest.mark.parametrize("theta", [-0.1, 1.01, float("nan")])
def test_bad_theta(theta: float) -> None:
    with pytest.raises(ValueError, match=r"theta must be in \[0, 1\]"):
        percentile_threshold(torch.rand(1, 3, 3), theta)
    with pytest.raises(ValueError, match="theta must be"):
        threshold_masks(torch.rand(1, 3, 3), theta)


MAP_FUNCTIONS = [
    (lambda maps: percentile(maps, 98.0), "maps"),
    (percentile_threshold, "maps"),
    (percentile_normalize, "maps"),
    (threshold_masks, "maps"),
    (percentile_box, "cam"),
]


@pytest.mark.parametrize("function, name", MAP_FUNCTIONS)
@pytest.mark.parametrize(
    "maps, error, pattern",
    [
        (torch.rand(3), ValueError, r"^{name} must have shape \(N, H, W\) or \(H, W\) \(3 or 2 dims\), got 1 dims"),
        (torch.rand(1, 1, 3, 3), ValueError, r"^{name} must have shape \(N, H, W\) or \(H, W\).*got 4 dims"),
        (torch.ones(1, 3, 3, dtype=torch.int32), TypeError, "^{name} must be a floating point tensor"),
        (torch.ones(3, 3, dtype=torch.bool), TypeError, "^{name} must be a floating point tensor"),
        (torch.zeros(1, 0, 3), ValueError, r"^{name} must not be empty, got shape \(1, 0, 3\)"),
        (torch.zeros(0, 3, 3), ValueError, r"^{name} must not be empty, got shape \(0, 3, 3\)"),
        (torch.zeros(3, 0), ValueError, r"^{name} must not be empty, got shape \(3, 0\)"),
        (np.ones((1, 3, 3)), TypeError, "^{name} must be a torch.Tensor"),
        (torch.tensor([[[0.5, float("nan")]]]), ValueError, "^{name} must be finite, got 1 NaN and 0 infinite"),
        (torch.tensor([[0.5, float("inf")]]), ValueError, "^{name} must be finite, got 0 NaN and 1 infinite"),
    ],
)
def test_bad_maps(function: Callable, name: str, maps: object, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern.format(name=name)):
        function(maps)


@pytest.mark.parametrize("function, name", MAP_FUNCTIONS[1:])  # percentile is a plain statistic, any sign
@pytest.mark.parametrize("maps", [torch.tensor([[[0.5, -0.25]]]), torch.tensor([[0.5, -0.25]])])
def test_negative_maps(function: Callable, name: str, maps: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=f"^{name} must be non-negative.*normalize_maps first, got minimum -0.25"):
        function(maps)


@pytest.mark.parametrize(
    "masks, error, pattern",
    [
        (torch.rand(1, 3, 3), TypeError, "masks must have dtype torch.bool, got a torch.float32 tensor"),
        (torch.ones(3, 3, dtype=torch.uint8), TypeError, r"masks must have dtype torch.bool.*shape \(3, 3\)"),
        (torch.ones(3, dtype=torch.bool), ValueError, r"masks must have shape \(N, H, W\) or \(H, W\)"),
        (torch.ones(1, 1, 3, 3, dtype=torch.bool), ValueError, r"masks must have shape \(N, H, W\) or \(H, W\)"),
        (torch.ones(1, 0, 3, dtype=torch.bool), ValueError, r"masks must not be empty, got shape \(1, 0, 3\)"),
        (torch.ones(3, 0, dtype=torch.bool), ValueError, r"masks must not be empty, got shape \(3, 0\)"),
        (np.ones((1, 3, 3), dtype=bool), TypeError, "masks must be a torch.Tensor"),
    ],
)
def test_bad_masks(masks: object, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        mask_to_box(masks)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------------------ CUDA


@pytest.mark.cuda
def test_thresholds_and_boxes_on_cuda() -> None:
    maps = normalize_maps(torch.rand(3, 17, 23) ** 4)
    on_gpu = maps.cuda()
    torch.testing.assert_close(percentile(on_gpu, 98).cpu(), percentile(maps, 98))
    assert torch.equal(threshold_masks(on_gpu).cpu(), threshold_masks(maps))
    boxes = percentile_box(on_gpu)
    assert boxes.device.type == "cuda"
    assert torch.equal(boxes.cpu(), percentile_box(maps))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    pct=st.floats(0, 100),
    zero_fraction=st.sampled_from([0.0, 0.5, 0.99, 1.0]),
)
def test_percentile_normalize_thresholds_like_pas(seed: int, pct: float, zero_fraction: float) -> None:
    """result > theta  <=>  map > theta * percentile_pct(map), for every theta in [0, 1)."""
    generator = torch.Generator().manual_seed(seed)
    maps = torch.rand(3, 9, 7, generator=generator, dtype=torch.float64)
    maps[torch.rand(maps.shape, generator=generator, dtype=torch.float64) < zero_fraction] = 0
    result = camfix.percentile_normalize(maps, pct)
    assert result.min() >= 0 and result.max() <= 1
    for theta in np.linspace(0, 0.999, 37):
        for index, single in enumerate(maps.numpy()):
            expected = single > theta * np.percentile(single, pct)
            np.testing.assert_array_equal(result[index].numpy() > theta, expected)


def test_percentile_normalize_pct_100_keeps_a_normalised_map() -> None:
    maps = camfix.normalize_maps(torch.rand(2, 5, 6))
    assert torch.equal(camfix.percentile_normalize(maps, 100.0), maps)


def test_percentile_rejects_non_finite_maps() -> None:
    maps = torch.rand(2, 4, 4)
    maps[1, 2, 3] = float("inf")
    with pytest.raises(ValueError, match="maps must be finite, got 0 NaN and 1 infinite"):
        camfix.percentile(maps, 98.0)
