"""Argument checks shared by every public entry point.

Each check raises ``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (wrong shape, range or
content) with a message that names the argument, what was expected and what was received, so that a bad call
fails at camfix's boundary rather than deep inside torch or OpenCV. Checks run once, in the public function that
receives the argument; the private kernels behind it take checked values.

Private: scripts get the checks they need (and the command-line helpers) from :mod:`camfix.cli_support`.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

Number = Union[int, float]


def describe(value: object) -> str:
    """What ``value`` is, for the "got ..." part of a message: a tensor's or array's dtype and shape, else its type
    and repr."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} numpy array of shape {value.shape}"
    return f"{type(value).__name__} {value!r}"


def check_tensor(
    name: str,
    value: object,
    ndims: Union[int, Sequence[int]],
    *,
    shape_hint: str,
    floating: bool = True,
    allow_empty: bool = False,
) -> torch.Tensor:
    """Check that ``value`` is a tensor with one of the ranks ``ndims``; return it.

    ``shape_hint`` (e.g. ``"(N, C, H, W)"``) is quoted in the error message. With ``floating`` the dtype must be
    a floating point type. Unless ``allow_empty``, a tensor with no elements is rejected. A sparse or meta tensor
    is rejected (:func:`check_dense`).
    """
    ranks = (ndims,) if isinstance(ndims, int) else tuple(ndims)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {shape_hint}, got {describe(value)}")
    check_dense(name, value)
    if value.dim() not in ranks:
        raise ValueError(
            f"{name} must have shape {shape_hint} ({' or '.join(map(str, ranks))} dims), "
            f"got {value.dim()} dims with shape {tuple(value.shape)}"
        )
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got dtype {value.dtype}")
    if not allow_empty and value.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(value.shape)}")
    return value


def check_batch_or_single(
    name: str, value: object, item_ndim: int, *, item_hint: str, floating: bool = True, allow_empty_batch: bool = False
) -> Tuple[torch.Tensor, bool]:
    """Check a batch ``(N, *item)`` or a single item ``item`` (``item_ndim`` dims, e.g. ``item_hint="(H, W)"``).

    Returns the batch (a single item gets a leading dimension of 1, a view) and whether ``value`` was a single
    item, so the caller can drop that dimension from its result. The item's own dimensions must be non-empty;
    with ``allow_empty_batch`` a batch of ``N = 0`` items passes.
    """
    batch_hint = f"(N, {item_hint[1:]}"
    tensor = check_tensor(
        name, value, (item_ndim + 1, item_ndim), shape_hint=f"{batch_hint} or {item_hint}", floating=floating,
        allow_empty=True,
    )
    single = tensor.dim() == item_ndim
    batch = tensor.unsqueeze(0) if single else tensor
    check_spatial_nonempty(name, tensor)
    if batch.shape[0] == 0 and not allow_empty_batch:
        raise ValueError(f"{name} must not be empty, got shape {tuple(tensor.shape)}")
    return batch, single


def unbatch(result: torch.Tensor, single: bool) -> torch.Tensor:
    """``result`` of a batch from :func:`check_batch_or_single`, or its only item when the caller passed a single
    item: the result drops the batch dimension the check added."""
    return result[0] if single else result


def check_dense(name: str, value: torch.Tensor) -> None:
    """Reject a tensor whose values cannot be read: a sparse (any non-strided) layout, or the meta device, which
    has shapes but no data. Reading one (a finiteness check, a minimum, a box) would fail inside torch."""
    if value.layout != torch.strided:
        raise TypeError(f"{name} must be a dense tensor (layout torch.strided), got layout {value.layout}")
    if value.is_meta:
        raise TypeError(f"{name} must hold data (a CPU or CUDA tensor), got a tensor on the meta device")


def check_spatial_nonempty(name: str, value: torch.Tensor) -> None:
    """Reject a map ``(..., H, W)`` with ``H = 0`` or ``W = 0`` (an empty batch of maps passes): a map with no
    pixel has no minimum, maximum, percentile or box."""
    if 0 in value.shape[-2:]:
        raise ValueError(f"{name} must not be empty, got shape {tuple(value.shape)}")


def check_finite(name: str, value: torch.Tensor) -> None:
    """Reject NaN and infinite entries: they have no meaningful place in a map, a threshold or a box."""
    if not value.is_floating_point() or value.numel() == 0:
        return
    # One min/max reduction detects any NaN or inf (they make the min or the max non-finite) without the
    # full-size boolean temporary of isfinite(); the exact counts are computed only for the error message.
    low, high = torch.aminmax(value)
    if not bool(torch.isfinite(low) & torch.isfinite(high)):
        n_nan = int(torch.isnan(value).sum())
        n_inf = int(torch.isinf(value).sum())
        raise ValueError(f"{name} must be finite, got {n_nan} NaN and {n_inf} infinite values")


def check_number(
    name: str,
    value: object,
    low: float,
    high: float,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Check that ``value`` is a real number (Python or numpy, not a bool) in the given interval.

    Args:
        name: the argument's or option's name, for the message (e.g. ``"--pct"``).
        value: the value to check.
        low: the interval's lower end.
        high: the interval's upper end (``math.inf`` for none).
        low_inclusive: ``low`` itself is allowed.
        high_inclusive: ``high`` itself is allowed.

    Returns:
        ``value`` as a ``float``.

    Raises:
        TypeError: ``value`` is not a real number (a bool, a string, None, ...).
        ValueError: ``value`` is NaN or outside the interval; the message quotes the interval.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {describe(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond the range of a float lies outside any interval of floats
        number = math.inf if value > 0 else -math.inf
    above = number >= low if low_inclusive else number > low
    below = number <= high if high_inclusive else number < high
    if math.isnan(number) or not (above and below):
        interval = f"{'[' if low_inclusive else '('}{low:g}, {high:g}{']' if high_inclusive else ')'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return number


def check_bool(name: str, value: object) -> bool:
    """Check that ``value`` is a ``bool`` (not merely truthy: ``"no"`` and ``0`` are refused); return it."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool (True or False), got {describe(value)}")
    return bool(value)


def check_size(name: str, value: object, order: str = "(H, W)") -> Tuple[int, int]:
    """Check a size of two positive integers (Python or numpy), ``(H, W)`` or as ``order`` says (it is quoted in
    the message, e.g. ``"(width, height)"``); return it as a tuple of ints in the order given."""
    if (
        not isinstance(value, (tuple, list, torch.Size))
        or len(value) != 2
        or not all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) and v > 0 for v in value)
    ):
        raise ValueError(f"{name} must be a pair of positive ints {order}, got {describe(value)}")
    return int(value[0]), int(value[1])


def check_integer_tensor(
    name: str, value: object, ndims: Union[int, Sequence[int]], *, shape_hint: str, allow_empty: bool = False
) -> torch.Tensor:
    """:func:`check_tensor` for integer dtypes (not bool): boxes, classes and labels; return the tensor."""
    tensor = check_tensor(name, value, ndims, shape_hint=shape_hint, floating=False, allow_empty=allow_empty)
    _check_integer_dtype(name, tensor)
    return tensor


def _check_integer_dtype(name: str, tensor: torch.Tensor) -> None:
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got dtype {tensor.dtype}")


def check_classes(name: str, value: object, batch: int, num_classes: int) -> torch.Tensor:
    """Check one class index per image: an int64-compatible tensor or sequence of shape ``(batch,)``."""
    if isinstance(value, (list, tuple)):
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in value):
            raise TypeError(f"{name} must hold ints, got {describe(value)}")
        if value and not -(2**63) <= min(value) <= max(value) < 2**63:  # no int64 tensor can hold them
            raise ValueError(
                f"{name} must hold class indices in [0, {num_classes - 1}], got values in [{min(value)}, {max(value)}]"
            )
        value = torch.tensor([int(v) for v in value], dtype=torch.long)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a tensor or list of class indices of shape (N,), got {describe(value)}")
    check_dense(name, value)
    _check_integer_dtype(name, value)
    if value.dim() != 1 or value.shape[0] != batch:
        raise ValueError(f"{name} must have shape ({batch},) (one class per image), got {tuple(value.shape)}")
    if batch and (int(value.min()) < 0 or int(value.max()) >= num_classes):
        raise ValueError(
            f"{name} must hold class indices in [0, {num_classes - 1}], "
            f"got values in [{int(value.min())}, {int(value.max())}]"
        )
    return value.long()


def check_int(name: str, value: object, low: int, high: Optional[int] = None) -> int:
    """Check that ``value`` is an integer (Python or numpy, not a bool) in ``[low, high]``.

    Args:
        name: the argument's or option's name, for the message (e.g. ``"--batch-size"``).
        value: the value to check.
        low: the smallest value allowed.
        high: the largest value allowed; ``None`` (default): no upper bound.

    Returns:
        ``value`` as an ``int``.

    Raises:
        TypeError: ``value`` is not an integer (a float, a bool, a string, None, ...).
        ValueError: ``value`` is outside ``[low, high]``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {describe(value)}")
    value = int(value)
    if value < low or (high is not None and value > high):
        interval = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an int {interval}, got {value}")
    return value


def check_array(
    name: str,
    value: object,
    ndims: Union[int, Sequence[int]],
    *,
    shape_hint: str,
    allow_empty: bool = False,
) -> np.ndarray:
    """Check that ``value`` is a numpy array with one of the ranks ``ndims``; return it.

    The numpy counterpart of :func:`check_tensor` (combine with :func:`check_dtype` for a dtype).
    """
    ranks = (ndims,) if isinstance(ndims, int) else tuple(ndims)
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of shape {shape_hint}, got {describe(value)}")
    if value.ndim not in ranks:
        raise ValueError(
            f"{name} must have shape {shape_hint} ({' or '.join(map(str, ranks))} dims), "
            f"got {value.ndim} dims with shape {value.shape}"
        )
    if not allow_empty and value.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {value.shape}")
    return value


def check_dtype(
    name: str, value: Union[torch.Tensor, np.ndarray], dtype: Union[torch.dtype, np.dtype, type]
) -> None:
    """Check the exact dtype of a tensor (``torch.uint8``) or numpy array (``np.uint8``)."""
    expected = dtype if isinstance(value, torch.Tensor) else np.dtype(dtype)
    if value.dtype != expected:
        raise TypeError(f"{name} must have dtype {expected}, got {describe(value)}")


def check_in_range(name: str, value: torch.Tensor, low: float, high: float) -> None:
    """Check that every entry of a (finite) tensor lies in ``[low, high]``, e.g. a probability map in [0, 1]."""
    if value.numel() == 0:
        return
    minimum, maximum = (float(v) for v in torch.aminmax(value.detach()))
    if minimum < low or maximum > high:
        raise ValueError(f"{name} must have values in [{low:g}, {high:g}], got values in [{minimum:g}, {maximum:g}]")


def check_channel_statistics(name: str, value: object, positive: bool = False) -> Tuple[float, float, float]:
    """``mean`` or ``std`` of image normalisation: three finite numbers, one per RGB channel (``std`` positive)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 3:
        raise TypeError(f"{name} must be a sequence of 3 numbers, one per RGB channel, got {describe(value)}")
    bound = (0.0, math.inf) if positive else (-math.inf, math.inf)
    first, second, third = (
        check_number(f"{name}[{i}]", v, *bound, low_inclusive=False, high_inclusive=False)
        for i, v in enumerate(value)
    )
    return first, second, third
