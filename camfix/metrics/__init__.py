"""Evaluation metrics of weakly supervised localization and segmentation.

- LID Track 3 (WSOL saliency): :class:`PeakIoU` / :func:`peak_iou`.
- LID Track 1 (WSSS): :class:`MeanIoU` / :func:`mean_iou`.
- wsolevaluation (Choe et al., CVPR 2020): :class:`BoxAccuracy` (MaxBoxAcc, MaxBoxAccV2, GT-known and top-1 loc)
  and :class:`PxAP`, each with a ``"reference"`` mode identical to clovaai/wsolevaluation and a
  ``"continuous"`` mode; :func:`box_iou`, the IoU of camfix's inclusive boxes that they use (from
  :mod:`camfix.boxes`).
- Metadata of the reference evaluator: :func:`read_metadata`, its boxes scaled to the maps by :func:`resize_boxes`
  (from :mod:`camfix.boxes`); the command line: ``camfix evaluate``.

Every accumulator has ``update(...)``, ``compute()``, ``reset()``, ``merge(other)`` and ``sync(group)`` (a sum
over ``torch.distributed`` ranks); its state is O(thresholds). Definitions and conventions: ``docs/metrics.md``.
"""

from ..boxes import box_iou, resize_boxes
from ._common import DEFAULT_INTERVAL, MIN_INTERVAL, MODES, cam_thresholds
from .masks import PEAK_IOU_THRESHOLDS, PeakIoU, PeakIoUResult, PxAP, PxAPResult, peak_iou, pxap
from .metadata import WSOLMetadata, load_mask, read_metadata
from .segmentation import IGNORE_INDEX, MeanIoU, MeanIoUResult, mean_iou
from .localization import (
    DEFAULT_IOU_THRESHOLDS,
    BoxAccuracy,
    BoxAccuracyResult,
    BoxIoUCurves,
    box_accuracy,
    box_iou_curves,
    check_iou_thresholds,
    max_box_acc,
    max_box_acc_v2,
)

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_IOU_THRESHOLDS",
    "IGNORE_INDEX",
    "MIN_INTERVAL",
    "MODES",
    "PEAK_IOU_THRESHOLDS",
    "BoxAccuracy",
    "BoxAccuracyResult",
    "BoxIoUCurves",
    "MeanIoU",
    "MeanIoUResult",
    "WSOLMetadata",
    "PeakIoU",
    "PeakIoUResult",
    "PxAP",
    "PxAPResult",
    "box_accuracy",
    "box_iou",
    "box_iou_curves",
    "check_iou_thresholds",
    "cam_thresholds",
    "load_mask",
    "max_box_acc",
    "max_box_acc_v2",
    "mean_iou",
    "peak_iou",
    "pxap",
    "read_metadata",
    "resize_boxes",
]
