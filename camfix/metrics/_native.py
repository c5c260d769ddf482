"""The compiled component sweep (``_components.c``), built on first use with the system C compiler.

The box metrics need the connected components of a map at every threshold. A per-threshold OpenCV loop rescans
the image once per threshold; the sweep in ``_components.c`` gets all thresholds from one union-find pass (see
the comment at its top). It is plain C99 with no dependencies, compiled once per source version into a cache
folder (``$CAMFIX_CACHE_DIR``, else ``$XDG_CACHE_HOME/camfix``, else ``~/.cache/camfix``) and loaded with
:mod:`ctypes`, so installing camfix needs no build step.

Without a C compiler (or with ``CAMFIX_NO_NATIVE=1``) :func:`load` returns ``None`` and the metrics fall back to
an exact per-threshold OpenCV path: same numbers, slower.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

__all__ = ["load", "threshold_box_ious", "MAX_LEVELS"]

logger = logging.getLogger(__name__)

_SOURCE = Path(__file__).with_name("_components.c")
#: Levels are stored as uint16 in the sweep.
MAX_LEVELS = 65535

_lock = threading.Lock()
_library: Optional[ctypes.CDLL] = None
_tried = False


def _cache_dir() -> Path:
    if os.environ.get("CAMFIX_CACHE_DIR"):
        return Path(os.environ["CAMFIX_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "camfix"


def _compile(source: Path, target: Path) -> None:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        raise RuntimeError("no C compiler found (set CC or install cc, gcc or clang)")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build under a temporary name and rename: concurrent processes (a torchrun job) never load a partial file.
    handle, temporary = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(handle)
    try:
        command = [compiler, "-O2", "-std=c99", "-shared", "-fPIC", "-o", temporary, str(source)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr.strip()}")
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def load() -> Optional[ctypes.CDLL]:
    """The compiled sweep, or ``None`` when it cannot be built (the callers then use OpenCV per threshold)."""
    global _library, _tried
    with _lock:
        if _tried:
            return _library
        _tried = True
        if os.environ.get("CAMFIX_NO_NATIVE", "") not in ("", "0"):
            return None
        if sys.platform == "win32":
            logger.info("camfix.metrics: no native sweep on Windows; using the per-threshold OpenCV path")
            return None
        try:
            digest = hashlib.sha256(_SOURCE.read_bytes()).hexdigest()[:16]
            target = _cache_dir() / f"components-{digest}-{sys.platform}-{os.uname().machine}.so"
            if not target.exists():
                _compile(_SOURCE, target)
            library = ctypes.CDLL(str(target))
        except (OSError, RuntimeError) as error:
            logger.warning("camfix.metrics: native sweep unavailable (%s); using the slower OpenCV path", error)
            return None
        library.camfix_init.restype = None
        library.camfix_init()
        function = library.camfix_threshold_box_ious
        function.restype = ctypes.c_int
        function.argtypes = [
            ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32,
            ctypes.c_void_p, ctypes.c_int32,
            ctypes.c_int32, ctypes.c_int32, ctypes.c_int32,
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        _library = library
        return _library


def threshold_box_ious(
    library: ctypes.CDLL,
    levels: np.ndarray,
    n_levels: int,
    gt_boxes: np.ndarray,
    reference: bool,
    single: bool,
    multi: bool,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best IoU per threshold level of the chosen box (single) and of any box (multi), from one image.

    Args:
        library: from :func:`load`.
        levels: ``(H, W)`` int32, C-contiguous, values in ``[0, n_levels]``: a pixel is foreground at level
            ``j`` when its value is ``> j``.
        n_levels: number of threshold levels, in ``[1, MAX_LEVELS]``.
        gt_boxes: ``(M, 4)`` int64, C-contiguous, ``M >= 1``, inclusive ``(x0, y0, x1, y1)``.
        reference: OpenCV contour semantics (see ``_components.c``) instead of connected components.
        single, multi: which of the two IoU arrays to fill.

    Returns:
        ``(iou_single, iou_multi, ambiguous)``: float64 ``(n_levels,)`` each (unfilled ones are undefined) and
        uint8 ``(n_levels,)``, 1 where ``iou_single`` needs OpenCV (reference mode, components with holes).
    """
    height, width = levels.shape
    iou_single = np.empty(n_levels, dtype=np.float64)
    iou_multi = np.empty(n_levels, dtype=np.float64)
    ambiguous = np.zeros(n_levels, dtype=np.uint8)
    status = library.camfix_threshold_box_ious(
        levels.ctypes.data, height, width, n_levels,
        gt_boxes.ctypes.data, gt_boxes.shape[0],
        int(reference), int(single), int(multi),
        iou_single.ctypes.data, iou_multi.ctypes.data, ambiguous.ctypes.data,
    )  # fmt: skip
    if status == -1:
        raise MemoryError(f"camfix.metrics: out of memory sweeping a {height}x{width} map")
    if status != 0:
        raise RuntimeError(f"camfix.metrics: native sweep rejected its arguments (status {status})")
    return iou_single, iou_multi, ambiguous
