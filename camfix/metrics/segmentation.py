"""Mean IoU of semantic segmentation (LID 2020 Track 1, weakly supervised semantic segmentation).

A confusion matrix over all pixels of the dataset, background included as class 0 (as the LID and PASCAL VOC
benchmarks do), pixels labelled ``ignore_index`` (255) left out. Per class ``IoU_c = TP / (TP + FP + FN)`` from
the matrix; the mean runs over the classes that occur in the ground truth or in the predictions (a class absent
from both has no IoU and is left out of the mean, as in mmsegmentation's ``nanmean``). Percent.

The compiled kernel (``_counts.c``) counts the pixels in one pass over the caller's label arrays, whatever their
integer type, and checks the labels in the same pass; without it, torch does it with int64 copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .._validation import check_int, check_integer_tensor
from . import _native
from ._base import _Accumulator

__all__ = ["IGNORE_INDEX", "MeanIoU", "MeanIoUResult", "mean_iou"]

#: Label of pixels without ground truth (object boundaries in PASCAL VOC and LID).
IGNORE_INDEX = 255
# The state is a C x C int64 matrix (and an update counts C * C pairs): 4096 classes take 134 MB each, more than
# any segmentation benchmark needs (ADE20K-full has 3,688), where a mistyped count would ask for terabytes.
MAX_CLASSES = 4096


@dataclass(frozen=True)
class MeanIoUResult:
    """mIoU of a dataset.

    Attributes:
        miou: mean of ``per_class`` over the classes present, percent.
        per_class: ``(C,)`` IoU in percent; NaN for a class absent from both ground truth and predictions.
        confusion: ``(C, C)`` int64 pixel counts, rows ground truth, columns prediction.
    """

    miou: float
    per_class: np.ndarray
    confusion: np.ndarray

    def as_dict(self) -> Dict[str, object]:
        """The scalar results, JSON-ready.

        Returns:
            ``{"miou": float, "per_class_iou": [float or None, ...]}``, percent; ``None`` for a class absent
            from both ground truth and predictions.
        """
        return {
            "miou": self.miou,
            "per_class_iou": [None if np.isnan(v) else float(v) for v in self.per_class],
        }


def _check_labels(name: str, value: object, shape: Optional[tuple]) -> Tensor:
    tensor = check_integer_tensor(name, value, 3, shape_hint="(N, H, W)")
    if shape is not None and tuple(tensor.shape) != shape:
        raise ValueError(f"{name} must have the shape of preds {shape}, got {tuple(tensor.shape)}")
    return tensor


class MeanIoU(_Accumulator):
    """Accumulates the confusion matrix of label maps.

    State: an int64 ``(C, C)`` confusion matrix, rows ground truth, columns prediction.

    Args:
        num_classes: ``C`` in ``[1, 4096]``, including the background class 0 (LID/VOC: 21).
        ignore_index: ground-truth label excluded from the evaluation (default 255); ``None``: every label
            must be a class.
    """

    def __init__(self, num_classes: int, ignore_index: Optional[int] = IGNORE_INDEX) -> None:
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes, 1, MAX_CLASSES)
        self.ignore_index = None if ignore_index is None else check_int("ignore_index", ignore_index, 0)
        if self.ignore_index is not None and self.ignore_index < self.num_classes:
            raise ValueError(
                f"ignore_index must not be a class index (num_classes={num_classes}), got {ignore_index}"
            )
        self._add_state("confusion", torch.zeros(num_classes, num_classes, dtype=torch.int64))

    def _settings(self) -> Dict[str, object]:
        return {"num_classes": self.num_classes, "ignore_index": self.ignore_index}

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, ignore_index={self.ignore_index}"

    def update(self, preds: Tensor, targets: Tensor) -> None:
        """Add a batch.

        Args:
            preds: ``(N, H, W)`` integer predicted labels in ``[0, C)``.
            targets: ``(N, H, W)`` integer ground-truth labels in ``[0, C)`` or ``ignore_index``.
        """
        preds = _check_labels("preds", preds, None)
        targets = _check_labels("targets", targets, tuple(preds.shape))
        library = _native.load()
        if library is not None:
            pred_array = np.ascontiguousarray(preds.detach().cpu().numpy())
            target_array = np.ascontiguousarray(targets.detach().cpu().numpy())
            try:
                matrix = _native.confusion(library, pred_array, target_array, self.num_classes, self.ignore_index)
            except _native.LabelValueError:
                raise _native.named_by_check(
                    lambda: self._counted_labels(preds, targets), "a label outside the classes"
                )
            self.confusion += torch.from_numpy(matrix)
            return
        pred, target, valid = self._counted_labels(preds, targets)
        count = self.num_classes
        pairs = target[valid] * count + pred[valid]
        self.confusion += torch.bincount(pairs, minlength=count * count).reshape(count, count)

    def _counted_labels(self, preds: Tensor, targets: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Flat int64 predictions and targets and the bool mask of the pixels to count (targets other than
        ``ignore_index``); raises ValueError naming the first prediction or target outside the classes."""
        pred = preds.detach().cpu().to(torch.int64).flatten()
        target = targets.detach().cpu().to(torch.int64).flatten()
        count = self.num_classes
        if int(pred.min()) < 0 or int(pred.max()) >= count:
            raise ValueError(
                f"preds must hold labels in [0, {count - 1}], got values in [{int(pred.min())}, {int(pred.max())}]"
            )
        if self.ignore_index is None:
            valid = torch.ones_like(target, dtype=torch.bool)
        else:
            valid = target != self.ignore_index
        bad = valid & ((target < 0) | (target >= count))
        if bool(bad.any()):
            allowed = f"[0, {count - 1}]" + (f" or {self.ignore_index}" if self.ignore_index is not None else "")
            raise ValueError(f"targets must hold labels in {allowed}, got {int(target[bad][0])}")
        return pred, target, valid

    def compute(self) -> MeanIoUResult:
        """mIoU of everything added so far (call :meth:`sync` first in a distributed job).

        Returns:
            A :class:`MeanIoUResult`: the mean and per-class IoUs in percent, and a copy of the confusion matrix.

        Raises:
            ValueError: no labelled (non-ignored) pixel was added.
        """
        confusion = self.confusion.numpy()
        if confusion.sum() == 0:
            raise ValueError("MeanIoU has no labelled pixels: call update() with non-ignored targets first")
        true_positive = np.diag(confusion).astype(np.float64)
        union = confusion.sum(axis=0) + confusion.sum(axis=1) - true_positive
        with np.errstate(invalid="ignore", divide="ignore"):
            per_class = 100.0 * true_positive / union
        return MeanIoUResult(miou=float(np.nanmean(per_class)), per_class=per_class, confusion=confusion.copy())


def mean_iou(
    preds: Tensor, targets: Tensor, num_classes: int, ignore_index: Optional[int] = IGNORE_INDEX
) -> MeanIoUResult:
    """mIoU of one batch of label maps: :class:`MeanIoU` with one update.

    Args:
        preds: ``(N, H, W)`` integer predicted labels in ``[0, num_classes)``.
        targets: ``(N, H, W)`` integer ground-truth labels in ``[0, num_classes)`` or ``ignore_index``.
        num_classes: ``C``, including the background class 0 (LID/VOC: 21).
        ignore_index: ground-truth label left out of the evaluation, default 255 (object boundaries in VOC and
            LID); ``None``: every label must be a class.

    Returns:
        A :class:`MeanIoUResult`, IoUs in percent.
    """
    metric = MeanIoU(num_classes, ignore_index)
    metric.update(preds, targets)
    return metric.compute()
