"""The argument checks of camfix._validation: what each accepts, and that each error names the argument, the
expected and the received value."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from camfix._validation import (
    check_array,
    check_classes,
    check_dtype,
    check_finite,
    check_in_range,
    check_int,
    check_number,
    check_size,
    check_tensor,
)

# ---------------------------------------------------------------------------------------------------- check_tensor


def test_check_tensor_accepts_and_returns_the_tensor() -> None:
    x = torch.rand(2, 3)
    assert check_tensor("x", x, 2, shape_hint="(N, C)") is x
    assert check_tensor("x", x, (3, 2), shape_hint="(N, C)") is x
    assert check_tensor("x", torch.zeros(0, 3), 2, shape_hint="(N, C)", allow_empty=True).shape == (0, 3)
    assert check_tensor("x", torch.ones(2, dtype=torch.long), 1, shape_hint="(N,)", floating=False).dtype == torch.long
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        check_tensor("x", torch.zeros(1, dtype=dtype), 1, shape_hint="(N,)")


@pytest.mark.parametrize(
    "value, kwargs, error, pattern",
    [
        ([1.0, 2.0], {}, TypeError, r"^feats must be a torch.Tensor of shape \(N, C\), got list \[1.0, 2.0\]$"),
        (np.zeros((2, 3)), {}, TypeError,
         r"feats must be a torch.Tensor .* got a float64 numpy array of shape \(2, 3\)"),
        (torch.zeros(2, 3, 4), {}, ValueError, r"^feats must have shape \(N, C\) \(2 dims\), got 3 dims with shape "
         r"\(2, 3, 4\)$"),
        (torch.zeros(2), {"ndims": (2, 4)}, ValueError, r"\(2 or 4 dims\), got 1 dims"),
        (torch.zeros(2, 3, dtype=torch.int64), {}, TypeError,
         r"^feats must be a floating point tensor, got dtype torch.int64$"),
        (torch.zeros(2, 3, dtype=torch.bool), {}, TypeError, "feats must be a floating point tensor"),
        (torch.zeros(0, 3), {}, ValueError, r"^feats must not be empty, got shape \(0, 3\)$"),
    ],
)
def test_check_tensor_errors(value: object, kwargs: dict, error: type, pattern: str) -> None:
    ndims = kwargs.pop("ndims", 2)
    with pytest.raises(error, match=pattern):
        check_tensor("feats", value, ndims, shape_hint="(N, C)", **kwargs)


# ---------------------------------------------------------------------------------------------------- check_finite


@given(
    values=arrays(np.float64, st.integers(1, 30), elements=st.floats(allow_nan=True, allow_infinity=True)),
    dtype=st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64]),
)
def test_check_finite_rejects_exactly_the_non_finite(values: np.ndarray, dtype: torch.dtype) -> None:
    tensor = torch.from_numpy(values).to(dtype)  # large values overflow to inf in the narrow dtypes
    n_nan, n_inf = int(torch.isnan(tensor).sum()), int(torch.isinf(tensor).sum())
    if n_nan or n_inf:
        with pytest.raises(ValueError, match=rf"^maps must be finite, got {n_nan} NaN and {n_inf} infinite values$"):
            check_finite("maps", tensor)
    else:
        check_finite("maps", tensor)


def test_check_finite_edge_cases() -> None:
    check_finite("x", torch.zeros(0))
    check_finite("x", torch.tensor([1, 2, 3]))  # integers are always finite
    check_finite("x", torch.full((3, 4), torch.finfo(torch.float32).max))
    for position in (0, 5, 11):  # NaN first, in the middle, last
        x = torch.rand(12)
        x[position] = float("nan")
        with pytest.raises(ValueError, match="x must be finite, got 1 NaN and 0 infinite"):
            check_finite("x", x)
    strided = torch.rand(4, 6)[:, ::2]
    strided[1, 1] = float("-inf")
    with pytest.raises(ValueError, match="got 0 NaN and 1 infinite"):
        check_finite("x", strided)


# ---------------------------------------------------------------------------------------------------- check_number


def test_check_number_accepts() -> None:
    assert check_number("theta", 0, 0.0, 1.0) == 0.0
    assert isinstance(check_number("theta", 1, 0.0, 1.0), float)
    assert check_number("theta", np.float64(0.5), 0.0, 1.0) == 0.5  # a float subclass
    assert check_number("theta", 0.999, 0.0, 1.0, high_inclusive=False) == 0.999


@pytest.mark.parametrize(
    "value, kwargs, error, pattern",
    [
        (True, {}, TypeError, r"^theta must be a real number, got bool True$"),
        ("0.5", {}, TypeError, r"^theta must be a real number, got str '0.5'$"),
        (None, {}, TypeError, "theta must be a real number, got NoneType None"),
        (torch.tensor(0.5), {}, TypeError, r"theta must be a real number, got a torch.float32 tensor of shape \(\)"),
        (1.5, {}, ValueError, r"^theta must be in \[0, 1\], got 1.5$"),
        (-0.0001, {}, ValueError, r"theta must be in \[0, 1\]"),
        (float("nan"), {}, ValueError, r"theta must be in \[0, 1\], got nan"),
        (float("inf"), {}, ValueError, r"theta must be in \[0, 1\], got inf"),
        (1.0, {"high_inclusive": False}, ValueError, r"^theta must be in \[0, 1\), got 1.0$"),
        (0.0, {"low_inclusive": False}, ValueError, r"^theta must be in \(0, 1\], got 0.0$"),
    ],
)
def test_check_number_errors(value: object, kwargs: dict, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        check_number("theta", value, 0.0, 1.0, **kwargs)


# ------------------------------------------------------------------------------------------------------ check_size


def test_check_size() -> None:
    assert check_size("size", (3, 4)) == (3, 4)
    assert check_size("size", [3, 4]) == (3, 4)
    assert check_size("size", torch.Size([3, 4])) == (3, 4)


@pytest.mark.parametrize("value", [(0, 4), (3, -1), (3,), (3, 4, 5), (3.0, 4), (True, 4), "34", 34, None])
def test_check_size_errors(value: object) -> None:
    with pytest.raises(ValueError, match=r"^image_size must be a pair of positive ints \(H, W\), got "):
        check_size("image_size", value)


# --------------------------------------------------------------------------------------------------- check_classes


def test_check_classes_accepts() -> None:
    for value in ([2, 0, 1], (2, 0, 1), torch.tensor([2, 0, 1]), torch.tensor([2, 0, 1], dtype=torch.uint8)):
        result = check_classes("labels", value, 3, 4)
        assert result.dtype == torch.int64 and result.tolist() == [2, 0, 1]
    assert check_classes("labels", torch.zeros(0, dtype=torch.long), 0, 4).shape == (0,)
    assert check_classes("labels", [], 0, 4).shape == (0,)


@pytest.mark.parametrize(
    "value, error, pattern",
    [
        ([0, 1.0, 2], TypeError, r"^labels must hold ints, got list \[0, 1.0, 2\]$"),
        ([0, True, 2], TypeError, "labels must hold ints"),
        ("012", TypeError, r"^labels must be a tensor or list of class indices of shape \(N,\), got str '012'$"),
        (np.array([0, 1, 2]), TypeError, "labels must be a tensor or list of class indices"),
        (torch.tensor([0.0, 1.0, 2.0]), TypeError, r"^labels must be an integer tensor, got dtype torch.float32$"),
        (torch.tensor([True, False, True]), TypeError, "labels must be an integer tensor, got dtype torch.bool"),
        ([0, 1], ValueError, r"^labels must have shape \(3,\) \(one class per image\), got \(2,\)$"),
        (torch.zeros(3, 1, dtype=torch.long), ValueError, r"labels must have shape \(3,\) .* got \(3, 1\)"),
        ([0, 4, 1], ValueError, r"^labels must hold class indices in \[0, 3\], got values in \[0, 4\]$"),
        ([-2, 0, 1], ValueError, r"labels must hold class indices in \[0, 3\], got values in \[-2, 1\]"),
    ],
)
def test_check_classes_errors(value: object, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        check_classes("labels", value, 3, 4)


# ------------------------------------------------------------------------------------------------------- check_int


def test_check_int() -> None:
    assert check_int("num_classes", 5, 1) == 5
    assert check_int("num_classes", np.int64(5), 1, 10) == 5
    assert check_int("workers", 0, 0, 0) == 0


@pytest.mark.parametrize(
    "value, high, error, pattern",
    [
        (True, None, TypeError, r"^num_classes must be an int, got bool True$"),
        (5.0, None, TypeError, r"^num_classes must be an int, got float 5.0$"),
        ("5", None, TypeError, "num_classes must be an int, got str '5'"),
        (0, None, ValueError, r"^num_classes must be an int >= 1, got 0$"),
        (11, 10, ValueError, r"^num_classes must be an int \[1, 10\], got 11$"),
    ],
)
def test_check_int_errors(value: object, high: object, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        check_int("num_classes", value, 1, high)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- check_array and check_dtype


def test_check_array() -> None:
    image = np.zeros((4, 5, 3), dtype=np.uint8)
    assert check_array("image", image, 3, shape_hint="(H, W, 3)") is image
    assert check_array("image", np.zeros((0, 5)), 2, shape_hint="(H, W)", allow_empty=True).shape == (0, 5)
    with pytest.raises(TypeError, match=r"^image must be a numpy array of shape \(H, W, 3\), got a torch.uint8 tensor"):
        check_array("image", torch.zeros(4, 5, 3, dtype=torch.uint8), 3, shape_hint="(H, W, 3)")
    with pytest.raises(ValueError, match=r"^image must have shape \(H, W, 3\) \(3 dims\), got 2 dims with shape "
                                         r"\(4, 5\)$"):
        check_array("image", np.zeros((4, 5)), 3, shape_hint="(H, W, 3)")
    with pytest.raises(ValueError, match=r"^image must not be empty, got shape \(0, 5, 3\)$"):
        check_array("image", np.zeros((0, 5, 3)), 3, shape_hint="(H, W, 3)")


def test_check_dtype() -> None:
    check_dtype("image", np.zeros(3, dtype=np.uint8), np.uint8)
    check_dtype("image", torch.zeros(3, dtype=torch.uint8), torch.uint8)
    with pytest.raises(TypeError, match=r"^image must have dtype uint8, got a float32 numpy array of shape \(3,\)$"):
        check_dtype("image", np.zeros(3, dtype=np.float32), np.uint8)
    with pytest.raises(TypeError, match=r"^image must have dtype torch.uint8, got a torch.int64 tensor of shape"):
        check_dtype("image", torch.zeros(3, dtype=torch.long), torch.uint8)


# ------------------------------------------------------------------------------------------------- check_in_range


def test_check_in_range() -> None:
    check_in_range("probabilities", torch.tensor([0.0, 0.5, 1.0]), 0.0, 1.0)
    check_in_range("probabilities", torch.zeros(0), 0.0, 1.0)
    with pytest.raises(ValueError, match=r"^probabilities must have values in \[0, 1\], got values in \[-0.5, 1\]$"):
        check_in_range("probabilities", torch.tensor([-0.5, 1.0]), 0.0, 1.0)
    with pytest.raises(ValueError, match=r"got values in \[0, 1.25\]"):
        check_in_range("probabilities", torch.tensor([0.0, 1.25]), 0.0, 1.0)


# ------------------------------------------------------------------------------------------------------------ CUDA


@pytest.mark.cuda
def test_checks_on_cuda_tensors() -> None:
    x = torch.rand(3, 4, device="cuda")
    check_finite("x", x)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match="x must be finite, got 1 NaN and 0 infinite"):
        check_finite("x", x)
    labels = check_classes("labels", torch.tensor([0, 3], device="cuda"), 2, 4)
    assert labels.device.type == "cuda"
    with pytest.raises(ValueError, match=r"labels must hold class indices in \[0, 3\]"):
        check_classes("labels", torch.tensor([0, 4], device="cuda"), 2, 4)
