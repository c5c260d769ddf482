"""``localize``: the one call a WSOL code base makes to get maps, masks and boxes from a trained classifier."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ._validation import (
    check_bool,
    check_classes,
    check_dtype,
    check_finite,
    check_int,
    check_number,
    check_size,
    check_tensor,
    describe,
)
from .adapters import Classifier, FeatureCapture, classifier_weight, resolve_feature_source
from .maps import INTERPOLATION_MODES, cam, normalize_maps, resize_maps
from .boxes import mask_to_box
from .thresholds import DEFAULT_PCT, DEFAULT_THETA_LOC, percentile_normalize, percentile_threshold

if TYPE_CHECKING:
    from .crf import DenseCRFParams

__all__ = ["LocalizationResult", "localize", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class LocalizationResult:
    """What :func:`localize` returns; every tensor is on the device of the images.

    Attributes:
        maps: ``(N, H, W)`` float32 class activation maps at image size, min-max normalised to ``[0, 1]``; with
            the CRF, its refined foreground probability.
        masks: ``(N, H, W)`` bool, ``maps > thresholds``.
        boxes: ``(N, 4)`` int64 ``(x0, y0, x1, y1)``, inclusive, of the largest connected region of each mask;
            ``(-1, -1, -1, -1)`` where the mask is empty.
        thresholds: ``(N,)`` float32, ``theta_loc * percentile_pct(map)``; with the CRF 0.5, the decision of its
            refined probability (the operating point ``theta_loc`` went into the CRF's unary instead).
        classes: ``(N,)`` int64, the class each map is of (the labels given, else the top-1 predictions).
        logits: ``(N, K)`` the model's output, in its own dtype.
    """

    maps: Tensor
    masks: Tensor
    boxes: Tensor
    thresholds: Tensor
    classes: Tensor
    logits: Tensor


def localize(
    model: nn.Module,
    images: Tensor,
    labels: Optional[Union[Tensor, Sequence[int]]] = None,
    *,
    feature_layer: Optional[nn.Module] = None,
    pool_layer: Optional[nn.Module] = None,
    classifier: Optional[Classifier] = None,
    clamp_negative: bool = True,
    theta_loc: float = DEFAULT_THETA_LOC,
    pct: float = DEFAULT_PCT,
    image_size: Optional[Tuple[int, int]] = None,
    interpolation: str = "bicubic",
    crf: bool = False,
    crf_images: Optional[Tensor] = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    crf_params: Optional["DenseCRFParams"] = None,
    crf_workers: Optional[int] = None,
    crf_threshold: Optional[float] = None,
    crf_alpha: Optional[float] = None,
) -> LocalizationResult:
    """Class activation maps, masks and boxes for a batch, from one forward pass without gradients.

    The model runs once in eval mode under ``torch.no_grad()`` (its train/eval mode is restored afterwards); a
    hook records the last feature map and is removed on exit, also when the forward pass raises. Then: the map of
    one class per image (:func:`camfix.cam`, NWC by default), resized to the image size and min-max normalised,
    thresholded with PaS (``theta_loc * percentile_pct``), and boxed around its largest connected region. The
    model may have been trained with GAP or TAP: the map is built from the features before pooling either way.

    With ``crf=True`` PaS comes before the CRF, as in the camfix demo and ImageNet recipe: the map is divided by
    its percentile (:func:`camfix.percentile_normalize`, so ``map' > theta_loc`` is the PaS mask), the dense
    CRF refines that map against the RGB image with its operating point at ``theta_loc`` (``crf_threshold``, see
    :func:`camfix.crf.saliency_scores`: the unary alone would give the PaS mask, the pairwise terms move its
    edges), and the refined foreground probability, nearly binary, is thresholded at 0.5.

    The paper's full method is the default: ``clamp_negative=True, pct=98`` (add ``crf=True`` for its
    post-processing and a TAP-trained model). The original CAM is ``clamp_negative=False, pct=100``.

    Args:
        model: the classifier. Its feature map and classifier are found automatically for timm models, every
            torchvision CNN whose class scores are a linear layer on globally pooled features (ResNet, ResNeXt,
            Wide ResNet, RegNet, GoogLeNet, Inception v3, EfficientNet and v2, MobileNetV2, MnasNet,
            ShuffleNetV2, DenseNet, SqueezeNet), lukemelas' ``efficientnet_pytorch`` and the WSOL code bases'
            models; models with an MLP or a normalisation after pooling (VGG, MobileNetV3, ConvNeXt) and
            transformers are refused with the reason. See :mod:`camfix.adapters` for the rules.
        images: ``(N, C, H, W)`` floating point, as the model expects them (normalised), ``N >= 1``.
        labels: ``(N,)`` ground-truth classes (GT-known localization), or ``None`` for the top-1 predicted
            class (top-1 localization).
        feature_layer: the module whose *output* is the ``(N, C, h, w)`` feature map, for models not found
            automatically (e.g. ``model.layer4``).
        pool_layer: the module whose *input* is the ``(N, C, h, w)`` feature map, usually its global pooling
            (e.g. ``model._avg_pooling``); the form to use when the last feature layer also runs elsewhere. At
            most one of ``feature_layer`` and ``pool_layer``.
        classifier: the classifier (``nn.Linear``, 1x1 ``nn.Conv2d``, an ``nn.Sequential`` holding one among
            dropout/flatten layers) or its ``(K, C)`` weight, when not found automatically.
        clamp_negative: NWC, build the map from positive classifier weights only.
        theta_loc: localization threshold relative to the percentile, in ``[0, 1]``.
        pct: percentile in ``[0, 100]`` (PaS); paper 98; 100 gives the max-based threshold of CAM.
        image_size: ``(H, W)`` of the output maps; default the size of ``images``.
        interpolation: ``"bicubic"`` (as the reference evaluator) or ``"bilinear"``.
        crf: refine the percentile-normalised maps with a dense CRF (needs ``pip install "camfix[crf]"``); see
            above for the order.
        crf_images: ``(N, 3, H, W)`` uint8 RGB images for the CRF; by default ``images`` are un-normalised
            with ``mean`` and ``std``.
        mean: the per-channel mean that ``images`` were normalised with (ImageNet's by default); used only to
            recover RGB images for the CRF.
        std: the per-channel standard deviation, likewise.
        crf_params: :class:`camfix.crf.DenseCRFParams` (iterations, kernel widths, weights); ``None`` for its
            defaults.
        crf_workers: processes refining the batch in parallel; ``None`` for one per usable CPU (at most ``N``).
        crf_threshold: the CRF's operating point on the percentile-normalised map, in ``(0, 1)``; ``None`` for
            ``theta_loc``. Choose it (or ``theta_loc``) on held-out data.
        crf_alpha: PSA's power unary ``(1 - map) ** crf_alpha`` for the background instead of ``crf_threshold``
            (:func:`camfix.crf.saliency_scores`), ``> 0``.

    Returns:
        A :class:`LocalizationResult`.
    """
    check_tensor("images", images, 4, shape_hint="(N, C, H, W)")
    check_finite("images", images)
    source, classifier = resolve_feature_source(model, feature_layer, classifier, pool_layer=pool_layer)
    weight = classifier_weight(classifier)
    # Every argument is checked here, under its own name, before the (expensive) forward pass.
    check_number("theta_loc", theta_loc, 0.0, 1.0)
    check_number("pct", pct, 0.0, 100.0)
    if not isinstance(interpolation, str) or interpolation not in INTERPOLATION_MODES:
        raise ValueError(f"interpolation must be one of {INTERPOLATION_MODES}, got {describe(interpolation)}")
    clamp_negative, crf = check_bool("clamp_negative", clamp_negative), check_bool("crf", crf)
    size = check_size("image_size", image_size) if image_size is not None else tuple(images.shape[-2:])
    mean, std = _check_channel_statistics("mean", mean), _check_channel_statistics("std", std, positive=True)
    if crf_workers is not None:
        check_int("crf_workers", crf_workers, 1)
    if crf:
        from .crf import DenseCRFParams, load_pydensecrf

        load_pydensecrf()  # a missing optional dependency fails now, not after the forward pass
        crf_point = _crf_operating_point(theta_loc, crf_threshold, crf_alpha)
        if crf_params is not None and not isinstance(crf_params, DenseCRFParams):
            raise TypeError(f"crf_params must be a camfix.crf.DenseCRFParams or None, got {describe(crf_params)}")
        if crf_images is None:
            if images.shape[1] != 3:
                raise ValueError(
                    f"the CRF compares colours: images must have 3 channels to be un-normalised with mean and std, "
                    f"got {images.shape[1]}; or pass crf_images= (N, 3, H, W) uint8 RGB"
                )
        else:
            check_tensor("crf_images", crf_images, 4, shape_hint="(N, 3, H, W)", floating=False)
            check_dtype("crf_images", crf_images, torch.uint8)
            expected = (images.shape[0], 3, *size)
            if tuple(crf_images.shape) != expected:
                raise ValueError(
                    f"crf_images must be uint8 RGB of shape {expected} (the batch of images at the maps' size), "
                    f"got {tuple(crf_images.shape)}"
                )
    if labels is not None:
        labels = check_classes("labels", labels, images.shape[0], weight.shape[0]).to(images.device)

    # Restore each submodule's own mode: a model may be in train mode with some layers (frozen BatchNorm, say)
    # deliberately in eval mode.
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad(), FeatureCapture(source, model) as captured:
            logits = model(images)
    finally:
        for module, training in modes:
            module.training = training
    features = captured.features
    if features.shape[1] != weight.flatten(1).shape[1]:
        raise ValueError(
            f"the feature map ({source.description}) has C={features.shape[1]} channels but the classifier "
            f"expects {weight.flatten(1).shape[1]} (classifier weight shape {tuple(weight.shape)}); pass the "
            "matching feature_layer= or pool_layer=, and classifier="
        )

    if labels is None:
        if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[0] != images.shape[0]:
            raise ValueError(
                "labels=None needs the model to return (N, K) logits to pick the top-1 class, got "
                f"{tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__}; pass labels="
            )
        classes = logits.argmax(dim=1)
    else:
        classes = labels

    with torch.no_grad():
        raw = cam(features, weight, clamp_negative=clamp_negative, classes=classes)
        maps = normalize_maps(resize_maps(raw.float(), size, mode=interpolation))
        if crf:
            from .crf import refine_saliency_batch

            rgb = crf_images if crf_images is not None else _to_uint8_rgb(images, mean, std)
            maps = refine_saliency_batch(
                rgb, percentile_normalize(maps, pct), crf_params, workers=crf_workers, **crf_point
            )
            thresholds = torch.full((maps.shape[0],), 0.5, dtype=maps.dtype, device=maps.device)
        else:
            thresholds = percentile_threshold(maps, theta_loc, pct)
        masks = maps > thresholds[:, None, None]
        boxes = mask_to_box(masks)
    return LocalizationResult(maps, masks, boxes, thresholds, classes, logits)


def _crf_operating_point(
    theta_loc: float, crf_threshold: Optional[float], crf_alpha: Optional[float]
) -> Dict[str, float]:
    """The keyword (``threshold`` or ``alpha``) that sets the CRF's operating point, checked before the forward pass."""
    if crf_alpha is not None:
        if crf_threshold is not None:
            raise ValueError("give crf_threshold or crf_alpha, not both: each sets the CRF's operating point")
        return {"alpha": check_number("crf_alpha", crf_alpha, 0.0, math.inf, low_inclusive=False, high_inclusive=False)}
    if crf_threshold is None:
        if not 0.0 < theta_loc < 1.0:
            raise ValueError(
                f"with crf=True, theta_loc is the CRF's operating point and must be in (0, 1), got {theta_loc!r}; "
                "or pass crf_threshold="
            )
        return {"threshold": theta_loc}
    threshold = check_number("crf_threshold", crf_threshold, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    return {"threshold": threshold}


def _check_channel_statistics(name: str, value: object, positive: bool = False) -> Tuple[float, float, float]:
    """``mean`` or ``std``: three finite numbers, one per RGB channel (``std`` positive)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 3:
        raise TypeError(f"{name} must be a sequence of 3 numbers, one per RGB channel, got {describe(value)}")
    bound = (0.0, math.inf) if positive else (-math.inf, math.inf)
    first, second, third = (
        check_number(f"{name}[{i}]", v, *bound, low_inclusive=not positive, high_inclusive=False)
        for i, v in enumerate(value)
    )
    return first, second, third


def _to_uint8_rgb(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Undo the per-channel normalisation of ``images`` ``(N, 3, H, W)``; uint8 RGB ``(N, 3, H, W)``."""
    scale = torch.tensor(std, device=images.device, dtype=torch.float32)[:, None, None]
    shift = torch.tensor(mean, device=images.device, dtype=torch.float32)[:, None, None]
    return (images.float() * scale + shift).mul(255).round().clamp(0, 255).to(torch.uint8)
