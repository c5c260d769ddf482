"""Pixel metrics of score maps against ground-truth masks: Peak IoU (LID 2020 Track 3) and PxAP.

Both only need, per image, how many foreground and how many background pixels fall in each threshold bin, so the
state is two histograms of O(thresholds) counts and one pass over the pixels gives every threshold at once. The
compiled kernel (``_counts.c``) makes that pass over the caller's arrays, without a copy of the batch; without it,
NumPy does it one map at a time.

Peak IoU: the map is thresholded at every level (strict ``map > tau``; default ``tau = k / 255``, ``k = 0..255``,
every level of an 8-bit map), each binary map is compared with the mask by IoU, and the peak of that IoU curve
over ``tau`` is reported with its threshold. The challenge's own script is not public; the default accumulates
intersections and unions over the whole dataset per threshold (``reduction="dataset"``), ``"image"`` averages
per-image IoUs instead.

PxAP (Choe et al., CVPR 2020): the area under the pixel precision-recall curve over the CAM thresholds, ignore
regions excluded. ``"reference"`` mode reproduces clovaai/wsolevaluation's ``MaskEvaluator`` (histogram bins
``[tau_k, tau_k+1)`` plus ``[1, 2)`` and ``[2, 3]``, so a pixel counts as predicted when its score is
``>= tau``); ``"continuous"`` uses camfix's strict ``map > tau`` at the same thresholds.

Results are in percent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from . import _native
from ._base import _Accumulator
from ._common import check_binary, check_map_values, check_maps, check_mode, check_thresholds

__all__ = [
    "PEAK_IOU_THRESHOLDS",
    "PeakIoU",
    "PeakIoUResult",
    "peak_iou",
    "PxAP",
    "PxAPResult",
    "pxap",
]

#: Every level of an 8-bit map: ``k / 255`` for ``k = 0..255`` (``map > 255 / 255`` is empty).
PEAK_IOU_THRESHOLDS = np.arange(256) / 255
# Per-image IoUs are summed in fixed point (units of 2**-40): integer sums do not depend on the order of the
# images or on how they are split across processes, and 2**-41 rounding per image is far below any reported digit.
_FIXED_POINT = float(2**40)
REDUCTIONS = ("dataset", "image")


def _check_masks(
    maps: Tensor, masks: Tensor, ignore: Optional[Tensor]
) -> Tuple[Tensor, np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """The checked maps (values not yet: see :func:`_level_histograms`), their values as C-contiguous float32 or
    float64 (the tensor's own memory where it can be), and the bool masks and ignore region (``None``: none)."""
    maps = check_maps("maps", maps, values=False)
    shape = tuple(maps.shape)
    mask_array = np.ascontiguousarray(check_binary("masks", masks, shape))
    ignore_array = None if ignore is None else np.ascontiguousarray(check_binary("ignore", ignore, shape))
    values = maps.detach().cpu()
    if values.dtype not in (torch.float32, torch.float64):
        values = values.to(torch.float32)  # every float16 and bfloat16 value is exact in float32
    return maps, np.ascontiguousarray(values.numpy()), mask_array, ignore_array


def _level_histograms(
    maps: Tensor,
    values: np.ndarray,
    masks: np.ndarray,
    ignore: Optional[np.ndarray],
    edges: np.ndarray,
    strict: bool,
    per_image: bool,
) -> Tuple[np.ndarray, np.ndarray]:
    """Per level the foreground pixels and the background pixels outside ``ignore``, int64 ``(N or 1, E + 1)``.

    A pixel's level is the number of ``edges`` below its value, strictly (``edge < value``) or not; ``edges`` are
    compared with the values as float64, so a value on an edge falls exactly where the comparison puts it. Raises
    the error that names a map value outside ``[0, 1]`` (checked in the same pass by the compiled kernel). One
    thread: at 3-4 ns per pixel the pass is cheap next to reading the maps from disk, and splitting a batch of 100
    maps over two threads was no faster on the 2-core development machine, for more CPU time.
    """
    library = _native.load()
    if library is not None:
        try:
            return _native.level_histograms(library, values, masks, ignore, edges, strict, per_image)
        except _native.MapValueError:
            raise _native.named_by_check(lambda: check_map_values("maps", maps), "a map value outside [0, 1]")
    check_map_values("maps", maps)
    shape = (len(values) if per_image else 1, len(edges) + 1)
    foreground, background = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64)
    side = "left" if strict else "right"  # searchsorted's index is #{edge < value} or #{edge <= value}
    for index, (value, mask) in enumerate(zip(values, masks)):  # one map at a time: memory of one map
        levels = np.searchsorted(edges, value, side=side)
        counted = ~mask if ignore is None else ~(mask | ignore[index])
        row = index if per_image else 0
        foreground[row] += np.bincount(levels[mask], minlength=shape[1])
        background[row] += np.bincount(levels[counted], minlength=shape[1])
    return foreground, background


def _above_counts(histogram: np.ndarray) -> np.ndarray:
    """From counts per level ``c = #{tau < value}`` (last axis, ``T + 1`` bins), the counts of ``value > tau_k``
    for ``k = 0..T-1``: a pixel is above ``tau_k`` exactly when ``c > k``."""
    return np.flip(np.cumsum(np.flip(histogram, -1), -1), -1)[..., 1:]


@dataclass(frozen=True)
class PeakIoUResult:
    """Peak IoU of a dataset.

    Attributes:
        thresholds: ``(T,)`` thresholds (foreground ``map > tau``).
        curve: ``(T,)`` IoU in percent per threshold.
        peak: the maximum of ``curve`` (percent).
        peak_threshold: its threshold (the first, if several tie).
        num_images: images evaluated.
        reduction: ``"dataset"`` or ``"image"``.
    """

    thresholds: np.ndarray
    curve: np.ndarray
    peak: float
    peak_threshold: float
    num_images: int
    reduction: str

    def as_dict(self) -> Dict[str, object]:
        """The scalar results, JSON-ready (what ``camfix evaluate`` prints and writes).

        Returns:
            ``{"peak_iou": float (percent), "peak_threshold": float, "num_images": int, "reduction": str}``.
        """
        return {
            "peak_iou": self.peak,
            "peak_threshold": self.peak_threshold,
            "num_images": self.num_images,
            "reduction": self.reduction,
        }


class PeakIoU(_Accumulator):
    """Accumulates the IoU curve of thresholded maps against masks (LID 2020 Track 3 Peak IoU).

    State: foreground/background histograms over the threshold levels (``reduction="dataset"``, int64
    ``(T + 1,)`` each) or fixed-point sums of per-image IoUs (``"image"``, int64 ``(T,)``), and the image count.

    Args:
        thresholds: strictly increasing thresholds in ``[0, 1]``; default :data:`PEAK_IOU_THRESHOLDS` (the 256
            levels of an 8-bit map; pass 8-bit maps as ``q.double() / 255``: then ``map > k / 255`` is exactly
            ``q > k``, which float32 rounding would not guarantee).
        reduction: ``"dataset"`` (default): ``sum of intersections / sum of unions`` per threshold;
            ``"image"``: mean over images of each image's IoU (every mask must then have a foreground pixel).
    """

    def __init__(self, thresholds: Optional[object] = None, reduction: str = "dataset") -> None:
        super().__init__()
        self.thresholds = PEAK_IOU_THRESHOLDS.copy() if thresholds is None else check_thresholds(thresholds)
        if not isinstance(reduction, str) or reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        levels = len(self.thresholds)
        self._add_state("num_images", torch.zeros((), dtype=torch.int64))
        if reduction == "dataset":
            self._add_state("foreground_hist", torch.zeros(levels + 1, dtype=torch.int64))
            self._add_state("background_hist", torch.zeros(levels + 1, dtype=torch.int64))
        else:
            self._add_state("iou_sum", torch.zeros(levels, dtype=torch.int64))

    def _settings(self) -> Dict[str, object]:
        return {"thresholds": self.thresholds, "reduction": self.reduction}

    def extra_repr(self) -> str:
        return f"thresholds={len(self.thresholds)}, reduction={self.reduction!r}"

    def update(self, maps: Tensor, masks: Tensor, ignore: Optional[Tensor] = None) -> None:
        """Add a batch.

        Args:
            maps: ``(N, H, W)`` floating point saliency maps in ``[0, 1]``.
            masks: ``(N, H, W)`` ground-truth foreground, bool (or integer 0/1).
            ignore: optional ``(N, H, W)`` bool pixels left out of both intersection and union (foreground
                pixels are never ignored).
        """
        maps, values, mask_array, ignore_array = _check_masks(maps, masks, ignore)
        # Level #{tau < value}: the pixel is foreground at the thresholds below its level.
        fg, bg = _level_histograms(
            maps, values, mask_array, ignore_array, self.thresholds, strict=True, per_image=self.reduction == "image"
        )
        if self.reduction == "dataset":
            self.foreground_hist += torch.from_numpy(fg.sum(axis=0))
            self.background_hist += torch.from_numpy(bg.sum(axis=0))
        else:
            gt_pixels = fg.sum(axis=1)
            if (gt_pixels == 0).any():
                raise ValueError(
                    f"masks[{int(np.argmax(gt_pixels == 0))}] has no foreground pixel: per-image IoU is undefined "
                    "for it (use reduction='dataset', which accepts empty masks)"
                )
            intersection = _above_counts(fg)
            union = _above_counts(fg + bg) + gt_pixels[:, None] - intersection
            fixed = np.rint(intersection / union * _FIXED_POINT).astype(np.int64)
            self.iou_sum += torch.from_numpy(fixed.sum(axis=0))
        self.num_images += values.shape[0]

    def compute(self) -> PeakIoUResult:
        """The IoU curve and its peak over everything added so far (call :meth:`sync` first in a distributed job).

        Returns:
            A :class:`PeakIoUResult`: the curve over the thresholds and its peak, in percent.

        Raises:
            ValueError: no image was added, or (``reduction="dataset"``) no mask has a foreground pixel.
        """
        num_images = int(self.num_images)
        if num_images == 0:
            raise ValueError("PeakIoU has no images: call update() before compute()")
        if self.reduction == "dataset":
            fg = self.foreground_hist.numpy()
            gt_pixels = int(fg.sum())
            if gt_pixels == 0:
                raise ValueError("Peak IoU is undefined: no mask has a foreground pixel")
            intersection = _above_counts(fg)
            union = _above_counts(fg + self.background_hist.numpy()) + gt_pixels - intersection
            curve = 100.0 * intersection / union
        else:
            curve = 100.0 * self.iou_sum.numpy() / _FIXED_POINT / num_images
        best = int(np.argmax(curve))
        return PeakIoUResult(
            thresholds=self.thresholds,
            curve=curve,
            peak=float(curve[best]),
            peak_threshold=float(self.thresholds[best]),
            num_images=num_images,
            reduction=self.reduction,
        )


def peak_iou(
    maps: Tensor,
    masks: Tensor,
    ignore: Optional[Tensor] = None,
    *,
    thresholds: Optional[object] = None,
    reduction: str = "dataset",
) -> PeakIoUResult:
    """Peak IoU of one batch of maps: :class:`PeakIoU` with one update.

    Args:
        maps: ``(N, H, W)`` floating point saliency maps in ``[0, 1]`` (e.g. min-max normalised CAMs, or CRF
            output).
        masks: ``(N, H, W)`` ground-truth foreground, bool (or integer 0/1).
        ignore: optional ``(N, H, W)`` bool pixels left out of both intersection and union (foreground pixels are
            never ignored); default ``None``.
        thresholds: strictly increasing thresholds in ``[0, 1]``, foreground ``map > tau``; default
            :data:`PEAK_IOU_THRESHOLDS`, the 256 levels ``k / 255`` of an 8-bit map.
        reduction: ``"dataset"`` (default): intersections and unions summed over the images per threshold;
            ``"image"``: mean of the per-image IoUs (every mask needs a foreground pixel).

    Returns:
        A :class:`PeakIoUResult`, IoUs in percent.
    """
    metric = PeakIoU(thresholds, reduction)
    metric.update(maps, masks, ignore)
    return metric.compute()


@dataclass(frozen=True)
class PxAPResult:
    """PxAP of a dataset.

    Attributes:
        pxap: area under the precision-recall curve, percent.
        precision: ``(T + 1,)`` float64 (``T + 2`` in reference mode) precision of the curve's points, from the
            highest threshold down, in ``[0, 1]``; NaN where nothing is predicted.
        recall: the points' recall, same shape, in ``[0, 1]``, non-decreasing.
        num_images: images evaluated.
    """

    pxap: float
    precision: np.ndarray
    recall: np.ndarray
    num_images: int

    def as_dict(self) -> Dict[str, object]:
        """The scalar results, JSON-ready (what ``camfix evaluate`` prints and writes).

        Returns:
            ``{"pxap": float (percent), "num_images": int}``.
        """
        return {"pxap": self.pxap, "num_images": self.num_images}


def _average_precision(
    true_desc: np.ndarray, false_desc: np.ndarray, num_true: int
) -> Tuple[float, np.ndarray, np.ndarray]:
    """The reference's area under the PR curve from bin counts ordered by decreasing threshold.

    The first bin is the point where nothing is predicted (recall 0); the cumulative sums are the true and false
    positives at each threshold; ``num_true`` counts all foreground pixels (some may never be predicted). Same
    float64 operations as wsolevaluation's ``MaskEvaluator.compute``.
    """
    tp = np.cumsum(true_desc.astype(np.float64))
    fn = float(num_true) - tp
    fp = np.cumsum(false_desc.astype(np.float64))
    if ((tp + fn) <= 0).all():
        raise ValueError("PxAP is undefined: no mask has a (non-ignored) foreground pixel")
    if ((tp + fp) <= 0).all():
        raise ValueError("PxAP is undefined: no pixel is predicted at any threshold")
    predicted = (tp + fp) != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    auc = (precision[1:] * np.diff(recall))[predicted[1:]].sum()
    return float(auc * 100), precision, recall


class PxAP(_Accumulator):
    """Accumulates pixel average precision (wsolevaluation's mask metric).

    State: foreground and background histograms over the threshold bins (int64, ``T + 2`` bins in reference mode,
    ``T + 1`` in continuous mode) and the image count.

    Args:
        thresholds: CAM thresholds; default :func:`~camfix.metrics.cam_thresholds` ``(0.01)``.
        mode: ``"reference"`` (bit for bit the reference) or ``"continuous"``.
    """

    def __init__(self, thresholds: Optional[object] = None, mode: str = "reference") -> None:
        super().__init__()
        self.thresholds = check_thresholds(thresholds)
        self.mode = check_mode(mode)
        if self.mode == "reference":
            # The reference's np.histogram edges are the thresholds, then 1, 2, 3: bins [t_0, t_1), ...,
            # [t_T-1, 1), [1, 2), [2, 3]. A value in [0, 1] lies in bin #{edge <= value} - 1 of the thresholds and
            # 1, or below t_0 and outside every bin; [2, 3] stays empty.
            self._edges = np.append(self.thresholds, 1.0)
            n_bins = len(self.thresholds) + 2
        else:
            self._edges = self.thresholds
            n_bins = len(self.thresholds) + 1
        self._add_state("num_images", torch.zeros((), dtype=torch.int64))
        self._add_state("foreground_hist", torch.zeros(n_bins, dtype=torch.int64))
        self._add_state("background_hist", torch.zeros(n_bins, dtype=torch.int64))

    def _settings(self) -> Dict[str, object]:
        return {"thresholds": self.thresholds, "mode": self.mode}

    def extra_repr(self) -> str:
        return f"thresholds={len(self.thresholds)}, mode={self.mode!r}"

    def update(self, maps: Tensor, masks: Tensor, ignore: Optional[Tensor] = None) -> None:
        """Add a batch.

        Args:
            maps: ``(N, H, W)`` floating point score maps in ``[0, 1]``.
            masks: ``(N, H, W)`` ground-truth foreground, bool (or integer 0/1).
            ignore: optional ``(N, H, W)`` bool region left out (minus the foreground, as the reference).
        """
        maps, values, mask_array, ignore_array = _check_masks(maps, masks, ignore)
        reference = self.mode == "reference"
        fg, bg = _level_histograms(
            maps, values, mask_array, ignore_array, self._edges, strict=not reference, per_image=False
        )
        if reference:
            # Level 0 lies below the first threshold, outside np.histogram's bins (possible when t_0 > 0).
            self.foreground_hist[:-1] += torch.from_numpy(fg[0, 1:])
            self.background_hist[:-1] += torch.from_numpy(bg[0, 1:])
        else:
            self.foreground_hist += torch.from_numpy(fg[0])
            self.background_hist += torch.from_numpy(bg[0])
        self.num_images += values.shape[0]

    def compute(self) -> PxAPResult:
        """PxAP of everything added so far (call :meth:`sync` first in a distributed job).

        Returns:
            A :class:`PxAPResult`: the area under the precision-recall curve in percent, and the curve.

        Raises:
            ValueError: no image was added, no mask has a (non-ignored) foreground pixel, or no pixel is
                predicted at any threshold.
        """
        num_images = int(self.num_images)
        if num_images == 0:
            raise ValueError("PxAP has no images: call update() before compute()")
        fg = self.foreground_hist.numpy()
        bg = self.background_hist.numpy()
        if self.mode == "reference":
            true_desc, false_desc = fg[::-1], bg[::-1]
        else:
            # Level c = #{tau < value} is predicted at thresholds k < c: descending thresholds take c = T..1,
            # after a leading empty bin; level 0 is never predicted.
            true_desc = np.concatenate([[0], fg[:0:-1]])
            false_desc = np.concatenate([[0], bg[:0:-1]])
        value, precision, recall = _average_precision(true_desc, false_desc, int(fg.sum()))
        return PxAPResult(pxap=value, precision=precision, recall=recall, num_images=num_images)


def pxap(
    maps: Tensor,
    masks: Tensor,
    ignore: Optional[Tensor] = None,
    *,
    thresholds: Optional[object] = None,
    mode: str = "reference",
) -> PxAPResult:
    """PxAP of one batch of maps: :class:`PxAP` with one update.

    Args:
        maps: ``(N, H, W)`` floating point score maps in ``[0, 1]`` (min-max normalised).
        masks: ``(N, H, W)`` ground-truth foreground, bool (or integer 0/1).
        ignore: optional ``(N, H, W)`` bool region left out (minus the foreground, as the reference); default
            ``None``.
        thresholds: CAM thresholds; default :func:`~camfix.metrics.cam_thresholds` ``(0.01)``.
        mode: ``"reference"`` (default, clovaai/wsolevaluation's ``MaskEvaluator`` bit for bit: a pixel is
            predicted when ``map >= tau``) or ``"continuous"`` (``map > tau``).

    Returns:
        A :class:`PxAPResult`, PxAP in percent.
    """
    metric = PxAP(thresholds, mode)
    metric.update(maps, masks, ignore)
    return metric.compute()
