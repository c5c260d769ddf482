"""Tests for camfix.crf: formulas against slow references, refinement on scenes with a known truth, batches,
determinism and input validation."""

from __future__ import annotations

import sys
from typing import Tuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from camfix.crf import (
    MAX_CRF_ITERATIONS,
    DenseCRFParams,
    alpha_boundary,
    dense_crf,
    load_pydensecrf,
    refine_labels,
    refine_labels_batch,
    refine_saliency,
    refine_saliency_batch,
    refine_saliency_sweep,
    saliency_scores,
)

needs_pydensecrf = pytest.mark.crf


@pytest.fixture(autouse=True)
def _skip_without_pydensecrf(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("crf") is not None:
        pytest.importorskip("pydensecrf.densecrf")


# ---------------------------------------------------------------------------------------------------------------
# Slow references, written from the definition in camfix/crf.py's module docstring (float64, loops).


def reference_unary(probs: np.ndarray, confidence: float, epsilon: float) -> np.ndarray:
    """U[l, y, x] = -log(max(c * P + (1 - c) / K, epsilon))."""
    num_classes, height, width = probs.shape
    unary = np.empty(probs.shape, dtype=np.float64)
    for label in range(num_classes):
        for y in range(height):
            for x in range(width):
                mixed = confidence * float(probs[label, y, x]) + (1.0 - confidence) / num_classes
                unary[label, y, x] = -np.log(max(mixed, epsilon))
    return unary


def reference_softmax_over_labels(energy: np.ndarray) -> np.ndarray:
    """softmax over axis 0 of ``(K, N)`` by loops."""
    out = np.empty_like(energy)
    for i in range(energy.shape[1]):
        column = np.exp(energy[:, i] - energy[:, i].max())
        out[:, i] = column / column.sum()
    return out


def reference_kernel(features: np.ndarray) -> np.ndarray:
    """Symmetrically normalised Gaussian kernel k(i, j) / sqrt(n_i n_j), self pair included."""
    count = features.shape[0]
    kernel = np.empty((count, count))
    for i in range(count):
        for j in range(count):
            kernel[i, j] = np.exp(-0.5 * float(((features[i] - features[j]) ** 2).sum()))
    norm = kernel.sum(axis=1)
    for i in range(count):
        for j in range(count):
            kernel[i, j] /= np.sqrt(norm[i] * norm[j])
    return kernel


def reference_dense_crf(image: np.ndarray, probs: np.ndarray, params: DenseCRFParams) -> np.ndarray:
    """Exact (O(N^2)) mean-field inference of the fully connected CRF with Potts Gaussian + bilateral terms."""
    num_classes, height, width = probs.shape
    unary = reference_unary(probs, params.confidence, params.epsilon).reshape(num_classes, -1)
    positions = np.array([(x, y) for y in range(height) for x in range(width)], dtype=np.float64)
    colours = image.reshape(-1, 3).astype(np.float64)
    smoothness = reference_kernel(positions / params.gaussian_sxy)
    appearance = reference_kernel(
        np.concatenate([positions / params.bilateral_sxy, colours / params.bilateral_srgb], axis=1)
    )
    q = reference_softmax_over_labels(-unary)
    for _ in range(params.iterations):
        message = params.gaussian_compat * q @ smoothness.T + params.bilateral_compat * q @ appearance.T
        q = reference_softmax_over_labels(-unary + message)
    return q.reshape(num_classes, height, width)


# ---------------------------------------------------------------------------------------------------------------
# Scenes with a known truth.


def random_probs(num_classes: int, height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, (num_classes, height, width))
    return np.exp(logits) / np.exp(logits).sum(axis=0)


def l_shape_image(height: int = 10, width: int = 13, seed: int = 0) -> np.ndarray:
    """A red L on blue, asymmetric under flips and transposes, with colour noise; uint8 (H, W, 3)."""
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3))
    image[:] = (40, 80, 200)
    image[1:8, 2:5] = (210, 50, 40)
    image[5:8, 2:11] = (210, 50, 40)
    return np.clip(image + rng.normal(0, 10, image.shape), 0, 255).astype(np.uint8)


def scene(height: int, width: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """A noisy, unevenly lit scene: background 0 (blue), a red ellipse (1) and a green rectangle (2).

    Returns the RGB image, uint8 (H, W, 3), and the true label map, int64 (H, W).
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:height, :width].astype(np.float64)
    labels = np.zeros((height, width), dtype=np.int64)
    labels[((y - 0.45 * height) / (0.3 * height)) ** 2 + ((x - 0.3 * width) / (0.2 * width)) ** 2 <= 1] = 1
    labels[int(0.2 * height) : int(0.75 * height), int(0.6 * width) : int(0.85 * width)] = 2
    colours = np.array([(50, 90, 180), (190, 60, 50), (70, 170, 60)], dtype=np.float64)
    lighting = 0.8 + 0.4 * x[..., None] / width
    image = colours[labels] * lighting + rng.normal(0, 20, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8), labels


def coarse_probs(
    labels: np.ndarray, num_classes: int, factor: int = 8, shift: Tuple[int, int] = (4, 5)
) -> torch.Tensor:
    """What a CAM gives: the one-hot truth shifted, pooled to 1/factor resolution, blurred and upsampled
    bilinearly. Every step is a convex combination, so the result (K, H, W) still sums to 1 over K."""
    one_hot = F.one_hot(torch.from_numpy(labels), num_classes).permute(2, 0, 1)[None].double()
    shifted = torch.roll(one_hot, shifts=shift, dims=(2, 3))
    low = F.avg_pool2d(shifted, factor)
    blur = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], dtype=torch.float64) / 16
    low = F.conv2d(F.pad(low, (1, 1, 1, 1), mode="replicate"), blur.expand(num_classes, 1, 3, 3), groups=num_classes)
    return F.interpolate(low, size=labels.shape, mode="bilinear", align_corners=False)[0]


def iou(prediction: np.ndarray, truth: np.ndarray) -> float:
    return float((prediction & truth).sum() / (prediction | truth).sum())


def peak_iou(saliency: np.ndarray, truth: np.ndarray) -> float:
    """The input map's best IoU over 100 thresholds: the baseline is given every advantage."""
    return max(iou(saliency > threshold, truth) for threshold in np.arange(100) / 100)


def mean_iou(prediction: np.ndarray, truth: np.ndarray, num_classes: int) -> float:
    return float(np.mean([iou(prediction == label, truth == label) for label in range(num_classes)]))


def to_chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)


# ---------------------------------------------------------------------------------------------------------------
# Formulas against the references.


@needs_pydensecrf
@pytest.mark.parametrize("num_classes", [2, 3, 5])
@pytest.mark.parametrize("confidence, epsilon", [(1.0, 1e-5), (0.6, 1e-5), (1.0, 0.05)])
def test_zero_iterations_is_softmax_of_the_unary(num_classes: int, confidence: float, epsilon: float) -> None:
    probs = random_probs(num_classes, 6, 7, seed=num_classes)
    probs[0, 0, :] = 0.0  # exercise the epsilon clamp
    probs[1:, 0, :] /= probs[1:, 0, :].sum(axis=0)
    params = DenseCRFParams(iterations=0, confidence=confidence, epsilon=epsilon)
    expected = reference_softmax_over_labels(-reference_unary(probs, confidence, epsilon).reshape(num_classes, -1))
    refined = dense_crf(l_shape_image(6, 7), torch.from_numpy(probs), params)
    np.testing.assert_allclose(refined.numpy(), expected.reshape(probs.shape), atol=1e-6)


@needs_pydensecrf
@pytest.mark.parametrize("num_classes, confidence", [(2, 1.0), (2, 0.7), (3, 1.0)])
def test_one_iteration_matches_exact_mean_field(num_classes: int, confidence: float) -> None:
    """pydensecrf filters with a permutohedral lattice, an approximation of the exact Gaussian sums; measured on
    this 10 x 13 scene it is within 0.01 on average (0.05 at most) of the exact reference. The flipped-image and
    swapped-weight references (plausible wiring mistakes) are 3.5-5 times further away, so the test tells them apart."""
    image = l_shape_image()
    probs = random_probs(num_classes, *image.shape[:2], seed=1)
    params = DenseCRFParams(
        iterations=1,
        gaussian_sxy=1.5,
        gaussian_compat=1.0,
        bilateral_sxy=5.0,
        bilateral_srgb=20.0,
        bilateral_compat=6.0,
        confidence=confidence,
    )
    refined = dense_crf(image, torch.from_numpy(probs), params).double().numpy()
    error = np.abs(refined - reference_dense_crf(image, probs, params))
    assert error.mean() < 0.013 and error.max() < 0.07
    if num_classes == 2:
        flipped = reference_dense_crf(np.ascontiguousarray(image[::-1]), probs, params)
        assert np.abs(refined - flipped).mean() > 0.025
        swapped = DenseCRFParams(**{**params.__dict__, "gaussian_compat": 6.0, "bilateral_compat": 1.0})
        assert np.abs(refined - reference_dense_crf(image, probs, swapped)).mean() > 0.025


@needs_pydensecrf
def test_zero_weights_leave_the_unary_alone() -> None:
    image = l_shape_image()
    probs = torch.from_numpy(random_probs(3, *image.shape[:2], seed=2))
    unary_only = dense_crf(image, probs, DenseCRFParams(iterations=0))
    no_pairwise = dense_crf(image, probs, DenseCRFParams(gaussian_compat=0.0, bilateral_compat=0.0))
    torch.testing.assert_close(no_pairwise, unary_only, atol=1e-6, rtol=0)


def test_defaults_are_the_documented_literature_values() -> None:
    params = DenseCRFParams()
    assert (params.iterations, params.gaussian_sxy, params.gaussian_compat) == (10, 3.0, 3.0)
    assert (params.bilateral_sxy, params.bilateral_srgb, params.bilateral_compat) == (80.0, 13.0, 10.0)
    assert (params.confidence, params.epsilon) == (1.0, 1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Refinement where the truth is known.


@needs_pydensecrf
@pytest.mark.parametrize("seed", [0, 1])
def test_saliency_refinement_raises_iou_with_the_true_mask(seed: int) -> None:
    image, labels = scene(64, 80, seed)
    truth = labels == 1
    saliency = coarse_probs(truth.astype(np.int64), 2)[1]
    saliency = (saliency - saliency.min()) / (saliency.max() - saliency.min())  # min-max normalised, as a CAM
    refined = refine_saliency(image, saliency).numpy()
    before, after = peak_iou(saliency.numpy(), truth), iou(refined > 0.5, truth)
    assert before < 0.75
    assert after > before + 0.15, (before, after)


@needs_pydensecrf
def test_three_class_refinement_raises_mean_iou() -> None:
    image, labels = scene(64, 80, seed=3)
    probs = coarse_probs(labels, 3)
    refined, predicted = refine_labels(image, probs)
    before = mean_iou(probs.argmax(0).numpy(), labels, 3)
    after = mean_iou(predicted.numpy(), labels, 3)
    assert before < 0.7
    assert after > before + 0.15, (before, after)
    assert torch.equal(predicted, refined.argmax(0))
    torch.testing.assert_close(refined.sum(0), torch.ones(labels.shape), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------------------------
# The operating point of a saliency map: threshold (piecewise-linear remap) or PSA's alpha.


def test_saliency_scores_follow_their_definitions() -> None:
    saliency = torch.tensor([[0.0, 0.1, 0.2, 0.3, 0.6, 1.0]], dtype=torch.float64)
    # Default: the symmetric unary (background 1 - s, object s), exactly.
    default = saliency_scores(saliency)
    assert default.dtype == torch.float32 and default.shape == (2, 1, 6)
    assert torch.equal(default, torch.stack([1 - saliency, saliency]).float())
    assert torch.equal(saliency_scores(saliency, threshold=0.5), default)
    # threshold t: 0 -> 0, t -> 0.5, 1 -> 1, linear on both sides.
    remapped = saliency_scores(saliency, threshold=0.2)[1, 0].double()
    expected = [0.0, 0.25, 0.5, 0.5 + 0.5 * 0.1 / 0.8, 0.5 + 0.5 * 0.4 / 0.8, 1.0]
    torch.testing.assert_close(remapped, torch.tensor(expected, dtype=torch.float64), atol=1e-7, rtol=0)
    torch.testing.assert_close(saliency_scores(saliency, threshold=0.2).sum(0), torch.ones(1, 6), atol=1e-7, rtol=0)
    # alpha: PSA's _crf_with_alpha, background (1 - s)^alpha, object s, not normalised.
    psa = saliency_scores(saliency, alpha=4.0).double()
    torch.testing.assert_close(psa[0], (1 - saliency) ** 4, atol=1e-7, rtol=0)
    torch.testing.assert_close(psa[1], saliency, atol=1e-7, rtol=0)
    # Batches keep their layout: (N, H, W) -> (N, 2, H, W).
    batch = torch.rand(3, 4, 5)
    assert torch.equal(saliency_scores(batch, threshold=0.3)[1], saliency_scores(batch[1], threshold=0.3))


def test_alpha_boundary_solves_psa_equation() -> None:
    assert alpha_boundary(1.0) == pytest.approx(0.5, abs=1e-9)
    assert alpha_boundary(4.0) == pytest.approx(0.2755, abs=1e-4)
    assert alpha_boundary(32.0) == pytest.approx(0.0770, abs=1e-4)
    previous = 1.0
    for alpha in (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 32.0):
        boundary = alpha_boundary(alpha)
        assert boundary == pytest.approx((1 - boundary) ** alpha, abs=1e-9) and boundary < previous
        previous = boundary


@needs_pydensecrf
@pytest.mark.parametrize("operating_point", [{}, {"threshold": 0.2}, {"threshold": 0.35}, {"threshold": 0.8},
                                             {"alpha": 4.0}, {"alpha": 32.0}])
def test_operating_point_is_the_decision_boundary_of_the_unary(operating_point: dict) -> None:
    """With the pairwise terms off (iterations=0) a pixel is object exactly where the map exceeds the point."""
    rng = np.random.default_rng(7)
    saliency = torch.from_numpy(rng.uniform(0.02, 0.98, (12, 16)))
    if "alpha" in operating_point:
        boundary = alpha_boundary(operating_point["alpha"])
    else:
        boundary = operating_point.get("threshold", 0.5)
    saliency[(saliency - boundary).abs() < 2e-3] += 5e-3  # nothing on the fence
    refined = refine_saliency(l_shape_image(12, 16), saliency, DenseCRFParams(iterations=0), **operating_point)
    assert torch.equal(refined > 0.5, saliency > boundary)
    # iterations=0 is softmax(-U) of the scores: the reference unary, clamped as pydensecrf's unary_from_softmax.
    scores = saliency_scores(saliency, **operating_point).double().numpy()
    unary = -np.log(np.maximum(scores, 1e-5))
    expected = np.exp(-unary[1]) / (np.exp(-unary[0]) + np.exp(-unary[1]))
    np.testing.assert_allclose(refined.numpy(), expected, atol=1e-5)


def weak_object_map(labels: np.ndarray) -> torch.Tensor:
    """A CAM that peaks on a small part: the coarse object at 0.4, a 1.0 hot spot on its left, min-max normalised."""
    truth = labels.astype(np.int64)
    saliency = 0.4 * coarse_probs(truth, 2, factor=4, shift=(1, 1))[1]
    ys, xs = np.nonzero(truth)
    hot = torch.zeros(labels.shape, dtype=torch.float64)
    cy, cx = int(ys.mean()), int(xs.min()) + 3
    hot[cy - 3 : cy + 4, cx - 3 : cx + 4] = 0.6
    saliency = saliency + hot
    return (saliency - saliency.min()) / (saliency.max() - saliency.min())


@needs_pydensecrf
def test_operating_point_decides_what_the_crf_keeps() -> None:
    """The same CRF, the same map: at 0.5 it keeps the hot spot only, at an operating point below the object's
    values (threshold 0.12, or PSA's alpha=4 whose boundary is 0.28) it recovers the object."""
    image, labels = scene(64, 80, seed=1)
    truth = labels == 1
    saliency = weak_object_map(truth)
    at_half = iou(refine_saliency(image, saliency).numpy() > 0.5, truth)
    at_low = iou(refine_saliency(image, saliency, threshold=0.12).numpy() > 0.5, truth)
    psa = iou(refine_saliency(image, saliency, alpha=4.0).numpy() > 0.5, truth)
    assert at_half < 0.3, at_half
    assert at_low > at_half + 0.5 and at_low > 0.9, (at_half, at_low)
    assert psa > at_half + 0.5 and psa > 0.9, (at_half, psa)
    # The refined map is nearly binary: a threshold sweep over it has almost nothing to sweep.
    refined = refine_saliency(image, saliency, threshold=0.12)
    assert float(((refined > 0.02) & (refined < 0.98)).float().mean()) < 0.05


@needs_pydensecrf
@pytest.mark.parametrize("workers", [1, 2])
def test_sweep_equals_separate_refinements(workers: int) -> None:
    images, maps = [], []
    for index in range(3):
        image, labels = scene(24, 32, seed=index)
        images.append(image)
        maps.append(weak_object_map(labels == 1).float())
    images_np, saliency = np.stack(images), torch.stack(maps)
    thresholds = [0.1, 0.25, 0.5, 0.8]
    traced = refine_saliency_sweep(images_np, saliency, thresholds, workers=workers)
    assert traced.shape == (4, 3, 24, 32) and traced.dtype == torch.float32
    for k, threshold in enumerate(thresholds):
        assert torch.equal(traced[k], refine_saliency_batch(images_np, saliency, threshold=threshold, workers=1))
    assert torch.equal(refine_saliency_sweep(images_np, saliency, np.array([0.25]))[0], traced[1])
    # Several maps of the same images (R, N, H, W): one list of points for all, or one list per map.
    several = torch.stack([saliency, saliency.flip(-1)])
    shared = refine_saliency_sweep(images_np, several, thresholds, workers=workers)
    assert shared.shape == (2, 4, 3, 24, 32) and torch.equal(shared[0], traced)
    own = refine_saliency_sweep(images_np, several, [[0.25, 0.8], [0.1, 0.5]], workers=workers)
    assert torch.equal(own[0], traced[[1, 3]]) and torch.equal(own[1], shared[1][[0, 2]])
    for bad in ([], "0.5", [0.5, 1.0], 0.5):
        with pytest.raises((TypeError, ValueError)):
            refine_saliency_sweep(images_np, saliency, bad)  # type: ignore[arg-type]
    for bad in ([[0.2], [0.3, 0.4]], [[0.2]], [[0.2], [0.3], [0.4]]):
        with pytest.raises(ValueError, match="one per map"):
            refine_saliency_sweep(images_np, several, bad)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"threshold": 0.0}, ValueError, "threshold must be in (0, 1)"),
        ({"threshold": 1.0}, ValueError, "threshold must be in (0, 1)"),
        ({"threshold": "0.3"}, TypeError, "threshold"),
        ({"alpha": 0.0}, ValueError, "alpha must be in (0, inf)"),
        ({"alpha": float("nan")}, ValueError, "alpha"),
        ({"threshold": 0.3, "alpha": 4.0}, ValueError, "threshold or alpha, not both"),
    ],
)
def test_operating_point_rejects_bad_values(kwargs: dict, error: type, message: str) -> None:
    image, saliency = good_inputs()
    for call in (
        lambda: saliency_scores(saliency, **kwargs),
        lambda: refine_saliency(image, saliency, **kwargs),
        lambda: refine_saliency_batch(image[None], saliency[None], **kwargs),
    ):
        with pytest.raises(error) as info:
            call()
        assert message in str(info.value)


# ---------------------------------------------------------------------------------------------------------------
# Formats, batches, determinism.


@needs_pydensecrf
def test_output_dtype_device_and_range_follow_the_map() -> None:
    image, labels = scene(24, 32, seed=4)
    saliency = coarse_probs((labels == 1).astype(np.int64), 2, factor=4, shift=(1, 1))[1]
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        refined = refine_saliency(image, saliency.to(dtype))
        assert refined.dtype == torch.float32 and refined.shape == (24, 32) and refined.device == saliency.device
        assert float(refined.min()) >= 0.0 and float(refined.max()) <= 1.0


@needs_pydensecrf
def test_numpy_hwc_and_tensor_chw_images_agree() -> None:
    image, labels = scene(24, 32, seed=5)
    saliency = coarse_probs((labels == 1).astype(np.int64), 2, factor=4, shift=(1, 1))[1]
    from_numpy = refine_saliency(image, saliency)
    assert torch.equal(from_numpy, refine_saliency(to_chw(image), saliency))
    # A non-contiguous (channels_last) tensor is read correctly too.
    channels_last = to_chw(image)[None].contiguous(memory_format=torch.channels_last)[0]
    assert torch.equal(from_numpy, refine_saliency(channels_last, saliency))


@needs_pydensecrf
def test_output_is_deterministic() -> None:
    image, labels = scene(32, 40, seed=6)
    probs = coarse_probs(labels, 3, factor=4, shift=(2, 3))
    first = dense_crf(image, probs)
    assert torch.equal(first, dense_crf(image, probs))


@needs_pydensecrf
@pytest.mark.parametrize("workers", [None, 1, 2, 7])
def test_batches_keep_order_and_match_single_images(workers: int) -> None:
    images_list, saliency_list, probs_list = [], [], []
    for index in range(5):
        image, labels = scene(24, 32, seed=index)
        images_list.append(image)
        # A different shift per image, so that a batch returned out of order would not match.
        saliency_list.append(coarse_probs((labels == 1).astype(np.int64), 2, factor=4, shift=(index, 2))[1])
        probs_list.append(coarse_probs(labels, 3, factor=4, shift=(index, 1)))
    images, saliency, probs = np.stack(images_list), torch.stack(saliency_list).float(), torch.stack(probs_list)

    batch = refine_saliency_batch(images, saliency, workers=workers)
    singles = torch.stack([refine_saliency(image, map_) for image, map_ in zip(images, saliency)])
    assert torch.equal(batch, singles)
    images_nchw = torch.from_numpy(images).permute(0, 3, 1, 2)
    assert torch.equal(batch, refine_saliency_batch(images_nchw, saliency, workers=2))

    refined, labels = refine_labels_batch(images, probs, workers=workers)
    for index, image in enumerate(images):
        single_refined, single_labels = refine_labels(image, probs[index])
        assert torch.equal(refined[index], single_refined) and torch.equal(labels[index], single_labels)


# ---------------------------------------------------------------------------------------------------------------
# Bad input: clear errors at the boundary (no pydensecrf needed: validation runs first).


def good_inputs() -> Tuple[np.ndarray, torch.Tensor]:
    return np.zeros((8, 10, 3), dtype=np.uint8), torch.full((8, 10), 0.5)


@pytest.mark.parametrize(
    "image, saliency, error, message",
    [
        (np.zeros((8, 11, 3), np.uint8), torch.full((8, 10), 0.5), ValueError, "same size (H, W)"),
        (np.zeros((8, 10, 3), np.float32), torch.full((8, 10), 0.5), TypeError, "dtype uint8"),
        (torch.zeros(3, 8, 10), torch.full((8, 10), 0.5), TypeError, "dtype torch.uint8"),
        (np.zeros((8, 10, 4), np.uint8), torch.full((8, 10), 0.5), ValueError, "3 colour channels"),
        (torch.zeros(8, 10, 3, dtype=torch.uint8), torch.full((8, 10), 0.5), ValueError, "3 colour channels"),
        (np.zeros((8, 10), np.uint8), torch.full((8, 10), 0.5), ValueError, "(H, W, 3)"),
        ([[0]], torch.full((8, 10), 0.5), TypeError, "uint8 RGB numpy array or torch tensor"),
        (np.zeros((8, 10, 3), np.uint8), torch.full((8, 10), 1.5), ValueError, "values in [0, 1]"),
        (np.zeros((8, 10, 3), np.uint8), torch.full((8, 10), -0.1), ValueError, "values in [0, 1]"),
        (np.zeros((8, 10, 3), np.uint8), torch.full((8, 10), float("nan")), ValueError, "finite"),
        (np.zeros((8, 10, 3), np.uint8), torch.full((8, 10), 1, dtype=torch.long), TypeError, "floating"),
        (np.zeros((8, 10, 3), np.uint8), np.full((8, 10), 0.5), TypeError, "torch.Tensor"),
        (np.zeros((8, 10, 3), np.uint8), torch.full((1, 8, 10), 0.5), ValueError, "(H, W)"),
        (np.zeros((0, 10, 3), np.uint8), torch.full((0, 10), 0.5), ValueError, "empty"),
    ],
)
def test_refine_saliency_rejects_bad_input(image: object, saliency: object, error: type, message: str) -> None:
    with pytest.raises(error) as info:
        refine_saliency(image, saliency)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert "image" in str(info.value) or "saliency" in str(info.value)


@pytest.mark.parametrize(
    "probs, message",
    [
        (torch.full((2, 8, 10), 0.6), "sum to 1"),
        (torch.ones(1, 8, 10), "at least 2 classes"),
        (torch.full((2, 8, 10), float("nan")), "finite"),
        (torch.full((8, 10), 0.5), "(K, H, W)"),
    ],
)
def test_dense_crf_rejects_bad_probabilities(probs: torch.Tensor, message: str) -> None:
    image, _ = good_inputs()
    with pytest.raises(ValueError) as info:
        dense_crf(image, probs)
    assert message in str(info.value) and "probs" in str(info.value)


def test_batches_reject_mismatched_sizes_and_bad_workers() -> None:
    images = np.zeros((3, 8, 10, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="same batch size N, got 3 and 2"):
        refine_saliency_batch(images, torch.full((2, 8, 10), 0.5))
    with pytest.raises(ValueError, match=r"images must have shape \(N, H, W, 3\)"):
        refine_saliency_batch(images[0], torch.full((8, 10), 0.5))
    with pytest.raises(ValueError, match=r"probs must have shape \(N, K, H, W\)"):
        refine_labels_batch(images, torch.full((2, 8, 10), 0.5))
    with pytest.raises(ValueError, match="workers must be an int >= 1, got 0"):
        refine_saliency_batch(images, torch.full((3, 8, 10), 0.5), workers=0)
    with pytest.raises(TypeError, match="params must be a DenseCRFParams"):
        refine_saliency_batch(images, torch.full((3, 8, 10), 0.5), {"iterations": 5})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "field, value, error",
    [
        ("iterations", -1, ValueError),
        ("iterations", 2.5, TypeError),
        ("gaussian_sxy", 0.0, ValueError),
        ("bilateral_srgb", float("inf"), ValueError),
        ("bilateral_compat", -1.0, ValueError),
        ("gaussian_compat", float("nan"), ValueError),
        ("confidence", 0.0, ValueError),
        ("confidence", 1.5, ValueError),
        ("epsilon", 0.0, ValueError),
        ("bilateral_sxy", "80", TypeError),
    ],
)
def test_params_reject_bad_values(field: str, value: object, error: type) -> None:
    with pytest.raises(error, match=field):
        DenseCRFParams(**{field: value})  # type: ignore[arg-type]


def test_missing_pydensecrf_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "pydensecrf", None)
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    image, saliency = good_inputs()
    for call in (load_pydensecrf, lambda: refine_saliency(image, saliency)):
        with pytest.raises(ImportError) as info:
            call()
        text = str(info.value)
        assert 'pip install "camfix[crf]"' in text and "pip install pydensecrf2" in text
        assert "Never install both pydensecrf and pydensecrf2" in text


@pytest.mark.parametrize("iterations", [-1, 1001, 2**31, 2**63])
def test_iterations_beyond_the_bound_are_refused(iterations: int) -> None:
    with pytest.raises(ValueError, match=r"^iterations"):
        DenseCRFParams(iterations=iterations)
    assert DenseCRFParams(iterations=MAX_CRF_ITERATIONS).iterations == MAX_CRF_ITERATIONS


def test_threshold_remap_is_the_piecewise_linear_formula_bit_for_bit() -> None:
    """The remap is computed without the division that overflows for a subnormal threshold; for every other
    threshold it equals ``np.where(s <= t, 0.5 s / t, 0.5 + 0.5 (s - t) / (1 - t))`` exactly, float32 output."""
    rng = np.random.default_rng(7)
    for threshold in [*rng.random(50), 1e-12, 0.5 - 1e-16, 0.999999]:
        edges = [0.0, 1.0, threshold, np.nextafter(threshold, 0), np.nextafter(threshold, 1)]
        values = np.concatenate([rng.random(2000), edges])
        expected = np.where(
            values <= threshold, 0.5 * values / threshold, 0.5 + 0.5 * (values - threshold) / (1.0 - threshold)
        )
        scores = saliency_scores(torch.from_numpy(values)[None], threshold=float(threshold)).numpy()
        assert np.array_equal(scores[1, 0], expected.astype(np.float32)), threshold
        assert np.array_equal(scores[0, 0], (1.0 - expected).astype(np.float32)), threshold
