"""Bad input to camfix.cam, resize_maps and normalize_maps: the promises of docs/errors.md, one class at a time.

- **Named.** Every argument is checked under the name the caller gave it (``features``, ``fc_weight``,
  ``clamp_negative``, ``classes``, ``maps``, ``size``, ``mode``): a ``TypeError`` for the wrong kind of object or
  dtype, a ``ValueError`` for the wrong shape, range or content, raised by camfix's own check, with a message
  that starts with the argument, says what was expected and quotes what was received.
- **No crash, no dependency's message.** Zero-size dimensions in every position, sparse and meta tensors, sizes
  that would exhaust memory and maps that overflow their dtype are refused by name; the sizes and the odd strides
  run in a child process, so that a regression kills the child rather than pytest.
- **No silent wrong result.** NaN and inf are refused wherever they enter (exact counts in the message), an array
  is not a mode, and awkward but valid input (float16, bfloat16, non-contiguous, expanded, channels_last,
  requiring grad, 1x1, empty batches, numpy scalars) gives what its plain counterpart gives.
- **Before the work.** No einsum or interpolation runs for a bad argument.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from typing import Dict, Tuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from camfix import cam, normalize_maps, resize_maps

from refusals import assert_refused, with_values

#: case name -> (argument overrides, exception, what the message starts with: the argument and what it must be,
#: what the message must quote of the value received)
Cases = Dict[str, Tuple[dict, type, str, str]]


def sparse(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_sparse()


# ------------------------------------------------------------------------------------------------------------- cam

FEATURES = torch.rand(2, 3, 4, 4)
WEIGHT = torch.randn(5, 3)
CAM_GOOD = {"features": FEATURES, "fc_weight": WEIGHT, "clamp_negative": True, "classes": None}


BAD_CAM_CALLS: Cases = {
    "features a list": ({"features": FEATURES.tolist()}, TypeError, "features must be a torch.Tensor", "got list"),
    "features numpy": (
        {"features": FEATURES.numpy()}, TypeError, "features must be a torch.Tensor", "got a float32 numpy array"
    ),
    "features None": ({"features": None}, TypeError, "features must be a torch.Tensor", "got NoneType None"),
    "features one image (C, h, w)": (
        {"features": FEATURES[0]}, ValueError, "features must have shape (N, C, h, w)", "shape (3, 4, 4)"
    ),
    "features 2-D": ({"features": FEATURES[0, 0]}, ValueError, "features must have shape (N, C, h, w)", "2 dims"),
    "features 5-D": ({"features": FEATURES[None]}, ValueError, "features must have shape (N, C, h, w)", "5 dims"),
    "features int64": (
        {"features": FEATURES.long()}, TypeError, "features must be a floating point tensor", "torch.int64"
    ),
    "features uint8": (
        {"features": FEATURES.to(torch.uint8)}, TypeError, "features must be a floating point tensor", "torch.uint8"
    ),
    "features bool": (
        {"features": FEATURES > 0.5}, TypeError, "features must be a floating point tensor", "torch.bool"
    ),
    "features complex": (
        {"features": FEATURES.to(torch.complex64)}, TypeError, "features must be a floating point", "complex64"
    ),
    "features N = 0": (
        {"features": torch.rand(0, 3, 4, 4)}, ValueError, "features must not be empty", "(0, 3, 4, 4)"
    ),
    "features C = 0": (
        {"features": torch.rand(2, 0, 4, 4)}, ValueError, "features must not be empty", "(2, 0, 4, 4)"
    ),
    "features h = 0": (
        {"features": torch.rand(2, 3, 0, 4)}, ValueError, "features must not be empty", "(2, 3, 0, 4)"
    ),
    "features w = 0": (
        {"features": torch.rand(2, 3, 4, 0)}, ValueError, "features must not be empty", "(2, 3, 4, 0)"
    ),
    "features NaN": (
        {"features": with_values(FEATURES, math.nan)}, ValueError, "features must be finite", "1 NaN and 0 infinite"
    ),
    "features inf": (
        {"features": with_values(FEATURES, math.inf)}, ValueError, "features must be finite", "0 NaN and 1 infinite"
    ),
    "features -inf": (
        {"features": with_values(FEATURES, -math.inf)}, ValueError, "features must be finite", "0 NaN and 1 infinite"
    ),
    "features meta": (
        {"features": FEATURES.to("meta")}, TypeError, "features must hold data", "a tensor on the meta device"
    ),
    "features sparse": (
        {"features": sparse(FEATURES)}, TypeError, "features must be a dense tensor", "layout torch.sparse_coo"
    ),
    "fc_weight a list": ({"fc_weight": WEIGHT.tolist()}, TypeError, "fc_weight must be a torch.Tensor", "got list"),
    "fc_weight numpy": (
        {"fc_weight": WEIGHT.numpy()}, TypeError, "fc_weight must be a torch.Tensor", "numpy array of shape (5, 3)"
    ),
    "fc_weight 1-D": (
        {"fc_weight": WEIGHT[0]}, ValueError, "fc_weight must have shape (K, C) or (K, C, 1, 1)", "shape (3,)"
    ),
    "fc_weight 3-D": (
        {"fc_weight": WEIGHT[..., None]}, ValueError, "fc_weight must have shape (K, C) or (K, C, 1, 1)", "(5, 3, 1)"
    ),
    "fc_weight a 3x3 conv kernel": (
        {"fc_weight": torch.rand(5, 3, 3, 3)}, ValueError, "fc_weight of a conv classifier must be (K, C, 1, 1)",
        "got shape (5, 3, 3, 3)",
    ),
    "fc_weight fewer channels": (
        {"fc_weight": torch.rand(5, 2)}, ValueError, "fc_weight has 2 input channels but features have C=3",
        "features shape (2, 3, 4, 4)",
    ),
    "fc_weight more channels": (
        {"fc_weight": torch.rand(5, 4)}, ValueError, "fc_weight has 4 input channels but features have C=3",
        "fc_weight shape (5, 4)",
    ),
    "fc_weight (K, C) transposed": (
        {"fc_weight": WEIGHT.t()}, ValueError, "fc_weight has 5 input channels but features have C=3", "(3, 5)"
    ),
    "fc_weight conv of other channels": (
        {"fc_weight": torch.rand(5, 4, 1, 1)}, ValueError, "fc_weight has 4 input channels", "shape (5, 4, 1, 1)"
    ),
    "fc_weight K = 0": ({"fc_weight": torch.rand(0, 3)}, ValueError, "fc_weight must not be empty", "(0, 3)"),
    "fc_weight int64": ({"fc_weight": WEIGHT.long()}, TypeError, "fc_weight must be a floating point", "int64"),
    "fc_weight complex": (
        {"fc_weight": WEIGHT.to(torch.complex128)}, TypeError, "fc_weight must be a floating point", "complex128"
    ),
    "fc_weight NaN": ({"fc_weight": with_values(WEIGHT, math.nan)}, ValueError, "fc_weight must be finite", "1 NaN"),
    "fc_weight inf": (
        {"fc_weight": with_values(WEIGHT, -math.inf)}, ValueError, "fc_weight must be finite", "1 infinite"
    ),
    "fc_weight meta": ({"fc_weight": WEIGHT.to("meta")}, TypeError, "fc_weight must hold data", "meta device"),
    "fc_weight sparse": ({"fc_weight": sparse(WEIGHT)}, TypeError, "fc_weight must be a dense tensor", "sparse_coo"),
    "clamp_negative 'no'": ({"clamp_negative": "no"}, TypeError, "clamp_negative must be a bool", "got str 'no'"),
    "clamp_negative 0": ({"clamp_negative": 0}, TypeError, "clamp_negative must be a bool", "got int 0"),
    "clamp_negative 1.0": ({"clamp_negative": 1.0}, TypeError, "clamp_negative must be a bool", "got float 1.0"),
    "clamp_negative None": ({"clamp_negative": None}, TypeError, "clamp_negative must be a bool", "NoneType None"),
    "clamp_negative a tensor": (
        {"clamp_negative": torch.tensor(True)}, TypeError, "clamp_negative must be a bool", "torch.bool tensor"
    ),
    "classes too few": ({"classes": [1]}, ValueError, "classes must have shape (2,) (one class per image)", "(1,)"),
    "classes too many": ({"classes": [1, 2, 3]}, ValueError, "classes must have shape (2,)", "got (3,)"),
    "classes empty": ({"classes": []}, ValueError, "classes must have shape (2,)", "got (0,)"),
    "classes = K": ({"classes": [0, 5]}, ValueError, "classes must hold class indices in [0, 4]", "in [0, 5]"),
    "classes negative": ({"classes": [-1, 0]}, ValueError, "classes must hold class indices in [0, 4]", "[-1, 0]"),
    "classes 2**63": (
        {"classes": [0, 2**63]}, ValueError, "classes must hold class indices in [0, 4]", str(2**63)
    ),
    "classes -2**70": (
        {"classes": [-(2**70), 1]}, ValueError, "classes must hold class indices in [0, 4]", str(-(2**70))
    ),
    "classes of floats": ({"classes": [0.0, 1.0]}, TypeError, "classes must hold ints", "[0.0, 1.0]"),
    "classes of bools": ({"classes": [True, False]}, TypeError, "classes must hold ints", "[True, False]"),
    "classes a str": ({"classes": "01"}, TypeError, "classes must be a tensor or list", "got str '01'"),
    "classes an int": ({"classes": 1}, TypeError, "classes must be a tensor or list", "got int 1"),
    "classes numpy": (
        {"classes": np.array([0, 1])}, TypeError, "classes must be a tensor or list", "numpy array of shape (2,)"
    ),
    "classes float tensor": (
        {"classes": torch.tensor([0.0, 1.0])}, TypeError, "classes must be an integer tensor", "torch.float32"
    ),
    "classes bool tensor": (
        {"classes": torch.tensor([True, False])}, TypeError, "classes must be an integer tensor", "torch.bool"
    ),
    "classes 0-d tensor": ({"classes": torch.tensor(1)}, ValueError, "classes must have shape (2,)", "got ()"),
    "classes 2-D tensor": ({"classes": torch.tensor([[0, 1]])}, ValueError, "classes must have shape (2,)", "(1, 2)"),
    "classes meta": ({"classes": torch.tensor([0, 1]).to("meta")}, TypeError, "classes must hold data", "meta"),
    "classes sparse": ({"classes": sparse(torch.tensor([0, 1]))}, TypeError, "classes must be a dense", "sparse"),
    "maps overflowing float32": (
        {"features": torch.full((1, 3, 2, 2), 3e38), "fc_weight": torch.full((5, 3), 10.0)}, ValueError,
        "features and fc_weight give maps beyond the range of torch.float32", "largest |features| 3e+38",
    ),
    "maps overflowing float64": (
        {"features": torch.full((1, 3, 2, 2), 1e308, dtype=torch.float64), "fc_weight": torch.full((5, 3), 10.0)},
        ValueError, "features and fc_weight give maps beyond the range of torch.float64", "|fc_weight| 10",
    ),
}


#: Found in the maps, after the product: a NaN or inf in the features reaches them, so the small maps are checked
#: instead of the large features (which are read only to name the cause), and an overflow exists only there.
FOUND_IN_THE_MAPS = {
    "features NaN", "features inf", "features -inf", "maps overflowing float32", "maps overflowing float64"
}


@pytest.mark.parametrize("case", sorted(BAD_CAM_CALLS))
def test_cam_names_the_bad_argument(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    overrides, error, expected, received = BAD_CAM_CALLS[case]
    arguments = {**CAM_GOOD, **overrides}
    if case not in FOUND_IN_THE_MAPS:
        monkeypatch.setattr(torch, "einsum", lambda *args: pytest.fail("the maps were computed before the check"))
    with pytest.raises(error) as raised:
        cam(**arguments)
    assert_refused(raised, expected, received)


@given(st.lists(st.integers(-(2**80), 2**80), min_size=2, max_size=2).filter(lambda c: min(c) < 0 or max(c) > 4))
def test_cam_classes_out_of_range_are_named_with_their_range(classes: list) -> None:
    with pytest.raises(ValueError) as raised:
        cam(FEATURES, WEIGHT, classes=classes)
    assert_refused(
        raised, "classes must hold class indices in [0, 4]", f"got values in [{min(classes)}, {max(classes)}]"
    )


@given(st.integers(1, 9), st.integers(1, 9).filter(lambda c: c != 3), st.booleans())
def test_cam_weight_of_other_channels_is_refused(classes_count: int, channels: int, conv: bool) -> None:
    weight = torch.rand(classes_count, channels, *((1, 1) if conv else ()))
    with pytest.raises(ValueError) as raised:
        cam(FEATURES, weight)
    assert_refused(raised, f"fc_weight has {channels} input channels but features have C=3", "features shape")


@given(
    st.lists(st.sampled_from([math.nan, math.inf, -math.inf]), min_size=1, max_size=6),
    st.data(),
    st.booleans(),
    st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64]),
)
def test_cam_counts_non_finite_features_whatever_the_weights(
    bad_values: list, data: st.DataObject, all_negative: bool, dtype: torch.dtype
) -> None:
    # NWC clamps an all-negative weight to zero, yet NaN * 0 and inf * 0 are NaN: a bad feature is never hidden.
    features = torch.rand(2, 3, 4, 4, dtype=dtype)
    positions = data.draw(
        st.lists(st.integers(0, features.numel() - 1), min_size=len(bad_values), max_size=len(bad_values), unique=True)
    )
    for position, value in zip(positions, bad_values):
        features.view(-1)[position] = value
    nan_count = sum(math.isnan(value) for value in bad_values)
    weight = -torch.rand(5, 3) if all_negative else torch.randn(5, 3)
    classes = data.draw(st.one_of(st.none(), st.lists(st.integers(0, 4), min_size=2, max_size=2)))
    with pytest.raises(ValueError) as raised:
        cam(features, weight, classes=classes)
    assert_refused(
        raised, "features must be finite", f"got {nan_count} NaN and {len(bad_values) - nan_count} infinite values"
    )


@given(st.one_of(st.integers(), st.text(max_size=5), st.none(), st.floats(), st.lists(st.booleans(), max_size=2)))
def test_cam_clamp_negative_must_be_a_real_bool(clamp_negative: object) -> None:
    with pytest.raises(TypeError) as raised:
        cam(FEATURES, WEIGHT, clamp_negative)  # type: ignore[arg-type]
    assert_refused(raised, "clamp_negative must be a bool (True or False)", f"got {type(clamp_negative).__name__}")


def test_cam_of_awkward_but_valid_input_is_what_plain_input_gives() -> None:
    expected = cam(FEATURES, WEIGHT, classes=[1, 4])
    channels_last = FEATURES.to(memory_format=torch.channels_last)
    transposed = FEATURES.transpose(2, 3).contiguous().transpose(2, 3)
    for features in (channels_last, transposed, FEATURES.clone().requires_grad_()):
        assert torch.allclose(cam(features, WEIGHT, classes=[1, 4]), expected)
    for classes in ((1, 4), [np.int64(1), np.int32(4)], torch.tensor([1, 4], dtype=torch.uint8)):
        assert torch.equal(cam(FEATURES, WEIGHT, classes=classes), expected)
    assert torch.equal(cam(FEATURES, WEIGHT[:, :, None, None], np.bool_(True), [1, 4]), expected)
    expanded = torch.rand(1, 3, 1, 1).expand(2, 3, 4, 4)
    assert torch.allclose(cam(expanded, WEIGHT), cam(expanded.contiguous(), WEIGHT))
    for dtype in (torch.float16, torch.bfloat16):  # cast to float32 first, as documented
        low = FEATURES.to(dtype)
        assert torch.equal(cam(low, WEIGHT.to(dtype)), cam(low.float(), WEIGHT.to(dtype).float()))
    one_pixel = cam(torch.rand(2, 3, 1, 1), WEIGHT, classes=[0, 0])
    assert one_pixel.shape == (2, 1, 1) and bool(torch.isfinite(one_pixel).all())
    features, weight = FEATURES.clone().requires_grad_(), WEIGHT.clone().requires_grad_()
    cam(features, weight, False).sum().backward()
    assert features.grad is not None and weight.grad is not None  # still differentiable in both


# ----------------------------------------------------------------------------------------------------- resize_maps

MAPS = torch.rand(2, 3, 3)
RESIZE_GOOD = {"maps": MAPS, "size": (5, 7), "mode": "bicubic"}

BAD_RESIZE_CALLS: Cases = {
    "maps a list": ({"maps": MAPS.tolist()}, TypeError, "maps must be a torch.Tensor", "got list"),
    "maps numpy": ({"maps": MAPS.numpy()}, TypeError, "maps must be a torch.Tensor", "float32 numpy array"),
    "maps None": ({"maps": None}, TypeError, "maps must be a torch.Tensor", "NoneType None"),
    "maps 0-D": ({"maps": torch.tensor(1.0)}, ValueError, "maps must have shape (N, h, w), (N, K, h, w) or (h, w)",
                 "got 0 dims"),
    "maps 1-D": ({"maps": torch.rand(3)}, ValueError, "maps must have shape (N, h, w), (N, K, h, w)", "got 1 dims"),
    "maps 5-D": ({"maps": torch.rand(1, 1, 1, 3, 3)}, ValueError, "maps must have shape (N, h, w)", "got 5 dims"),
    "maps int64": ({"maps": MAPS.long()}, TypeError, "maps must be a floating point tensor", "torch.int64"),
    "maps bool": ({"maps": MAPS > 0.5}, TypeError, "maps must be a floating point tensor", "torch.bool"),
    "maps complex": ({"maps": MAPS.to(torch.complex64)}, TypeError, "maps must be a floating point", "complex64"),
    "maps (h, 0)": ({"maps": torch.rand(3, 0)}, ValueError, "maps must not be empty", "(3, 0)"),
    "maps (0, w)": ({"maps": torch.rand(0, 3)}, ValueError, "maps must not be empty", "(0, 3)"),
    "maps (N, 0, w)": ({"maps": torch.rand(2, 0, 3)}, ValueError, "maps must not be empty", "(2, 0, 3)"),
    "maps (N, h, 0)": ({"maps": torch.rand(2, 3, 0)}, ValueError, "maps must not be empty", "(2, 3, 0)"),
    "maps (0, 0, 0)": ({"maps": torch.rand(0, 0, 0)}, ValueError, "maps must not be empty", "(0, 0, 0)"),
    "maps (N, K, 0, w)": ({"maps": torch.rand(2, 2, 0, 3)}, ValueError, "maps must not be empty", "(2, 2, 0, 3)"),
    "maps (N, K, h, 0)": ({"maps": torch.rand(2, 2, 3, 0)}, ValueError, "maps must not be empty", "(2, 2, 3, 0)"),
    "maps NaN": ({"maps": with_values(MAPS, math.nan)}, ValueError, "maps must be finite", "1 NaN and 0 infinite"),
    "maps inf": ({"maps": with_values(MAPS, math.inf)}, ValueError, "maps must be finite", "0 NaN and 1 infinite"),
    "maps NaN at its size": (
        {"maps": with_values(MAPS, math.nan), "size": (3, 3)}, ValueError, "maps must be finite", "1 NaN"
    ),
    "maps meta": ({"maps": MAPS.to("meta")}, TypeError, "maps must hold data", "meta device"),
    "maps sparse": ({"maps": sparse(MAPS)}, TypeError, "maps must be a dense tensor", "sparse_coo"),
    "size (0, w)": ({"size": (0, 4)}, ValueError, "size must be a pair of positive ints (H, W)", "(0, 4)"),
    "size (H, 0)": ({"size": (4, 0)}, ValueError, "size must be a pair of positive ints (H, W)", "(4, 0)"),
    "size negative": ({"size": (-4, 4)}, ValueError, "size must be a pair of positive ints (H, W)", "(-4, 4)"),
    "size float": ({"size": (4.0, 4)}, ValueError, "size must be a pair of positive ints (H, W)", "(4.0, 4)"),
    "size fraction": ({"size": (4, 4.5)}, ValueError, "size must be a pair of positive ints (H, W)", "(4, 4.5)"),
    "size NaN": ({"size": (math.nan, 4)}, ValueError, "size must be a pair of positive ints (H, W)", "nan"),
    "size bool": ({"size": (True, 4)}, ValueError, "size must be a pair of positive ints (H, W)", "(True, 4)"),
    "size numpy bool": (
        {"size": (np.True_, 4)}, ValueError, "size must be a pair of positive ints (H, W)", "np.True_"
    ),
    "size one int": ({"size": 4}, ValueError, "size must be a pair of positive ints (H, W)", "got int 4"),
    "size one item": ({"size": (4,)}, ValueError, "size must be a pair of positive ints (H, W)", "(4,)"),
    "size three items": ({"size": (4, 4, 4)}, ValueError, "size must be a pair of positive ints", "(4, 4, 4)"),
    "size a str": ({"size": "44"}, ValueError, "size must be a pair of positive ints (H, W)", "got str '44'"),
    "size None": ({"size": None}, ValueError, "size must be a pair of positive ints (H, W)", "NoneType None"),
    "size a tensor": ({"size": torch.tensor([4, 4])}, ValueError, "size must be a pair of positive ints", "tensor"),
    "size a set": ({"size": {4, 5}}, ValueError, "size must be a pair of positive ints (H, W)", "got set"),
    "size 2**30 + 2**15 pixels": (
        {"size": (2**15, 2**15 + 1)}, ValueError, "size must have at most 1073741824 pixels H * W",
        "got (32768, 32769), 1073774592 pixels",
    ),
    "mode nearest": ({"mode": "nearest"}, ValueError, "mode must be one of ('bilinear', 'bicubic')", "'nearest'"),
    "mode capitals": ({"mode": "BICUBIC"}, ValueError, "mode must be one of ('bilinear', 'bicubic')", "'BICUBIC'"),
    "mode with a space": ({"mode": "bicubic "}, ValueError, "mode must be one of", "got 'bicubic '"),
    "mode empty": ({"mode": ""}, ValueError, "mode must be one of ('bilinear', 'bicubic')", "got ''"),
    "mode None": ({"mode": None}, ValueError, "mode must be one of ('bilinear', 'bicubic')", "got None"),
    "mode bytes": ({"mode": b"bicubic"}, ValueError, "mode must be one of", "got b'bicubic'"),
    "mode a numpy array": (  # compares equal to "bilinear", and used to be taken for a mode
        {"mode": np.array(["bilinear"])}, ValueError, "mode must be one of", "got array(['bilinear']"
    ),
    "mode a list": ({"mode": ["bilinear"]}, ValueError, "mode must be one of", "got ['bilinear']"),
}


@pytest.mark.parametrize("case", sorted(BAD_RESIZE_CALLS))
def test_resize_maps_names_the_bad_argument(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    overrides, error, expected, received = BAD_RESIZE_CALLS[case]
    monkeypatch.setattr(F, "interpolate", lambda *args, **kwargs: pytest.fail("interpolated before the check"))
    with pytest.raises(error) as raised:
        resize_maps(**{**RESIZE_GOOD, **overrides})
    assert_refused(raised, expected, received)


@given(st.integers(-(2**70), 0), st.integers(1, 64), st.booleans())
def test_resize_maps_refuses_a_side_below_one(bad: int, good: int, height_bad: bool) -> None:
    size = (bad, good) if height_bad else (good, bad)
    with pytest.raises(ValueError) as raised:
        resize_maps(MAPS, size)
    assert_refused(raised, "size must be a pair of positive ints (H, W)", str(size))


@given(st.integers(1, 2**70), st.integers(1, 2**70).map(lambda side: side + 2**30), st.booleans())
def test_resize_maps_refuses_a_size_beyond_2_30_pixels_before_allocating(one: int, other: int, swap: bool) -> None:
    size = (other, one) if swap else (one, other)
    with pytest.MonkeyPatch.context() as patch:  # a regression must fail here, not allocate terabytes
        patch.setattr(F, "interpolate", lambda *args, **kwargs: pytest.fail("interpolated before the check"))
        with pytest.raises(ValueError) as raised:
            resize_maps(MAPS, size)
    assert_refused(raised, "size must have at most 1073741824 pixels H * W", f"{one * other} pixels")


@given(st.one_of(st.text(max_size=8), st.none(), st.integers(), st.binary(max_size=8)).filter(
    lambda mode: mode not in ("bilinear", "bicubic")
))
def test_resize_maps_refuses_any_other_mode(mode: object) -> None:
    with pytest.raises(ValueError) as raised:
        resize_maps(MAPS, (4, 4), mode)  # type: ignore[arg-type]
    assert_refused(raised, "mode must be one of ('bilinear', 'bicubic')", f"got {mode!r}")


# -------------------------------------------------------------------------------------------------- normalize_maps

BAD_NORMALIZE_CALLS: Dict[str, Tuple[object, type, str, str]] = {
    "a list": (MAPS.tolist(), TypeError, "maps must be a torch.Tensor of shape (..., H, W)", "got list"),
    "numpy": (MAPS.numpy(), TypeError, "maps must be a torch.Tensor", "float32 numpy array of shape (2, 3, 3)"),
    "a float": (0.5, TypeError, "maps must be a torch.Tensor", "got float 0.5"),
    "0-D": (torch.tensor(0.5), ValueError, "maps must have shape (..., H, W)", "got 0 dims"),
    "1-D": (torch.rand(3), ValueError, "maps must have shape (..., H, W)", "got 1 dims with shape (3,)"),
    "9-D": (torch.rand(*[1] * 7, 3, 3), ValueError, "maps must have shape (..., H, W)", "got 9 dims"),
    "int64": (MAPS.long(), TypeError, "maps must be a floating point tensor", "torch.int64"),
    "uint8": (MAPS.to(torch.uint8), TypeError, "maps must be a floating point tensor", "torch.uint8"),
    "bool": (MAPS > 0.5, TypeError, "maps must be a floating point tensor", "torch.bool"),
    "complex": (MAPS.to(torch.complex128), TypeError, "maps must be a floating point tensor", "complex128"),
    "NaN": (with_values(MAPS, math.nan), ValueError, "maps must be finite", "1 NaN and 0 infinite values"),
    "inf": (with_values(MAPS, math.inf), ValueError, "maps must be finite", "0 NaN and 1 infinite values"),
    "-inf float16": (
        with_values(MAPS.half(), -math.inf), ValueError, "maps must be finite", "0 NaN and 1 infinite values"
    ),
    "meta": (MAPS.to("meta"), TypeError, "maps must hold data", "meta device"),
    "sparse": (sparse(MAPS), TypeError, "maps must be a dense tensor", "sparse_coo"),
}


@pytest.mark.parametrize("case", sorted(BAD_NORMALIZE_CALLS))
def test_normalize_maps_names_the_bad_argument(case: str) -> None:
    maps, error, expected, received = BAD_NORMALIZE_CALLS[case]
    with pytest.raises(error) as raised:
        normalize_maps(maps)  # type: ignore[arg-type]
    assert_refused(raised, expected, received)


@given(st.lists(st.integers(0, 3), min_size=2, max_size=6), st.data())
def test_zero_size_dimensions_in_any_position(shape: list, data: st.DataObject) -> None:
    # The promise for an empty dimension anywhere: an empty H or W is refused by name (no pixel, no minimum or
    # interpolation), an empty leading dimension (no maps) gives no maps, of the right shape.
    maps = torch.rand(shape)
    if 0 in shape[-2:]:
        with pytest.raises(ValueError) as raised:
            normalize_maps(maps)
        assert_refused(raised, "maps must not be empty", f"got shape {tuple(shape)}")
    else:
        assert normalize_maps(maps).shape == maps.shape
    if len(shape) > 4:
        return
    size = data.draw(st.tuples(st.integers(1, 6), st.integers(1, 6)))
    if 0 in shape[-2:]:
        with pytest.raises(ValueError) as raised:
            resize_maps(maps, size)
        assert_refused(raised, "maps must not be empty", f"got shape {tuple(shape)}")
    else:
        assert resize_maps(maps, size).shape == maps.shape[:-2] + size


@given(
    st.lists(st.integers(1, 4), min_size=2, max_size=4),
    st.lists(st.sampled_from([math.nan, math.inf, -math.inf]), min_size=1, max_size=4),
    st.data(),
)
def test_non_finite_maps_are_counted_by_both(shape: list, bad_values: list, data: st.DataObject) -> None:
    maps = torch.rand(shape, dtype=data.draw(st.sampled_from([torch.float16, torch.bfloat16, torch.float64])))
    positions = data.draw(st.lists(st.integers(0, maps.numel() - 1), max_size=len(bad_values), min_size=1, unique=True))
    for position, value in zip(positions, bad_values):
        maps.view(-1)[position] = value
    nan_count = sum(math.isnan(value) for value in bad_values[: len(positions)])
    counts = f"got {nan_count} NaN and {len(positions) - nan_count} infinite values"
    for function in (normalize_maps, lambda maps: resize_maps(maps, (5, 5))):
        with pytest.raises(ValueError) as raised:
            function(maps)
        assert_refused(raised, "maps must be finite", counts)


def test_resize_and_normalize_of_awkward_but_valid_input() -> None:
    for size in ((np.int64(5), np.int32(7)), torch.Size([5, 7]), [5, 7]):
        assert torch.equal(resize_maps(MAPS, size), resize_maps(MAPS, (5, 7)))
    assert torch.equal(resize_maps(MAPS, (5, 7), np.str_("bilinear")), resize_maps(MAPS, (5, 7), "bilinear"))
    assert resize_maps(MAPS, (3, 3)) is MAPS
    assert resize_maps(torch.rand(0, 3, 3), (5, 7)).shape == (0, 5, 7)
    assert resize_maps(torch.rand(2, 0, 3, 3), (5, 7)).shape == (2, 0, 5, 7)  # F.interpolate refuses K = 0
    assert resize_maps(torch.rand(0, 2, 3, 3), (5, 7)).shape == (0, 2, 5, 7)
    assert normalize_maps(torch.rand(0, 3, 3)).shape == (0, 3, 3)
    assert normalize_maps(torch.rand(2, 0, 5, 3, 3)).shape == (2, 0, 5, 3, 3)
    # A 1x1 map resized is constant up to noise and normalises to zeros, in every dtype, not to stretched noise.
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        constant = resize_maps(torch.full((1, 1), 0.7, dtype=dtype), (224, 224))
        assert constant.dtype == dtype and not normalize_maps(constant).any()
    # float16 extremes: max - min overflows float16, the normalised map does not.
    extremes = torch.tensor([[-65504.0, 0.0, 65504.0]], dtype=torch.float16)
    assert normalize_maps(extremes).tolist() == [[0.0, 0.5, 1.0]]
    signed = torch.tensor([[-3.0, -1.0], [-2.0, -3.0]])
    assert normalize_maps(signed).tolist() == [[0.0, 1.0], [0.5, 0.0]]
    maps = MAPS.clone().requires_grad_()
    normalize_maps(resize_maps(maps, (5, 7))).sum().backward()
    assert maps.grad is not None and bool(torch.isfinite(maps.grad).all())


# ----------------------------------------------------------------------------------------- in a child process

#: Calls that would exhaust memory, or run kernels on odd strides, if a check regressed: they run in a child
#: process with its address space capped, so that a regression fails that child rather than killing pytest.
CHILD = textwrap.dedent(
    """
    import resource, sys
    import numpy as np, torch
    from camfix import cam, normalize_maps, resize_maps

    # Room for what is mapped now plus 2 GiB: a 4 GiB map would fail to allocate instead of swapping the machine.
    mapped = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (mapped + 2**31, resource.RLIM_INFINITY))
    tried = 0
    huge = [(1, 2**31), (2**31, 1), (2**16, 2**16), (2**15, 2**15 + 1), (2**20, 2**20), (2**63, 1),
            (2**64, 2**64), (np.int64(2**40), 1), (1, np.uint64(2**63)), (10**30, 10**30)]
    for size in huge:
        for maps in (torch.rand(3, 3), torch.rand(2, 3, 3), torch.rand(1, 2, 3, 3)):
            try:
                resize_maps(maps, size)
            except ValueError as error:
                assert str(error).startswith("size must have at most 1073741824 pixels"), error
            else:
                raise AssertionError(f"size {size} was resized")
            tried += 1
    rng = torch.Generator().manual_seed(0)
    base = torch.rand(4, 6, 10, 12, generator=rng, dtype=torch.float64)
    odd = {
        "transposed": base.transpose(2, 3),
        "strided": base[:, :, ::3, ::2],
        "expanded": base[:1, :1].expand(4, 6, 10, 12),
        "channels_last": base.to(memory_format=torch.channels_last),
        "narrow": base[1:3, 2:5, 1:2, 3:11],
        "one pixel": base[:, :, :1, :1],
        "one row": base[:, :, :1],
        "one column": base[:, :, :, :1],
        "a long row": torch.rand(1, 2, 1, 3000, generator=rng, dtype=torch.float64),
    }
    weight = torch.randn(3, base.shape[1], generator=rng, dtype=torch.float64)
    for name, features in odd.items():
        maps = cam(features, weight[:, : features.shape[1]])
        assert torch.allclose(maps, cam(features.contiguous(), weight[:, : features.shape[1]])), name
        for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            typed = features.to(dtype)
            for mode in ("bicubic", "bilinear"):
                for view in (typed, typed[:, 0], typed[0, 0]):
                    size = (3, 2 * view.shape[-1]) if view.shape[-1] > 100 else (7, 9)
                    resized = resize_maps(view, size, mode)
                    assert torch.equal(resized, resize_maps(view.contiguous(), size, mode)), (name, dtype, mode)
                    assert torch.equal(normalize_maps(view), normalize_maps(view.contiguous())), (name, dtype)
                    tried += 1
    print(tried)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="caps the child's memory with RLIMIT_AS and /proc")
def test_huge_sizes_and_odd_strides_in_a_child_process() -> None:
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"exit status {result.returncode}:\n{result.stderr[-3000:]}"
    assert int(result.stdout.split()[-1]) == 10 * 3 + 9 * 4 * 2 * 3

