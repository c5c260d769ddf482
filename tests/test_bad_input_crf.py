"""Bad input to camfix.crf (issue 14): every public function refuses it by name, before pydensecrf runs.

- **Named.** ``image``/``images``, ``saliency``, ``probs``, ``params``, ``threshold``, ``alpha``, ``thresholds``,
  ``workers`` and every :class:`DenseCRFParams` field are checked under the caller's name: a ``TypeError`` for
  the wrong kind of object or dtype (float images, integer maps, bools for numbers), a ``ValueError`` for the
  wrong rank, size, range or content (NaN/inf, maps outside [0, 1], probabilities not summing to 1, 1- or
  4-channel images, zero-size dimensions, image/map size mismatches), raised by camfix's own check with a
  message that starts with (or names) the argument and quotes what was received.
- **Before the work.** No refused call reaches pydensecrf (``load_pydensecrf`` fails the test if it runs).
- **No crash.** Odd strides, non-contiguous and broadcast inputs, huge ints and extreme CRF parameters run in
  one child process (which forks once per case that could kill the interpreter), asserting normal exits.

The seven bugs this module found in ``camfix/crf.py`` are fixed; a new one would be marked
``xfail(strict=True)`` until it is, so that its fix shows as an unexpected pass.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from functools import lru_cache
from typing import Callable, Dict, List, Tuple

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("pydensecrf.densecrf")

import camfix.crf as crf  # noqa: E402
from camfix.crf import (  # noqa: E402
    MAX_CRF_ITERATIONS,
    DenseCRFParams,
    alpha_boundary,
    dense_crf,
    refine_labels,
    refine_labels_batch,
    refine_saliency,
    refine_saliency_batch,
    refine_saliency_sweep,
    saliency_scores,
)

from refusals import assert_refused, with_values  # noqa: E402

pytestmark = pytest.mark.crf

#: Every bad input this module tries, counted as it is tried (reported by the last test).
TRIED: List[str] = []


@pytest.fixture(autouse=True)
def no_pydensecrf(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused call must not get as far as pydensecrf."""
    monkeypatch.setattr(crf, "load_pydensecrf", lambda: pytest.fail("pydensecrf was reached before the check"))


# ------------------------------------------------------------------------------------------------------- inputs

RNG = np.random.RandomState(0)
IMAGE = RNG.randint(0, 256, (8, 8, 3)).astype(np.uint8)  # (H, W, 3)
IMAGES = RNG.randint(0, 256, (2, 8, 8, 3)).astype(np.uint8)  # (N, H, W, 3)
SALIENCY = torch.rand(8, 8, generator=torch.Generator().manual_seed(0))
SALIENCIES = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(1))
PROBS = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(2)).softmax(0)
PROBS_BATCH = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3)).softmax(1)


def chw(image: np.ndarray) -> torch.Tensor:
    """A numpy ``(..., H, W, 3)`` image as a tensor ``(..., 3, H, W)``."""
    return torch.from_numpy(image).movedim(-1, -3).contiguous()


#: function name -> (call(image, map, **kwargs), good image, good map, image name, map name, batched)
Call = Callable[..., object]
FUNCTIONS: Dict[str, Tuple[Call, np.ndarray, torch.Tensor, str, str]] = {
    "dense_crf": (dense_crf, IMAGE, PROBS, "image", "probs"),
    "refine_labels": (refine_labels, IMAGE, PROBS, "image", "probs"),
    "refine_labels_batch": (refine_labels_batch, IMAGES, PROBS_BATCH, "images", "probs"),
    "refine_saliency": (refine_saliency, IMAGE, SALIENCY, "image", "saliency"),
    "refine_saliency_batch": (refine_saliency_batch, IMAGES, SALIENCIES, "images", "saliency"),
    "refine_saliency_sweep": (
        lambda images, maps, *args, **kwargs: refine_saliency_sweep(images, maps, [0.3, 0.5], *args, **kwargs),
        IMAGES, SALIENCIES, "images", "saliency",
    ),
}
BATCHED = {"refine_labels_batch", "refine_saliency_batch", "refine_saliency_sweep"}
SALIENCY_FUNCTIONS = {"refine_saliency", "refine_saliency_batch", "refine_saliency_sweep"}


# --------------------------------------------------------------------------------------------------- bad images

#: case -> (make the bad image from the good numpy one, exception, message after "<name> ", text it must quote)
BAD_IMAGES: Dict[str, Tuple[Callable[[np.ndarray], object], type, str, str]] = {
    "a list": (lambda im: im.tolist(), TypeError, "must be a uint8 RGB numpy array or torch tensor", "got list"),
    "None": (lambda im: None, TypeError, "must be a uint8 RGB numpy array or torch tensor", "got NoneType"),
    "a path": (lambda im: "cat.png", TypeError, "must be a uint8 RGB numpy array or torch tensor", "got str"),
    "float32 numpy in [0, 1]": (lambda im: im.astype(np.float32) / 255, TypeError, "must have dtype uint8",
                                "float32 numpy array"),
    "float64 numpy in [0, 255]": (lambda im: im.astype(np.float64), TypeError, "must have dtype uint8", "float64"),
    "int64 numpy": (lambda im: im.astype(np.int64), TypeError, "must have dtype uint8", "int64"),
    "uint16 numpy": (lambda im: im.astype(np.uint16), TypeError, "must have dtype uint8", "uint16"),
    "bool numpy": (lambda im: im > 127, TypeError, "must have dtype uint8", "bool"),
    "int8 numpy": (lambda im: im.view(np.int8), TypeError, "must have dtype uint8", "int8"),
    "float32 tensor in [0, 1]": (lambda im: chw(im).float() / 255, TypeError, "must have dtype torch.uint8",
                                 "torch.float32"),
    "int64 tensor": (lambda im: chw(im).long(), TypeError, "must have dtype torch.uint8", "torch.int64"),
    "bool tensor": (lambda im: chw(im) > 127, TypeError, "must have dtype torch.uint8", "torch.bool"),
    "1-channel numpy": (lambda im: im[..., :1], ValueError, "must have 3 colour channels", "got 1 channels"),
    "4-channel numpy (RGBA)": (lambda im: np.concatenate([im, im[..., :1]], -1), ValueError,
                               "must have 3 colour channels", "got 4 channels"),
    "1-channel tensor": (lambda im: chw(im)[..., :1, :, :], ValueError, "must have 3 colour channels",
                         "got 1 channels"),
    "4-channel tensor": (lambda im: torch.cat([chw(im), chw(im)[..., :1, :, :]], -3), ValueError,
                         "must have 3 colour channels", "got 4 channels"),
    "tensor in the numpy layout (H, W, 3)": (lambda im: torch.from_numpy(im), ValueError,
                                             "must have 3 colour channels", "got 8 channels"),
    "numpy in the tensor layout (3, H, W)": (lambda im: chw(im).numpy(), ValueError,
                                             "must have 3 colour channels", "got 8 channels"),
    "grayscale numpy (one rank less)": (lambda im: im[..., 0], ValueError, "must have shape", "dims with shape"),
    "numpy one rank more": (lambda im: im[None], ValueError, "must have shape", "dims with shape"),
    "tensor one rank less": (lambda im: chw(im)[..., 0, :, :], ValueError, "must have shape", "dims with shape"),
    "tensor one rank more": (lambda im: chw(im)[None], ValueError, "must have shape", "dims with shape"),
    "numpy zero height": (lambda im: im[..., :0, :, :], ValueError, "must not be empty", "got shape"),
    "numpy zero width": (lambda im: im[..., :0, :], ValueError, "must not be empty", "got shape"),
    "numpy zero channels": (lambda im: im[..., :0], ValueError, "must not be empty", "got shape"),
    "tensor zero height": (lambda im: chw(im)[..., :0, :], ValueError, "must not be empty", "got shape"),
    "tensor zero width": (lambda im: chw(im)[..., :0], ValueError, "must not be empty", "got shape"),
    "sparse tensor": (lambda im: chw(im).to_sparse(), TypeError, "must be a dense tensor", "layout"),
    "meta tensor": (lambda im: torch.empty(chw(im).shape, dtype=torch.uint8, device="meta"), TypeError,
                    "must hold data", "meta device"),
    "numpy smaller than the map": (lambda im: im[..., :7, :, :], ValueError, "and {map} must have the same size",
                                   "(7, 8) and (8, 8)"),
    "tensor wider than the map": (lambda im: torch.cat([chw(im), chw(im)], -1), ValueError,
                                  "and {map} must have the same size", "(8, 16) and (8, 8)"),
    "numpy transposed (W, H)": (lambda im: np.swapaxes(im, -2, -3)[..., :5, :, :], ValueError,
                                "and {map} must have the same size", "(5, 8) and (8, 8)"),
}
BATCH_ONLY_IMAGES = {
    "one image fewer than maps": (lambda im: im[:1], ValueError, "and {map} must have the same batch size N",
                                  "got 1 and 2"),
    "zero images": (lambda im: im[:0], ValueError, "must not be empty", "got shape"),
    "an unbatched image": (lambda im: im[0], ValueError, "must have shape", "3 dims"),
}


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
@pytest.mark.parametrize("case", sorted(BAD_IMAGES) + sorted(BATCH_ONLY_IMAGES))
def test_bad_image_is_refused_by_name(function: str, case: str) -> None:
    call, good_image, good_map, image_name, map_name = FUNCTIONS[function]
    table = {**BAD_IMAGES, **BATCH_ONLY_IMAGES}
    if case in BATCH_ONLY_IMAGES and function not in BATCHED:
        pytest.skip("a batch-only case")
    make, error, expected, received = table[case]
    TRIED.append(f"{function}: image {case}")
    with pytest.raises(error) as raised:
        call(make(good_image), good_map)
    assert_refused(raised, f"{image_name} " + expected.format(map=map_name), received)


@given(channels=st.integers(0, 9).filter(lambda c: c != 3), tensor=st.booleans(), batched=st.booleans())
def test_any_channel_count_but_three_is_refused(channels: int, tensor: bool, batched: bool) -> None:
    name = "images" if batched else "image"
    image = np.zeros((2, 4, 4, channels) if batched else (4, 4, channels), np.uint8)
    maps = torch.rand(2, 4, 4) if batched else torch.rand(4, 4)
    TRIED.append(f"{channels}-channel image")
    with pytest.raises(ValueError) as raised:
        (refine_saliency_batch if batched else refine_saliency)(chw(image) if tensor else image, maps)
    assert_refused(raised, name, "got shape" if channels == 0 else f"got {channels} channels")


# ----------------------------------------------------------------------------------------------------- bad maps

#: case -> (make the bad map from the good one, exception, message start ("{map}", "{image}"), text it must quote)
BAD_MAPS: Dict[str, Tuple[Callable[[torch.Tensor], object], type, str, str]] = {
    "a list": (lambda m: m.tolist(), TypeError, "{map} must be a torch.Tensor", "got list"),
    "numpy": (lambda m: m.numpy(), TypeError, "{map} must be a torch.Tensor", "float32 numpy array"),
    "None": (lambda m: None, TypeError, "{map} must be a torch.Tensor", "got NoneType None"),
    "a float": (lambda m: 0.5, TypeError, "{map} must be a torch.Tensor", "got float 0.5"),
    "int64 (a label map)": (lambda m: (m > 0.4).long(), TypeError, "{map} must be a floating point tensor",
                            "torch.int64"),
    "uint8 in [0, 255]": (lambda m: (m * 255).to(torch.uint8), TypeError, "{map} must be a floating point tensor",
                          "torch.uint8"),
    "bool": (lambda m: m > 0.4, TypeError, "{map} must be a floating point tensor", "torch.bool"),
    "complex": (lambda m: m.to(torch.complex64), TypeError, "{map} must be a floating point tensor",
                "torch.complex64"),
    "NaN": (lambda m: with_values(m, math.nan), ValueError, "{map} must be finite", "1 NaN and 0 infinite"),
    "inf": (lambda m: with_values(m, math.inf), ValueError, "{map} must be finite", "0 NaN and 1 infinite"),
    "-inf": (lambda m: with_values(m, -math.inf), ValueError, "{map} must be finite", "0 NaN and 1 infinite"),
    "all NaN float16": (lambda m: torch.full_like(m, math.nan, dtype=torch.float16), ValueError,
                        "{map} must be finite", " NaN and 0 infinite"),
    "above 1 (a 0-255 map)": (lambda m: m * 255, ValueError, "{map} must have values in [0, 1]", "got values in"),
    "slightly above 1": (lambda m: with_values(m, 1.0001), ValueError, "{map} must have values in [0, 1]", "1.0001"),
    "negative": (lambda m: with_values(m, -0.25), ValueError, "{map} must have values in [0, 1]", "-0.25"),
    "logits": (lambda m: torch.logit(m.clamp(0.01, 0.99)), ValueError, "{map} must have values in [0, 1]",
               "got values in"),
    "one rank less": (lambda m: m[0], ValueError, "{map} must have shape", "dims with shape"),
    "two ranks more": (lambda m: m[None, None], ValueError, "{map} must have shape", "dims with shape"),
    "zero height": (lambda m: m[..., :0, :], ValueError, "{map} must not be empty", "got shape"),
    "zero width": (lambda m: m[..., :0], ValueError, "{map} must not be empty", "got shape"),
    "sparse": (lambda m: m.to_sparse(), TypeError, "{map} must be a dense tensor", "layout"),
    "meta": (lambda m: torch.empty_like(m, device="meta"), TypeError, "{map} must hold data", "meta device"),
    "smaller than the image": (lambda m: m[..., :7, :], ValueError, "{image} and {map} must have the same size",
                               "(8, 8) and (7, 8)"),
    "not resized to the image": (lambda m: m[..., :4, :4], ValueError, "{image} and {map} must have the same size",
                                 "(8, 8) and (4, 4)"),
}
BAD_PROBS = {
    "one class": (lambda p: torch.ones_like(p[..., :1, :, :]), ValueError, "probs must have at least 2 classes",
                  "got 1"),
    "zero classes": (lambda p: p[..., :0, :, :], ValueError, "probs must not be empty", "got shape"),
    "half of a softmax": (lambda p: p / 2, ValueError, "probs must sum to 1 over the classes", "deviation of 0.5"),
    "independent sigmoids": (lambda p: torch.full_like(p, 0.9), ValueError, "probs must sum to 1 over the classes",
                             "deviation of 1.7"),
    "all zero": (lambda p: torch.zeros_like(p), ValueError, "probs must sum to 1 over the classes",
                 "deviation of 1"),
    "one pixel off by 0.01": (lambda p: with_values(p, float(p.view(-1)[1]) + 0.01), ValueError,
                              "probs must sum to 1 over the classes", "deviation of 0.01"),
    "classes last (H, W, K)": (lambda p: p.movedim(-3, -1), ValueError, "probs must sum to 1 over the classes",
                               "deviation"),
}
BAD_SALIENCY = {
    "two-class scores (2, H, W)": (lambda s: torch.stack([1 - s, s], -3), ValueError, "saliency must have shape",
                                   "dims with shape"),
}
BATCH_ONLY_MAPS = {
    "one map fewer than images": (lambda m: m[:1], ValueError, "{image} and {map} must have the same batch size N",
                                  "got 2 and 1"),
    "zero maps": (lambda m: m[:0], ValueError, "{map} must not be empty", "got shape"),
}


def map_cases(function: str) -> Dict[str, tuple]:
    own = BAD_SALIENCY if function in SALIENCY_FUNCTIONS else BAD_PROBS
    batch = BATCH_ONLY_MAPS if function in BATCHED else {}
    cases = {**BAD_MAPS, **own, **batch}
    if function == "refine_saliency_sweep":
        # (R, N, H, W) is valid there: the two-class stack of (N, H, W) maps is 4-D and so a valid shape.
        cases.pop("two-class scores (2, H, W)")
    return cases


@pytest.mark.parametrize(
    "function, case", [(function, case) for function in sorted(FUNCTIONS) for case in sorted(map_cases(function))]
)
def test_bad_map_is_refused_by_name(function: str, case: str) -> None:
    call, good_image, good_map, image_name, map_name = FUNCTIONS[function]
    make, error, expected, received = map_cases(function)[case]
    TRIED.append(f"{function}: {map_name} {case}")
    with pytest.raises(error) as raised:
        call(good_image, make(good_map))
    assert_refused(raised, expected.format(map=map_name, image=image_name), received)


@given(st.lists(st.integers(0, 3), min_size=1, max_size=5), st.data())
def test_zero_size_maps_in_any_position(shape: List[int], data: st.DataObject) -> None:
    """A map of any rank with a zero-size dimension is refused, never passed on as an empty CRF."""
    if 0 not in shape:
        shape[data.draw(st.integers(0, len(shape) - 1))] = 0
    TRIED.append(f"zero-size map {shape}")
    for call in (lambda m: saliency_scores(m), lambda m: refine_saliency(IMAGE, m),
                 lambda m: refine_saliency_batch(IMAGES, m), lambda m: dense_crf(IMAGE, m)):
        with pytest.raises(ValueError) as raised:
            call(torch.zeros(shape))
        message = str(raised.value)
        assert message.startswith(("saliency", "probs")) and ("empty" in message or "shape" in message), message


@given(st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not 0 <= v <= 1))
def test_any_value_outside_0_1_is_refused(value: float) -> None:
    TRIED.append(f"saliency value {value}")
    for call in (saliency_scores, lambda m: refine_saliency(IMAGE, m)):
        with pytest.raises(ValueError) as raised:
            call(with_values(SALIENCY.double(), value))
        assert str(raised.value).startswith("saliency must "), raised.value


# ------------------------------------------------------------------------------------------ operating points

BAD_THRESHOLDS = [
    (0, ValueError, "threshold must be in (0, 1)", "got 0"),
    (1, ValueError, "threshold must be in (0, 1)", "got 1"),
    (0.0, ValueError, "threshold must be in (0, 1)", "got 0.0"),
    (1.0, ValueError, "threshold must be in (0, 1)", "got 1.0"),
    (-0.5, ValueError, "threshold must be in (0, 1)", "got -0.5"),
    (1.5, ValueError, "threshold must be in (0, 1)", "got 1.5"),
    (50, ValueError, "threshold must be in (0, 1)", "got 50"),
    (math.nan, ValueError, "threshold must be in (0, 1)", "nan"),
    (math.inf, ValueError, "threshold must be in (0, 1)", "inf"),
    (-math.inf, ValueError, "threshold must be in (0, 1)", "-inf"),
    (np.float32(np.nan), ValueError, "threshold must be in (0, 1)", "nan"),
    (10**400, ValueError, "threshold must be in (0, 1)", "got 1000"),
    (True, TypeError, "threshold must be a real number", "bool True"),
    (False, TypeError, "threshold must be a real number", "bool False"),
    (np.bool_(True), TypeError, "threshold must be a real number", "True"),
    ("0.5", TypeError, "threshold must be a real number", "str '0.5'"),
    ([0.5], TypeError, "threshold must be a real number", "list [0.5]"),
    (torch.tensor(0.5), TypeError, "threshold must be a real number", "tensor"),
    (np.array([0.5]), TypeError, "threshold must be a real number", "numpy array"),
    (0.5 + 0j, TypeError, "threshold must be a real number", "complex"),
]
BAD_ALPHAS = [
    (0, ValueError, "alpha must be in (0, inf)", "got 0"),
    (0.0, ValueError, "alpha must be in (0, inf)", "got 0.0"),
    (-4, ValueError, "alpha must be in (0, inf)", "got -4"),
    (math.nan, ValueError, "alpha must be in (0, inf)", "nan"),
    (math.inf, ValueError, "alpha must be in (0, inf)", "inf"),
    (-math.inf, ValueError, "alpha must be in (0, inf)", "-inf"),
    (10**400, ValueError, "alpha must be in (0, inf)", "got 1000"),
    (True, TypeError, "alpha must be a real number", "bool True"),
    ("4", TypeError, "alpha must be a real number", "str '4'"),
    ([4], TypeError, "alpha must be a real number", "list [4]"),
    (torch.tensor(4.0), TypeError, "alpha must be a real number", "tensor"),
]
OPERATING_POINT_FUNCTIONS: Dict[str, Call] = {
    "saliency_scores": lambda **kw: saliency_scores(SALIENCY, **kw),
    "refine_saliency": lambda **kw: refine_saliency(IMAGE, SALIENCY, **kw),
    "refine_saliency_batch": lambda **kw: refine_saliency_batch(IMAGES, SALIENCIES, **kw),
}


@pytest.mark.parametrize("function", sorted(OPERATING_POINT_FUNCTIONS))
@pytest.mark.parametrize(
    "keyword, value, error, expected, received",
    [("threshold", *case) for case in BAD_THRESHOLDS]
    + [("alpha", *case) for case in BAD_ALPHAS]
    + [("both", (0.3, 4), ValueError, "give threshold or alpha, not both", "threshold=0.3, alpha=4"),
       ("both", (0.5, 1.0), ValueError, "give threshold or alpha, not both", "threshold=0.5, alpha=1.0"),
       ("both", (math.nan, math.nan), ValueError, "give threshold or alpha, not both", "threshold=nan")],
    ids=lambda value: repr(value)[:20],
)
def test_bad_operating_point_is_refused_by_name(
    function: str, keyword: str, value: object, error: type, expected: str, received: str
) -> None:
    kwargs = {"threshold": value[0], "alpha": value[1]} if keyword == "both" else {keyword: value}
    TRIED.append(f"{function}: {kwargs!r}")
    with pytest.raises(error) as raised:
        OPERATING_POINT_FUNCTIONS[function](**kwargs)
    assert_refused(raised, expected, received)


@pytest.mark.parametrize("value, error, expected, received", BAD_ALPHAS, ids=lambda value: repr(value)[:20])
def test_alpha_boundary_refuses_bad_alpha(value: object, error: type, expected: str, received: str) -> None:
    TRIED.append(f"alpha_boundary({value!r})")
    with pytest.raises(error) as raised:
        alpha_boundary(value)
    assert_refused(raised, expected, received)


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not 0 < v < 1),
                 st.integers().filter(lambda v: not 0 < v < 1), st.text(max_size=4), st.booleans(),
                 st.lists(st.floats(0.1, 0.9), max_size=2)))
def test_any_threshold_outside_the_open_unit_interval_is_refused(threshold: object) -> None:
    TRIED.append(f"threshold {threshold!r}")
    with pytest.raises((TypeError, ValueError)) as raised:
        saliency_scores(SALIENCY, threshold=threshold)
    assert str(raised.value).startswith("threshold must be "), raised.value


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not 0 < v < math.inf),
                 st.integers(max_value=0), st.text(max_size=4), st.booleans()))
def test_any_alpha_not_positive_and_finite_is_refused(alpha: object) -> None:
    TRIED.append(f"alpha {alpha!r}")
    for call in (alpha_boundary, lambda a: saliency_scores(SALIENCY, alpha=a)):
        with pytest.raises((TypeError, ValueError)) as raised:
            call(alpha)
        assert str(raised.value).startswith("alpha must be "), raised.value


def test_a_subnormal_threshold_is_valid_and_warns_nothing() -> None:
    """5e-324 is in (0, 1): it must work, silently (``-W error`` must not turn numpy's warning into a crash)."""
    TRIED.append("threshold 5e-324 (valid)")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = saliency_scores(SALIENCY, threshold=5e-324)
    assert torch.isfinite(scores).all()


# ------------------------------------------------------------------------------------------------- thresholds

BAD_SWEEP_THRESHOLDS = [
    ([], TypeError, "thresholds must be a non-empty sequence", "got []"),
    (0.5, TypeError, "thresholds must be a non-empty sequence", "got 0.5"),
    ("0.5", TypeError, "thresholds must be a non-empty sequence", "got '0.5'"),
    (b"\x01", TypeError, "thresholds must be a non-empty sequence", "got b"),
    ({0.5}, TypeError, "thresholds must be a non-empty sequence", "got {0.5}"),
    (None, TypeError, "thresholds must be a non-empty sequence", "got None"),
    (np.array(0.5), TypeError, "thresholds must be a non-empty sequence", "array(0.5)"),
    (np.array([[0.5]]), TypeError, "thresholds must be a non-empty sequence", "array([[0.5]])"),
    (torch.tensor([0.5]), TypeError, "thresholds must be a non-empty sequence", "tensor"),
    ([[0.3], [0.5]], ValueError, "thresholds must be one sequence for every map or 1 sequences", "[[0.3], [0.5]]"),
    ([[]], TypeError, "thresholds must be a non-empty sequence", "[[]]"),
    ([0.3, "0.5"], TypeError, "threshold", "str '0.5'"),
    ([0.3, True], TypeError, "threshold", "bool True"),
    ([0.3, 0.0], ValueError, "threshold", "got 0.0"),
    ([1.0], ValueError, "threshold", "got 1.0"),
    ([0.3, -math.inf], ValueError, "threshold", "-inf"),
]


@pytest.mark.parametrize("thresholds, error, expected, received", BAD_SWEEP_THRESHOLDS,
                         ids=lambda value: repr(value)[:20])
def test_bad_sweep_thresholds_are_refused(thresholds: object, error: type, expected: str, received: str) -> None:
    TRIED.append(f"thresholds {thresholds!r}")
    with pytest.raises(error) as raised:
        refine_saliency_sweep(IMAGES, SALIENCIES, thresholds)
    assert_refused(raised, expected, received)


@pytest.mark.parametrize("thresholds", [[[0.3, 0.5], [0.4]], [[0.3], [0.4], [0.5]], [[0.3]]], ids=repr)
def test_per_map_thresholds_must_match_the_maps(thresholds: list) -> None:
    TRIED.append(f"per-map thresholds {thresholds!r}")
    with pytest.raises(ValueError) as raised:
        refine_saliency_sweep(IMAGES, SALIENCIES.expand(2, 2, 8, 8), thresholds)
    assert_refused(raised, "thresholds must be one sequence for every map or 2 sequences", repr(thresholds))


def test_a_bad_element_of_thresholds_is_named_as_thresholds() -> None:
    TRIED.append("thresholds [0.5, nan] (named?)")
    with pytest.raises(ValueError) as raised:
        refine_saliency_sweep(IMAGES, SALIENCIES, [0.5, math.nan])
    assert str(raised.value).startswith("thresholds"), raised.value


@pytest.mark.parametrize("thresholds", [[None], [0.3, None], [[None]]], ids=repr)
def test_none_in_thresholds_is_refused(thresholds: list) -> None:
    TRIED.append(f"thresholds {thresholds!r}")
    with pytest.raises(TypeError) as raised:
        refine_saliency_sweep(IMAGES, SALIENCIES, thresholds)
    assert "threshold" in str(raised.value)


# ---------------------------------------------------------------------------------------- workers and params

BAD_WORKERS = [
    (0, ValueError, "workers must be an int >= 1", "got 0"),
    (-1, ValueError, "workers must be an int >= 1", "got -1"),
    (-(2**70), ValueError, "workers must be an int >= 1", "got -"),
    (1.5, TypeError, "workers must be an int", "float 1.5"),
    (2.0, TypeError, "workers must be an int", "float 2.0"),
    (math.nan, TypeError, "workers must be an int", "nan"),
    (True, TypeError, "workers must be an int", "bool True"),
    ("2", TypeError, "workers must be an int", "str '2'"),
    (np.float64(2), TypeError, "workers must be an int", "2.0"),
    (torch.tensor(2), TypeError, "workers must be an int", "tensor"),
]
BATCH_FUNCTIONS: Dict[str, Call] = {
    "refine_labels_batch": lambda **kw: refine_labels_batch(IMAGES, PROBS_BATCH, **kw),
    "refine_saliency_batch": lambda **kw: refine_saliency_batch(IMAGES, SALIENCIES, **kw),
    "refine_saliency_sweep": lambda **kw: refine_saliency_sweep(IMAGES, SALIENCIES, [0.3, 0.5], **kw),
}


@pytest.mark.parametrize("function", sorted(BATCH_FUNCTIONS))
@pytest.mark.parametrize("workers, error, expected, received", BAD_WORKERS, ids=lambda value: repr(value)[:20])
def test_bad_workers_are_refused_by_name(function: str, workers: object, error: type, expected: str,
                                         received: str) -> None:
    TRIED.append(f"{function}: workers {workers!r}")
    with pytest.raises(error) as raised:
        BATCH_FUNCTIONS[function](workers=workers)
    assert_refused(raised, expected, received)


BAD_PARAMS = [
    ({"iterations": 5}, "dict"),
    (DenseCRFParams, "type"),
    ("default", "str"),
    (10, "int"),
    (False, "bool"),
    ((10, 3.0, 3.0, 80.0, 13.0, 10.0, 1.0, 1e-5), "tuple"),
]


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
@pytest.mark.parametrize("params, received", BAD_PARAMS, ids=lambda value: repr(value)[:20])
def test_params_that_are_not_dense_crf_params_are_refused(function: str, params: object, received: str) -> None:
    call, good_image, good_map, _, _ = FUNCTIONS[function]
    TRIED.append(f"{function}: params {params!r}")
    with pytest.raises(TypeError) as raised:
        call(good_image, good_map, params)
    assert_refused(raised, "params must be a DenseCRFParams or None", f"got {received}")


POSITIVE = ("gaussian_sxy", "bilateral_sxy", "bilateral_srgb")
NON_NEGATIVE = ("gaussian_compat", "bilateral_compat")
BAD_FIELDS = (
    [("iterations", v, ValueError, "iterations must be an int [0, 1000]", r) for v, r in
     [(-1, "got -1"), (MAX_CRF_ITERATIONS + 1, "got 1001"), (2**31, "got 2147483648"), (10**30, "got 1000000"),
      (np.int64(2**62), "got 4611686018427387904"), (np.uint64(2**64 - 1), "got 18446744073709551615")]]
    + [("iterations", v, TypeError, "iterations must be an int", r) for v, r in
       [(10.0, "float 10.0"), (1.5, "float 1.5"), (math.nan, "nan"), (math.inf, "inf"), (True, "bool True"),
        ("10", "str '10'"), (None, "NoneType None"), (torch.tensor(10), "tensor")]]
    + [(field, v, ValueError, f"{field} must be in [0.001, inf)", r) for field in POSITIVE for v, r in
       [(0, "got 0"), (0.0, "got 0.0"), (-3.0, "got -3.0"), (math.nan, "nan"), (math.inf, "inf"),
        (-math.inf, "-inf"), (10**400, "got 1000"), (1e-10, "got 1e-10")]]
    + [(field, v, ValueError, f"{field} must be in [0, 1e+06]", r) for field in NON_NEGATIVE for v, r in
       [(-1e-9, "got -1e-09"), (-10, "got -10"), (math.nan, "nan"), (math.inf, "inf"), (10**400, "got 1000"),
        (1e39, "got 1e+39")]]
    + [(field, v, TypeError, f"{field} must be a real number", r) for field in POSITIVE + NON_NEGATIVE for v, r in
       [(True, "bool True"), ("3", "str '3'"), (None, "NoneType None"), ([3.0], "list"), (3 + 0j, "complex")]]
    + [("confidence", v, ValueError, "confidence must be in (0, 1]", r) for v, r in
       [(0, "got 0"), (0.0, "got 0.0"), (-0.5, "got -0.5"), (1.0000001, "got 1.0000001"), (2, "got 2"),
        (math.nan, "nan"), (math.inf, "inf")]]
    + [("confidence", v, TypeError, "confidence must be a real number", r) for v, r in
       [(True, "bool True"), ("1", "str '1'"), (None, "NoneType")]]
    + [("epsilon", v, ValueError, "epsilon must be in (0, 1)", r) for v, r in
       [(0, "got 0"), (0.0, "got 0.0"), (1, "got 1"), (1.0, "got 1.0"), (-1e-5, "got -1e-05"), (math.nan, "nan"),
        (math.inf, "inf")]]
    + [("epsilon", v, TypeError, "epsilon must be a real number", r) for v, r in
       [(False, "bool False"), ("1e-5", "str '1e-5'"), (None, "NoneType")]]
)


@pytest.mark.parametrize("field, value, error, expected, received", BAD_FIELDS,
                         ids=lambda value: repr(value)[:24])
def test_bad_params_field_is_refused_by_name(field: str, value: object, error: type, expected: str,
                                             received: str) -> None:
    TRIED.append(f"DenseCRFParams({field}={value!r})")
    with pytest.raises(error) as raised:
        DenseCRFParams(**{field: value})
    assert_refused(raised, expected, received)


FIELD_INTERVALS = {field: (0.0, math.inf, False, False) for field in POSITIVE}
FIELD_INTERVALS.update({field: (0.0, math.inf, True, False) for field in NON_NEGATIVE})
FIELD_INTERVALS.update({"confidence": (0.0, 1.0, False, True), "epsilon": (0.0, 1.0, False, False)})


def inside(value: float, low: float, high: float, low_inclusive: bool, high_inclusive: bool) -> bool:
    return (value >= low if low_inclusive else value > low) and (value <= high if high_inclusive else value < high)


@given(st.sampled_from(sorted(FIELD_INTERVALS)), st.floats(allow_nan=True, allow_infinity=True))
def test_any_float_outside_a_fields_interval_is_refused(field: str, value: float) -> None:
    if inside(value, *FIELD_INTERVALS[field]):
        return
    TRIED.append(f"DenseCRFParams({field}={value!r})")
    with pytest.raises(ValueError) as raised:
        DenseCRFParams(**{field: value})
    assert str(raised.value).startswith(f"{field} must be in "), raised.value


@given(st.integers().filter(lambda v: not 0 <= v <= MAX_CRF_ITERATIONS))
def test_any_iteration_count_outside_the_bound_is_refused(iterations: int) -> None:
    TRIED.append(f"iterations {iterations}")
    with pytest.raises(ValueError) as raised:
        DenseCRFParams(iterations=iterations)
    assert str(raised.value).startswith(f"iterations must be an int [0, {MAX_CRF_ITERATIONS}], got {iterations}")


def test_params_are_checked_before_the_maps_reach_pydensecrf() -> None:
    """A bad params and bad workers in one call: refused by the first check, nothing run."""
    TRIED.append("params dict with workers 0")
    with pytest.raises(TypeError, match="^params must be a DenseCRFParams"):
        refine_saliency_batch(IMAGES, SALIENCIES, {"iterations": 1}, workers=0)


# ------------------------------------------------------------------------------------------------ child process

#: Calls that could crash the interpreter inside pydensecrf. One child imports camfix once and forks a grandchild
#: per case, so that a segfault kills only that grandchild; the child reports every case's exit status as JSON.
CHILD = textwrap.dedent(
    """
    import json, os, resource, sys
    import numpy as np, torch
    from camfix.crf import (DenseCRFParams, dense_crf, refine_labels_batch, refine_saliency,
                            refine_saliency_batch, refine_saliency_sweep)

    rng = np.random.RandomState(0)
    image = rng.randint(0, 256, (8, 8, 3)).astype(np.uint8)
    images = rng.randint(0, 256, (2, 8, 8, 3)).astype(np.uint8)
    saliency = torch.rand(8, 8, generator=torch.Generator().manual_seed(0))
    maps = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(1))
    fast = DenseCRFParams(iterations=2)

    def odd_strides():
        tried = 0
        big = rng.randint(0, 256, (2, 17, 19, 3)).astype(np.uint8)
        views = {
            "negative strides": images[:, ::-1, ::-1],
            "fortran order": np.asfortranarray(images),
            "every other pixel": big[:, :16:2, :16:2],
            "bgr view": images[..., ::-1],
            "broadcast": np.broadcast_to(images[:1], images.shape),
            "channels-last tensor": torch.from_numpy(images).permute(0, 3, 1, 2),
        }
        for name, view in views.items():
            plain = np.ascontiguousarray(view if isinstance(view, np.ndarray) else view.permute(0, 2, 3, 1).numpy())
            for odd_map in (maps, maps.transpose(1, 2).contiguous().transpose(1, 2), maps[:1].expand(2, 8, 8)):
                got = refine_saliency_batch(view, odd_map, fast, workers=1)
                assert torch.equal(got, refine_saliency_batch(plain, odd_map.contiguous(), fast, workers=1)), name
                tried += 1
        probs = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2)).softmax(1)
        odd_probs = probs.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
        got = refine_labels_batch(images[:, ::-1], odd_probs, fast, workers=2)[0]
        assert torch.equal(got, refine_labels_batch(np.ascontiguousarray(images[:, ::-1]), probs, fast)[0])
        got = refine_saliency_sweep(images[..., ::-1], maps.flip(1), np.array([0.2, 0.7]), fast, workers=2)
        assert got.shape == (2, 2, 8, 8) and torch.isfinite(got).all()
        return tried + 2

    def huge_refused():
        tried = 0
        for iterations in (2**31, 2**32 + 10, 2**63, np.uint64(2**63)):
            try:
                DenseCRFParams(iterations=iterations)
            except ValueError as error:
                assert str(error).startswith("iterations must be an int [0, 1000]"), error
            else:
                raise AssertionError(iterations)
            tried += 1
        # A huge worker count is capped at the batch size, not a fork bomb.
        assert refine_saliency_batch(images, maps, fast, workers=10**30).shape == (2, 8, 8)
        return tried + 1

    def extreme_but_valid(**fields):
        # Refused by name, or refined to a finite probability: never a crash, never NaN.
        def run():
            try:
                params = DenseCRFParams(iterations=2, **fields)
            except ValueError as error:
                assert str(error).startswith(tuple(fields)), error
                return 1
            refined = refine_saliency(image, saliency, params)
            assert torch.isfinite(refined).all(), f"{fields}: non-finite result"
            return 1
        return run

    def huge_mismatch():
        # A broadcast 3 GiB image with an 8x8 map must be refused by its size, not copied first.
        mapped = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (mapped + 2**30, resource.RLIM_INFINITY))
        huge = np.broadcast_to(image[:1, :1], (2**15, 2**15, 3))
        try:
            refine_saliency(huge, saliency)
        except ValueError as error:
            assert str(error).startswith("image and saliency must have the same size"), error
        return 1

    def read_only():
        frozen = np.frombuffer(images.tobytes(), np.uint8).reshape(images.shape)
        assert torch.equal(refine_saliency_batch(frozen, maps, fast, workers=1), refine_saliency_batch(images, maps, fast))
        return 1

    cases = {
        "odd strides": odd_strides,
        "read-only image": read_only,
        "huge refused": huge_refused,
        "huge sxy": extreme_but_valid(gaussian_sxy=1e300, bilateral_sxy=1e300, bilateral_srgb=1e300),
        "tiny confidence and epsilon": extreme_but_valid(confidence=1e-300, epsilon=1e-300),
        "tiny gaussian_sxy": extreme_but_valid(gaussian_sxy=1e-10),
        "tiny bilateral_sxy": extreme_but_valid(bilateral_sxy=1e-10),
        "tiny bilateral_srgb": extreme_but_valid(bilateral_srgb=1e-10),
        "compat beyond float32": extreme_but_valid(gaussian_compat=1e39, bilateral_compat=1e39),
        "huge broadcast image, small map": huge_mismatch,
    }
    report = {}
    for name, case in cases.items():
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            code = 1
            try:
                os.write(write, str(case()).encode())
                code = 0
            except BaseException as error:
                os.write(write, f"{type(error).__name__}: {error}"[:300].encode())
            os._exit(code)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        output = os.read(read, 400).decode(errors="replace")
        os.close(read)
        report[name] = [os.waitstatus_to_exitcode(status), output]
    print(json.dumps(report))
    """
)


@lru_cache(maxsize=1)
def child_report() -> Dict[str, list]:
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"exit status {result.returncode}:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_child_case(name: str) -> None:
    status, output = child_report()[name]
    assert status == 0, f"{name}: exit status {status} ({'killed by signal ' + str(-status) if status < 0 else ''}) " \
                        f"{output}"
    TRIED.extend([f"child: {name}"] * int(output))


needs_fork = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks, caps memory via /proc")
CHILD_PASSING = [
    "odd strides", "huge refused", "huge sxy", "tiny confidence and epsilon", "read-only image", "tiny gaussian_sxy",
    "tiny bilateral_sxy", "tiny bilateral_srgb", "compat beyond float32", "huge broadcast image, small map",
]


@needs_fork
@pytest.mark.parametrize("name", CHILD_PASSING)
def test_no_crash_in_a_child_process(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_child_case(name)


def test_count_of_bad_inputs_tried(capsys: pytest.CaptureFixture) -> None:
    """Runs last in file order: how many bad inputs this module tried (shown with ``-s``)."""
    with capsys.disabled():
        print(f"\n{len(TRIED)} bad inputs tried in camfix.crf")
    assert len(TRIED) > 0
