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

from ._validation import check_classes, check_finite, check_size, check_tensor

__all__ = ["cam", "resize_maps", "normalize_maps"]

INTERPOLATION_MODES = ("bilinear", "bicubic")


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
    """
    check_tensor("features", features, 4, shape_hint="(N, C, h, w)")
    check_tensor("fc_weight", fc_weight, (2, 4), shape_hint="(K, C) or (K, C, 1, 1)")
    if fc_weight.dim() == 4:
        if fc_weight.shape[2:] != (1, 1):
            raise ValueError(
                f"fc_weight of a conv classifier must be (K, C, 1, 1), got shape {tuple(fc_weight.shape)}"
            )
        fc_weight = fc_weight.flatten(1)
    if fc_weight.shape[1] != features.shape[1]:
        raise ValueError(
            f"fc_weight has {fc_weight.shape[1]} input channels but features have C={features.shape[1]} "
            f"(fc_weight shape {tuple(fc_weight.shape)}, features shape {tuple(features.shape)})"
        )
    if not isinstance(clamp_negative, bool):
        raise TypeError(f"clamp_negative must be a bool, got {type(clamp_negative).__name__} {clamp_negative!r}")
    check_finite("fc_weight", fc_weight)
    dtype = torch.float64 if torch.float64 in (features.dtype, fc_weight.dtype) else torch.float32
    features = features.to(dtype)
    weight = fc_weight.to(device=features.device, dtype=dtype)
    if clamp_negative:
        weight = weight.clamp(min=0)
    if classes is None:
        maps = torch.einsum("nchw,kc->nkhw", features, weight)
    else:
        classes = check_classes("classes", classes, features.shape[0], weight.shape[0]).to(features.device)
        maps = torch.einsum("nchw,nc->nhw", features, weight[classes])
    # Any NaN or inf in features reaches the maps (inf * 0 is NaN), so checking the small output instead of the
    # large input catches the same inputs at a fraction of the cost.
    check_finite("features (through the maps they give)", maps)
    return maps


def resize_maps(
    maps: Tensor, size: Union[Tuple[int, int], Sequence[int]], mode: str = "bicubic"
) -> Tensor:
    """Resize maps to the image size ``(H, W)``.

    ``bicubic`` (the default) follows the reference WSOL evaluator, which resizes with OpenCV's ``INTER_CUBIC``;
    both use the cubic kernel with ``a = -0.75`` and half-pixel centres (``align_corners=False``). Bicubic
    overshoots slightly around peaks, which :func:`normalize_maps` absorbs.

    Args:
        maps: ``(N, h, w)`` or ``(N, K, h, w)``, floating point.
        size: output ``(H, W)``.
        mode: ``"bicubic"`` or ``"bilinear"``.

    Returns:
        Maps of shape ``(N, H, W)`` or ``(N, K, H, W)``, same dtype and device.
    """
    check_tensor("maps", maps, (3, 4), shape_hint="(N, h, w) or (N, K, h, w)", allow_empty=True)
    size = check_size("size", size)
    if mode not in INTERPOLATION_MODES:
        raise ValueError(f"mode must be one of {INTERPOLATION_MODES}, got {mode!r}")
    if maps.shape[-2:] == size:
        return maps
    batched = maps if maps.dim() == 4 else maps.unsqueeze(1)
    resized = F.interpolate(batched, size=size, mode=mode, align_corners=False)
    return resized if maps.dim() == 4 else resized.squeeze(1)


def normalize_maps(maps: Tensor) -> Tensor:
    """Min-max normalise each map over its last two dimensions to ``[0, 1]``.

    A constant map becomes all zeros (as in the reference evaluator), never NaN.

    Args:
        maps: ``(..., H, W)``, floating point, finite.

    Returns:
        Maps of the same shape, dtype and device, with values in ``[0, 1]``.
    """
    check_tensor("maps", maps, range(2, 9), shape_hint="(..., H, W)", allow_empty=True)
    check_finite("maps", maps)
    # Halves first: max - min of a finite map can overflow the dtype (float16 [-6e4, 6e4]), max/2 - min/2 cannot.
    half_low = maps.amin(dim=(-2, -1), keepdim=True) / 2
    half_span = maps.amax(dim=(-2, -1), keepdim=True) / 2 - half_low
    return torch.where(half_span > 0, (maps / 2 - half_low) / torch.where(half_span > 0, half_span, 1), 0)
