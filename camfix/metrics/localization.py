"""Box metrics of weakly supervised object localization: MaxBoxAcc, MaxBoxAccV2, GT-known and top-1 loc.

For each CAM threshold ``tau`` a map gives boxes; an image counts as localized at ``tau`` when a box reaches
``IoU >= delta`` with one of its ground-truth boxes (Choe et al., CVPR 2020, clovaai/wsolevaluation):

- MaxBoxAcc: the box of the largest region; ``delta = 0.5``; the best accuracy over ``tau``.
- MaxBoxAccV2: every region gives a box and the best-matching one counts; the best accuracy over ``tau`` at
  ``delta`` = 0.3, 0.5 and 0.7 separately, then averaged.
- GT-known loc: MaxBoxAcc's accuracy (the map is the ground-truth class's) at its best ``tau``.
- top-1 loc: the image also needs its top-1 predicted class right; reported at the ``tau`` that maximises GT-known
  loc (the threshold is chosen without looking at the classifier).

Two modes (see ``docs/metrics.md``):

- ``"reference"`` reproduces clovaai/wsolevaluation bit for bit: the map is quantised to ``uint8`` as
  ``floor(255 * map)``, a pixel is foreground when its value is ``> floor(tau * max(uint8 map))``, regions are
  OpenCV contours (``RETR_TREE``: holes give contours too), the largest region is the contour with the largest
  ``cv2.contourArea``, a contour's box is ``(x, y, min(x + w, W - 1), min(y + h, H - 1))`` from
  ``cv2.boundingRect``, and a threshold with no foreground gives the box ``(0, 0, 0, 0)``.
- ``"continuous"``: no quantisation; a pixel is foreground when ``map > tau``; regions are 8-connected
  components, the largest has the most pixels (ties: the first in raster order), boxes are camfix's inclusive
  boxes, and no foreground means no box (IoU 0).

IoUs count pixels inclusively in both modes: a box's area is ``(x1 - x0 + 1) * (y1 - y0 + 1)``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch import Tensor

from .._validation import check_bool, check_int, check_integer_tensor
from ..boxes import BoxBatch, _box_iou_matrix, _check_boxes_per_image
from ..parallel import worker_count
from . import _native
from ._base import _Accumulator
from ._common import check_map_values, check_maps, check_mode, check_thresholds

__all__ = [
    "DEFAULT_IOU_THRESHOLDS",
    "BoxIoUCurves",
    "box_iou_curves",
    "check_iou_thresholds",
    "BoxAccuracy",
    "BoxAccuracyResult",
    "box_accuracy",
    "max_box_acc",
    "max_box_acc_v2",
]

#: MaxBoxAccV2's IoU thresholds, in percent as in the reference (``delta = 30 / 100`` etc.).
DEFAULT_IOU_THRESHOLDS = (30, 50, 70)
# A uint8 map has 256 values; the reference's threshold levels are among them.
_UINT8_VALUES = np.arange(256)


@dataclass(frozen=True)
class BoxIoUCurves:
    """Per image and threshold, the IoU that decides localization.

    Attributes:
        single: ``(N, T)`` float64 in ``[0, 1]``: IoU of the largest region's box with its best ground-truth box
            (MaxBoxAcc, GT-known and top-1 loc); ``None`` if not requested.
        multi: ``(N, T)`` float64: best IoU over all region boxes and ground-truth boxes (MaxBoxAccV2);
            ``None`` if not requested.
    """

    single: Optional[Tensor]
    multi: Optional[Tensor]


def _opencv_level_ious(
    levels: np.ndarray, level_ids: Sequence[int], gt_boxes: np.ndarray, reference: bool, single: bool, multi: bool
) -> Tuple[np.ndarray, np.ndarray]:
    """Single and multi IoUs at the given levels, one OpenCV call per level (the path without the C sweep)."""
    height, width = levels.shape
    iou_single = np.zeros(len(level_ids))
    iou_multi = np.zeros(len(level_ids))
    for position, level in enumerate(level_ids):
        mask = (levels > level).astype(np.uint8)
        if reference:
            contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
            if not contours:
                boxes = np.zeros((1, 4), dtype=np.int64)
                largest = 0
            else:
                rects = np.array([cv2.boundingRect(contour) for contour in contours], dtype=np.int64)
                boxes = np.stack(
                    [
                        rects[:, 0],
                        rects[:, 1],
                        np.minimum(rects[:, 0] + rects[:, 2], width - 1),
                        np.minimum(rects[:, 1] + rects[:, 3], height - 1),
                    ],
                    axis=1,
                )
                # max() keeps the first of equal areas, as the reference's max(contours, key=cv2.contourArea).
                largest = max(range(len(contours)), key=lambda i: cv2.contourArea(contours[i]))
        else:
            count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
            if count < 2:
                continue  # no foreground: no box, IoU 0
            stats = stats[1:].astype(np.int64)
            boxes = np.stack(
                [
                    stats[:, cv2.CC_STAT_LEFT],
                    stats[:, cv2.CC_STAT_TOP],
                    stats[:, cv2.CC_STAT_LEFT] + stats[:, cv2.CC_STAT_WIDTH] - 1,
                    stats[:, cv2.CC_STAT_TOP] + stats[:, cv2.CC_STAT_HEIGHT] - 1,
                ],
                axis=1,
            )
            # OpenCV's label order is not raster order of the first pixel (its scan is block-based): find it.
            present, first_index = np.unique(labels.ravel(), return_index=True)
            first_pixel = np.empty(count, dtype=np.int64)
            first_pixel[present] = first_index
            largest = int(np.lexsort((first_pixel[1:], -stats[:, cv2.CC_STAT_AREA]))[0])
        ious = _box_iou_matrix(boxes, gt_boxes).max(axis=1)
        if single:
            iou_single[position] = ious[largest]
        if multi:
            iou_multi[position] = ious.max()
    return iou_single, iou_multi


def _image_levels(image_map: np.ndarray, reference: bool, thresholds: np.ndarray) -> Tuple[np.ndarray, int, np.ndarray]:
    """Level image, number of levels and threshold -> level index, for one ``(H, W)`` float32 or float64 map.

    A pixel is foreground at level ``j`` when its level is ``> j``. Reference mode: the reference's uint8 map
    ``q`` thresholded at ``int(tau * max(q))``; equal integer thresholds share a level, so at most 256 levels
    whatever the number of thresholds. Continuous mode: one level per threshold, ``level = #{tau < map}``. The
    OpenCV path's form of what ``_components.c``'s ``map_levels`` computes for the sweep.
    """
    values = image_map.astype(np.float64)
    if reference:
        # The reference's quantisation, (scoremap * 255).astype(np.uint8), on float64 values in [0, 1].
        quantised = (values * 255).astype(np.uint8)
        # float64 product then truncation, as int(np.float64 * np.uint8) in the reference.
        integer_thresholds = np.floor(thresholds * float(quantised.max())).astype(np.int64)
        distinct, level_of_threshold = np.unique(integer_thresholds, return_inverse=True)
        lookup = np.searchsorted(distinct, _UINT8_VALUES, side="left").astype(np.int32)
        return lookup[quantised], len(distinct), level_of_threshold.ravel()
    levels = np.searchsorted(thresholds, values, side="left").astype(np.int32)
    return levels, len(thresholds), np.arange(len(thresholds))


def box_iou_curves(
    maps: Tensor,
    boxes: BoxBatch,
    thresholds: Optional[object] = None,
    *,
    mode: str = "reference",
    single: bool = True,
    multi: bool = True,
    workers: Optional[int] = None,
) -> BoxIoUCurves:
    """IoU of the localization box(es) with the ground truth, for every map and CAM threshold.

    Args:
        maps: ``(N, H, W)`` floating point score maps in ``[0, 1]`` (min-max normalised, as the reference
            requires), any device; evaluated in float64 on the CPU.
        boxes: ground-truth boxes in map pixels, inclusive ``(x0, y0, x1, y1)``: an int tensor ``(N, 4)`` or
            ``(N, M, 4)``, or a list of ``N`` int tensors ``(M_i, 4)``, ``M_i >= 1``.
        thresholds: strictly increasing CAM thresholds in ``[0, 1]``; default
            :func:`~camfix.metrics.cam_thresholds` ``(0.01)``.
        mode: ``"reference"`` (default) or ``"continuous"``, see the module docstring.
        single: compute the largest region's IoU (MaxBoxAcc, GT-known and top-1 loc).
        multi: compute the best IoU over all regions (MaxBoxAccV2).
        workers: threads, each evaluating a slice of the maps end to end (the compiled sweep and OpenCV release
            the GIL); default ``None``: one per usable CPU (:func:`camfix.parallel.usable_cpus`). The numbers do not
            depend on it.

    Returns:
        :class:`BoxIoUCurves` of ``(N, T)`` float64 CPU tensors.
    """
    maps = check_maps("maps", maps, values=False)  # values: checked where the maps are read, see below
    reference = check_mode(mode) == "reference"
    thresholds = check_thresholds(thresholds)
    batch, height, width = maps.shape
    gt_boxes = _check_boxes_per_image("boxes", boxes, batch, (height, width))
    if not (check_bool("single", single) | check_bool("multi", multi)):
        raise ValueError("at least one of single and multi must be True")
    workers = None if workers is None else check_int("workers", workers, 1)
    return _box_iou_curves(maps, gt_boxes, thresholds, reference, single, multi, workers)


def _box_iou_curves(
    maps: Tensor,
    gt_boxes: Sequence[np.ndarray],
    thresholds: np.ndarray,
    reference: bool,
    single: bool,
    multi: bool,
    workers: Optional[int],
) -> BoxIoUCurves:
    """:func:`box_iou_curves` of checked arguments; the map values are checked here, where the sweep reads them."""
    batch = maps.shape[0]
    library = _native.load()
    if library is None or not (reference or len(thresholds) <= _native.MAX_LEVELS):
        library = None
        check_map_values("maps", maps)
    values = maps.detach().cpu()
    if values.dtype not in (torch.float32, torch.float64):
        values = values.to(torch.float64)  # every value of a half-precision map is exact in float64
    values = values.contiguous().numpy()

    def evaluate(first: int, last: int) -> Tuple[np.ndarray, np.ndarray]:
        """The maps ``first:last`` end to end, so that threads share all the work (OpenCV releases the GIL too)."""
        if library is None:
            return _opencv_curves(values[first:last], thresholds, gt_boxes[first:last], reference, single, multi)
        iou_single, iou_multi, ambiguous = _native.box_ious(
            library, values[first:last], thresholds, gt_boxes[first:last], reference, single, multi
        )
        for index in np.flatnonzero(ambiguous.any(axis=1)):
            # A component with holes whose contour area the sweep could only bound: OpenCV at those thresholds.
            levels, _, level_of_threshold = _image_levels(values[first + index], reference, thresholds)
            unsure = np.flatnonzero(ambiguous[index])
            unsure_levels, position = np.unique(level_of_threshold[unsure], return_inverse=True)
            level_single = _opencv_level_ious(
                levels, unsure_levels, gt_boxes[first + index], reference, True, False
            )[0]
            iou_single[index, unsure] = level_single[position.ravel()]
        return iou_single, iou_multi

    bounds = np.linspace(0, batch, worker_count(workers, batch) + 1).astype(int)
    try:
        if len(bounds) == 2:
            parts = [evaluate(0, batch)]
        else:
            with ThreadPoolExecutor(len(bounds) - 1) as pool:
                parts = list(pool.map(evaluate, bounds[:-1], bounds[1:]))
    except _native.MapValueError:
        parts = []
    if not parts:
        raise _native.named_by_check(lambda: check_map_values("maps", maps), "a map value outside [0, 1]")
    return BoxIoUCurves(
        single=torch.from_numpy(np.concatenate([part[0] for part in parts])) if single else None,
        multi=torch.from_numpy(np.concatenate([part[1] for part in parts])) if multi else None,
    )


def _opencv_curves(
    values: np.ndarray,
    thresholds: np.ndarray,
    gt_boxes: Sequence[np.ndarray],
    reference: bool,
    single: bool,
    multi: bool,
) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`box_iou_curves` of ``(N, H, W)`` maps without the compiled sweep: OpenCV at every level."""
    iou_single = np.zeros((len(values), len(thresholds)))
    iou_multi = np.zeros((len(values), len(thresholds)))
    for index, image_map in enumerate(values):
        levels, n_levels, level_of_threshold = _image_levels(image_map, reference, thresholds)
        level_single, level_multi = _opencv_level_ious(
            levels, range(n_levels), gt_boxes[index], reference, single, multi
        )
        iou_single[index] = level_single[level_of_threshold]
        iou_multi[index] = level_multi[level_of_threshold]
    return iou_single, iou_multi


def check_iou_thresholds(iou_thresholds: object, name: str = "iou_thresholds") -> Tuple[int, ...]:
    """Check the IoU thresholds of MaxBoxAccV2 (a script's option goes through the same rule as the accumulator).

    Args:
        iou_thresholds: a non-empty list or tuple of distinct ints in ``(0, 100]`` (percent), including 50.
        name: how error messages name the value, e.g. ``"--iou-thresholds"``.

    Returns:
        The thresholds as a tuple, in the order given.

    Raises:
        TypeError: not a non-empty list or tuple.
        ValueError: a value is not an int in ``(0, 100]``, 50 is missing, or a value repeats.
    """
    if not isinstance(iou_thresholds, (list, tuple)) or not iou_thresholds:
        raise TypeError(f"{name} must be a non-empty tuple of ints, got {iou_thresholds!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 100 for v in iou_thresholds):
        raise ValueError(f"{name} must be ints in (0, 100] (percent), got {iou_thresholds!r}")
    if 50 not in iou_thresholds:
        raise ValueError(f"{name} must contain 50 (MaxBoxAcc and GT-known loc use IoU 0.5), got {iou_thresholds!r}")
    if len(set(iou_thresholds)) != len(iou_thresholds):
        raise ValueError(f"{name} must be distinct, got {iou_thresholds!r}")
    return tuple(iou_thresholds)


def _check_class_pair(pred_classes: object, target_classes: object, batch: int) -> Optional[np.ndarray]:
    """Whether each image's top-1 prediction is its ground-truth class; ``None`` when neither is given."""
    if pred_classes is None and target_classes is None:
        return None
    if pred_classes is None or target_classes is None:
        raise ValueError("pred_classes and target_classes must be given together (top-1 loc needs both)")
    arrays = []
    for name, value in (("pred_classes", pred_classes), ("target_classes", target_classes)):
        tensor = check_integer_tensor(name, value, 1, shape_hint="(N,)", allow_empty=True)
        if tensor.shape[0] != batch:
            raise ValueError(f"{name} must have shape ({batch},) (one class per map), got {tuple(tensor.shape)}")
        arrays.append(tensor.detach().cpu().numpy())
    return arrays[0] == arrays[1]


@dataclass(frozen=True)
class BoxAccuracyResult:
    """Box metrics of a dataset; accuracies in percent (100 = every image localized), as the reference.

    Attributes:
        thresholds: ``(T,)`` CAM thresholds.
        iou_thresholds: IoU thresholds in percent (``delta * 100``).
        num_images: images evaluated.
        single_accuracy: ``(I, T)`` accuracy of the largest region's box per IoU and CAM threshold.
        multi_accuracy: ``(I, T)`` accuracy when any region's box may match (``None`` if not tracked).
        top1_accuracy: ``(I, T)`` accuracy of the largest region's box with the right top-1 class (``None``
            without classes).
        max_box_acc: MaxBoxAcc: max over ``tau`` of ``single_accuracy`` at IoU 50.
        max_box_acc_v2: MaxBoxAccV2: mean over IoU thresholds of the max over ``tau`` of ``multi_accuracy``.
        gt_known_loc: GT-known loc at the best threshold (equal to ``max_box_acc``).
        best_threshold: the CAM threshold of ``gt_known_loc`` (the first, if several tie).
        top1_loc: top-1 loc at ``best_threshold`` (``None`` without classes).
    """

    thresholds: np.ndarray
    iou_thresholds: Tuple[int, ...]
    num_images: int
    single_accuracy: np.ndarray
    multi_accuracy: Optional[np.ndarray]
    top1_accuracy: Optional[np.ndarray]
    max_box_acc: float = field(init=False)
    max_box_acc_v2: Optional[float] = field(init=False)
    gt_known_loc: float = field(init=False)
    best_threshold: float = field(init=False)
    top1_loc: Optional[float] = field(init=False)

    def __post_init__(self) -> None:
        at_50 = self.iou_thresholds.index(50)
        best = int(np.argmax(self.single_accuracy[at_50]))
        assign = object.__setattr__  # frozen dataclass: derived fields are set once, here
        assign(self, "max_box_acc", float(self.single_accuracy[at_50, best]))
        assign(self, "gt_known_loc", self.max_box_acc)
        assign(self, "best_threshold", float(self.thresholds[best]))
        assign(
            self,
            "max_box_acc_v2",
            None if self.multi_accuracy is None else float(np.mean(self.multi_accuracy.max(axis=1))),
        )
        assign(self, "top1_loc", None if self.top1_accuracy is None else float(self.top1_accuracy[at_50, best]))

    def max_by_iou(self, multi: bool = False) -> Dict[int, float]:
        """The best accuracy over the CAM thresholds, separately at each IoU threshold.

        Args:
            multi: ``False`` (default): the largest region's box (MaxBoxAcc at each IoU threshold); ``True``: any
                region's box (the terms of MaxBoxAccV2's mean).

        Returns:
            ``{iou_threshold: accuracy}``, IoU thresholds in percent (e.g. ``{30: ..., 50: ..., 70: ...}``),
            accuracies in percent in ``[0, 100]``.

        Raises:
            ValueError: ``multi=True`` but the any-region accuracy was not tracked.
        """
        curves = self.multi_accuracy if multi else self.single_accuracy
        if curves is None:
            raise ValueError("multi-region accuracy was not tracked (BoxAccuracy(multi_contour=False))")
        return {iou: float(curve.max()) for iou, curve in zip(self.iou_thresholds, curves)}

    def as_dict(self) -> Dict[str, object]:
        """The scalar results, JSON-ready (what ``camfix evaluate`` prints and writes).

        Returns:
            ``{"num_images": int, "max_box_acc": float, "gt_known_loc": float, "best_threshold": float,
            "max_box_acc_by_iou": {"50": float, ...}}``, plus ``"max_box_acc_v2"`` and
            ``"max_box_acc_v2_by_iou"`` when the any-region accuracy was tracked and ``"top1_loc"`` with classes.
            Accuracies in percent; IoU thresholds as string keys (percent).
        """
        result: Dict[str, object] = {
            "num_images": self.num_images,
            "max_box_acc": self.max_box_acc,
            "gt_known_loc": self.gt_known_loc,
            "best_threshold": self.best_threshold,
            "max_box_acc_by_iou": {str(k): v for k, v in self.max_by_iou().items()},
        }
        if self.multi_accuracy is not None:
            result["max_box_acc_v2"] = self.max_box_acc_v2
            result["max_box_acc_v2_by_iou"] = {str(k): v for k, v in self.max_by_iou(multi=True).items()}
        if self.top1_loc is not None:
            result["top1_loc"] = self.top1_loc
        return result


class BoxAccuracy(_Accumulator):
    """Accumulates MaxBoxAcc, MaxBoxAccV2, GT-known and top-1 loc over batches.

    State: per IoU and CAM threshold, the number of localized images (int64 ``(I, T)``, three of them), and
    the image counts. O(thresholds) memory whatever the dataset size; reduce across processes with
    :meth:`sync`.

    Args:
        thresholds: CAM thresholds; default :func:`~camfix.metrics.cam_thresholds` ``(0.01)`` (the reference's
            command line; its config uses 0.001).
        iou_thresholds: IoU thresholds in percent, must contain 50; default ``(30, 50, 70)``.
        mode: ``"reference"`` (reproduces clovaai/wsolevaluation) or ``"continuous"``.
        multi_contour: also track the any-region accuracy (MaxBoxAccV2). It costs a second sweep in reference
            mode (holes).
        workers: threads sweeping the maps of a batch; default ``None``: one per usable CPU
            (:func:`camfix.parallel.usable_cpus`). The numbers do not depend on it.

    Example:
        Two 32 x 32 maps with the same square of high scores; the first image's object is that square, the
        second's lies elsewhere. Call ``update`` once per batch of a data loader.

        >>> import torch
        >>> from camfix.metrics import BoxAccuracy
        >>> maps = torch.zeros(2, 32, 32)
        >>> maps[:, 8:24, 8:24] = 1.0
        >>> boxes = torch.tensor([[8, 8, 23, 23], [0, 0, 7, 7]])
        >>> metric = BoxAccuracy()
        >>> metric.update(maps, boxes)
        >>> result = metric.sync().compute()  # sync(): the sum over torch.distributed ranks, if any
        >>> result.max_box_acc, result.max_box_acc_v2
        (50.0, 50.0)
    """

    def __init__(
        self,
        thresholds: Optional[object] = None,
        iou_thresholds: Sequence[int] = DEFAULT_IOU_THRESHOLDS,
        mode: str = "reference",
        multi_contour: bool = True,
        workers: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.thresholds = check_thresholds(thresholds)
        self.iou_thresholds = check_iou_thresholds(iou_thresholds)
        self.mode = check_mode(mode)
        self.multi_contour = check_bool("multi_contour", multi_contour)
        self.workers = None if workers is None else check_int("workers", workers, 1)
        shape = (len(self.iou_thresholds), len(self.thresholds))
        self._add_state("num_images", torch.zeros((), dtype=torch.int64))
        self._add_state("num_classified", torch.zeros((), dtype=torch.int64))
        self._add_state("correct_single", torch.zeros(shape, dtype=torch.int64))
        self._add_state("correct_multi", torch.zeros(shape, dtype=torch.int64))
        self._add_state("correct_top1", torch.zeros(shape, dtype=torch.int64))
        # The reference compares iou >= (delta / 100) with delta an int: the same float64 values here.
        self._deltas = np.array([delta / 100 for delta in self.iou_thresholds])[:, None, None]

    def _settings(self) -> Dict[str, object]:
        return {
            "thresholds": self.thresholds,
            "iou_thresholds": self.iou_thresholds,
            "mode": self.mode,
            "multi_contour": self.multi_contour,
        }

    def extra_repr(self) -> str:
        return (
            f"thresholds={len(self.thresholds)}, iou_thresholds={self.iou_thresholds}, mode={self.mode!r}, "
            f"multi_contour={self.multi_contour}"
        )

    def update(
        self,
        maps: Tensor,
        boxes: BoxBatch,
        pred_classes: Optional[Tensor] = None,
        target_classes: Optional[Tensor] = None,
    ) -> None:
        """Add a batch.

        Args:
            maps: ``(N, H, W)`` floating point maps in ``[0, 1]`` of the ground-truth class (GT-known).
            boxes: ground-truth boxes in map pixels, see :func:`box_iou_curves`.
            pred_classes: ``(N,)`` integer tensor of the top-1 predicted classes, for top-1 loc; give it together
                with ``target_classes``, in every update or in none. Default ``None``: no top-1 loc.
            target_classes: ``(N,)`` integer tensor of the ground-truth classes, with ``pred_classes``.

        Raises:
            TypeError, ValueError: an argument has the wrong type, dtype, shape or values, or only one of
                ``pred_classes`` and ``target_classes`` is given.
        """
        # Every argument is checked before the sweep, the expensive part; the sweep checks the map values as it
        # reads them.
        maps = check_maps("maps", maps, values=False)
        batch, height, width = maps.shape
        right_class = _check_class_pair(pred_classes, target_classes, batch)
        gt_boxes = _check_boxes_per_image("boxes", boxes, batch, (height, width))
        reference = self.mode == "reference"
        curves = _box_iou_curves(maps, gt_boxes, self.thresholds, reference, True, self.multi_contour, self.workers)
        single_hits = curves.single.numpy()[None] >= self._deltas  # (I, N, T)
        self.correct_single += torch.from_numpy(single_hits.sum(axis=1))
        if curves.multi is not None:
            self.correct_multi += torch.from_numpy((curves.multi.numpy()[None] >= self._deltas).sum(axis=1))
        if right_class is not None:
            self.correct_top1 += torch.from_numpy((single_hits & right_class[None, :, None]).sum(axis=1))
            self.num_classified += batch
        self.num_images += batch

    def compute(self) -> BoxAccuracyResult:
        """The metrics of everything added so far (call :meth:`sync` first in a distributed job).

        Returns:
            A :class:`BoxAccuracyResult`: the accuracy curves over the CAM thresholds and MaxBoxAcc, MaxBoxAccV2
            (``None`` without ``multi_contour``), GT-known and top-1 loc (``None`` without classes), in percent.

        Raises:
            ValueError: no image was added, or classes were given for some updates only.
        """
        num_images = int(self.num_images)
        if num_images == 0:
            raise ValueError("BoxAccuracy has no images: call update() before compute()")
        num_classified = int(self.num_classified)
        if num_classified not in (0, num_images):
            raise ValueError(
                f"top-1 loc needs classes for every image: {num_classified} of {num_images} images had "
                "pred_classes and target_classes"
            )

        def percent(counts: Tensor) -> np.ndarray:
            return counts.numpy() * 100.0 / float(num_images)

        return BoxAccuracyResult(
            thresholds=self.thresholds,
            iou_thresholds=self.iou_thresholds,
            num_images=num_images,
            single_accuracy=percent(self.correct_single),
            multi_accuracy=percent(self.correct_multi) if self.multi_contour else None,
            top1_accuracy=percent(self.correct_top1) if num_classified else None,
        )


def box_accuracy(
    maps: Tensor,
    boxes: BoxBatch,
    pred_classes: Optional[Tensor] = None,
    target_classes: Optional[Tensor] = None,
    *,
    thresholds: Optional[object] = None,
    iou_thresholds: Sequence[int] = DEFAULT_IOU_THRESHOLDS,
    mode: str = "reference",
) -> BoxAccuracyResult:
    """All box metrics of one batch of maps: :class:`BoxAccuracy` with one update.

    Args:
        maps: ``(N, H, W)`` floating point maps in ``[0, 1]`` of the ground-truth class (min-max normalised).
        boxes: ground-truth boxes in map pixels, inclusive ``(x0, y0, x1, y1)``: an int tensor ``(N, 4)`` or
            ``(N, M, 4)``, or a list of ``N`` int tensors ``(M_i, 4)`` (see :func:`box_iou_curves`).
        pred_classes: optional ``(N,)`` integer tensor of top-1 predicted classes, for top-1 loc (with
            ``target_classes``).
        target_classes: optional ``(N,)`` integer tensor of ground-truth classes (with ``pred_classes``).
        thresholds: CAM thresholds; default :func:`~camfix.metrics.cam_thresholds` ``(0.01)``.
        iou_thresholds: IoU thresholds in percent, must contain 50; default ``(30, 50, 70)`` (MaxBoxAccV2's).
        mode: ``"reference"`` (default, clovaai/wsolevaluation bit for bit) or ``"continuous"``.

    Returns:
        A :class:`BoxAccuracyResult`, accuracies in percent; MaxBoxAccV2 is always tracked.
    """
    metric = BoxAccuracy(thresholds, iou_thresholds, mode)
    metric.update(maps, boxes, pred_classes, target_classes)
    return metric.compute()


def max_box_acc(
    maps: Tensor, boxes: BoxBatch, *, thresholds: Optional[object] = None, mode: str = "reference"
) -> float:
    """MaxBoxAcc: the largest region's box must reach IoU >= 0.5; the best accuracy over the CAM thresholds.

    Args:
        maps: ``(N, H, W)`` floating point maps in ``[0, 1]`` of the ground-truth class (min-max normalised).
        boxes: ground-truth boxes in map pixels, inclusive ``(x0, y0, x1, y1)``, as in :func:`box_accuracy`.
        thresholds: CAM thresholds; default :func:`~camfix.metrics.cam_thresholds` ``(0.01)``.
        mode: ``"reference"`` (default) or ``"continuous"``.

    Returns:
        MaxBoxAcc in percent, in ``[0, 100]`` (equal to GT-known loc).
    """
    metric = BoxAccuracy(thresholds, (50,), mode, multi_contour=False)
    metric.update(maps, boxes)
    return metric.compute().max_box_acc


def max_box_acc_v2(
    maps: Tensor,
    boxes: BoxBatch,
    *,
    thresholds: Optional[object] = None,
    iou_thresholds: Sequence[int] = DEFAULT_IOU_THRESHOLDS,
    mode: str = "reference",
) -> float:
    """MaxBoxAccV2: any region's box may match; the best CAM threshold per IoU threshold, then the mean.

    Args:
        maps: ``(N, H, W)`` floating point maps in ``[0, 1]`` of the ground-truth class (min-max normalised).
        boxes: ground-truth boxes in map pixels, inclusive ``(x0, y0, x1, y1)``, as in :func:`box_accuracy`.
        thresholds: CAM thresholds; default :func:`~camfix.metrics.cam_thresholds` ``(0.01)``.
        iou_thresholds: IoU thresholds in percent, must contain 50; default ``(30, 50, 70)`` (Choe et al.).
        mode: ``"reference"`` (default) or ``"continuous"``.

    Returns:
        MaxBoxAccV2 in percent, in ``[0, 100]``.
    """
    metric = BoxAccuracy(thresholds, iou_thresholds, mode)
    metric.update(maps, boxes)
    return float(metric.compute().max_box_acc_v2)  # type: ignore[arg-type]  # tracked: multi_contour=True
