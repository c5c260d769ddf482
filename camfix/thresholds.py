"""PaS (percentile as a thresholding standard): thresholds, masks and the box of each map.

CAM thresholds the map at ``theta * max(map)``. When the strongest activations pile up on a small discriminative
part, that maximum is an outlier and the threshold cuts away most of the object. The ``pct``-th percentile is a
robust stand-in for the maximum: ``tau = theta * percentile_pct(map)`` (paper, section 2.4; LID paper
``pct = 98``, ECCV code ``pct = 90, theta = 0.35``). ``pct = 100`` recovers the max-based threshold.

Boxes follow camfix's one convention (:mod:`camfix.boxes`): ``(x0, y0, x1, y1)`` int64 pixel indices, ``x1`` and
``y1`` *inclusive*; a mask with no foreground pixel gives :data:`~camfix.boxes.NO_BOX` ``(-1, -1, -1, -1)``.

Every function takes a batch ``(N, H, W)`` or one map ``(H, W)``, and returns one map's result without the
batch dimension: a 0-d threshold, an ``(H, W)`` mask, a ``(4,)`` box.

A map that is constant up to float noise (the rule of :func:`camfix.normalize_maps`: ``max - min`` at most
``max(4 eps(dtype), 128 eps(float32))`` of ``max(|min|, |max|)``, e.g. a 1x1 feature map's map resized to the
image) holds no localization evidence: its threshold is its maximum, so its mask is empty and its box is
:data:`~camfix.boxes.NO_BOX`, whether or not it was normalised first (normalised, it is all zeros).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ._validation import check_batch_or_single, check_finite, check_number, unbatch
from .boxes import _largest_region_boxes
from .maps import _is_constant

__all__ = [
    "percentile",
    "percentile_threshold",
    "percentile_normalize",
    "threshold_masks",
    "percentile_box",
]

#: LID 2020 paper's percentile for PaS.
DEFAULT_PCT = 98.0
#: Localization threshold of the ECCV 2020 code.
DEFAULT_THETA_LOC = 0.35


class _CheckedMaps(NamedTuple):
    """Maps that passed :func:`_check_maps`, as a batch, with what every threshold function needs of them."""

    batch: Tensor  # (N, H, W), the maps (a single map with a leading dimension of 1)
    single: bool  # the caller passed one (H, W) map: drop the batch dimension from the result
    low: Tensor  # (N,) each map's minimum
    high: Tensor  # (N,) each map's maximum


def _check_maps(name: str, maps: object) -> _CheckedMaps:
    """Check ``maps`` ``(N, H, W)`` or ``(H, W)``: floating point, non-empty, finite and non-negative."""
    batch, single = check_batch_or_single(name, maps, 2, item_hint="(H, W)")
    low, high = batch.detach().amin(dim=(1, 2)), batch.detach().amax(dim=(1, 2))
    # The per-map extremes (needed for the constant-map rule) are NaN or inf exactly when the map holds one, so
    # the full pass of check_finite, which counts them for the message, runs only when it is going to raise.
    if not bool((torch.isfinite(low) & torch.isfinite(high)).all()):
        check_finite(name, batch)
    minimum = float(low.min())
    if minimum < 0:
        raise ValueError(
            f"{name} must be non-negative (a threshold relative to a percentile is meaningless for signed "
            f"maps); normalise with camfix.normalize_maps first, got minimum {minimum:g}"
        )
    return _CheckedMaps(batch, single, low, high)


def percentile(maps: Tensor, pct: float) -> Tensor:
    """The ``pct``-th percentile of each map, with linear interpolation between order statistics.

    Same definition as ``numpy.percentile(..., method="linear")``: with the ``n`` values sorted as ``v``, the
    position ``p = pct / 100 * (n - 1)`` gives ``v[floor(p)] + (p - floor(p)) * (v[ceil(p)] - v[floor(p)])``.
    Computed by partial selection (``topk`` of the tail that holds both order statistics), with no size limit
    (unlike ``torch.quantile``). A plain statistic: maps of any sign, constant ones included.

    Args:
        maps: ``(N, H, W)`` or one map ``(H, W)``, floating point (any), finite.
        pct: percentile in ``[0, 100]``; 100 is the maximum, 0 the minimum.

    Returns:
        ``(N,)`` tensor, 0-d for one map, in the dtype of ``maps``.
    """
    batch, single = check_batch_or_single("maps", maps, 2, item_hint="(H, W)")
    check_finite("maps", batch)
    return unbatch(_percentile(batch, check_number("pct", pct, 0.0, 100.0)), single)


def _percentile(maps: Tensor, pct: float) -> Tensor:
    """:func:`percentile` of a checked batch ``(N, H, W)``: ``(N,)``."""
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


def _pas_thresholds(maps: _CheckedMaps, theta: float, pct: float) -> Tensor:
    """:func:`percentile_threshold` of checked maps: ``(N,)``."""
    theta = check_number("theta", theta, 0.0, 1.0)
    thresholds = theta * _percentile(maps.batch, check_number("pct", pct, 0.0, 100.0))
    # A map with no contrast has no foreground, as normalising it would give zeros: its maximum as threshold
    # leaves its mask empty under the strict >.
    return torch.where(_is_constant(maps.low, maps.high), maps.high, thresholds)


def _pas_masks(maps: _CheckedMaps, theta: float, pct: float) -> Tensor:
    """:func:`threshold_masks` of checked maps: ``(N, H, W)`` bool."""
    return maps.batch > _pas_thresholds(maps, theta, pct)[:, None, None]


def percentile_threshold(maps: Tensor, theta: float = DEFAULT_THETA_LOC, pct: float = DEFAULT_PCT) -> Tensor:
    """PaS threshold ``tau = theta * percentile_pct(map)`` for each map.

    A map that is constant up to float noise (see the module description) gets its maximum instead, so that
    ``map > tau`` is empty; for an all-zero map both are 0.

    Args:
        maps: ``(N, H, W)`` or one map ``(H, W)``, floating point, non-negative and finite; usually min-max
            normalised to ``[0, 1]``.
        theta: ``theta_loc`` in ``[0, 1]``.
        pct: percentile in ``[0, 100]``; paper 98, 100 gives the classic ``theta * max``.

    Returns:
        ``(N,)`` thresholds, 0-d for one map, in the dtype of ``maps``.
    """
    checked = _check_maps("maps", maps)
    return unbatch(_pas_thresholds(checked, theta, pct), checked.single)


def percentile_normalize(maps: Tensor, pct: float = DEFAULT_PCT) -> Tensor:
    """PaS as a map transform, for metrics that sweep every threshold: ``min(map / percentile_pct(map), 1)``.

    For every ``theta`` in ``[0, 1)``, ``result > theta`` is exactly ``map > percentile_threshold(map, theta)``,
    the PaS mask, so sweeping a threshold over the result (Peak IoU, MaxBoxAccV2, PxAP) sweeps PaS's
    ``theta_loc``. Values above the percentile become 1 (they are foreground at every such ``theta``). A map whose
    percentile is 0 becomes its support, 1 where ``map > 0`` and 0 elsewhere, and a map that is constant up to
    float noise becomes zeros (its PaS mask is empty), which keeps that equivalence. ``pct = 100`` leaves a
    min-max normalised map unchanged.

    Args:
        maps: ``(N, H, W)`` or one map ``(H, W)``, floating point, non-negative and finite (usually min-max
            normalised).
        pct: percentile in ``[0, 100]``; paper 98.

    Returns:
        The shape of ``maps``, values in ``[0, 1]``, same dtype and device.
    """
    checked = _check_maps("maps", maps)
    batch = checked.batch
    reference = _percentile(batch, check_number("pct", pct, 0.0, 100.0))[:, None, None]
    scaled = (batch / torch.where(reference > 0, reference, 1)).clamp(max=1)
    result = torch.where(reference > 0, scaled, (batch > 0).to(batch.dtype))
    return unbatch(torch.where(_is_constant(checked.low, checked.high)[:, None, None], 0, result), checked.single)


def threshold_masks(maps: Tensor, theta: float = DEFAULT_THETA_LOC, pct: float = DEFAULT_PCT) -> Tensor:
    """Foreground masks ``map > percentile_threshold(map, theta, pct)`` (strict ``>``).

    Args:
        maps: ``(N, H, W)`` or one map ``(H, W)``, floating point, non-negative and finite.
        theta: ``theta_loc`` in ``[0, 1]``.
        pct: percentile in ``[0, 100]``.

    Returns:
        Bool masks of the shape of ``maps``. A map that is constant up to float noise (all-zero included, so any
        constant map after :func:`camfix.normalize_maps`) gives an empty mask.
    """
    checked = _check_maps("maps", maps)
    return unbatch(_pas_masks(checked, theta, pct), checked.single)


def percentile_box(cam: Tensor, theta: float = DEFAULT_THETA_LOC, pct: float = DEFAULT_PCT) -> Tensor:
    """PaS boxes: the box of the largest connected region of ``cam > percentile_threshold(cam, theta, pct)``.

    Args:
        cam: ``(N, H, W)`` maps or one map ``(H, W)`` at image size, floating point, non-negative and finite
            (min-max normalised, as :func:`camfix.normalize_maps` gives).
        theta: ``theta_loc`` in ``[0, 1]``.
        pct: percentile in ``[0, 100]``; paper 98; 100 gives the classic max-based CAM box.

    Returns:
        ``(N, 4)`` int64 boxes ``(x0, y0, x1, y1)`` with inclusive ``x1, y1``, ``(4,)`` for one map;
        :data:`~camfix.boxes.NO_BOX` for a map with no pixel above the threshold (e.g. an all-zero or constant map).
    """
    checked = _check_maps("cam", cam)
    return unbatch(_largest_region_boxes(_pas_masks(checked, theta, pct)), checked.single)
