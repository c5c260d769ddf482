"""The localization pipeline in three stages, and ``localize``, the one call that runs them for a batch.

1. :func:`class_maps`: one forward pass, the class activation map of one class per image (NWC), resized to the
   image and min-max normalised (:class:`ClassMaps`).
2. :func:`saliency_maps`: PaS, the map divided by its percentile, then optionally the dense CRF.
3. masks and boxes: the map thresholded (:mod:`camfix.thresholds`) and boxed around its largest region
   (:mod:`camfix.boxes`).

:func:`localize` checks every argument of the three stages before the forward pass and returns what each made
(:class:`LocalizationResult`). Code that needs the maps of a stage without the rest (an evaluation that sweeps
thresholds itself, an ablation) calls the stages; it never has to redo work that ``localize`` did.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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
from .adapters import Classifier, FeatureCapture, FeatureSource, classifier_weight, resolve_feature_source
from .boxes import mask_to_box
from .images import IMAGENET_MEAN, IMAGENET_STD, _check_statistics, _denormalize
from .maps import INTERPOLATION_MODES, cam, normalize_maps, resize_maps
from .thresholds import DEFAULT_PCT, DEFAULT_THETA_LOC, percentile_normalize, percentile_threshold

if TYPE_CHECKING:
    from .crf import DenseCRFParams

__all__ = ["ClassMaps", "LocalizationResult", "class_maps", "localize", "saliency_maps"]


@dataclass(frozen=True)
class ClassMaps:
    """What :func:`class_maps` returns; every tensor is on the device of the images.

    Attributes:
        maps: ``(N, H, W)`` float32 class activation maps at image size, min-max normalised to ``[0, 1]``.
        classes: ``(N,)`` int64, the class each map is of (the labels given, else the top-1 predictions).
        logits: ``(N, K)`` the model's output, in its own dtype.
    """

    maps: Tensor
    classes: Tensor
    logits: Tensor


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


@dataclass(frozen=True)
class _MapRequest:
    """The checked arguments of stage 1."""

    source: FeatureSource
    weight: Tensor
    labels: Optional[Tensor]
    clamp_negative: bool
    size: Tuple[int, int]
    interpolation: str


@dataclass(frozen=True)
class _CrfSettings:
    """The checked arguments of the CRF in stage 2; ``images`` ``None``: un-normalise the model's input."""

    images: Optional[Tensor]
    params: Optional["DenseCRFParams"]
    workers: Optional[int]
    operating_point: Dict[str, float]  # {"threshold": t} or {"alpha": a}, the keyword of the CRF's functions


def class_maps(
    model: nn.Module,
    images: Tensor,
    labels: Optional[Union[Tensor, Sequence[int]]] = None,
    *,
    feature_layer: Optional[nn.Module] = None,
    pool_layer: Optional[nn.Module] = None,
    classifier: Optional[Classifier] = None,
    clamp_negative: bool = True,
    image_size: Optional[Tuple[int, int]] = None,
    interpolation: str = "bicubic",
) -> ClassMaps:
    """Stage 1: class activation maps at image size from one forward pass without gradients.

    The model runs once in eval mode under ``torch.no_grad()`` (the mode of each submodule is restored
    afterwards); a hook records the feature map and is removed on exit, also when the forward pass raises. The
    map of one class per image (:func:`camfix.cam`, NWC by default) is resized to the image size and min-max
    normalised. The model may have been trained with GAP or TAP: the map is built from the features before
    pooling either way.

    Args:
        model: the classifier. Its feature map and classifier are found automatically for timm models, every
            torchvision CNN whose class scores are a linear layer on globally pooled features (ResNet, ResNeXt,
            Wide ResNet, RegNet, GoogLeNet, Inception v3, EfficientNet and v2, MobileNetV2, MnasNet,
            ShuffleNetV2, DenseNet, SqueezeNet), lukemelas' ``efficientnet_pytorch`` and the WSOL code bases'
            models; models with an MLP or a normalisation after pooling (VGG, MobileNetV3, ConvNeXt) and
            transformers are refused with the reason. See :mod:`camfix.adapters` for the rules.
        images: ``(N, C, H, W)`` floating point, as the model expects them (normalised, e.g. with
            :func:`camfix.normalize_images`), ``N >= 1``.
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
        image_size: ``(H, W)`` of the output maps; default the size of ``images``.
        interpolation: ``"bicubic"`` (as the reference evaluator) or ``"bilinear"``.

    Returns:
        A :class:`ClassMaps`.
    """
    request = _check_map_request(
        model, images, labels, feature_layer, pool_layer, classifier, clamp_negative, image_size, interpolation
    )
    return _class_maps(model, images, request)


def saliency_maps(
    maps: Tensor,
    pct: float = DEFAULT_PCT,
    *,
    crf_images: Optional[Tensor] = None,
    crf_params: Optional["DenseCRFParams"] = None,
    crf_workers: Optional[int] = None,
    crf_threshold: Optional[float] = None,
    crf_alpha: Optional[float] = None,
) -> Tensor:
    """Stage 2: PaS, then with ``crf_images`` the dense CRF.

    The maps are divided by their ``pct``-th percentile and clipped to 1 (:func:`camfix.percentile_normalize`:
    ``map' > theta_loc`` is the PaS mask). With ``crf_images`` the dense CRF then refines that map against the
    RGB image (:func:`camfix.crf.refine_saliency_batch`) and the result is its foreground probability, nearly
    binary, to be thresholded at 0.5.

    Args:
        maps: ``(N, H, W)`` floating point maps in ``[0, 1]``, e.g. the ``maps`` of :class:`ClassMaps`.
        pct: percentile in ``[0, 100]`` (PaS); paper 98; 100 divides by the maximum.
        crf_images: ``(N, 3, H, W)`` uint8 RGB images, the same ``N, H, W`` as ``maps`` (e.g.
            :func:`camfix.denormalize_images` of the model's input), or ``None`` for no CRF. The CRF needs
            ``pip install "camfix[crf]"``.
        crf_params: :class:`camfix.crf.DenseCRFParams`; ``None`` for its defaults.
        crf_workers: processes refining the batch in parallel; ``None`` for one per usable CPU (at most ``N``).
        crf_threshold: the CRF's operating point on the PaS map, in ``(0, 1)``; ``None`` for 0.5, the CRF's own
            default (:func:`camfix.crf.saliency_scores`). Choose it on held-out data; :func:`localize` passes its
            ``theta_loc`` here.
        crf_alpha: PSA's power unary instead of ``crf_threshold``, ``> 0``.

    Returns:
        ``(N, H, W)`` in ``[0, 1]`` on the device of ``maps``: the dtype of ``maps`` without the CRF, float32 with
        it. ``saliency_maps(class_maps(...).maps, pct, crf_images=rgb, crf_threshold=theta_loc)`` is what
        :func:`localize` with ``crf=True`` thresholds at 0.5.
    """
    check_number("pct", pct, 0.0, 100.0)
    crf_settings = None
    if crf_images is not None:
        check_tensor("maps", maps, 3, shape_hint="(N, H, W)")
        crf_settings = _check_crf(crf_images, tuple(maps.shape), crf_params, crf_workers, crf_threshold, crf_alpha)
    else:
        _refuse_unused_crf_arguments(
            "crf_images= (the CRF's RGB images)",
            crf_params=crf_params, crf_workers=crf_workers, crf_threshold=crf_threshold, crf_alpha=crf_alpha,
        )
    return _saliency_maps(maps, pct, crf_settings)


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

    The three stages of this module, every argument checked before the forward pass: :func:`class_maps` (the
    map of one class per image, NWC by default, resized to the image size and min-max normalised), then without
    the CRF the map thresholded with PaS (``theta_loc * percentile_pct``) and boxed around its largest connected
    region.

    With ``crf=True`` PaS comes before the CRF, as in the camfix demo and ImageNet recipe
    (:func:`saliency_maps`): the map is divided by its percentile (so ``map' > theta_loc`` is the PaS mask), the
    dense CRF refines that map against the RGB image with its operating point at ``theta_loc``
    (``crf_threshold``, see :func:`camfix.crf.saliency_scores`: the unary alone would give the PaS mask, the
    pairwise terms move its edges), and the refined foreground probability, nearly binary, is thresholded at 0.5.

    The paper's full method is the default: ``clamp_negative=True, pct=98`` (add ``crf=True`` for its
    post-processing and a TAP-trained model). The original CAM is ``clamp_negative=False, pct=100``.

    Args:
        model: the classifier; see :func:`class_maps`.
        images: ``(N, C, H, W)`` floating point, as the model expects them (normalised), ``N >= 1``.
        labels: ``(N,)`` ground-truth classes (GT-known localization), or ``None`` for the top-1 predicted
            class (top-1 localization).
        feature_layer: the module whose *output* is the feature map; see :func:`class_maps`.
        pool_layer: the module whose *input* is the feature map; see :func:`class_maps`.
        classifier: the classifier or its ``(K, C)`` weight, when not found automatically.
        clamp_negative: NWC, build the map from positive classifier weights only.
        theta_loc: localization threshold relative to the percentile, in ``[0, 1]``.
        pct: percentile in ``[0, 100]`` (PaS); paper 98; 100 gives the max-based threshold of CAM.
        image_size: ``(H, W)`` of the output maps; default the size of ``images``.
        interpolation: ``"bicubic"`` (as the reference evaluator) or ``"bilinear"``.
        crf: refine the percentile-normalised maps with a dense CRF (needs ``pip install "camfix[crf]"``); see
            above for the order.
        crf_images: ``(N, 3, H, W)`` uint8 RGB images for the CRF; by default ``images`` are un-normalised
            with ``mean`` and ``std`` (:func:`camfix.denormalize_images`).
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
    request = _check_map_request(
        model, images, labels, feature_layer, pool_layer, classifier, clamp_negative, image_size, interpolation
    )
    # Every argument is checked here, under its own name, before the (expensive) forward pass.
    check_number("theta_loc", theta_loc, 0.0, 1.0)
    check_number("pct", pct, 0.0, 100.0)
    crf = check_bool("crf", crf)
    mean, std = _check_statistics(mean, std)
    crf_settings = None
    if crf:
        if crf_threshold is None and crf_alpha is None and not 0.0 < theta_loc < 1.0:
            raise ValueError(
                f"with crf=True, theta_loc is the CRF's operating point and must be in (0, 1), got {theta_loc!r}; "
                "or pass crf_threshold="
            )
        # theta_loc is the CRF's operating point unless crf_threshold or crf_alpha sets it.
        threshold = theta_loc if crf_threshold is None and crf_alpha is None else crf_threshold
        if crf_images is None and images.shape[1] != 3:
            raise ValueError(
                f"the CRF compares colours: images must have 3 channels to be un-normalised with mean and std, "
                f"got {images.shape[1]}; or pass crf_images= (N, 3, H, W) uint8 RGB"
            )
        if crf_images is None and request.size != tuple(images.shape[-2:]):
            raise ValueError(
                f"with crf=True and image_size={request.size} (not the size of images, {tuple(images.shape[-2:])}), "
                "the CRF needs RGB images at image_size: pass crf_images= (N, 3, *image_size) uint8 RGB"
            )
        expected = (images.shape[0], *request.size)
        crf_settings = _check_crf(crf_images, expected, crf_params, crf_workers, threshold, crf_alpha)
    else:
        _refuse_unused_crf_arguments(
            "crf=True", crf_images=crf_images, crf_params=crf_params, crf_workers=crf_workers,
            crf_threshold=crf_threshold, crf_alpha=crf_alpha,
        )  # fmt: skip

    result = _class_maps(model, images, request)
    with torch.no_grad():
        if crf_settings is None:
            maps = result.maps
            thresholds = percentile_threshold(maps, theta_loc, pct)
        else:
            if crf_settings.images is None:
                crf_settings = replace(crf_settings, images=_denormalize(images, mean, std))
            maps = _saliency_maps(result.maps, pct, crf_settings)
            thresholds = torch.full((maps.shape[0],), 0.5, dtype=maps.dtype, device=maps.device)
        masks = maps > thresholds[:, None, None]
        boxes = mask_to_box(masks)
    return LocalizationResult(maps, masks, boxes, thresholds, result.classes, result.logits)


def _check_map_request(
    model: nn.Module,
    images: Tensor,
    labels: Optional[Union[Tensor, Sequence[int]]],
    feature_layer: Optional[nn.Module],
    pool_layer: Optional[nn.Module],
    classifier: Optional[Classifier],
    clamp_negative: bool,
    image_size: Optional[Tuple[int, int]],
    interpolation: str,
) -> _MapRequest:
    check_tensor("images", images, 4, shape_hint="(N, C, H, W)")
    check_finite("images", images)
    source, classifier = resolve_feature_source(model, feature_layer, classifier, pool_layer=pool_layer)
    weight = classifier_weight(classifier)
    if not isinstance(interpolation, str) or interpolation not in INTERPOLATION_MODES:
        raise ValueError(f"interpolation must be one of {INTERPOLATION_MODES}, got {describe(interpolation)}")
    clamp_negative = check_bool("clamp_negative", clamp_negative)
    size = check_size("image_size", image_size) if image_size is not None else tuple(images.shape[-2:])
    if labels is not None:
        labels = check_classes("labels", labels, images.shape[0], weight.shape[0]).to(images.device)
    return _MapRequest(source, weight, labels, clamp_negative, size, interpolation)


def _class_maps(model: nn.Module, images: Tensor, request: _MapRequest) -> ClassMaps:
    # Restore each submodule's own mode: a model may be in train mode with some layers (frozen BatchNorm, say)
    # deliberately in eval mode.
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad(), FeatureCapture(request.source, model) as captured:
            logits = model(images)
    finally:
        for module, training in modes:
            module.training = training
    features, weight = captured.features, request.weight
    if features.shape[1] != weight.flatten(1).shape[1]:
        raise ValueError(
            f"the feature map ({request.source.description}) has C={features.shape[1]} channels but the classifier "
            f"expects {weight.flatten(1).shape[1]} (classifier weight shape {tuple(weight.shape)}); pass the "
            "matching feature_layer= or pool_layer=, and classifier="
        )
    if request.labels is None:
        if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[0] != images.shape[0]:
            raise ValueError(
                "labels=None needs the model to return (N, K) logits to pick the top-1 class, got "
                f"{tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__}; pass labels="
            )
        classes = logits.argmax(dim=1)
    else:
        classes = request.labels
    with torch.no_grad():
        raw = cam(features, weight, clamp_negative=request.clamp_negative, classes=classes)
        maps = normalize_maps(resize_maps(raw.float(), request.size, mode=request.interpolation))
    return ClassMaps(maps, classes, logits)


def _saliency_maps(maps: Tensor, pct: float, crf: Optional[_CrfSettings]) -> Tensor:
    pas = percentile_normalize(maps, pct)
    if crf is None:
        return pas
    from .crf import refine_saliency_batch

    return refine_saliency_batch(crf.images, pas, crf.params, workers=crf.workers, **crf.operating_point)


def _refuse_unused_crf_arguments(needed: str, **arguments: object) -> None:
    """CRF arguments given where no CRF runs are a mistake of the caller's, not something to ignore silently."""
    given = [name for name, value in arguments.items() if value is not None]
    if given:
        raise ValueError(f"{', '.join(given)} set the dense CRF, which runs only with {needed}; got no CRF")


def _check_crf(
    images: Optional[Tensor],
    expected: Tuple[int, ...],
    params: Optional["DenseCRFParams"],
    workers: Optional[int],
    threshold: Optional[float],
    alpha: Optional[float],
) -> _CrfSettings:
    """The CRF's arguments, checked before any work: pydensecrf importable, ``images`` (``crf_images``) uint8
    RGB ``(N, 3, H, W)`` for ``expected = (N, H, W)``, or ``None``."""
    from .crf import DenseCRFParams, _check_operating_point, load_pydensecrf

    load_pydensecrf()  # a missing optional dependency fails now, not after the forward pass
    if params is not None and not isinstance(params, DenseCRFParams):
        raise TypeError(f"crf_params must be a camfix.crf.DenseCRFParams or None, got {describe(params)}")
    if workers is not None:
        check_int("crf_workers", workers, 1)
    if images is not None:
        check_tensor("crf_images", images, 4, shape_hint="(N, 3, H, W)", floating=False)
        check_dtype("crf_images", images, torch.uint8)
        shape = (expected[0], 3, *expected[1:])
        if tuple(images.shape) != shape:
            raise ValueError(
                f"crf_images must be uint8 RGB of shape {shape} (the batch of images at the maps' size), "
                f"got {tuple(images.shape)}"
            )
    threshold, alpha = _check_operating_point(threshold, alpha, prefix="crf_")
    return _CrfSettings(images, params, workers, {"threshold": threshold} if alpha is None else {"alpha": alpha})
