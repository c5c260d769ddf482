"""Bad input to camfix's PaS functions (percentile, percentile_threshold, percentile_normalize, threshold_masks,
mask_to_box, percentile_box): the promises of docs/errors.md, one class at a time.

- **Named.** Every argument is checked under the name the caller gave it (``maps``; ``cam`` for
  ``percentile_box``; ``masks``, ``theta``, ``pct``): a ``TypeError`` for the wrong kind of object or dtype, a
  ``ValueError`` for the wrong shape, range or content, raised by camfix's own check, with a message that starts
  with the argument, says what was expected and quotes what was received.
- **No crash.** OpenCV labels the components of every mask; a mask it cannot take (an empty H or W, another dtype,
  a sparse or meta tensor) is refused before it, and every call that reaches it (every bad input to
  ``mask_to_box`` and ``percentile_box``, odd strides, expanded and one-pixel-wide maps, float16 and bfloat16)
  runs in a child process, so that a crash inside OpenCV fails that child rather than killing pytest.
- **No silent wrong result.** NaN and inf are refused with their counts, a signed map is refused by the threshold
  functions (a threshold relative to a percentile means nothing for it) with its minimum, a bool or a string is not
  a number; awkward but valid input (numpy scalars, bounds of theta and pct, views, dtypes, requiring grad, 1x1)
  gives what its plain counterpart gives.
- **Before the work.** No percentile and no OpenCV call runs for a bad argument.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from camfix import (
    NO_BOX,
    mask_to_box,
    percentile,
    percentile_box,
    percentile_normalize,
    percentile_threshold,
    threshold_masks,
)
from camfix import thresholds

from refusals import refusal, with_values


MAPS = torch.rand(2, 5, 6)

#: case -> (maps, exception, what the message says after the argument's name, what it quotes of the value)
BAD_MAPS: Dict[str, Tuple[object, type, str, str]] = {
    "a list": (MAPS.tolist(), TypeError, "must be a torch.Tensor of shape (N, H, W) or (H, W)", "got list"),
    "numpy": (MAPS.numpy(), TypeError, "must be a torch.Tensor of shape (N, H, W) or (H, W)", "float32 numpy array"),
    "None": (None, TypeError, "must be a torch.Tensor of shape (N, H, W) or (H, W)", "got NoneType None"),
    "a float": (0.5, TypeError, "must be a torch.Tensor of shape (N, H, W) or (H, W)", "got float 0.5"),
    "0-D": (torch.tensor(0.5), ValueError, "must have shape (N, H, W) or (H, W) (3 or 2 dims)", "got 0 dims"),
    "1-D": (torch.rand(6), ValueError, "must have shape (N, H, W) or (H, W) (3 or 2 dims)", "shape (6,)"),
    "(N, K, H, W)": (MAPS[:, None], ValueError, "must have shape (N, H, W) or (H, W)", "shape (2, 1, 5, 6)"),
    "int64": (MAPS.long(), TypeError, "must be a floating point tensor", "got dtype torch.int64"),
    "uint8": ((MAPS * 255).to(torch.uint8), TypeError, "must be a floating point tensor", "torch.uint8"),
    "bool": (MAPS > 0.5, TypeError, "must be a floating point tensor", "got dtype torch.bool"),
    "complex": (MAPS.to(torch.complex64), TypeError, "must be a floating point tensor", "torch.complex64"),
    "(0, H, W)": (torch.rand(0, 5, 6), ValueError, "must not be empty", "got shape (0, 5, 6)"),
    "(N, 0, W)": (torch.rand(2, 0, 6), ValueError, "must not be empty", "got shape (2, 0, 6)"),
    "(N, H, 0)": (torch.rand(2, 5, 0), ValueError, "must not be empty", "got shape (2, 5, 0)"),
    "(0, 0, 0)": (torch.rand(0, 0, 0), ValueError, "must not be empty", "got shape (0, 0, 0)"),
    "(0, W)": (torch.rand(0, 6), ValueError, "must not be empty", "got shape (0, 6)"),
    "(H, 0)": (torch.rand(5, 0), ValueError, "must not be empty", "got shape (5, 0)"),
    "(0, 0)": (torch.rand(0, 0), ValueError, "must not be empty", "got shape (0, 0)"),
    "NaN": (with_values(MAPS, math.nan), ValueError, "must be finite", "got 1 NaN and 0 infinite values"),
    "inf": (with_values(MAPS, math.inf), ValueError, "must be finite", "got 0 NaN and 1 infinite values"),
    "NaN, inf and -inf": (
        with_values(MAPS, math.nan, math.inf, -math.inf), ValueError, "must be finite", "1 NaN and 2 infinite"
    ),
    "NaN in float16": (with_values(MAPS.half(), math.nan), ValueError, "must be finite", "got 1 NaN"),
    "inf in bfloat16": (with_values(MAPS.bfloat16(), math.inf), ValueError, "must be finite", "1 infinite"),
    "meta": (MAPS.to("meta"), TypeError, "must hold data (a CPU or CUDA tensor)", "a tensor on the meta device"),
    "sparse": (MAPS.to_sparse(), TypeError, "must be a dense tensor", "got layout torch.sparse_coo"),
}

#: Signed maps: refused by the threshold functions (percentile, a plain statistic, takes them).
NEGATIVE_MAPS: Dict[str, Tuple[torch.Tensor, str]] = {
    "centred": (MAPS - 0.5, f"got minimum {float((MAPS - 0.5).min()):g}"),
    "one tiny negative": (with_values(MAPS, -1e-30), "got minimum -1e-30"),
    "all negative float16": (-MAPS.half() - 1, f"got minimum {float((-MAPS.half() - 1).min()):g}"),
    "one map of two": (torch.stack([MAPS[0], -MAPS[1]]), f"got minimum {float(-MAPS[1].max()):g}"),
}

#: theta or pct -> (exception, what the message says after the argument's name, what it quotes of the value)
BAD_NUMBERS: Dict[str, Tuple[object, type, str]] = {
    "NaN": (math.nan, ValueError, "got nan"),
    "inf": (math.inf, ValueError, "got inf"),
    "-inf": (-math.inf, ValueError, "got -inf"),
    "below 0": (-1e-300, ValueError, "got -1e-300"),
    "2**1400": (2**1400, ValueError, str(2**1400)[:40]),
    "-2**1400": (-(2**1400), ValueError, str(-(2**1400))[:40]),
    "numpy NaN": (np.float32("nan"), ValueError, "got np.float32(nan)"),
    "True": (True, TypeError, "got bool True"),
    "False": (False, TypeError, "got bool False"),
    "numpy bool": (np.True_, TypeError, "got bool np.True_"),
    "str": ("0.5", TypeError, "got str '0.5'"),
    "None": (None, TypeError, "got NoneType None"),
    "tensor": (torch.tensor(0.5), TypeError, "got a torch.float32 tensor of shape ()"),
    "0-d numpy array": (np.array(0.5), TypeError, "got a float64 numpy array of shape ()"),
    "list": ([0.5], TypeError, "got list [0.5]"),
    "complex": (0.5j, TypeError, "got complex 0.5j"),
}
BAD_THETAS = {
    **BAD_NUMBERS,
    "above 1": (1.0000000000000002, ValueError, "got 1.0000000000000002"),
    "a percentage": (35, ValueError, "got 35"),
}
BAD_PCTS = {**BAD_NUMBERS, "above 100": (100.00000000000001, ValueError, "got 100.00000000000001")}


def expected_message(error: type, name: str, interval: str) -> str:
    return f"{name} must be in {interval}" if error is ValueError else f"{name} must be a real number"


#: The functions of maps that do not reach OpenCV, each called with the bad argument and good other ones.
MAP_FUNCTIONS: Dict[str, Callable[..., object]] = {
    "percentile": lambda maps: percentile(maps, 50.0),
    "percentile_threshold": percentile_threshold,
    "percentile_normalize": percentile_normalize,
    "threshold_masks": threshold_masks,
}
THETA_FUNCTIONS: Dict[str, Callable[..., object]] = {
    "percentile_threshold": lambda theta: percentile_threshold(MAPS, theta),
    "threshold_masks": lambda theta: threshold_masks(MAPS, theta),
}
PCT_FUNCTIONS: Dict[str, Callable[..., object]] = {
    "percentile": lambda pct: percentile(MAPS, pct),
    "percentile_threshold": lambda pct: percentile_threshold(MAPS, 0.35, pct),
    "percentile_normalize": lambda pct: percentile_normalize(MAPS, pct),
    "threshold_masks": lambda pct: threshold_masks(MAPS, 0.35, pct),
}


@pytest.mark.parametrize("function", sorted(MAP_FUNCTIONS))
@pytest.mark.parametrize("case", sorted(BAD_MAPS))
def test_maps_are_named(function: str, case: str) -> None:
    maps, error, expected, received = BAD_MAPS[case]
    refusal(lambda: MAP_FUNCTIONS[function](maps), error, f"maps {expected}", received)


@pytest.mark.parametrize("function", sorted(set(MAP_FUNCTIONS) - {"percentile"}))
@pytest.mark.parametrize("case", sorted(NEGATIVE_MAPS))
def test_signed_maps_are_refused_with_their_minimum(function: str, case: str) -> None:
    maps, received = NEGATIVE_MAPS[case]
    refusal(lambda: MAP_FUNCTIONS[function](maps), ValueError, "maps must be non-negative", received)


@pytest.mark.parametrize("function", sorted(THETA_FUNCTIONS))
@pytest.mark.parametrize("case", sorted(BAD_THETAS))
def test_theta_is_named(function: str, case: str) -> None:
    theta, error, received = BAD_THETAS[case]
    refusal(lambda: THETA_FUNCTIONS[function](theta), error, expected_message(error, "theta", "[0, 1]"), received)


@pytest.mark.parametrize("function", sorted(PCT_FUNCTIONS))
@pytest.mark.parametrize("case", sorted(BAD_PCTS))
def test_pct_is_named(function: str, case: str) -> None:
    pct, error, received = BAD_PCTS[case]
    refusal(lambda: PCT_FUNCTIONS[function](pct), error, expected_message(error, "pct", "[0, 100]"), received)


def test_no_percentile_and_no_opencv_for_a_bad_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(thresholds, "_percentile", must_not_run)
    monkeypatch.setattr(cv2, "connectedComponentsWithStats", must_not_run)
    calls: List[Tuple[str, Callable[[], object]]] = [
        ("pct", lambda: percentile(MAPS, 101)),
        ("theta", lambda: percentile_threshold(MAPS, 1.5)),
        ("pct", lambda: percentile_threshold(MAPS, 0.35, "98")),
        ("pct", lambda: percentile_normalize(MAPS, -1)),
        ("theta", lambda: threshold_masks(MAPS, True)),
        ("pct", lambda: percentile_box(MAPS, 0.35, math.nan)),
        ("cam", lambda: percentile_box(MAPS - 1)),
        ("masks", lambda: mask_to_box(torch.zeros(2, 0, 3, dtype=torch.bool))),
    ]
    for name, call in calls:
        with pytest.raises((TypeError, ValueError), match=f"^{name} must"):
            call()


@given(st.one_of(st.floats(max_value=0, exclude_max=True), st.floats(min_value=1, exclude_min=True)))
def test_theta_outside_0_1_is_refused(theta: float) -> None:
    for function in THETA_FUNCTIONS.values():
        refusal(lambda: function(theta), ValueError, "theta must be in [0, 1]", f"got {theta!r}")


@given(st.one_of(st.floats(max_value=0, exclude_max=True), st.floats(min_value=100, exclude_min=True)))
def test_pct_outside_0_100_is_refused(pct: float) -> None:
    for function in PCT_FUNCTIONS.values():
        refusal(lambda: function(pct), ValueError, "pct must be in [0, 100]", f"got {pct!r}")


@given(
    st.one_of(
        st.text(max_size=4), st.booleans(), st.complex_numbers(), st.lists(st.floats(0, 1), max_size=2),
        st.builds(torch.tensor, st.floats(0, 1)),
    )
)
def test_theta_and_pct_of_another_kind_are_refused(value: object) -> None:
    received = f"got {type(value).__name__}" if not isinstance(value, torch.Tensor) else "got a torch.float32 tensor"
    refusal(lambda: percentile_threshold(MAPS, value), TypeError, "theta must be a real number", received)
    refusal(lambda: percentile(MAPS, value), TypeError, "pct must be a real number", received)


@given(
    arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 5)),
           elements=st.floats(-1e6, 1e6, allow_subnormal=False)).filter(lambda maps: maps.min() < 0)
)
def test_a_signed_map_is_refused_by_the_thresholds_and_measured_by_percentile(maps: np.ndarray) -> None:
    tensor = torch.from_numpy(maps)
    for function in (percentile_threshold, percentile_normalize, threshold_masks):
        refusal(lambda: function(tensor), ValueError, "maps must be non-negative", f"got minimum {maps.min():g}")
    expected = np.percentile(maps.reshape(len(maps), -1), 30, axis=1)
    assert np.allclose(percentile(tensor, 30).numpy(), expected, rtol=1e-12, atol=1e-6)


@given(
    st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 5)),
    st.lists(st.sampled_from([math.nan, math.inf, -math.inf]), min_size=1, max_size=4),
    st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64]),
    st.data(),
)
def test_non_finite_maps_are_counted(
    shape: Tuple[int, int, int], bad_values: List[float], dtype: torch.dtype, data: st.DataObject
) -> None:
    maps = torch.rand(shape, dtype=dtype)
    count = min(len(bad_values), maps.numel())
    positions = data.draw(st.lists(st.integers(0, maps.numel() - 1), min_size=count, max_size=count, unique=True))
    for position, value in zip(positions, bad_values):
        maps.view(-1)[position] = value
    nan_count = sum(math.isnan(value) for value in bad_values[:count])
    counts = f"got {nan_count} NaN and {count - nan_count} infinite values"
    for function in MAP_FUNCTIONS.values():
        refusal(lambda: function(maps), ValueError, "maps must be finite", counts)


@given(st.lists(st.integers(0, 3), min_size=2, max_size=3).filter(lambda shape: 0 in shape))
def test_zero_size_dimensions_in_any_position(shape: List[int]) -> None:
    # No map may be empty: no pixel has no percentile; and the functions of maps take no empty batch.
    for function in MAP_FUNCTIONS.values():
        refusal(lambda: function(torch.rand(shape)), ValueError, "maps must not be empty", f"got shape {tuple(shape)}")


def test_awkward_but_valid_input_gives_what_plain_input_gives() -> None:
    maps = MAPS.double()
    for theta, pct in ((np.float32(0.5), np.int64(90)), (np.float64(0.5), np.float16(90)), (0.5, 90)):
        assert torch.equal(percentile_threshold(maps, theta, pct), percentile_threshold(maps, 0.5, 90.0))
    for pct in (0, 100, 0.0, 100.0):
        expected = np.percentile(maps.numpy().reshape(2, -1), pct, axis=1)
        assert np.array_equal(percentile(maps, pct).numpy(), expected)
    assert not threshold_masks(maps, 1.0, 100).any()  # theta * max is the max, and the mask is a strict >
    assert torch.equal(threshold_masks(maps, 0.0, 0), maps > 0)
    views = {
        "transposed": maps.transpose(1, 2),
        "strided": maps[:, ::2, ::3],
        "expanded": maps[:1].expand(3, 5, 6),
        "requiring grad": maps.clone().requires_grad_(),
        "one map": maps[0],
    }
    for name, view in views.items():
        for function in MAP_FUNCTIONS.values():
            assert torch.equal(function(view), function(view.detach().contiguous())), name  # type: ignore[arg-type]
    for dtype in (torch.float16, torch.bfloat16):
        typed = maps.to(dtype)
        assert percentile(typed, 98).dtype == dtype
        for pct in (0, 100):  # an order statistic itself, exact in any dtype
            assert torch.equal(percentile(typed, pct).double(), percentile(typed.double(), pct))
        assert torch.allclose(percentile(typed, 98).double(), percentile(typed.double(), 98), rtol=1e-2)
        assert percentile_normalize(typed).dtype == dtype
    one_pixel = torch.rand(4, 1, 1)
    assert torch.equal(percentile_threshold(one_pixel), one_pixel.flatten())  # a constant: its maximum
    assert not threshold_masks(one_pixel).any() and not percentile_normalize(one_pixel).any()


# ----------------------------------------------------------------------------------- OpenCV, in a child process

MASKS = MAPS > 0.5

#: case -> (masks, exception, what the message says after ``masks``, what it quotes of the value)
BAD_MASKS: Dict[str, Tuple[object, type, str, str]] = {
    "a list": (MASKS.tolist(), TypeError, "must be a torch.Tensor of shape (N, H, W) or (H, W)", "got list"),
    "numpy bool": (MASKS.numpy(), TypeError, "must be a torch.Tensor", "got a bool numpy array of shape (2, 5, 6)"),
    "None": (None, TypeError, "must be a torch.Tensor of shape (N, H, W) or (H, W)", "NoneType None"),
    "0-D": (torch.tensor(True), ValueError, "must have shape (N, H, W) or (H, W) (3 or 2 dims)", "got 0 dims"),
    "1-D": (MASKS[0, 0], ValueError, "must have shape (N, H, W) or (H, W)", "got 1 dims with shape (6,)"),
    "4-D": (MASKS[None], ValueError, "must have shape (N, H, W) or (H, W)", "got 4 dims with shape (1, 2, 5, 6)"),
    "float32": (MAPS, TypeError, "must have dtype torch.bool", "got a torch.float32 tensor of shape (2, 5, 6)"),
    "float16": (MAPS.half(), TypeError, "must have dtype torch.bool", "got a torch.float16 tensor"),
    "uint8": (MASKS.to(torch.uint8), TypeError, "must have dtype torch.bool", "got a torch.uint8 tensor"),
    "int8": (MASKS.to(torch.int8), TypeError, "must have dtype torch.bool", "got a torch.int8 tensor"),
    "int64": (MASKS.long(), TypeError, "must have dtype torch.bool", "got a torch.int64 tensor"),
    "complex": (MAPS.to(torch.complex64), TypeError, "must have dtype torch.bool", "torch.complex64 tensor"),
    "(N, 0, W)": (torch.ones(2, 0, 6, dtype=torch.bool), ValueError, "must not be empty", "got shape (2, 0, 6)"),
    "(N, H, 0)": (torch.ones(2, 5, 0, dtype=torch.bool), ValueError, "must not be empty", "got shape (2, 5, 0)"),
    "(0, 0, W)": (torch.ones(0, 0, 6, dtype=torch.bool), ValueError, "must not be empty", "got shape (0, 0, 6)"),
    "(0, H, 0)": (torch.ones(0, 5, 0, dtype=torch.bool), ValueError, "must not be empty", "got shape (0, 5, 0)"),
    "(0, W)": (torch.ones(0, 6, dtype=torch.bool), ValueError, "must not be empty", "got shape (0, 6)"),
    "(H, 0)": (torch.ones(5, 0, dtype=torch.bool), ValueError, "must not be empty", "got shape (5, 0)"),
    "(0, 0)": (torch.ones(0, 0, dtype=torch.bool), ValueError, "must not be empty", "got shape (0, 0)"),
    "(1, 0) uint8": (torch.ones(1, 0, dtype=torch.uint8), ValueError, "must not be empty", "got shape (1, 0)"),
    "meta": (MASKS.to("meta"), TypeError, "must hold data (a CPU or CUDA tensor)", "a tensor on the meta device"),
    "sparse": (MASKS.to_sparse(), TypeError, "must be a dense tensor", "got layout torch.sparse_coo"),
}


def odd_views(maps: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Views of a batch ``(N, H, W)`` with the strides, shapes and extents OpenCV is least used to."""
    return {
        "transposed": maps.transpose(1, 2),
        "strided": maps[:, ::3, ::2],
        "batch innermost": maps.permute(1, 2, 0).contiguous().permute(2, 0, 1),
        "expanded": maps[:1, :1].expand(len(maps), 7, maps.shape[2]),
        "narrow": maps[1:, 2:5, 3:],
        "one map": maps[0],
        "one pixel": maps[:, :1, :1],
        "one row": maps[:, :1],
        "one column": maps[:, :, :1],
        "a long row": maps.reshape(1, 1, -1).repeat(1, 1, 10),
        "a long column": maps.reshape(-1, 1).repeat(10, 1),
    }


DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
RANDOM_MASKS = 500


def run_opencv_cases() -> int:
    """Every call of this module that reaches OpenCV, for the child process: each bad input to ``mask_to_box`` and
    ``percentile_box`` is refused by name, and each odd but valid input gives the boxes of its contiguous copy.
    Returns the number of inputs tried."""
    tried = 0
    for maps, error, expected, received in BAD_MAPS.values():
        refusal(lambda: percentile_box(maps), error, f"cam {expected}", received)  # type: ignore[arg-type]
        tried += 1
    for maps, received in NEGATIVE_MAPS.values():
        refusal(lambda: percentile_box(maps), ValueError, "cam must be non-negative", received)
        tried += 1
    for theta, error, received in BAD_THETAS.values():
        refusal(lambda: percentile_box(MAPS, theta), error, expected_message(error, "theta", "[0, 1]"), received)
        tried += 1
    for pct, error, received in BAD_PCTS.values():
        refusal(lambda: percentile_box(MAPS, 0.35, pct), error, expected_message(error, "pct", "[0, 100]"), received)
        tried += 1
    for masks, error, expected, received in BAD_MASKS.values():
        refusal(lambda: mask_to_box(masks), error, f"masks {expected}", received)  # type: ignore[arg-type]
        tried += 1
    assert mask_to_box(torch.zeros(0, 5, 6, dtype=torch.bool)).shape == (0, 4)  # no masks: no boxes
    tried += 1
    generator = torch.Generator().manual_seed(0)
    base = torch.rand(3, 10, 12, generator=generator, dtype=torch.float64) ** 4
    for dtype in DTYPES:
        for name, view in odd_views(base.to(dtype)).items():
            boxes = percentile_box(view)
            assert torch.equal(boxes, percentile_box(view.contiguous())), (name, dtype)
            assert boxes.dtype == torch.int64 and boxes.shape == view.shape[:-2] + (4,), (name, dtype)
            tried += 1
    for name, view in odd_views(base > 0.2).items():
        assert torch.equal(mask_to_box(view), mask_to_box(view.contiguous())), name
        tried += 1
    assert torch.equal(percentile_box(torch.full((2, 7, 9), 0.3)), torch.tensor([NO_BOX, NO_BOX]))  # constant
    tried += 1
    rng = np.random.default_rng(0)
    for _ in range(RANDOM_MASKS):
        height, width = rng.integers(5, 40, size=2)  # at least the 5 x 4 that "narrow" cuts into
        masks = torch.from_numpy(rng.random((2, height, width)) < rng.random())
        view = rng.choice(["transposed", "strided", "expanded", "narrow", "one map"])
        odd = odd_views(masks)[str(view)]
        assert torch.equal(mask_to_box(odd), mask_to_box(odd.contiguous())), view
        tried += 1
    return tried


def test_every_opencv_call_in_a_child_process() -> None:
    # A segmentation fault inside OpenCV (as an empty H or W once caused) would kill pytest itself.
    child = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); " + (
        "import test_bad_input_thresholds as module; print(module.run_opencv_cases())"
    )
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"exit status {result.returncode}:\n{result.stderr[-3000:]}"
    inputs = len(BAD_MAPS) + len(NEGATIVE_MAPS) + len(BAD_THETAS) + len(BAD_PCTS) + len(BAD_MASKS) + 1
    views = len(odd_views(MAPS))
    assert int(result.stdout.split()[-1]) == inputs + views * len(DTYPES) + views + 1 + RANDOM_MASKS
