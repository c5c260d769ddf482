"""The ablation rows, each scored at an operating point chosen on a held-out split.

Every row maps the ground-truth class of each image (GT-known), as the paper's Peak IoU and wsolevaluation do.
The primary ablation is the fixes without the CRF; the paper's Table 1 adds them on top of the CRF:

===================  ===========  ====  ====  ====
row                  classifier   CRF   PaS   NWC
===================  ===========  ====  ====  ====
Baseline             GAP          -     -     -
+PaS                 GAP          -     yes   -
+PaS+NWC             GAP          -     yes   yes
+PaS+NWC+TAP         TAP          -     yes   yes
+CRF                 GAP          yes   -     -
+CRF+PaS             GAP          yes   yes   -
+CRF+PaS+NWC         GAP          yes   yes   yes
+CRF+PaS+NWC+TAP     TAP          yes   yes   yes
===================  ===========  ====  ====  ====

A row's map is built by the stages of :func:`camfix.localize`: CAM of the last feature map
(:func:`camfix.class_maps`, NWC or not), resized to the image (bicubic) and min-max normalised; PaS
(:func:`camfix.saliency_maps`, i.e. :func:`camfix.percentile_normalize`) divides it by its 98th
percentile and clips to 1, so that a threshold ``theta`` on the result is the PaS threshold
``theta * percentile_98`` on the map (without PaS, thresholds are relative to the map's maximum); the dense CRF
last, as post-processing, with its operating point ``t`` (:func:`camfix.crf.saliency_scores`: the map value
its unary leaves undecided).

Every row has one operating point, chosen on the held-out split (``make_dataset(..., split="val")``) to
maximise the IoU of its masks there, and never on the evaluation split: the threshold ``theta`` of the map for a
row without the CRF (one of the 256 levels of Peak IoU), the CRF's ``t`` for a row with it (a coarse-to-fine
search from :data:`CRF_THRESHOLDS`), whose mask is then the refined probability above 0.5. On the evaluation split each row is scored
at that operating point (IoU, BoxAccV2, GT-known and top-1 loc of its masks), the same way for every row. The
rows without the CRF have soft maps and are also scored by the threshold sweeps (Peak IoU, MaxBoxAccV2, PxAP),
which pick their threshold on the evaluation split itself; a CRF's output is nearly binary, so a sweep over it
has nothing to sweep, and those columns are left empty for the CRF rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

import camfix
from camfix.crf import DenseCRFParams, refine_saliency_sweep
from camfix.demo.data import SyntheticWSOL
from camfix.demo.train import to_model_input
from camfix.metrics import BoxAccuracy, PeakIoU, PxAP

__all__ = [
    "ALL_ROWS",
    "CRF_REFINE_STEPS",
    "CRF_THRESHOLDS",
    "NO_CRF_ROWS",
    "PAPER_PEAK_IOU",
    "ROWS",
    "Row",
    "RowResult",
    "Selection",
    "crf_params_for",
    "evaluate_rows",
]

logger = logging.getLogger(__name__)

#: PaS percentile of the LID 2020 paper.
PAS_PERCENTILE = 98.0
#: Side of the paper's input crops; the CRF's spatial kernel widths are scaled by ``image_size / 336``.
PAPER_CROP = 336
#: The CRF's first candidate operating points ``t``, tried on the held-out split; then the two neighbours of the
#: best so far at each of :data:`CRF_REFINE_STEPS` (11 refinements of the held-out images per CRF row in all).
CRF_THRESHOLDS: Tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(1, 10))
#: The steps of the CRF's coarse-to-fine search around its best candidate.
CRF_REFINE_STEPS: Tuple[float, ...] = (0.05,)
#: A pixel of a final map strictly between these counts as soft (not decided) in :attr:`RowResult.soft_pixels`.
SOFT_RANGE = (0.02, 0.98)


@dataclass(frozen=True)
class Row:
    """One row of the ablation: which classifier (``"gap"`` or ``"tap"``) and which fixes are on."""

    name: str
    classifier: str
    crf: bool
    pas: bool
    nwc: bool


#: The paper's Table 1: the fixes on top of the CRF.
ROWS: Tuple[Row, ...] = (
    Row("Baseline", "gap", crf=False, pas=False, nwc=False),
    Row("+CRF", "gap", crf=True, pas=False, nwc=False),
    Row("+CRF+PaS", "gap", crf=True, pas=True, nwc=False),
    Row("+CRF+PaS+NWC", "gap", crf=True, pas=True, nwc=True),
    Row("+CRF+PaS+NWC+TAP", "tap", crf=True, pas=True, nwc=True),
)

#: The fixes without the CRF (not in the paper's table), the demo's primary ablation: what each fix does by itself.
NO_CRF_ROWS: Tuple[Row, ...] = (
    Row("+PaS", "gap", crf=False, pas=True, nwc=False),
    Row("+PaS+NWC", "gap", crf=False, pas=True, nwc=True),
    Row("+PaS+NWC+TAP", "tap", crf=False, pas=True, nwc=True),
)

#: Every row, in the order the demo evaluates and records them.
ALL_ROWS: Tuple[Row, ...] = ROWS + NO_CRF_ROWS

#: Table 1 of the LID 2020 paper (ImageNet-1K validation, ResNet50-SE), Peak IoU in percent.
PAPER_PEAK_IOU: Dict[str, float] = {
    "Baseline": 52.54,
    "+CRF": 54.61,
    "+CRF+PaS": 55.63,
    "+CRF+PaS+NWC": 58.81,
    "+CRF+PaS+NWC+TAP": 63.70,
}


@dataclass(frozen=True)
class Selection:
    """How a row's operating point was chosen on the held-out split.

    Attributes:
        candidates: ``(T,)`` float64 operating points tried, increasing: the map thresholds ``k / 255`` of Peak
            IoU (no CRF), or the CRF's ``t`` (:data:`CRF_THRESHOLDS` and the refinements around the best).
        iou: ``(T,)`` float64 IoU in percent of the held-out masks at each (dataset-accumulated).
        chosen: the candidate with the highest IoU (the first, if several tie).
    """

    candidates: np.ndarray
    iou: np.ndarray
    chosen: float

    @classmethod
    def best_of(cls, candidates: np.ndarray, iou: np.ndarray) -> "Selection":
        """The selection of the candidate with the highest IoU (the first of equals)."""
        return cls(candidates, iou, float(candidates[int(np.argmax(iou))]))

    @property
    def best_iou(self) -> float:
        """The held-out IoU at :attr:`chosen`, percent."""
        return float(self.iou.max())


@dataclass(frozen=True)
class RowResult:
    """Scores of one row on the evaluation split; metrics in percent (100 is perfect).

    Attributes:
        row: the row.
        selection: how :attr:`operating_point` was chosen on the held-out split.
        iou: IoU of the masks at the operating point (intersections and unions summed over the images).
        box_acc_v2: BoxAccV2 of the masks: the share of images with any region's box at IoU >= 30, 50 and 70
            with the ground truth, averaged (MaxBoxAccV2's formula at the one operating point).
        gt_known_loc: share of images whose largest region's box has IoU >= 0.5 (at the operating point).
        top1_loc: the same, counted only where the classifier's top-1 class is right.
        soft_pixels: share of the final maps' pixels strictly inside :data:`SOFT_RANGE`: what a threshold sweep
            can sweep.
        peak_iou: Peak IoU (the threshold sweep, 256 levels), ``None`` for a CRF row.
        peak_threshold: its threshold, ``None`` for a CRF row.
        iou_curve: ``(256,)`` float64 IoU per threshold ``k / 255``, ``None`` for a CRF row.
        max_box_acc_v2: MaxBoxAccV2 (wsolevaluation reference mode, CAM thresholds step 0.01), ``None`` for a
            CRF row.
        pxap: PxAP (wsolevaluation reference mode), ``None`` for a CRF row.
        maps: ``(N, H, W)`` float32 final maps in ``[0, 1]`` (for a CRF row its refined object probability).
        masks: ``(N, H, W)`` bool masks at the operating point.
        boxes: ``(N, 4)`` int64 inclusive boxes of the masks' largest 8-connected regions (``-1`` where empty).
    """

    row: Row
    selection: Selection
    iou: float
    box_acc_v2: float
    gt_known_loc: float
    top1_loc: float
    soft_pixels: float
    peak_iou: Optional[float]
    peak_threshold: Optional[float]
    iou_curve: Optional[np.ndarray]
    max_box_acc_v2: Optional[float]
    pxap: Optional[float]
    maps: Tensor
    masks: Tensor
    boxes: Tensor

    @property
    def operating_point(self) -> float:
        """The threshold ``theta`` of the map (no CRF) or the CRF's ``t``, chosen on the held-out split."""
        return self.selection.chosen

    def scores(self) -> Dict[str, Optional[float]]:
        """The scalar results, for tables and JSON (``None`` where a score does not apply)."""
        return {
            "operating_point": self.operating_point,
            "held_out_iou": self.selection.best_iou,
            "iou": self.iou,
            "box_acc_v2": self.box_acc_v2,
            "gt_known_loc": self.gt_known_loc,
            "top1_loc": self.top1_loc,
            "soft_pixels": self.soft_pixels,
            "peak_iou": self.peak_iou,
            "peak_threshold": self.peak_threshold,
            "max_box_acc_v2": self.max_box_acc_v2,
            "pxap": self.pxap,
        }


def crf_params_for(image_size: int) -> DenseCRFParams:
    """camfix's CRF defaults with both spatial widths scaled from the paper's 336-pixel crops to ``image_size``.

    Scaling ``sxy`` with the image follows PSA (Ahn & Kwak, 2018), whose ``crf_inference`` divides both by its
    ``scale_factor``; the defaults are PSA's pairwise values.

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
        batch = slice(start, start + batch_size)
        result = camfix.class_maps(model, inputs[batch], labels[batch], clamp_negative=nwc)
        maps.append(result.maps)
        predictions.append(result.logits.argmax(1))
    return torch.cat(maps), torch.cat(predictions)


class _Maps:
    """The rows' maps before the CRF on one split, computed once per (classifier, NWC, PaS)."""

    def __init__(self, classifiers: Dict[str, nn.Module], data: SyntheticWSOL, batch_size: int) -> None:
        self.classifiers = classifiers
        self.inputs = to_model_input(data.images)
        self.labels = torch.from_numpy(data.labels)
        self.batch_size = batch_size
        self._maps: Dict[Tuple[str, bool, bool], Tuple[Tensor, Tensor]] = {}

    def __call__(self, row: Row) -> Tuple[Tensor, Tensor]:
        """``(maps, top-1 predictions)`` of ``row`` without its CRF."""
        key = (row.classifier, row.nwc, row.pas)
        if key not in self._maps:
            if row.pas:
                maps, predictions = self(replace(row, pas=False))
                self._maps[key] = camfix.saliency_maps(maps, PAS_PERCENTILE), predictions
            else:
                model = self.classifiers[row.classifier]
                self._maps[key] = _cam_maps(model, self.inputs, self.labels, row.nwc, self.batch_size)
        return self._maps[key]


def _iou_at(maps: Tensor, masks: Tensor, threshold: float) -> float:
    metric = PeakIoU(thresholds=[threshold])
    metric.update(maps, masks)
    return metric.compute().peak


def _select_threshold(maps: Tensor, data: SyntheticWSOL) -> Selection:
    """A row without the CRF: the level of Peak IoU's sweep with the highest IoU on the held-out split."""
    metric = PeakIoU()
    metric.update(maps, torch.from_numpy(data.masks))
    result = metric.compute()
    candidates, iou = result.thresholds.astype(np.float64), result.curve.astype(np.float64)
    return Selection.best_of(candidates, iou)


def _select_crf(
    maps: Sequence[Tensor], data: SyntheticWSOL, crf_params: DenseCRFParams, crf_workers: Optional[int]
) -> List[Selection]:
    """The CRF rows' ``t`` on the held-out split, for every row's maps of the same images at once (each image's
    CRF kernels are built once per stage for all rows): :data:`CRF_THRESHOLDS`, then the neighbours of each
    row's best at each of :data:`CRF_REFINE_STEPS`."""
    masks = torch.from_numpy(data.masks)
    tried: List[Dict[float, float]] = [{} for _ in maps]

    def try_points(rows: Sequence[int], points: Sequence[Sequence[float]]) -> None:
        stack = torch.stack([maps[row] for row in rows])
        refined = refine_saliency_sweep(data.images, stack, [list(p) for p in points], crf_params, workers=crf_workers)
        for index, row in enumerate(rows):
            tried[row].update((point, _iou_at(refined[index, k], masks, 0.5)) for k, point in enumerate(points[index]))

    try_points(range(len(maps)), [CRF_THRESHOLDS] * len(maps))
    for step in CRF_REFINE_STEPS:
        new: Dict[int, List[float]] = {}
        for row, results in enumerate(tried):
            best = max(sorted(results), key=lambda point: results[point])  # the smallest of equals
            neighbours = [round(best + sign * step, 4) for sign in (-1, 1)]
            new[row] = [point for point in neighbours if 0.0 < point < 1.0 and point not in results]
        # One call per number of new points (the rows of one call need as many operating points each).
        for length in sorted({len(points) for points in new.values()} - {0}):
            rows = [row for row, points in new.items() if len(points) == length]
            try_points(rows, [new[row] for row in rows])
    selections = []
    for results in tried:
        candidates = np.array(sorted(results), dtype=np.float64)
        iou = np.array([results[point] for point in sorted(results)], dtype=np.float64)
        selections.append(Selection.best_of(candidates, iou))
    return selections


def _score(row: Row, selection: Selection, maps: Tensor, predictions: Tensor, data: SyntheticWSOL) -> RowResult:
    """Score ``row`` on the evaluation split at its held-out operating point; ``maps`` are its final maps (for a
    CRF row, refined at that point)."""
    masks_true = torch.from_numpy(data.masks)
    labels = torch.from_numpy(data.labels)
    gt_boxes = torch.from_numpy(data.boxes)
    masks = maps > (0.5 if row.crf else selection.chosen)
    # The masks as 0/1 maps: every threshold of a sweep in [0, 1) gives back the masks themselves, so the sweeping
    # metrics score them at the operating point.
    binary = masks.float()
    at_point = BoxAccuracy(thresholds=[0.5])
    at_point.update(binary, gt_boxes, predictions, labels)
    point = at_point.compute()
    soft = float(((maps > SOFT_RANGE[0]) & (maps < SOFT_RANGE[1])).double().mean()) * 100.0
    sweep: Dict[str, object] = dict(peak_iou=None, peak_threshold=None, iou_curve=None, max_box_acc_v2=None, pxap=None)
    if not row.crf:
        peak = PeakIoU()
        peak.update(maps, masks_true)
        peak_result = peak.compute()
        pixel_ap = PxAP()
        pixel_ap.update(maps, masks_true)
        boxes_metric = BoxAccuracy()
        boxes_metric.update(maps, gt_boxes, predictions, labels)
        sweep = dict(
            peak_iou=peak_result.peak,
            peak_threshold=peak_result.peak_threshold,
            iou_curve=peak_result.curve,
            max_box_acc_v2=float(boxes_metric.compute().max_box_acc_v2),
            pxap=pixel_ap.compute().pxap,
        )
    return RowResult(
        row=row,
        selection=selection,
        iou=_iou_at(binary, masks_true, 0.5),
        box_acc_v2=float(point.max_box_acc_v2),
        gt_known_loc=float(point.gt_known_loc),
        top1_loc=float(point.top1_loc),
        soft_pixels=soft,
        maps=maps,
        masks=masks,
        boxes=camfix.mask_to_box(masks),
        **sweep,  # type: ignore[arg-type]
    )


def evaluate_rows(
    classifiers: Dict[str, nn.Module],
    data: SyntheticWSOL,
    held_out: SyntheticWSOL,
    rows: Sequence[Row] = ALL_ROWS,
    crf_params: Optional[DenseCRFParams] = None,
    crf_workers: Optional[int] = None,
    batch_size: int = 200,
    progress: bool = True,
) -> List[RowResult]:
    """Choose every row's operating point on ``held_out``, then score the row on ``data`` at that point.

    Args:
        classifiers: ``{"gap": model, "tap": model}``, trained, taking ImageNet-normalised ``(N, 3, H, W)``.
        data: the evaluation split (images ``(N, H, W, 3)`` uint8, masks, boxes, labels).
        held_out: the split the operating points are chosen on, disjoint from ``data`` (the ``"val"`` split).
        rows: the rows to evaluate; default :data:`ALL_ROWS` (the CRF rows need pydensecrf).
        crf_params: dense CRF parameters; default :func:`crf_params_for` the image size.
        crf_workers: CRF processes (None: one per CPU).
        batch_size: images per forward pass.
        progress: show a progress bar over the rows.

    Returns:
        One :class:`RowResult` per row, in order.
    """
    if crf_params is None:
        crf_params = crf_params_for(data.images.shape[1])
    evaluation_maps, held_out_maps = _Maps(classifiers, data, batch_size), _Maps(classifiers, held_out, batch_size)
    crf_rows = [row for row in rows if row.crf]
    selections: Dict[Row, Selection] = {}
    final: Dict[Row, Tensor] = {}
    if crf_rows:
        # All CRF rows together: the CRF builds each image's kernels once for all of them.
        chosen = _select_crf([held_out_maps(row)[0] for row in crf_rows], held_out, crf_params, crf_workers)
        selections.update(zip(crf_rows, chosen))
        stack = torch.stack([evaluation_maps(row)[0] for row in crf_rows])
        points = [[selections[row].chosen] for row in crf_rows]
        refined = refine_saliency_sweep(data.images, stack, points, crf_params, workers=crf_workers)
        final.update((row, refined[index, 0]) for index, row in enumerate(crf_rows))
    results = []
    for row in tqdm(rows, desc="evaluate", unit="row", disable=not progress, leave=False):
        maps, predictions = evaluation_maps(row)
        if not row.crf:
            selections[row] = _select_threshold(held_out_maps(row)[0], held_out)
        results.append(_score(row, selections[row], final.get(row, maps), predictions, data))
        logger.debug("%s: %s", row.name, results[-1].scores())
    return results
