"""PaS (percentile as a thresholding standard), masks and boxes.

CAM thresholds the map at ``theta * max(map)``. When the strongest activations pile up on a small discriminative
part, that maximum is an outlier and the threshold cuts away most of the object. The ``pct``-th percentile is a
robust stand-in for the maximum: ``tau = theta * percentile_pct(map)`` (paper, section 2.4; LID paper
``pct = 98``, ECCV code ``pct = 90, theta = 0.35``). ``pct = 100`` recovers the max-based threshold.

Box convention, used everywhere in camfix: ``(x0, y0, x1, y1)`` integer pixel indices, ``x1`` and ``y1``
*inclusive* (the last column and row of the region), so a box's area is ``(x1 - x0 + 1) * (y1 - y0 + 1)``.
A mask with no foreground pixel has no box and gives the sentinel :data:`NO_BOX` ``(-1, -1, -1, -1)``.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

from ._validation import check_finite, check_number, check_tensor

__all__ = [
    "NO_BOX",
    "percentile",
    "percentile_threshold",
    "percentile_normalize",
    "threshold_masks",
    "mask_to_box",
    "percentile_box",
]

#: The box of an empty mask.
NO_BOX = (-1, -1, -1, -1)
#: LID 2020 paper's percentile for PaS.
DEFAULT_PCT = 98.0
#: Localization threshold of the ECCV 2020 code.
DEFAULT_THETA_LOC = 0.35


def _check_maps(name: str, maps: Tensor) -> Tensor:
    check_tensor(name, maps, 3, shape_hint="(N, H, W)")
    check_finite(name, maps)
    low = float(maps.detach().amin())
    if low < 0:
        raise ValueError(
            f"{name} must be non-negative (a threshold relative to a percentile is meaningless for signed "
            f"maps); normalise with camfix.normalize_maps first, got minimum {low:g}"
        )
    return maps


def percentile(maps: Tensor, pct: float) -> Tensor:
    """The ``pct``-th percentile of each map, with linear interpolation between order statistics.

    Same definition as ``numpy.percentile(..., method="linear")``: with the ``n`` values sorted as ``v``, the
    position ``p = pct / 100 * (n - 1)`` gives ``v[floor(p)] + (p - floor(p)) * (v[ceil(p)] - v[floor(p)])``.
    Computed by partial selection (``topk`` of the tail that holds both order statistics), with no size limit
    (unlike ``torch.quantile``).

    Args:
        maps: ``(N, H, W)``, floating point.
        pct: percentile in ``[0, 100]``; 100 is the maximum, 0 the minimum.

    Returns:
        ``(N,)`` tensor in the dtype of ``maps``.
    """
    check_tensor("maps", maps, 3, shape_hint="(N, H, W)")
    check_finite("maps", maps)
    return _percentile(maps, check_number("pct", pct, 0.0, 100.0))


def _percentile(maps: Tensor, pct: float) -> Tensor:
    """:func:`percentile` of checked arguments."""
    values = maps.flatten(1)
    count = values.shape[1]
    position = pct / 100.0 * (count - 1)
    lower = int(np.floor(position))
    upper = min(lower + 1, count - 1)
    # One partial selection of the tail that holds both order statistics, then two cheap picks inside it: for
    # the paper's pct = 98 the tail is 2% of the pixels, twice as fast as two kthvalue passes over them all.
    if lower >= count // 2:
        tail = values.topk(count - lower, dim=1, sorted=False).values  # v[lower:], unordered
        low_value = tail.amin(dim=1)
        high_value = tail.kthvalue(min(2, tail.shape[1]), dim=1).values
    else:
        tail = values.topk(upper + 1, dim=1, largest=False, sorted=False).values  # v[:upper + 1], unordered
        high_value = tail.amax(dim=1)
        low_value = tail.kthvalue(lower + 1, dim=1).values
    if upper == lower or position == lower:
        return low_value
    return low_value + (position - lower) * (high_value - low_value)


def percentile_threshold(maps: Tensor, theta: float = DEFAULT_THETA_LOC, pct: float = DEFAULT_PCT) -> Tensor:
    """PaS threshold ``tau = theta * percentile_pct(map)`` for each map.

    Args:
        maps: ``(N, H, W)``, floating point, non-negative and finite; usually min-max normalised to ``[0, 1]``.
        theta: ``theta_loc`` in ``[0, 1]``.
        pct: percentile in ``[0, 100]``; paper 98, 100 gives the classic ``theta * max``.

    Returns:
        ``(N,)`` thresholds in the dtype of ``maps``.
    """
    _check_maps("maps", maps)
    theta = check_number("theta", theta, 0.0, 1.0)
    return theta * _percentile(maps, check_number("pct", pct, 0.0, 100.0))


def percentile_normalize(maps: Tensor, pct: float = DEFAULT_PCT) -> Tensor:
    """PaS as a map transform, for metrics that sweep every threshold: ``min(map / percentile_pct(map), 1)``.

    For every ``theta`` in ``[0, 1)``, ``result > theta`` is exactly ``map > theta * percentile_pct(map)``, the
    PaS mask, so sweeping a threshold over the result (Peak IoU, MaxBoxAccV2, PxAP) sweeps PaS's ``theta_loc``.
    Values above the percentile become 1 (they are foreground at every such ``theta``). A map whose percentile
    is 0 becomes its support, 1 where ``map > 0`` and 0 elsewhere, which keeps that equivalence. ``pct = 100``
    leaves a min-max normalised map unchanged.

    Args:
        maps: ``(N, H, W)``, floating point, non-negative and finite (usually min-max normalised).
        pct: percentile in ``[0, 100]``; paper 98.

    Returns:
        ``(N, H, W)`` in ``[0, 1]``, same dtype and device.
    """
    _check_maps("maps", maps)
    reference = _percentile(maps, check_number("pct", pct, 0.0, 100.0))[:, None, None]
    scaled = (maps / torch.where(reference > 0, reference, 1)).clamp(max=1)
    return torch.where(reference > 0, scaled, (maps > 0).to(maps.dtype))


def threshold_masks(maps: Tensor, theta: float = DEFAULT_THETA_LOC, pct: float = DEFAULT_PCT) -> Tensor:
    """Foreground masks ``map > theta * percentile_pct(map)`` (strict ``>``).

    Args:
        maps: ``(N, H, W)``, floating point, non-negative and finite.
        theta: ``theta_loc`` in ``[0, 1]``.
        pct: percentile in ``[0, 100]``.

    Returns:
        ``(N, H, W)`` bool masks. An all-zero map (so any constant map after :func:`camfix.normalize_maps`)
        gives an empty mask.
    """
    return maps > percentile_threshold(maps, theta, pct)[:, None, None]


def mask_to_box(masks: Tensor) -> Tensor:
    """Box around the largest 8-connected region of each mask.

    The largest region is the one with the most pixels; among equal sizes the first in raster order of its
    top-left-most pixel wins. An empty mask gives :data:`NO_BOX`.

    Args:
        masks: ``(N, H, W)`` bool tensor, any device (components are labelled on the CPU with OpenCV).

    Returns:
        ``(N, 4)`` int64 boxes ``(x0, y0, x1, y1)``, inclusive, on the device of ``masks``.
    """
    check_tensor("masks", masks, 3, shape_hint="(N, H, W)", floating=False, allow_empty=True)
    if masks.dtype != torch.bool:
        raise TypeError(f"masks must be a bool tensor, got dtype {masks.dtype}")
    boxes = np.full((masks.shape[0], 4), -1, dtype=np.int64)
    # A bool tensor reinterpreted as uint8 is free; .to(torch.uint8) would copy it.
    for index, mask in enumerate(masks.cpu().contiguous().view(torch.uint8).numpy()):
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
        if count < 2:  # label 0 is the background
            continue
        areas = stats[1:, cv2.CC_STAT_AREA]
        tied = 1 + np.flatnonzero(areas == areas.max())
        largest = int(tied[0])
        if len(tied) > 1:
            # OpenCV numbers regions in its own block scan order, not raster order; break ties by each region's
            # first pixel in raster order (rare, so the sort is paid only here).
            _, first_pixel = np.unique(labels.ravel(), return_index=True)
            largest = int(tied[np.argmin(first_pixel[tied])])
        x, y, w, h = stats[largest, :4]
        boxes[index] = (x, y, x + w - 1, y + h - 1)
    return torch.from_numpy(boxes).to(masks.device)


def percentile_box(cam: Tensor, theta: float = DEFAULT_THETA_LOC, pct: float = DEFAULT_PCT) -> Tensor:
    """PaS boxes: the box of the largest connected region of ``cam > theta * percentile_pct(cam)``.

    Args:
        cam: ``(N, H, W)`` maps at image size, floating point, non-negative and finite (min-max normalised, as
            :func:`camfix.normalize_maps` gives).
        theta: ``theta_loc`` in ``[0, 1]``.
        pct: percentile in ``[0, 100]``; paper 98; 100 gives the classic max-based CAM box.

    Returns:
        ``(N, 4)`` int64 boxes ``(x0, y0, x1, y1)`` with inclusive ``x1, y1``; :data:`NO_BOX` for a map with no
        pixel above the threshold (e.g. an all-zero map).
    """
    return mask_to_box(threshold_masks(cam, theta, pct))
