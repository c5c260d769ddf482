"""Class activation maps, with NWC (negative weight clamping), and their resizing and normalisation.

A feature channel with a negative classifier weight for class ``k`` can still fire inside the object (a part
shared with another class, say); in the CAM sum it then cancels positive evidence exactly where the object is.
NWC builds the map from the positive weights only (paper, section 2.3).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ._validation import (
    check_bool,
    check_classes,
    check_finite,
    check_size,
    check_spatial_nonempty,
    check_tensor,
)

__all__ = ["cam", "resize_maps", "normalize_maps"]

INTERPOLATION_MODES = ("bilinear", "bicubic")
#: The most pixels ``H * W`` of one resized map: OpenCV's limit on an image (``CV_IO_MAX_IMAGE_PIXELS``), so the
#: largest image a map can be meant for. A larger size is a mistake (a byte count, a product of sides) that would
#: otherwise exhaust memory: 2**30 float32 pixels already take 4 GiB per map.
MAX_MAP_PIXELS = 2**30


def cam(
    features: Tensor,
    fc_weight: Tensor,
    clamp_negative: bool = True,
    classes: Optional[Union[Tensor, Sequence[int]]] = None,
) -> Tensor:
    """Class activation maps ``M_k = sum_c w[k, c] * F_c`` (with NWC: ``max(w[k, c], 0)``).

    The classifier bias is ignored (it shifts a map by a constant, which min-max normalisation removes). The map
    is built from the raw features, whatever pooling trained the model (GAP or TAP). Differentiable in both
    arguments.

    Args:
        features: last feature map ``F`` of shape ``(N, C, h, w)``, floating point, finite.
        fc_weight: classifier weight, ``(K, C)`` as in ``nn.Linear`` or ``(K, C, 1, 1)`` as in a 1x1
            ``nn.Conv2d``; floating point, finite.
        clamp_negative: apply NWC (the paper's fix); ``False`` gives the original CAM.
        classes: ``None`` for the maps of all ``K`` classes, or one class index per image, shape ``(N,)``
            (the ground-truth class for GT-known localization, the top-1 prediction for top-1 localization).

    Returns:
        Maps of shape ``(N, K, h, w)``, or ``(N, h, w)`` when ``classes`` is given; float32 (float64 if either
        input is float64), on the device of ``features``. Unnormalised: see :func:`normalize_maps`.

    For one image, pass its features as a batch of one, ``features[None]`` of shape ``(1, C, h, w)`` (a
    ``(C, h, w)`` tensor is rejected rather than guessed at), and take ``[0]`` of the result: ``cam(f[None],
    w, classes=[k])[0]`` is the ``(h, w)`` map of class ``k``, which :func:`resize_maps`,
    :func:`normalize_maps` and the threshold functions accept as it is.
    """
    check_tensor("features", features, 4, shape_hint="(N, C, h, w)")
    check_tensor("fc_weight", fc_weight, (2, 4), shape_hint="(K, C) or (K, C, 1, 1)")
    if fc_weight.dim() == 4 and fc_weight.shape[2:] != (1, 1):
        raise ValueError(f"fc_weight of a conv classifier must be (K, C, 1, 1), got shape {tuple(fc_weight.shape)}")
    if fc_weight.shape[1] != features.shape[1]:
        raise ValueError(
            f"fc_weight has {fc_weight.shape[1]} input channels but features have C={features.shape[1]} "
            f"(fc_weight shape {tuple(fc_weight.shape)}, features shape {tuple(features.shape)})"
        )
    fc_weight = fc_weight.flatten(1)
    clamp_negative = check_bool("clamp_negative", clamp_negative)
    if classes is not None:
        classes = check_classes("classes", classes, features.shape[0], fc_weight.shape[0]).to(features.device)
    check_finite("fc_weight", fc_weight)
    dtype = torch.float64 if torch.float64 in (features.dtype, fc_weight.dtype) else torch.float32
    weight = fc_weight.to(device=features.device, dtype=dtype)
    if clamp_negative:
        weight = weight.clamp(min=0)
    if classes is None:
        maps = torch.einsum("nchw,kc->nkhw", features.to(dtype), weight)
    else:
        maps = torch.einsum("nchw,nc->nhw", features.to(dtype), weight[classes])
    # Any NaN or inf in features reaches the maps (inf * 0 is NaN), so checking the small output instead of the
    # large input catches the same inputs at a fraction of the cost; the input is read only to name the cause.
    try:
        check_finite("maps", maps)
    except ValueError:
        check_finite("features", features)
        largest_feature, largest_weight = (float(t.detach().abs().max()) for t in (features, fc_weight))
        raise ValueError(
            f"features and fc_weight give maps beyond the range of {dtype} (largest |features| {largest_feature:g}, "
            f"largest |fc_weight| {largest_weight:g}): scale them down or pass them as float64"
        ) from None
    return maps


def resize_maps(
    maps: Tensor, size: Union[Tuple[int, int], Sequence[int]], mode: str = "bicubic"
) -> Tensor:
    """Resize maps, or one map, to the image size ``(H, W)``.

    ``bicubic`` (the default) follows the reference WSOL evaluator, which resizes with OpenCV's ``INTER_CUBIC``;
    both use the cubic kernel with ``a = -0.75`` and half-pixel centres (``align_corners=False``). Bicubic
    overshoots slightly around peaks, which :func:`normalize_maps` absorbs.

    Resizing a constant map adds float noise (a few units of the dtype's epsilon, see :func:`normalize_maps`),
    which :func:`normalize_maps` recognises, so the map still normalises to zeros.

    Args:
        maps: ``(N, h, w)``, ``(N, K, h, w)`` or one map ``(h, w)``, floating point, finite; ``h, w >= 1``
            (``N = 0`` or ``K = 0`` give empty maps).
        size: output ``(H, W)``, positive ints, at most ``2**30`` pixels ``H * W`` (OpenCV's limit on an image).
        mode: ``"bicubic"`` or ``"bilinear"``.

    Returns:
        Maps of shape ``(N, H, W)``, ``(N, K, H, W)`` or ``(H, W)``, same dtype and device (``maps`` itself when
        it already has the size).
    """
    check_tensor("maps", maps, (2, 3, 4), shape_hint="(N, h, w), (N, K, h, w) or (h, w)", allow_empty=True)
    check_spatial_nonempty("maps", maps)
    size = check_size("size", size)
    if size[0] * size[1] > MAX_MAP_PIXELS:
        raise ValueError(
            f"size must have at most {MAX_MAP_PIXELS} pixels H * W (OpenCV's limit on an image), got {size}, "
            f"{size[0] * size[1]} pixels"
        )
    # An array is not a mode even when it compares equal to one (np.array(["bilinear"]) == "bilinear").
    if not isinstance(mode, str) or mode not in INTERPOLATION_MODES:
        raise ValueError(f"mode must be one of {INTERPOLATION_MODES}, got {mode!r}")
    check_finite("maps", maps)
    if maps.shape[-2:] == size:
        return maps
    if maps.numel() == 0:  # F.interpolate refuses zero channels (K = 0)
        return maps.new_empty(maps.shape[:-2] + size)
    # F.interpolate takes (N, C, h, w): a batch of maps is N one-channel images, one map a single one-channel image.
    four_dims = {4: maps, 3: maps.unsqueeze(1), 2: maps[None, None]}[maps.dim()]
    resized = F.interpolate(four_dims, size=size, mode=mode, align_corners=False)
    return resized if maps.dim() == 4 else resized.reshape(maps.shape[:-2] + size)


def normalize_maps(maps: Tensor) -> Tensor:
    """Min-max normalise each map over its last two dimensions to ``[0, 1]``: ``(map - min) / (max - min)``.

    A constant map becomes all zeros (as in the reference evaluator), never NaN; so does a map that is constant
    up to float noise, ``max - min <= tol * max(|min|, |max|)`` with ``tol = max(4 eps(dtype), 128 eps(float32))``
    (1.5e-5 for float32 and float64, 3.9e-3 for float16, 3.1e-2 for bfloat16). A constant resized with bicubic
    interpolation, such as the map of a 1x1 feature map at image size, carries a few eps of rounding noise that
    min-max normalisation would otherwise stretch to a full ``[0, 1]`` map. The threshold functions of
    :mod:`camfix.thresholds` apply the same rule, so such a map has an empty mask and no box. (The reference
    evaluator tests ``max == min`` exactly; the two differ only on such maps, where it boxes the noise.)

    Args:
        maps: ``(..., H, W)`` (one map ``(H, W)``, a batch ``(N, H, W)``, ...), floating point, finite.

    Returns:
        Maps of the same shape, dtype and device, with values in ``[0, 1]`` (0 at the minimum, 1 at the maximum,
        all 0 for a constant map).
    """
    check_tensor("maps", maps, range(2, 9), shape_hint="(..., H, W)", allow_empty=True)
    check_spatial_nonempty("maps", maps)
    check_finite("maps", maps)
    low = maps.amin(dim=(-2, -1), keepdim=True)
    high = maps.amax(dim=(-2, -1), keepdim=True)
    constant = _is_constant(low, high)
    # Halves: max - min of a finite map can overflow the dtype (float16 [-6e4, 6e4]), max/2 - min/2 cannot.
    half_low = low / 2
    half_span = torch.where(constant, 1, high / 2 - half_low)
    return torch.where(constant, 0, (maps / 2 - half_low) / half_span)


def _constant_tolerance(dtype: torch.dtype) -> float:
    """Relative range ``(max - min) / max(|min|, |max|)`` at or below which a map of ``dtype`` counts as
    constant: ``max(4 eps(dtype), 128 eps(float32))``."""
    # A map that is constant in exact arithmetic leaves a resize with rounding noise, which min-max normalisation
    # would stretch to a full [0, 1] map whose "object" is that noise. Measured on constants from 1e-8 to 1e8
    # resized from 1x1..56x56 to sizes up to 512 (torch 2.13, CPU): float32 and float64 bicubic up to 24.5 and
    # 26.8 eps of the dtype (16 taps, kernel weights of both signs), bilinear up to 3.5 eps; float16 and bfloat16
    # are interpolated in float32 and rounded once, up to 2.1 eps of their own. OpenCV's float32 INTER_CUBIC and
    # INTER_LINEAR: up to 4.7 eps; its float64 INTER_LINEAR computes in float32 (3.6 float32 eps). 128 float32 eps
    # (1.5e-5) is 5x the worst float32 noise; float64 gets the same floor because its maps are often float32 maps
    # cast up (saved score maps, that OpenCV path). Real maps have far larger ranges: 1e-3 of the magnitude, which
    # the tests check still normalises, is 65x above. 4 eps covers the one rounding of float16 and bfloat16.
    return max(4 * torch.finfo(dtype).eps, 128 * torch.finfo(torch.float32).eps)


def _is_constant(low: Tensor, high: Tensor) -> Tensor:
    """Which maps are constant up to float noise (see :func:`normalize_maps`), from their minima and maxima.

    Args:
        low: each map's minimum, any shape, floating point, finite.
        high: each map's maximum, the shape and dtype of ``low``.

    Returns:
        Bool tensor of the shape of ``low``: ``max - min <= _constant_tolerance(dtype) * max(|min|, |max|)``. An
        exactly constant map (all-zero included) is constant.
    """
    # Halves, as in normalize_maps: high - low could overflow.
    half_magnitude = torch.maximum(low.abs(), high.abs()) / 2
    return high / 2 - low / 2 <= _constant_tolerance(low.dtype) * half_magnitude
