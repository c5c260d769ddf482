"""camfix: class activation mapping, fixed.

The three fixes of "Revisiting Class Activation Mapping for Learning from Imperfect Data" (Bae et al., LID 2020),
each in one small module:

- TAP, thresholded average pooling (:mod:`camfix.pooling`): ``model.avgpool = camfix.TAPool(0.05)``.
- NWC, negative weight clamping (:mod:`camfix.maps`): ``camfix.cam(features, fc_weight, clamp_negative=True)``.
- PaS, percentile thresholds (:mod:`camfix.thresholds`): ``camfix.percentile_box(cam, theta, pct)``.

Boxes follow one convention, owned by :mod:`camfix.boxes` (inclusive int64 ``(x0, y0, x1, y1)``, ``NO_BOX`` for
an empty mask).
:func:`camfix.localize` ties them together for a trained model, in three stages that can also be called one by one
(:func:`camfix.class_maps`, :func:`camfix.saliency_maps`, then thresholds and boxes); :mod:`camfix.images`
makes a model's input from RGB images and back. The optional parts import on first use:
:mod:`camfix.crf` (dense CRF, ``pip install "camfix[crf]"``) and :mod:`camfix.metrics`.
"""

import importlib

from .boxes import NO_BOX, mask_to_box
from .images import IMAGENET_MEAN, IMAGENET_STD, denormalize_images, normalize_images
from .localize import ClassMaps, LocalizationResult, class_maps, localize, saliency_maps
from .maps import cam, normalize_maps, resize_maps
from .pooling import TAPool, tap
from .thresholds import percentile, percentile_box, percentile_normalize, percentile_threshold, threshold_masks

__version__ = "0.1.0"

# Submodules with optional or heavier dependencies load on first attribute access (camfix.crf, ...), so that
# `import camfix` stays light.
_LAZY_SUBMODULES = ("crf", "demo", "metrics", "models", "viz")


def __getattr__(name: str) -> object:
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ClassMaps",
    "LocalizationResult",
    "NO_BOX",
    "TAPool",
    "cam",
    "class_maps",
    "denormalize_images",
    "localize",
    "mask_to_box",
    "normalize_images",
    "normalize_maps",
    "percentile",
    "percentile_box",
    "percentile_normalize",
    "percentile_threshold",
    "resize_maps",
    "saliency_maps",
    "tap",
    "threshold_masks",
]
