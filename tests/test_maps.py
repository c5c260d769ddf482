"""CAM with NWC (camfix.cam), resize_maps and normalize_maps against float64 loop references, torchcam's CAM
extractor and OpenCV's INTER_CUBIC resize (the reference WSOL evaluator's)."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from nets import TorchvisionResNet
from references import constant_tolerance, reference_is_constant

from camfix import cam, normalize_maps, resize_maps


def reference_cam(
    features: torch.Tensor, weight: torch.Tensor, clamp_negative: bool, classes: Optional[Sequence[int]] = None
) -> np.ndarray:
    """M_k[y, x] = sum_c w[k, c] * F[c, y, x] (w clamped at 0 with NWC) in float64 loops; (N, K, h, w), or
    (N, h, w) with one class per image."""
    values = features.detach().double().numpy()
    w = weight.detach().double().numpy().reshape(weight.shape[0], weight.shape[1])
    batch, channels, height, width = values.shape
    out = np.zeros((batch, w.shape[0], height, width))
    for n in range(batch):
        for k in range(w.shape[0]):
            for y in range(height):
                for x in range(width):
                    out[n, k, y, x] = sum(
                        (max(w[k, c], 0.0) if clamp_negative else w[k, c]) * values[n, c, y, x]
                        for c in range(channels)
                    )
    if classes is None:
        return out
    return np.stack([out[n, k] for n, k in enumerate(classes)])


def cubic_kernel(distance: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel with the a = -0.75 of OpenCV and PyTorch."""
    d = abs(distance)
    if d <= 1:
        return ((a + 2) * d - (a + 3)) * d * d + 1
    if d < 2:
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return 0.0


def reference_resize(map2d: np.ndarray, height: int, width: int, mode: str) -> np.ndarray:
    """Resize one map with half-pixel centres (align_corners=False), in float64 loops.

    Output pixel i samples the input at (i + 0.5) * in / out - 0.5. Bicubic: 4x4 taps with the cubic kernel,
    indices clamped to the border (replicate). Bilinear: 2x2 taps, the sample position clamped at 0 first.
    """
    in_h, in_w = map2d.shape
    out = np.zeros((height, width))
    for i in range(height):
        for j in range(width):
            sy = (i + 0.5) * in_h / height - 0.5
            sx = (j + 0.5) * in_w / width - 0.5
            if mode == "bilinear":
                sy, sx = max(sy, 0.0), max(sx, 0.0)
                y0, x0 = math.floor(sy), math.floor(sx)
                y1, x1 = min(y0 + 1, in_h - 1), min(x0 + 1, in_w - 1)
                ly, lx = sy - y0, sx - x0
                out[i, j] = (
                    (1 - ly) * ((1 - lx) * map2d[y0, x0] + lx * map2d[y0, x1])
                    + ly * ((1 - lx) * map2d[y1, x0] + lx * map2d[y1, x1])
                )
            else:
                y0, x0 = math.floor(sy), math.floor(sx)
                total = 0.0
                for ty in range(-1, 3):
                    for tx in range(-1, 3):
                        y = min(max(y0 + ty, 0), in_h - 1)
                        x = min(max(x0 + tx, 0), in_w - 1)
                        total += cubic_kernel(sy - (y0 + ty)) * cubic_kernel(sx - (x0 + tx)) * map2d[y, x]
                out[i, j] = total
    return out


def reference_normalize(map2d: np.ndarray, dtype: torch.dtype = torch.float64) -> np.ndarray:
    """(v - min) / (max - min) in float64 loops; a map of ``dtype`` that is constant up to float noise gives
    zeros."""
    values = [float(v) for v in map2d.ravel()]
    low, high = min(values), max(values)
    if reference_is_constant(values, dtype):
        return np.zeros(map2d.shape)
    return np.array([(v - low) / (high - low) for v in values]).reshape(map2d.shape)


@st.composite
def features_and_weights(draw: st.DrawFn) -> tuple:
    batch, channels = draw(st.integers(1, 2)), draw(st.integers(1, 4))
    height, width, classes = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    values = st.floats(-5, 5, allow_subnormal=False)
    features = draw(arrays(np.float64, (batch, channels, height, width), elements=values))
    weight = draw(arrays(np.float64, (classes, channels), elements=values))
    picked = draw(st.lists(st.integers(0, classes - 1), min_size=batch, max_size=batch))
    return torch.from_numpy(features), torch.from_numpy(weight), picked


# ------------------------------------------------------------------------------------------------------------- cam


@given(data=features_and_weights(), clamp_negative=st.booleans())
def test_cam_matches_reference(data: tuple, clamp_negative: bool) -> None:
    features, weight, picked = data
    all_maps = cam(features, weight, clamp_negative=clamp_negative)
    assert all_maps.shape == (features.shape[0], weight.shape[0], *features.shape[2:])
    assert all_maps.dtype == torch.float64
    np.testing.assert_allclose(all_maps.numpy(), reference_cam(features, weight, clamp_negative),
                               rtol=1e-12, atol=1e-12)
    picked_maps = cam(features, weight, clamp_negative=clamp_negative, classes=picked)
    assert picked_maps.shape == (features.shape[0], *features.shape[2:])
    np.testing.assert_allclose(picked_maps.numpy(), reference_cam(features, weight, clamp_negative, picked),
                               rtol=1e-12, atol=1e-12)


def test_cam_linear_and_conv_weights_agree() -> None:
    features, weight = torch.randn(2, 6, 3, 4), torch.randn(5, 6)
    for clamp_negative in (True, False):
        torch.testing.assert_close(
            cam(features, weight[:, :, None, None], clamp_negative), cam(features, weight, clamp_negative)
        )


def test_cam_classes_forms() -> None:
    features, weight = torch.randn(3, 4, 2, 5), torch.randn(6, 4)
    all_maps = cam(features, weight)
    expected = all_maps[torch.arange(3), torch.tensor([5, 0, 2])]
    for classes in ([5, 0, 2], (5, 0, 2), torch.tensor([5, 0, 2]), torch.tensor([5, 0, 2], dtype=torch.int32),
                    torch.tensor([5, 0, 2], dtype=torch.uint8)):
        torch.testing.assert_close(cam(features, weight, classes=classes), expected)


def test_cam_nwc() -> None:
    features = torch.rand(2, 5, 3, 3)
    negative = -torch.rand(3, 5)
    assert (cam(features, negative, clamp_negative=True) == 0).all()
    assert (cam(features, negative, clamp_negative=False) < 0).all()
    mixed = torch.randn(3, 5)
    torch.testing.assert_close(cam(features, mixed, True), cam(features, mixed.clamp(min=0), False))
    positive = mixed.abs()
    torch.testing.assert_close(cam(features, positive, True), cam(features, positive, False))


def test_cam_identity_with_gap_logits() -> None:
    # For a GAP model, logits = mean over positions of the (unclamped) CAM + bias: the map explains the score.
    model = TorchvisionResNet().eval()
    images = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        features = model.features(images)
        maps = cam(features, model.fc.weight, clamp_negative=False)
        torch.testing.assert_close(maps.mean(dim=(2, 3)) + model.fc.bias, model(images), rtol=1e-5, atol=1e-5)


def test_cam_against_torchcam() -> None:
    methods = pytest.importorskip("torchcam.methods", reason="torchcam is not installed or cannot be imported")
    model = TorchvisionResNet(widths=(8, 16, 24, 32)).eval()
    with torch.no_grad():
        model.fc.weight.copy_(torch.randn_like(model.fc.weight))  # both signs, so NWC matters
    images = torch.randn(2, 3, 128, 96)
    classes = [1, 4]
    with methods.CAM(model, target_layer="layer4", fc_layer="fc", input_shape=(3, 128, 96)) as extractor:
        with torch.no_grad():
            model(images)
        # torchcam: nansum over channels of w[k, c] * A_c at the layer's resolution, no ReLU for CAM; its
        # normalisation is (M - min) / (max - min + 1e-8), per map.
        raw = extractor(class_idx=classes, normalized=False)[0]
        normalised = extractor(class_idx=classes, normalized=True)[0]
        with torch.no_grad():
            features = model.features(images)
    ours = cam(features, model.fc.weight, clamp_negative=False, classes=classes)
    assert ours.shape == raw.shape == (2, 4, 3)
    torch.testing.assert_close(ours, raw, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(normalize_maps(ours), normalised, rtol=0, atol=1e-5)
    assert not torch.allclose(cam(features, model.fc.weight, clamp_negative=True, classes=classes), raw)


@pytest.mark.parametrize(
    "features_dtype, weight_dtype, expected",
    [
        (torch.float16, torch.float32, torch.float32),
        (torch.bfloat16, torch.bfloat16, torch.float32),
        (torch.float32, torch.float16, torch.float32),
        (torch.float64, torch.float32, torch.float64),
        (torch.float32, torch.float64, torch.float64),
    ],
)
def test_cam_dtypes(features_dtype: torch.dtype, weight_dtype: torch.dtype, expected: torch.dtype) -> None:
    features = torch.randn(2, 3, 4, 4).to(features_dtype)
    weight = torch.randn(2, 3).to(weight_dtype)
    maps = cam(features, weight, classes=[0, 1])
    assert maps.dtype == expected
    tol = 1e-12 if expected == torch.float64 else 1e-5
    np.testing.assert_allclose(maps.double().numpy(), reference_cam(features, weight, True, [0, 1]),
                               rtol=tol, atol=tol)


def test_cam_layouts_edge_shapes_and_batch_of_one() -> None:
    features, weight = torch.randn(2, 4, 5, 3), torch.randn(3, 4)
    expected = cam(features, weight)
    torch.testing.assert_close(cam(features.to(memory_format=torch.channels_last), weight), expected)
    transposed = torch.randn(2, 4, 3, 5).transpose(2, 3)
    torch.testing.assert_close(cam(transposed, weight), cam(transposed.contiguous(), weight))
    torch.testing.assert_close(cam(features, weight.t().contiguous().t()), expected)  # non-contiguous weight
    single = torch.randn(1, 4, 1, 1)
    np.testing.assert_allclose(cam(single, weight, classes=[2]).double().numpy(),
                               reference_cam(single, weight, True, [2]), rtol=1e-5, atol=1e-6)


def test_cam_of_one_image_as_documented() -> None:
    # One image: features as a batch of one, then [0]; the (h, w) map goes through resize and normalise as is.
    features, weight = torch.randn(3, 4, 2, 3, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    single = cam(features[1][None], weight, classes=[2])[0]
    assert single.shape == (2, 3)
    np.testing.assert_allclose(single.numpy(), reference_cam(features, weight, True)[1, 2], rtol=1e-12, atol=1e-12)
    resized = resize_maps(single, (5, 7))
    torch.testing.assert_close(resized, resize_maps(single[None], (5, 7))[0], rtol=0, atol=0)
    torch.testing.assert_close(normalize_maps(resized), normalize_maps(resized[None])[0], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"features must have shape \(N, C, h, w\).*got 3 dims"):
        cam(features[1], weight)


@pytest.mark.parametrize("classes", [None, [2, 0]])
def test_cam_gradcheck(classes: Optional[Sequence[int]]) -> None:
    features = torch.randn(2, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    # NWC is a kink at w = 0: keep the weights away from it.
    weight = (torch.rand(4, 3, dtype=torch.float64) + 0.1) * torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    weight.requires_grad_()
    assert torch.autograd.gradcheck(lambda f, w: cam(f, w, True, classes), (features, weight))
    assert torch.autograd.gradcheck(lambda f, w: cam(f, w, False, classes), (features, weight))


@pytest.mark.parametrize(
    "features, weight, kwargs, error, pattern",
    [
        (torch.randn(2, 3, 4), torch.randn(2, 3), {}, ValueError, r"features must have shape \(N, C, h, w\)"),
        (torch.ones(1, 3, 2, 2, dtype=torch.long), torch.randn(2, 3), {}, TypeError,
         "features must be a floating point tensor"),
        ([[1.0]], torch.randn(2, 3), {}, TypeError, "features must be a torch.Tensor"),
        (torch.randn(1, 3, 2, 2), torch.randn(2, 3, 1), {}, ValueError, "fc_weight must have shape"),
        (torch.randn(1, 3, 2, 2), torch.randn(2, 3, 3, 3), {}, ValueError,
         r"fc_weight of a conv classifier must be \(K, C, 1, 1\)"),
        (torch.randn(1, 3, 2, 2), torch.randn(2, 4), {}, ValueError,
         "fc_weight has 4 input channels but features have C=3"),
        (torch.randn(1, 3, 2, 2), torch.ones(2, 3, dtype=torch.int32), {}, TypeError,
         "fc_weight must be a floating point tensor"),
        (torch.randn(1, 3, 2, 2), torch.randn(2, 3), {"clamp_negative": 1}, TypeError,
         "clamp_negative must be a bool"),
        (torch.randn(2, 3, 2, 2), torch.randn(2, 3), {"classes": [0, 2]}, ValueError,
         r"classes must hold class indices in \[0, 1\]"),
        (torch.randn(2, 3, 2, 2), torch.randn(2, 3), {"classes": [-1, 0]}, ValueError,
         r"classes must hold class indices in \[0, 1\]"),
        (torch.randn(2, 3, 2, 2), torch.randn(2, 3), {"classes": [0]}, ValueError,
         r"classes must have shape \(2,\)"),
        (torch.randn(2, 3, 2, 2), torch.randn(2, 3), {"classes": torch.zeros(2, 1, dtype=torch.long)},
         ValueError, r"classes must have shape \(2,\)"),
        (torch.randn(2, 3, 2, 2), torch.randn(2, 3), {"classes": torch.tensor([0.0, 1.0])}, TypeError,
         "classes must be an integer tensor"),
        (torch.randn(2, 3, 2, 2), torch.randn(2, 3), {"classes": [0.0, 1]}, TypeError, "classes must hold ints"),
        (torch.randn(2, 3, 2, 2), torch.randn(2, 3), {"classes": 1}, TypeError, "classes must be a tensor or list"),
    ],
)
def test_cam_bad_input(features: object, weight: object, kwargs: dict, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        cam(features, weight, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_cam_non_finite_input(bad: float) -> None:
    features, weight = torch.rand(1, 3, 2, 2), torch.rand(2, 3)
    features[0, 1, 1, 0] = bad
    with pytest.raises(ValueError, match="features.*must be finite"):
        cam(features, weight)
    features[0, 1, 1, 0] = 0.5
    weight[1, 2] = bad
    with pytest.raises(ValueError, match="fc_weight.*must be finite"):
        cam(features, weight, clamp_negative=False)


# ----------------------------------------------------------------------------------------------------- resize_maps

RESIZE_CASES = [(7, 7, 224, 224), (14, 14, 224, 224), (7, 9, 50, 33), (2, 3, 17, 11), (1, 1, 5, 4),
                (40, 40, 13, 17), (6, 6, 3, 3), (5, 5, 5, 9)]


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
@pytest.mark.parametrize("in_h, in_w, out_h, out_w", [c for c in RESIZE_CASES if c[2] * c[3] <= 2500])
def test_resize_matches_reference(mode: str, in_h: int, in_w: int, out_h: int, out_w: int) -> None:
    maps = torch.rand(2, in_h, in_w, dtype=torch.float64)
    resized = resize_maps(maps, (out_h, out_w), mode=mode)
    assert resized.shape == (2, out_h, out_w) and resized.dtype == torch.float64
    for single, result in zip(maps.numpy(), resized.numpy()):
        np.testing.assert_allclose(result, reference_resize(single, out_h, out_w, mode), rtol=0, atol=1e-12)


OPENCV_FLAGS = {"bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR}
#: Bound on |camfix - cv2.resize| for float32 maps in [0, 1] over RESIZE_CASES. Measured (seed 0): worst 2.3e-6
#: in both modes, in the 40x40 -> 13x17 downsampling case; at most 1.1e-6 when upsampling, 2.4e-7 at integer
#: upsampling factors (float32 rounding; OpenCV computes its coefficients in float32). Reproduce with
#: python -c "import sys; sys.path.insert(0, 'tests'); import test_maps as t; print(t.opencv_max_difference('bicubic'))"
OPENCV_TOLERANCE = 3e-6


def opencv_max_difference(mode: str, seed: int = 0) -> float:
    """Largest |resize_maps - cv2.resize| over RESIZE_CASES on random float32 maps in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for in_h, in_w, out_h, out_w in RESIZE_CASES:
        maps = torch.rand(3, in_h, in_w, generator=generator)
        resized = resize_maps(maps, (out_h, out_w), mode=mode).numpy()
        for single, result in zip(maps.numpy(), resized):
            expected = cv2.resize(single, (out_w, out_h), interpolation=OPENCV_FLAGS[mode])
            worst = max(worst, float(np.abs(result - expected).max()))
    return worst


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
def test_resize_matches_opencv(mode: str) -> None:
    # The reference WSOL evaluator resizes maps with cv2.resize(..., interpolation=cv2.INTER_CUBIC).
    assert opencv_max_difference(mode) <= OPENCV_TOLERANCE


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
@pytest.mark.parametrize("in_h, in_w, out_h, out_w", [(2, 3, 17, 11), (1, 1, 5, 4), (6, 6, 3, 3), (5, 5, 5, 9)])
def test_resize_one_map_equals_a_batch_of_one(mode: str, in_h: int, in_w: int, out_h: int, out_w: int) -> None:
    map2d = torch.rand(in_w, in_h, dtype=torch.float64).t()  # non-contiguous
    resized = resize_maps(map2d, (out_h, out_w), mode=mode)
    assert resized.shape == (out_h, out_w) and resized.dtype == torch.float64
    assert torch.equal(resized, resize_maps(map2d[None], (out_h, out_w), mode=mode)[0])
    np.testing.assert_allclose(resized.numpy(), reference_resize(map2d.numpy(), out_h, out_w, mode), rtol=0,
                               atol=1e-12)


def test_resize_shapes_same_size_and_1x1() -> None:
    maps = torch.rand(2, 3, 4, 5)
    assert resize_maps(maps, (8, 10)).shape == (2, 3, 8, 10)
    torch.testing.assert_close(resize_maps(maps, (8, 10))[:, 1], resize_maps(maps[:, 1], (8, 10)))
    assert torch.equal(resize_maps(maps, (4, 5)), maps)
    assert torch.equal(resize_maps(maps, [4, 5]), maps)
    one = torch.tensor([[[0.25]]])
    for mode in ("bicubic", "bilinear"):
        torch.testing.assert_close(resize_maps(one, (3, 7), mode=mode), torch.full((1, 3, 7), 0.25))
    assert resize_maps(torch.zeros(0, 3, 3), (6, 6)).shape == (0, 6, 6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_resize_dtypes_and_layouts(dtype: torch.dtype) -> None:
    maps = torch.rand(2, 5, 7).to(dtype)
    resized = resize_maps(maps, (9, 11))
    assert resized.dtype == dtype
    torch.testing.assert_close(resized.float(), resize_maps(maps.float(), (9, 11)), rtol=0,
                               atol=0.02 if dtype == torch.bfloat16 else 2e-3)
    transposed = maps.transpose(1, 2)
    torch.testing.assert_close(resize_maps(transposed, (9, 11)), resize_maps(transposed.contiguous(), (9, 11)))
    four_d = torch.rand(2, 3, 5, 7).to(memory_format=torch.channels_last)
    torch.testing.assert_close(resize_maps(four_d, (9, 11)), resize_maps(four_d.contiguous(), (9, 11)))


@pytest.mark.parametrize(
    "maps, size, mode, error, pattern",
    [
        (torch.rand(2, 3, 3), (4, 4), "nearest", ValueError, r"mode must be one of \('bilinear', 'bicubic'\)"),
        (torch.rand(2, 3, 3), (0, 4), "bicubic", ValueError, r"size must be a pair of positive ints \(H, W\)"),
        (torch.rand(2, 3, 3), 4, "bicubic", ValueError, "size must be a pair of positive ints"),
        (torch.rand(2, 3, 3), (4.0, 4), "bicubic", ValueError, "size must be a pair of positive ints"),
        (torch.rand(2, 3, 3), (4, 4, 4), "bicubic", ValueError, "size must be a pair of positive ints"),
        (torch.rand(3), (4, 4), "bicubic", ValueError,
         r"maps must have shape \(N, h, w\), \(N, K, h, w\) or \(h, w\).*got 1 dims"),
        (torch.rand(2, 0, 3), (4, 4), "bicubic", ValueError, r"maps must not be empty, got shape \(2, 0, 3\)"),
        (torch.ones(1, 3, 3, dtype=torch.uint8), (4, 4), "bicubic", TypeError, "maps must be a floating point"),
    ],
)
def test_resize_bad_input(maps: torch.Tensor, size: object, mode: str, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        resize_maps(maps, size, mode=mode)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------------- normalize_maps

leading_shapes = st.sampled_from([(), (1,), (3,), (2, 2)])
normalize_inputs = st.tuples(leading_shapes, st.integers(1, 5), st.integers(1, 5)).flatmap(
    lambda s: arrays(np.float64, s[0] + (s[1], s[2]),
                     elements=st.one_of(st.floats(-1e6, 1e6, allow_subnormal=False), st.sampled_from([0.0, 1.0])))
)


@given(maps=normalize_inputs)
def test_normalize_matches_reference(maps: np.ndarray) -> None:
    result = normalize_maps(torch.from_numpy(maps))
    assert result.shape == maps.shape and result.dtype == torch.float64
    flat = maps.reshape(-1, *maps.shape[-2:])
    expected = np.stack([reference_normalize(m) for m in flat]).reshape(maps.shape)
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert float(result.min()) >= 0.0 and float(result.max()) <= 1.0


@given(maps=normalize_inputs)
def test_normalize_one_map_equals_a_batch_of_one(maps: np.ndarray) -> None:
    single = torch.from_numpy(maps.reshape(-1, *maps.shape[-2:])[0])
    result = normalize_maps(single)
    assert result.shape == single.shape
    assert torch.equal(result, normalize_maps(single[None])[0])
    np.testing.assert_allclose(result.numpy(), reference_normalize(single.numpy()), rtol=1e-12, atol=1e-12)


def test_normalize_constant_1x1_and_range() -> None:
    maps = torch.randn(3, 6, 7) * 5
    maps[1] = 4.2
    result = normalize_maps(maps)
    assert torch.equal(result[1], torch.zeros(6, 7))  # constant -> zeros, as the reference evaluator does
    for index in (0, 2):
        assert result[index].min().item() == 0.0 and result[index].max().item() == 1.0
    assert torch.equal(normalize_maps(torch.tensor([[[3.0]], [[-2.0]]])), torch.zeros(2, 1, 1))
    assert normalize_maps(torch.zeros(0, 3, 3)).shape == (0, 3, 3)
    assert torch.equal(normalize_maps(torch.tensor([[7.5]])), torch.zeros(1, 1))  # one 1x1 map


FLOAT_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


def relative_range(maps: torch.Tensor) -> torch.Tensor:
    """(max - min) / max(|min|, |max|) of each map (N, H, W), in float64."""
    low, high = maps.double().amin(dim=(1, 2)), maps.double().amax(dim=(1, 2))
    return (high - low) / torch.maximum(low.abs(), high.abs())


# Constants across magnitudes (float16 keeps the ones it can hold); upsampled from the sizes of CNN feature maps.
RESIZED_CONSTANTS = [1.0, 0.3, 2.2325754, 7.7, 1e-3, 123.456, -2.5, 1e-20, 1e20]
CONSTANT_RESIZE_CASES = [((1, 1), (512, 384)), ((1, 1), (37, 29)), ((2, 3), (224, 224)), ((7, 7), (333, 500)),
                         ((14, 14), (224, 224))]


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_resized_constants_normalise_to_zeros(mode: str, dtype: torch.dtype) -> None:
    """The noise that resizing adds to a constant stays well inside the tolerance, the margin its comment claims:
    a quarter of it for float32 and float64 (measured up to 27 eps), 3 eps of their own for float16/bfloat16."""
    constants = torch.tensor([c for c in RESIZED_CONSTANTS if abs(c) < torch.finfo(dtype).max], dtype=dtype)
    noisy = 0
    for (in_h, in_w), size in CONSTANT_RESIZE_CASES:
        resized = resize_maps(constants[:, None, None].expand(-1, in_h, in_w), size, mode=mode)
        noise = relative_range(resized[constants != 0])
        noisy += int((noise > 0).sum())
        bound = 3 * torch.finfo(dtype).eps if dtype.itemsize == 2 else constant_tolerance(dtype) / 4
        assert float(noise.max()) <= bound
        assert torch.equal(normalize_maps(resized), torch.zeros_like(resized))
    if dtype.itemsize >= 4 and mode == "bicubic":
        assert noisy > 0  # the noise is really there, else the test would prove nothing


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_normalize_tolerance_boundary(dtype: torch.dtype) -> None:
    # The tolerance is a power of two for every dtype, so 1 + tolerance * k is exact in the dtype.
    tolerance = constant_tolerance(dtype)
    for scale in (1.0, 2.0**-10, 2.0**10):  # normal numbers in every dtype
        inside = torch.tensor([[1.0, 1.0 + tolerance / 2], [1.0, 1.0]], dtype=torch.float64) * scale
        outside = torch.tensor([[1.0, 1.0 + 2 * tolerance], [1.0, 1.0]], dtype=torch.float64) * scale
        assert torch.equal(normalize_maps(inside.to(dtype)), torch.zeros(2, 2, dtype=dtype))
        assert normalize_maps(outside.to(dtype)).tolist() == [[0.0, 1.0], [0.0, 0.0]]
        assert normalize_maps(-outside.to(dtype)).tolist() == [[1.0, 0.0], [1.0, 1.0]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normalize_keeps_a_small_real_range(dtype: torch.dtype) -> None:
    # A range of 1e-3 of the magnitude on a large offset is a real map, not noise.
    base = torch.rand(3, 6, 5, dtype=torch.float64)
    maps = (1000.0 + base).to(dtype)
    result = normalize_maps(maps)
    assert result.amin(dim=(1, 2)).tolist() == [0.0] * 3 and result.amax(dim=(1, 2)).tolist() == [1.0] * 3
    expected = np.stack([reference_normalize(m, dtype) for m in maps.double().numpy()])
    np.testing.assert_allclose(result.double().numpy(), expected, rtol=0, atol=1e-3 if dtype == torch.float32
                               else 1e-12)


near_constant_maps = st.tuples(
    st.sampled_from([torch.float64, torch.float32]),
    st.floats(-1e3, 1e3).filter(lambda c: abs(c) > 1e-3),
    st.floats(-9, -2),  # log10 of the relative amplitude of the noise, around the tolerance of 1.5e-5
    st.integers(0, 2**31 - 1),
)


@given(case=near_constant_maps)
def test_normalize_near_constant_maps_match_reference(case: tuple) -> None:
    """A constant plus noise of any amplitude across the tolerance: zeros or [0, 1], as the reference says."""
    dtype, constant, log_amplitude, seed = case
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(2, 4, 5, generator=generator, dtype=torch.float64)
    maps = (constant * (1 + 10.0**log_amplitude * noise)).to(dtype)
    result = normalize_maps(maps)
    for single, normalised in zip(maps.double().numpy(), result.double().numpy()):
        expected = reference_normalize(single, dtype)
        np.testing.assert_allclose(normalised, expected, rtol=0, atol=1e-5 if dtype == torch.float32 else 1e-9)
        assert (normalised.max() == 0) == reference_is_constant(single.ravel(), dtype)


def test_normalize_is_invariant_to_positive_affine_changes() -> None:
    maps = torch.randn(2, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(normalize_maps(3.5 * maps - 7.0), normalize_maps(maps))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_normalize_dtypes_and_layouts(dtype: torch.dtype) -> None:
    maps = torch.randn(2, 3, 5, 4).to(dtype)
    result = normalize_maps(maps)
    assert result.dtype == dtype
    expected = np.stack([reference_normalize(m, dtype) for m in maps.double().numpy().reshape(-1, 5, 4)])
    tol = {torch.float16: 2e-3, torch.bfloat16: 1e-2, torch.float32: 1e-6}[dtype]
    np.testing.assert_allclose(result.double().numpy().reshape(-1, 5, 4), expected, rtol=0, atol=tol)
    torch.testing.assert_close(normalize_maps(maps.to(memory_format=torch.channels_last)), result)
    transposed = maps.transpose(2, 3)
    torch.testing.assert_close(normalize_maps(transposed), normalize_maps(transposed.contiguous()))


@pytest.mark.parametrize("dtype, big", [(torch.float16, 6e4), (torch.float32, 3e38)])
def test_normalize_wide_finite_range(dtype: torch.dtype, big: float) -> None:
    maps = torch.tensor([[[-big, 0.0, big]]], dtype=dtype)
    torch.testing.assert_close(normalize_maps(maps), torch.tensor([[[0.0, 0.5, 1.0]]], dtype=dtype))


@pytest.mark.parametrize(
    "maps, error, pattern",
    [
        (torch.rand(4), ValueError, r"maps must have shape \(\.\.\., H, W\)"),
        (torch.zeros(2, 3, 0), ValueError, r"maps must not be empty, got shape \(2, 3, 0\)"),
        (torch.ones(2, 3, dtype=torch.int64), TypeError, "maps must be a floating point tensor"),
        (torch.tensor([[0.5, float("nan")]]), ValueError, "maps must be finite"),
        (torch.tensor([[0.5, float("-inf")]]), ValueError, "maps must be finite"),
        (np.zeros((2, 2)), TypeError, "maps must be a torch.Tensor"),
    ],
)
def test_normalize_bad_input(maps: object, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        normalize_maps(maps)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------------------ CUDA


@pytest.mark.cuda
def test_maps_on_cuda() -> None:
    features, weight = torch.randn(2, 8, 7, 7), torch.randn(5, 8)
    maps = cam(features.cuda(), weight, classes=[1, 4])  # weight on the CPU: moved to the features' device
    assert maps.device.type == "cuda"
    torch.testing.assert_close(maps.cpu(), cam(features, weight, classes=[1, 4]), rtol=1e-4, atol=1e-4)
    resized = resize_maps(maps, (56, 56))
    torch.testing.assert_close(resized.cpu(), resize_maps(maps.cpu(), (56, 56)), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(normalize_maps(resized).cpu(), normalize_maps(resized.cpu()), rtol=1e-4, atol=1e-4)
    half = cam(features.cuda().half(), weight.cuda().half())
    assert half.dtype == torch.float32
