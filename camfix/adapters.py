"""Model adapters: where a classifier's last feature map and its classifier weight are.

camfix needs neither torchvision nor timm: it recognises their models by attributes.

- timm models: ``global_pool`` (its input is the feature map) and ``get_classifier()``.
- torchvision ResNets and the WSOL code bases' ResNet/VGG-GAP models: ``avgpool`` and ``fc``.
- anything else: the caller names the layer whose *output* is the feature map and the classifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Union

import torch
from torch import Tensor, nn

__all__ = ["FeatureSource", "resolve_feature_source", "classifier_weight", "FeatureCapture"]

Classifier = Union[nn.Module, Tensor]


@dataclass(frozen=True)
class FeatureSource:
    """Where the feature map comes from: the input of a pooling layer or the output of a chosen layer."""

    module: nn.Module
    from_input: bool
    description: str


def resolve_feature_source(
    model: nn.Module, feature_layer: Optional[nn.Module], classifier: Optional[Classifier]
) -> "tuple[FeatureSource, Classifier]":
    """Find the feature map and classifier of ``model``, or check the explicit ones.

    Without ``feature_layer`` the feature map is the input of ``model.global_pool`` (timm, recognised by
    ``global_pool`` and ``get_classifier()``) or of ``model.avgpool`` (torchvision ResNets, the WSOL code bases);
    without ``classifier`` it is ``model.get_classifier()`` or ``model.fc``.

    Args:
        model: the classifier, an ``nn.Module``.
        feature_layer: ``None`` (default) to find the feature map, or a submodule of ``model`` whose *output* is
            the ``(N, C, h, w)`` feature map (e.g. ``model.layer4``).
        classifier: ``None`` (default) to find it, or the layer that maps the pooled ``(N, C)`` features to the
            ``K`` class scores: an ``nn.Linear(C, K)``, a 1x1 ``nn.Conv2d(C, K, 1)``, or its weight, a tensor
            ``(K, C)`` (see :func:`classifier_weight`).

    Returns:
        ``(source, classifier)``: where the feature map is recorded (a :class:`FeatureSource`, for
        :class:`FeatureCapture`) and the classifier found or given, already checked by
        :func:`classifier_weight`.

    Raises:
        TypeError: ``model``, ``feature_layer`` or ``classifier`` is of the wrong kind.
        ValueError: ``feature_layer`` is not a submodule of ``model``, or nothing recognisable was found; the
            message says which arguments to pass.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if feature_layer is not None:
        if not isinstance(feature_layer, nn.Module):
            raise TypeError(
                f"feature_layer must be the nn.Module whose output is the (N, C, h, w) feature map "
                f"(e.g. model.layer4), got {type(feature_layer).__name__}"
            )
        if not any(m is feature_layer for m in model.modules()):
            raise ValueError(f"feature_layer ({type(feature_layer).__name__}) is not a submodule of model")
        source = FeatureSource(feature_layer, from_input=False, description="output of feature_layer")
    elif isinstance(getattr(model, "global_pool", None), nn.Module) and callable(
        getattr(model, "get_classifier", None)
    ):
        source = FeatureSource(model.global_pool, from_input=True, description="input of model.global_pool")
    elif isinstance(getattr(model, "avgpool", None), nn.Module):
        source = FeatureSource(model.avgpool, from_input=True, description="input of model.avgpool")
    else:
        raise ValueError(
            f"cannot find the feature map of {type(model).__name__}: expected a timm-style model "
            "(global_pool + get_classifier()) or a torchvision-style one (avgpool + fc); pass "
            "feature_layer= (the module whose output is the (N, C, h, w) feature map) and classifier="
        )
    if classifier is None:
        if callable(getattr(model, "get_classifier", None)):
            classifier = model.get_classifier()
        elif isinstance(getattr(model, "fc", None), nn.Module):
            classifier = model.fc
        else:
            raise ValueError(
                f"cannot find the classifier of {type(model).__name__}: expected model.get_classifier() or "
                "model.fc; pass classifier= (an nn.Linear, a 1x1 nn.Conv2d or a (K, C) weight tensor)"
            )
    classifier_weight(classifier)  # validates early, before the forward pass
    return source, classifier


def classifier_weight(classifier: Classifier) -> Tensor:
    """The weight of a classifier layer, as it is stored (not copied, not reshaped).

    Args:
        classifier: an ``nn.Linear(C, K)``, a 1x1 ``nn.Conv2d(C, K, 1)`` or a weight tensor (returned as it is).

    Returns:
        The weight: ``(K, C)`` for ``nn.Linear``, ``(K, C, 1, 1)`` for a 1x1 ``nn.Conv2d``, the tensor itself
        otherwise; its dtype and device, with its autograd history. The bias is not used by CAM.

    Raises:
        TypeError: ``classifier`` is none of these (e.g. an ``nn.Sequential`` head: pass its final linear layer).
    """
    if isinstance(classifier, Tensor):
        return classifier
    if isinstance(classifier, (nn.Linear, nn.Conv2d)):
        return classifier.weight
    raise TypeError(
        f"classifier must be an nn.Linear, a 1x1 nn.Conv2d or a (K, C) weight tensor, got "
        f"{type(classifier).__name__}; for a head with several layers pass the final linear layer"
    )


class FeatureCapture:
    """Context manager that records the feature map of one forward pass; the hook is removed on exit, always.

    ``captured.features`` holds the tensor after the pass; it raises ``ValueError`` if the layer ran zero or
    several times (a feature layer used twice makes "the" feature map ambiguous).
    """

    def __init__(self, source: FeatureSource) -> None:
        self.source = source
        self._seen: List[Tensor] = []
        self._handle: Optional[torch.utils.hooks.RemovableHandle] = None

    def __enter__(self) -> "FeatureCapture":
        hook: Callable[..., None]
        if self.source.from_input:

            def hook(module: nn.Module, args: tuple) -> None:
                self._seen.append(args[0])

            self._handle = self.source.module.register_forward_pre_hook(hook)
        else:

            def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
                self._seen.append(output)

            self._handle = self.source.module.register_forward_hook(hook)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._handle is not None
        self._handle.remove()

    @property
    def features(self) -> Tensor:
        """The ``(N, C, h, w)`` feature map recorded during the ``with`` block's forward pass.

        Raises:
            ValueError: the layer ran zero or several times, or its output is not a 4-D tensor.
        """
        if len(self._seen) != 1:
            raise ValueError(
                f"the feature map ({self.source.description}) must be computed exactly once per forward pass, "
                f"but it ran {len(self._seen)} times; pass feature_layer= to choose the layer"
            )
        features = self._seen[0]
        if not isinstance(features, Tensor) or features.dim() != 4:
            shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
            raise ValueError(
                f"the feature map ({self.source.description}) must be a (N, C, h, w) tensor, got {shape}; "
                "pass feature_layer= to choose the layer"
            )
        return features
