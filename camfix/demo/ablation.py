"""The five rows of the LID 2020 Table 1 ablation, scored with camfix's metrics.

Every row maps the ground-truth class of each image (GT-known), as the paper's Peak IoU and wsolevaluation do:

===================  ===========  ====  ====  ====
row                  classifier   CRF   PaS   NWC
===================  ===========  ====  ====  ====
Baseline             GAP          -     -     -
+CRF                 GAP          yes   -     -
+CRF+PaS             GAP          yes   yes   -
+CRF+PaS+NWC         GAP          yes   yes   yes
+CRF+PaS+NWC+TAP     TAP          yes   yes   yes
===================  ===========  ====  ====  ====

:data:`NO_CRF_ROWS` add the last three without the CRF, to tell the fixes' effects from the CRF's.

A row's saliency map is built in this order: CAM of the last feature map (:func:`camfix.localize`, NWC or not),
resized to the image (bicubic) and min-max normalised; PaS: :func:`camfix.percentile_normalize` divides it by its
98th percentile and clips to 1, so that a threshold ``theta`` on the result is the PaS threshold
``theta * percentile_98`` on the map (without PaS the map is left as it is: thresholds are relative to its
maximum); the dense CRF last, as post-processing.
The threshold-sweeping metrics (Peak IoU, MaxBoxAccV2, PxAP, top-1 loc) then score that final map.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

import camfix
from camfix.crf import DenseCRFParams, refine_saliency_batch
from camfix.demo.data import SyntheticWSOL
from camfix.demo.train import to_model_input
from camfix.metrics import BoxAccuracy, PeakIoU, PxAP

__all__ = ["NO_CRF_ROWS", "PAPER_PEAK_IOU", "ROWS", "Row", "RowResult", "crf_params_for", "evaluate_rows"]

logger = logging.getLogger(__name__)

#: PaS percentile of the LID 2020 paper.
PAS_PERCENTILE = 98.0
#: Side of the paper's input crops; the CRF's spatial kernel widths are scaled by ``image_size / 336``.
PAPER_CROP = 336


@dataclass(frozen=True)
class Row:
    """One row of the ablation: which classifier (``"gap"`` or ``"tap"``) and which fixes are on."""

    name: str
    classifier: str
    crf: bool
    pas: bool
    nwc: bool


ROWS: Tuple[Row, ...] = (
    Row("Baseline", "gap", crf=False, pas=False, nwc=False),
    Row("+CRF", "gap", crf=True, pas=False, nwc=False),
    Row("+CRF+PaS", "gap", crf=True, pas=True, nwc=False),
    Row("+CRF+PaS+NWC", "gap", crf=True, pas=True, nwc=True),
    Row("+CRF+PaS+NWC+TAP", "tap", crf=True, pas=True, nwc=True),
)

#: The fixes without the CRF (not in the paper's table): they separate what each fix does from what the CRF does
#: with its output.
NO_CRF_ROWS: Tuple[Row, ...] = (
    Row("+PaS", "gap", crf=False, pas=True, nwc=False),
    Row("+PaS+NWC", "gap", crf=False, pas=True, nwc=True),
    Row("+PaS+NWC+TAP", "tap", crf=False, pas=True, nwc=True),
)

#: Table 1 of the LID 2020 paper (ImageNet-1K validation, ResNet50-SE), Peak IoU in percent.
PAPER_PEAK_IOU: Dict[str, float] = {
    "Baseline": 52.54,
    "+CRF": 54.61,
    "+CRF+PaS": 55.63,
    "+CRF+PaS+NWC": 58.81,
    "+CRF+PaS+NWC+TAP": 63.70,
}


@dataclass(frozen=True)
class RowResult:
    """Scores of one row; metrics in percent (100 is perfect).

    Attributes:
        row: the row.
        peak_iou: Peak IoU (dataset-accumulated intersections and unions over the 256 levels of an 8-bit map).
        peak_threshold: the threshold of the peak, in ``[0, 1]``.
        iou_curve: ``(256,)`` float64, IoU per threshold ``k / 255``.
        max_box_acc_v2: MaxBoxAccV2 (wsolevaluation reference mode; IoU 30/50/70, CAM thresholds step 0.01).
        pxap: PxAP (wsolevaluation reference mode).
        gt_known_loc: GT-known loc (MaxBoxAcc at IoU 0.5).
        top1_loc: top-1 loc at the threshold of ``gt_known_loc``.
        best_threshold: that threshold, relative to each map's maximum.
        maps: ``(N, H, W)`` float32 final saliency maps in ``[0, 1]``.
        boxes: ``(N, 4)`` int64 inclusive boxes at ``best_threshold``, for pictures: the largest 8-connected region
            of the 8-bit map ``floor(255 * map)`` above ``floor(best_threshold * max level)``.
    """

    row: Row
    peak_iou: float
    peak_threshold: float
    iou_curve: np.ndarray
    max_box_acc_v2: float
    pxap: float
    gt_known_loc: float
    top1_loc: float
    best_threshold: float
    maps: Tensor
    boxes: Tensor

    def scores(self) -> Dict[str, float]:
        """The scalar scores, for tables and JSON."""
        return {
            "peak_iou": self.peak_iou,
            "peak_threshold": self.peak_threshold,
            "max_box_acc_v2": self.max_box_acc_v2,
            "pxap": self.pxap,
            "gt_known_loc": self.gt_known_loc,
            "top1_loc": self.top1_loc,
            "best_threshold": self.best_threshold,
        }


def crf_params_for(image_size: int) -> DenseCRFParams:
    """camfix's CRF defaults with both spatial widths scaled from the paper's 336-pixel crops to ``image_size``.

    Scaling ``sxy`` with the image is the convention of PSA (Ahn & Kwak, 2018), whose values the defaults are.

    Args:
        image_size: side of the images in pixels (64 in the demo).

    Returns:
        :class:`camfix.crf.DenseCRFParams` with ``gaussian_sxy`` and ``bilateral_sxy`` times ``image_size / 336``.
    """
    defaults = DenseCRFParams()
    scale = image_size / PAPER_CROP
    return DenseCRFParams(gaussian_sxy=defaults.gaussian_sxy * scale, bilateral_sxy=defaults.bilateral_sxy * scale)


def _cam_maps(model: nn.Module, inputs: Tensor, labels: Tensor, nwc: bool, batch_size: int) -> Tuple[Tensor, Tensor]:
    """Min-max normalised GT-class CAMs ``(N, H, W)`` and top-1 predictions ``(N,)`` of ``model``."""
    maps, predictions = [], []
    for start in range(0, inputs.shape[0], batch_size):
        result = camfix.localize(
            model, inputs[start : start + batch_size], labels[start : start + batch_size], clamp_negative=nwc, pct=100.0
        )
        maps.append(result.maps)
        predictions.append(result.logits.argmax(1))
    return torch.cat(maps), torch.cat(predictions)


def evaluate_rows(
    classifiers: Dict[str, nn.Module],
    data: SyntheticWSOL,
    rows: Sequence[Row] = ROWS,
    crf_params: Optional[DenseCRFParams] = None,
    crf_workers: Optional[int] = None,
    batch_size: int = 200,
    progress: bool = True,
) -> List[RowResult]:
    """Saliency maps and scores of every row on ``data``.

    Args:
        classifiers: ``{"gap": model, "tap": model}``, trained, taking ImageNet-normalised ``(N, 3, H, W)``.
        data: the evaluation split (images ``(N, H, W, 3)`` uint8, masks, boxes, labels).
        rows: the rows to evaluate; default :data:`ROWS`.
        crf_params: dense CRF parameters; default :func:`crf_params_for` the image size.
        crf_workers: CRF processes (None: one per CPU).
        batch_size: images per forward pass.
        progress: show a progress bar over the rows.

    Returns:
        One :class:`RowResult` per row, in order.
    """
    inputs = to_model_input(data.images)
    labels = torch.from_numpy(data.labels)
    masks = torch.from_numpy(data.masks)
    gt_boxes = torch.from_numpy(data.boxes)
    if crf_params is None:
        crf_params = crf_params_for(data.images.shape[1])
    cams: Dict[Tuple[str, bool], Tuple[Tensor, Tensor]] = {}
    results = []
    for row in tqdm(rows, desc="evaluate", unit="row", disable=not progress, leave=False):
        key = (row.classifier, row.nwc)
        if key not in cams:
            cams[key] = _cam_maps(classifiers[row.classifier], inputs, labels, row.nwc, batch_size)
        maps, predictions = cams[key]
        if row.pas:
            maps = camfix.percentile_normalize(maps, PAS_PERCENTILE)
        if row.crf:
            maps = refine_saliency_batch(data.images, maps, crf_params, workers=crf_workers)
        peak = PeakIoU()
        peak.update(maps, masks)
        peak_result = peak.compute()
        pixel_ap = PxAP()
        pixel_ap.update(maps, masks)
        boxes_metric = BoxAccuracy()
        boxes_metric.update(maps, gt_boxes, predictions, labels)
        box_result = boxes_metric.compute()
        # The picture's box, as BoxAccuracy's reference mode sees the map: 8-bit levels, foreground above
        # floor(tau * max level) (the region is camfix's largest 8-connected one, not OpenCV's largest contour).
        levels = torch.floor(maps * 255)
        threshold = torch.floor(box_result.best_threshold * levels.amax(dim=(1, 2)))
        results.append(
            RowResult(
                row=row,
                peak_iou=peak_result.peak,
                peak_threshold=peak_result.peak_threshold,
                iou_curve=peak_result.curve,
                max_box_acc_v2=float(box_result.max_box_acc_v2),
                pxap=pixel_ap.compute().pxap,
                gt_known_loc=box_result.gt_known_loc,
                top1_loc=float(box_result.top1_loc),
                best_threshold=box_result.best_threshold,
                maps=maps,
                boxes=camfix.mask_to_box(levels > threshold[:, None, None]),
            )
        )
        logger.debug("%s: %s", row.name, results[-1].scores())
    return results
