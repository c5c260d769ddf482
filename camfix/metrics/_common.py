"""Threshold lists, modes and the argument checks shared by the metrics."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .._validation import check_finite, check_in_range, check_number, check_tensor

__all__ = ["cam_thresholds", "DEFAULT_INTERVAL", "MIN_INTERVAL", "MODES"]

#: ``cam_curve_interval`` of the reference evaluator's command line (its function default is 0.001).
DEFAULT_INTERVAL = 0.01
#: The finest interval: 10,000 thresholds, ten times finer than the reference's finest (0.001). A finer one would
#: only multiply the memory and time of every metric (1e-12 would ask for 8 TB of thresholds).
MIN_INTERVAL = 1e-4
#: ``"reference"`` reproduces clovaai/wsolevaluation; ``"continuous"`` is the quirk-free definition.
MODES = ("reference", "continuous")


def cam_thresholds(interval: float = DEFAULT_INTERVAL) -> np.ndarray:
    """The reference evaluator's CAM thresholds ``numpy.arange(0, 1, interval)``, float64, ascending.

    Exactly the values of ``list(np.arange(0, 1, cam_curve_interval))`` in clovaai/wsolevaluation (so, e.g.,
    element 35 of ``interval=0.01`` is ``0.35000000000000003``, not ``0.35``; the reference mode depends on that).

    Args:
        interval: step in ``[1e-4, 1]`` (:data:`MIN_INTERVAL` to 1); the reference's command line uses 0.01, its
            config 0.001.

    Returns:
        ``(T,)`` float64 array, ``T = ceil(1 / interval)``, at most 10,000 values.

    Raises:
        TypeError: ``interval`` is not a real number.
        ValueError: ``interval`` is outside ``[1e-4, 1]`` or NaN.
    """
    interval = check_number("interval", interval, MIN_INTERVAL, 1.0)
    return np.arange(0, 1, interval)


def check_mode(mode: object) -> str:
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return str(mode)


def check_thresholds(thresholds: Optional[object], default_interval: float = DEFAULT_INTERVAL) -> np.ndarray:
    """Strictly increasing finite float64 thresholds in ``[0, 1]``; ``None`` gives :func:`cam_thresholds`."""
    if thresholds is None:
        return cam_thresholds(default_interval)
    if isinstance(thresholds, Tensor):
        if thresholds.is_complex():
            raise TypeError(f"thresholds must be real numbers, got a {thresholds.dtype} tensor")
        thresholds = thresholds.detach().cpu().to(torch.float64).numpy()  # numpy has no bfloat16
    try:
        values = np.asarray(thresholds, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"thresholds must be a 1-D sequence of numbers, got {type(thresholds).__name__}") from None
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"thresholds must be a non-empty 1-D sequence, got shape {values.shape}")
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise ValueError(f"thresholds must be finite and in [0, 1], got values in [{values.min()}, {values.max()}]")
    if values.size > 1 and not (np.diff(values) > 0).all():
        raise ValueError("thresholds must be strictly increasing")
    return values


def check_maps(name: str, maps: object, values: bool = True) -> Tensor:
    """``(N, H, W)`` floating point maps with finite values in ``[0, 1]`` (with ``values=False``: unchecked)."""
    maps = check_tensor(name, maps, 3, shape_hint="(N, H, W)")
    if values:
        check_map_values(name, maps)
    return maps


def check_map_values(name: str, maps: Tensor) -> None:
    """Raises if a value of ``maps`` is NaN, infinite or outside ``[0, 1]``, naming the first one."""
    # One pass in the common case: NaN fails both comparisons, so the detailed checks run only on bad input.
    low, high = torch.aminmax(maps.detach())
    if not (bool(low >= 0) and bool(high <= 1)):
        check_finite(name, maps)
        check_in_range(name, maps, 0.0, 1.0)


def check_binary(name: str, value: object, shape: Tuple[int, ...]) -> np.ndarray:
    """A bool, or integer 0/1, tensor of ``shape``; returned as a bool numpy array."""
    tensor = check_tensor(name, value, len(shape), shape_hint=str(shape), floating=False, allow_empty=True)
    if tuple(tensor.shape) != tuple(shape):
        raise ValueError(f"{name} must have the shape of the maps {tuple(shape)}, got {tuple(tensor.shape)}")
    if tensor.is_complex():
        raise TypeError(f"{name} must be a bool or integer tensor, got dtype {tensor.dtype}")
    if tensor.dtype != torch.bool:
        outside = (tensor != 0) & (tensor != 1)
        if bool(outside.any()):
            raise ValueError(
                f"{name} must be binary (bool, or integers 0 and 1), got value {tensor[outside][0].item()!r}"
            )
        tensor = tensor != 0
    return tensor.detach().cpu().numpy()

