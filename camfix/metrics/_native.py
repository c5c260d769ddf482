"""The compiled metric kernels (the ``camfix.metrics._kernels`` extension), or ``None``: one place decides the path.

The extension is built with the package (``setup.py``) from plain C99: ``_components.c`` (the connected components
of every threshold in one union-find sweep, for the box metrics), ``_counts.c`` (level histograms for PxAP and Peak
IoU, confusion matrices for mIoU) and ``_kernels.c`` (the module: it checks every array's shape and type and runs
the kernels without the GIL, so threads may evaluate disjoint slices of a batch).

Building it is optional: where no C compiler was found at install time camfix installs without it, :func:`load`
returns ``None`` and the metrics run exact pure NumPy/OpenCV paths (same numbers, slower), after one
``RuntimeWarning`` per process that says so. ``CAMFIX_NO_NATIVE=1`` selects those paths on purpose, silently.
"""

from __future__ import annotations

import os
import threading
import warnings
from types import ModuleType
from typing import Callable, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "load",
    "box_ious",
    "level_histograms",
    "confusion",
    "MapValueError",
    "LabelValueError",
    "named_by_check",
    "MAX_LEVELS",
    "FALLBACK_WARNING",
]

#: Levels are uint16 in the sweep (0 to the number of thresholds): the most thresholds of its continuous mode.
#: Equal to the extension's ``MAX_LEVELS`` (tested); here so that callers can decide without the extension.
MAX_LEVELS = 65534
#: The start of the one warning a process without the extension gets.
FALLBACK_WARNING = "camfix.metrics: the compiled kernels are not installed"

_lock = threading.Lock()
_kernels: Optional[ModuleType] = None
_tried = False


def load() -> Optional[ModuleType]:
    """The extension module, or ``None`` (not built, or ``CAMFIX_NO_NATIVE=1``): then the pure paths run."""
    global _kernels, _tried
    with _lock:
        if not _tried:
            _tried = True
            if os.environ.get("CAMFIX_NO_NATIVE", "") in ("", "0"):
                try:
                    from . import _kernels as module
                except ImportError as error:
                    warnings.warn(
                        f"{FALLBACK_WARNING} ({error}); the metrics use their pure NumPy/OpenCV paths: same "
                        "numbers, several times slower. Reinstall camfix where a C compiler and the Python headers "
                        "are available (pip install . from a clone) to build them.",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                else:
                    _kernels = module
        return _kernels


class MapValueError(ValueError):
    """A map value outside ``[0, 1]``, or NaN: the caller finds it and says which (the kernels only notice)."""


class LabelValueError(ValueError):
    """A label outside the classes: the caller finds it and says which (the kernel only notices)."""


def named_by_check(check: Callable[[], object], what: str) -> RuntimeError:
    """After a kernel noticed ``what`` (a :class:`MapValueError` or :class:`LabelValueError`): run the Python
    ``check``, which raises the error that names the bad value; should it find nothing, the error to raise."""
    check()
    return RuntimeError(f"camfix.metrics: a compiled kernel found {what} that the check did not")


def _check(library: ModuleType, status: int, error: ValueError) -> None:
    """Raise what the extension's status code (``_kernels.h``, exported by the module) says, if not 0."""
    if status == library.ERR_VALUES:
        raise error
    if status == library.ERR_ALLOC:
        raise MemoryError("camfix.metrics: out of memory in a compiled kernel")
    if status != 0:
        raise RuntimeError(f"camfix.metrics: a compiled kernel rejected its arguments (status {status})")


def box_ious(
    library: ModuleType,
    maps: np.ndarray,
    thresholds: np.ndarray,
    gt_boxes: Sequence[np.ndarray],
    reference: bool,
    single: bool,
    multi: bool,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best IoU per map and threshold of the chosen box (single) and of any box (multi), in one sweep per map.

    Args:
        library: from :func:`load`.
        maps: ``(N, H, W)`` float32 or float64, C-contiguous.
        thresholds: ``(T,)`` float64, strictly increasing, in ``[0, 1]``; in continuous mode ``T <= MAX_LEVELS``.
        gt_boxes: ``N`` int64 arrays ``(M_i, 4)``, ``M_i >= 1``, inclusive ``(x0, y0, x1, y1)``.
        reference: OpenCV contour semantics on the uint8-quantised map (see ``_components.c``) instead of
            connected components of ``map > tau``.
        single, multi: which of the two IoU arrays to fill.

    Returns:
        ``(iou_single, iou_multi, ambiguous)``: float64 ``(N, T)`` each (zeros where not requested) and bool
        ``(N, T)``, true where ``iou_single`` needs OpenCV (reference mode, components with holes).

    Raises:
        MapValueError: a map value is outside ``[0, 1]`` or NaN.
    """
    count = maps.shape[0]
    iou_single = np.zeros((count, len(thresholds)))
    iou_multi = np.zeros((count, len(thresholds)))
    ambiguous = np.zeros((count, len(thresholds)), dtype=bool)
    boxes = np.ascontiguousarray(np.concatenate(gt_boxes), dtype=np.int64)
    box_start = np.concatenate([[0], np.cumsum([len(b) for b in gt_boxes])]).astype(np.int64)
    status = library.box_ious(
        maps, np.ascontiguousarray(thresholds, dtype=np.float64), boxes, box_start, reference, single, multi,
        iou_single, iou_multi, ambiguous,
    )  # fmt: skip
    _check(library, status, MapValueError("a map value is outside [0, 1] or NaN"))
    return iou_single, iou_multi, ambiguous


def level_histograms(
    library: ModuleType,
    maps: np.ndarray,
    masks: np.ndarray,
    ignore: Optional[np.ndarray],
    edges: np.ndarray,
    strict: bool,
    per_image: bool,
) -> Tuple[np.ndarray, np.ndarray]:
    """Foreground and background pixel counts per level, ``level = #{edges < value}`` (strict) or ``<=``.

    Args:
        library: from :func:`load`.
        maps: ``(N, H, W)`` float32 or float64, C-contiguous.
        masks: ``(N, H, W)`` bool, C-contiguous: the foreground.
        ignore: ``None`` or ``(N, H, W)`` bool, C-contiguous: background pixels left out of the counts.
        edges: ``(E,)`` non-decreasing.
        strict: count the edges below the value (``edge < value``) rather than those not above it.
        per_image: one row per map, else one row for the batch.

    Returns:
        ``(foreground, background)``, int64 ``(N or 1, E + 1)``.

    Raises:
        MapValueError: a map value is outside ``[0, 1]`` or NaN.
    """
    shape = (maps.shape[0] if per_image else 1, len(edges) + 1)
    foreground, background = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64)
    status = library.level_histograms(
        maps, masks, ignore, np.ascontiguousarray(edges, dtype=np.float64), strict, foreground, background
    )
    _check(library, status, MapValueError("a map value is outside [0, 1] or NaN"))
    return foreground, background


def confusion(
    library: ModuleType, preds: np.ndarray, targets: np.ndarray, classes: int, ignore_index: Optional[int]
) -> np.ndarray:
    """The ``(classes, classes)`` int64 confusion matrix (rows targets) of two C-contiguous integer label arrays
    of one shape, targets equal to ``ignore_index`` left out.

    Raises:
        LabelValueError: a prediction, or a target other than ``ignore_index``, is outside ``[0, classes)``.
    """
    matrix = np.zeros((classes, classes), dtype=np.int64)
    status = library.confusion(preds, targets, classes, ignore_index, matrix)
    _check(library, status, LabelValueError("a label is outside the classes"))
    return matrix
