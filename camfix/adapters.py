"""Model adapters: where a classifier's last feature map and its classifier weight are.

camfix needs neither torchvision nor timm: it recognises their models by attributes and by structure.

A class activation map exists when the class scores are a linear layer applied to the *global average* of one
feature map: ``logits = W · mean_hw(F) + b``, so ``W · F`` is each class's contribution per position. Finding a
model's map therefore means finding three things, and checking the link between them on the forward pass itself:

1. **The classifier**: ``model.get_classifier()`` (timm), else the attribute ``fc``, ``_fc``, ``classifier``,
   ``head``, ``heads`` or ``last_linear``, else the model's last ``nn.Linear``. A head ``nn.Sequential`` is
   reduced to its one linear layer when everything else in it is dropout, flatten or identity (torchvision's
   EfficientNet and MobileNetV2: ``Sequential(Dropout, Linear)``). A 1x1 convolution followed only by an
   activation and global pooling is a classifier *before* pooling (SqueezeNet): its input is the feature map and
   the class map is its output, up to the per-class bias that min-max normalisation removes. Any other head
   (an MLP, a normalisation after pooling) has no class activation map, and is refused with the layers it holds.
2. **The global pooling**, whose input is the feature map: the attribute ``global_pool`` (timm), ``avgpool``
   (torchvision, the WSOL code bases) or ``_avg_pooling`` (lukemelas' ``efficientnet_pytorch``).
3. **Functional pooling** when no such module exists (pooling written in ``forward``: torchvision's
   MobileNetV2, MnasNet, ShuffleNetV2, DenseNet): every module's output is watched during the one forward pass,
   and the feature map is the last 4-D activation computed before the classifier runs whose global average *is*
   the classifier's input — or whose ReLU's average is (DenseNet applies ``F.relu`` between its features and the
   pooling), in which case the map is built from that ReLU.

For a found pooling module, the same forward pass checks that its output reaches the classifier unchanged (only
dropout and flatten between them): a head such as MobileNetV3's ``Linear -> Hardswish -> Linear`` or ConvNeXt's
``LayerNorm`` after pooling fails this check with a clear error rather than giving a map that means nothing.

The explicit form works for any model and skips these checks (the caller takes responsibility): ``feature_layer=``
names the layer whose *output* is the feature map, ``pool_layer=`` the layer whose *input* is, and ``classifier=``
the linear layer or its weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from ._validation import check_finite, check_tensor

__all__ = ["FeatureSource", "resolve_feature_source", "classifier_weight", "FeatureCapture"]

Classifier = Union[nn.Module, Tensor]

# Attribute names, most specific first, under which the code bases camfix supports keep their heads.
_POOL_NAMES = ("global_pool", "avgpool", "_avg_pooling")
_CLASSIFIER_NAMES = ("fc", "_fc", "classifier", "head", "heads", "last_linear")
# Layers that are the identity at inference (eval-mode dropout) or only reshape: they may sit in a head.
_PASS_THROUGH = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity, nn.Flatten)


@dataclass(frozen=True)
class FeatureSource:
    """Where the feature map comes from, and how the forward pass confirms it.

    Attributes:
        module: the layer whose input (``from_input``) or output is the feature map; ``None`` when the pooling is
            functional and the map is found during the forward pass (see the module docstring).
        from_input: the map is the input of ``module`` (a pooling layer, a classifier before pooling), not its
            output.
        description: how error messages name the source, e.g. ``"input of model.avgpool"``.
        classifier: the classifier module whose input the forward pass compares with the pooled map; ``None``
            when nothing is checked (explicit layers, a classifier given as a weight tensor).
    """

    module: Optional[nn.Module]
    from_input: bool
    description: str
    classifier: Optional[nn.Module] = None


def resolve_feature_source(
    model: nn.Module,
    feature_layer: Optional[nn.Module] = None,
    classifier: Optional[Classifier] = None,
    *,
    pool_layer: Optional[nn.Module] = None,
) -> Tuple[FeatureSource, Classifier]:
    """Find the feature map and classifier of ``model``, or check the explicit ones.

    The rules are in this module's docstring; nothing runs the model here (the forward pass of
    :class:`FeatureCapture` confirms what was found).

    Args:
        model: the classifier, an ``nn.Module``.
        feature_layer: a submodule of ``model`` whose *output* is the ``(N, C, h, w)`` feature map (e.g.
            ``model.layer4``), or ``None``.
        classifier: the layer that maps the pooled ``(N, C)`` features to the ``K`` class scores: an
            ``nn.Linear(C, K)``, a 1x1 ``nn.Conv2d(C, K, 1)``, an ``nn.Sequential`` holding one of them among
            dropout/flatten layers (and a global pooling in front), or the weight, a tensor ``(K, C)``;
            ``None`` to find it.
        pool_layer: a submodule of ``model`` whose *input* is the ``(N, C, h, w)`` feature map (its global
            pooling, e.g. ``model._avg_pooling``), or ``None``. At most one of ``feature_layer`` and
            ``pool_layer``.

    Returns:
        ``(source, classifier)``: where the feature map is recorded (a :class:`FeatureSource`, for
        :class:`FeatureCapture`) and the classifier found or given, reduced to its linear layer (or the weight
        tensor as given).

    Raises:
        TypeError: ``model``, ``feature_layer``, ``pool_layer`` or ``classifier`` is of the wrong kind.
        ValueError: a layer is not a submodule of ``model``, both layers were given, the head is not a single
            linear layer (no class activation map exists), or nothing was found; the message says what to pass.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    names = _module_names(model)
    explicit = _explicit_source(feature_layer, pool_layer, names)

    if classifier is not None:
        classifier = _reduce_classifier("classifier", classifier)
        classifier_module = classifier if isinstance(classifier, nn.Module) else None
    else:
        classifier_module = _find_classifier(model, names)
        classifier = classifier_module

    weight = classifier_weight(classifier)
    label = "classifier" if classifier_module is None else f"the weight of classifier {names.get(id(classifier_module), '')}".rstrip()
    check_tensor(label, weight, (2, 4), shape_hint="(K, C) or (K, C, 1, 1)")
    if weight.dim() == 4 and weight.shape[2:] != (1, 1):
        raise ValueError(f"{label} must have shape (K, C, 1, 1) for a conv classifier, got {tuple(weight.shape)}")
    check_finite(label, weight.detach())

    if explicit is not None:
        return explicit, classifier
    if isinstance(classifier_module, nn.Conv2d) and _conv_classifier_before_pooling(model, classifier_module):
        return FeatureSource(classifier_module, True, f"input of {names[id(classifier_module)]}"), classifier
    pool = _find_pool(model)
    if pool is not None:
        return FeatureSource(pool, True, f"input of {names[id(pool)]}", classifier_module), classifier
    if classifier_module is None:
        raise ValueError(
            f"cannot find the feature map of {type(model).__name__}: it has no global pooling layer (global_pool, "
            "avgpool, _avg_pooling) and its classifier was given as a weight tensor, so the pooling cannot be "
            "traced; pass pool_layer= (the layer whose input is the (N, C, h, w) feature map) or feature_layer= "
            "(the layer whose output is)"
        )
    description = f"the last 4-D activation whose global average is the input of {names[id(classifier_module)]}"
    return FeatureSource(None, False, description, classifier_module), classifier


def classifier_weight(classifier: Classifier) -> Tensor:
    """The weight of a classifier layer, as it is stored (not copied, not reshaped).

    Args:
        classifier: an ``nn.Linear(C, K)``, a 1x1 ``nn.Conv2d(C, K, 1)`` or a weight tensor (returned as it is).

    Returns:
        The weight: ``(K, C)`` for ``nn.Linear``, ``(K, C, 1, 1)`` for a 1x1 ``nn.Conv2d``, the tensor itself
        otherwise; its dtype and device, with its autograd history. The bias is not used by CAM.

    Raises:
        TypeError: ``classifier`` is none of these (a head with several layers goes through
            :func:`resolve_feature_source`, which reduces it to its linear layer or says why it cannot).
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
    """Context manager that records the feature map of one forward pass; every hook is removed on exit, always.

    Args:
        source: from :func:`resolve_feature_source`.
        model: the model that will run; needed only when ``source.module`` is ``None`` (functional pooling),
            where every submodule's output is watched.

    ``captured.features`` holds the map after the pass and raises ``ValueError`` if it is ambiguous (the layer
    ran zero or several times) or if the forward pass contradicts what was found (the pooled map is not the
    classifier's input).
    """

    def __init__(self, source: FeatureSource, model: Optional[nn.Module] = None) -> None:
        if source.module is None and model is None:
            raise ValueError("FeatureCapture needs model= for a source found during the forward pass")
        self.source = source
        self._model = model
        self._seen: List[Tensor] = []
        self._pooled: List[Tensor] = []
        self._classifier_inputs: List[Tensor] = []
        # Functional pooling: the latest 4-D activation before the classifier first runs, and who made it.
        self._candidate: Optional[Tuple[nn.Module, Tensor, str]] = None
        self._after_pooling = False
        self._handles: List[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> "FeatureCapture":
        source = self.source
        try:
            if source.module is not None:
                self._hook_source(source.module)
            if source.classifier is not None:
                self._handles.append(source.classifier.register_forward_pre_hook(self._record_classifier_input))
            if source.module is None:
                assert self._model is not None
                for module in self._model.modules():
                    if module is not source.classifier:
                        self._handles.append(module.register_forward_hook(self._record_activation))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook_source(self, module: nn.Module) -> None:
        if self.source.from_input:

            def record_input(module: nn.Module, args: tuple) -> None:
                self._seen.append(args[0])

            self._handles.append(module.register_forward_pre_hook(record_input))

            def record_pooled(module: nn.Module, args: tuple, output: object) -> None:
                self._pooled.append(output)  # type: ignore[arg-type]

            if self.source.classifier is not None:
                self._handles.append(module.register_forward_hook(record_pooled))
        else:

            def record_output(module: nn.Module, args: tuple, output: Tensor) -> None:
                self._seen.append(output)

            self._handles.append(module.register_forward_hook(record_output))

    def _record_classifier_input(self, module: nn.Module, args: tuple) -> None:
        self._classifier_inputs.append(args[0])

    def _record_activation(self, module: nn.Module, args: tuple, output: object) -> None:
        if self._classifier_inputs:
            return
        # A global pooling module's input is the candidate, never its (N, C, 1, 1) output; what follows a pooling
        # at 1x1 (a squeeze-excitation's convolutions, a LayerNorm on the pooled vector) is not a feature map
        # either, until an activation with a spatial extent appears again.
        if _is_global_average_pool(module) and args and isinstance(args[0], Tensor) and args[0].dim() == 4:
            self._candidate = (module, args[0], "input")
            self._after_pooling = True
        elif isinstance(output, Tensor) and output.dim() == 4:
            if output.shape[-2:].numel() > 1:
                self._after_pooling = False
            if not self._after_pooling:
                self._candidate = (module, output, "output")

    @property
    def features(self) -> Tensor:
        """The ``(N, C, h, w)`` feature map recorded during the ``with`` block's forward pass.

        Raises:
            ValueError: the layer ran zero or several times, its output is not a 4-D tensor, or the pooled map
                does not reach the classifier unchanged.
        """
        if self.source.module is None:
            return self._functional_features()
        if len(self._seen) != 1:
            raise ValueError(
                f"the feature map ({self.source.description}) must be computed exactly once per forward pass, "
                f"but it ran {len(self._seen)} times; {_suggest_layer(self._model)}"
            )
        features = self._seen[0]
        if not isinstance(features, Tensor) or features.dim() != 4:
            shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
            raise ValueError(
                f"the feature map ({self.source.description}) must be a (N, C, h, w) tensor, got {shape}; "
                "pass feature_layer= or pool_layer= to choose the layer"
            )
        if self._pooled:
            self._check_pooled_reaches_classifier(self._pooled[0])
        return features

    def _classifier_input(self) -> Tensor:
        if not self._classifier_inputs:
            raise ValueError(
                f"the classifier did not run in the forward pass, so {self.source.description} cannot be "
                "confirmed; pass classifier= (the layer that computes the class scores)"
            )
        return self._classifier_inputs[0]

    def _check_pooled_reaches_classifier(self, pooled: Tensor) -> None:
        received = self._classifier_input()
        if not (
            isinstance(pooled, Tensor)
            and pooled.numel() == received.numel()
            and _close(pooled.reshape(received.shape), received)
        ):
            shape = tuple(pooled.shape) if isinstance(pooled, Tensor) else type(pooled).__name__
            raise ValueError(
                f"no class activation map: the pooled features (pooling of the {self.source.description}, {shape}) "
                f"are not what the classifier receives ({tuple(received.shape)}); layers between the "
                "pooling and the classifier (an MLP, a normalisation) make the class scores a non-linear "
                "function of the feature map. If the map is still wanted, pass feature_layer= or pool_layer= "
                "and classifier= explicitly"
            )

    def _functional_features(self) -> Tensor:
        received = self._classifier_input()
        if self._candidate is None:
            raise ValueError(
                f"no 4-D activation ran before the classifier: {type(self._model).__name__} has no "
                "(N, C, h, w) feature map to build a class activation map from; pass feature_layer= or pool_layer="
            )
        module, features, role = self._candidate
        flat = received.flatten(1)
        for transform in (None, torch.relu):  # the ReLU only when the features themselves do not match
            candidate = features if transform is None else transform(features)
            if flat.shape == candidate.shape[:2] and _close(candidate.mean(dim=(2, 3)), flat):
                return candidate
        name = _module_names(self._model).get(id(module), type(module).__name__)  # type: ignore[arg-type]
        raise ValueError(
            f"no class activation map: the classifier's input {tuple(received.shape)} is not the global average "
            f"of the last 4-D activation before it (the {role} of {name}, {tuple(features.shape)}), nor of its "
            "ReLU: something other than global average pooling lies between them (a normalisation or an MLP after "
            "the pooling as in ConvNeXt, a transformer's class token). Pass feature_layer= or pool_layer= and "
            "classifier= if the model does pool one feature map"
        )


def _close(actual: Tensor, expected: Tensor) -> bool:
    """Equal up to the rounding of the dtype the model computed in (mean vs adaptive pooling, autocast)."""
    # The tolerance follows the dtype the model computed in, so it is read before the float64 comparison copy.
    low_precision = torch.float16 in (actual.dtype, expected.dtype) or torch.bfloat16 in (actual.dtype, expected.dtype)
    actual, expected = actual.detach().double(), expected.detach().double()
    if actual.shape != expected.shape:
        return False
    rtol = 2e-2 if low_precision else 1e-4
    scale = expected.abs().amax().item() if expected.numel() else 0.0
    return bool(torch.allclose(actual, expected, rtol=rtol, atol=rtol * scale))


def _module_names(model: nn.Module) -> Dict[int, str]:
    return {id(module): ("model." + name if name else "model") for name, module in model.named_modules()}


def _explicit_source(
    feature_layer: Optional[nn.Module], pool_layer: Optional[nn.Module], names: Dict[int, str]
) -> Optional[FeatureSource]:
    for argument, layer, role in (
        ("feature_layer", feature_layer, "output is the (N, C, h, w) feature map (e.g. model.layer4)"),
        ("pool_layer", pool_layer, "input is the (N, C, h, w) feature map (e.g. model.avgpool)"),
    ):
        if layer is None:
            continue
        if not isinstance(layer, nn.Module):
            raise TypeError(f"{argument} must be the nn.Module whose {role}, got {type(layer).__name__}")
        if id(layer) not in names:
            raise ValueError(f"{argument} ({type(layer).__name__}) is not a submodule of model")
    if feature_layer is not None and pool_layer is not None:
        raise ValueError(
            f"pass one of feature_layer= (got {names[id(feature_layer)]}) and pool_layer= (got "
            f"{names[id(pool_layer)]}), not both: each alone says where the feature map is"
        )
    if feature_layer is not None:
        return FeatureSource(feature_layer, False, f"output of feature_layer {names[id(feature_layer)]}")
    if pool_layer is not None:
        return FeatureSource(pool_layer, True, f"input of pool_layer {names[id(pool_layer)]}")
    return None


def _find_classifier(model: nn.Module, names: Dict[int, str]) -> nn.Module:
    found: Optional[nn.Module] = None
    get_classifier = getattr(model, "get_classifier", None)
    if callable(get_classifier):
        candidate = get_classifier()
        found = candidate if isinstance(candidate, nn.Module) else None
    if found is None:
        found = next(
            (getattr(model, name) for name in _CLASSIFIER_NAMES if isinstance(getattr(model, name, None), nn.Module)),
            None,
        )
    if found is None:
        found = next((m for m in reversed(list(model.modules())) if isinstance(m, nn.Linear)), None)
    if found is None:
        raise ValueError(
            f"cannot find the classifier of {type(model).__name__}: no get_classifier(), no attribute "
            f"{', '.join(_CLASSIFIER_NAMES)} and no nn.Linear; pass classifier= (an nn.Linear, a 1x1 nn.Conv2d "
            "or a (K, C) weight tensor)"
        )
    reduced = _reduce_classifier(names.get(id(found), "classifier"), found)
    assert isinstance(reduced, nn.Module)
    return reduced


def _reduce_classifier(label: str, classifier: Classifier) -> Classifier:
    """The one linear layer (or 1x1 convolution) of a head, or the weight tensor; otherwise say why not."""
    if isinstance(classifier, Tensor) or isinstance(classifier, (nn.Linear, nn.Conv2d)):
        if isinstance(classifier, nn.Conv2d) and classifier.kernel_size != (1, 1):
            raise ValueError(
                f"{label} must be a 1x1 convolution to act as a classifier, got kernel size {classifier.kernel_size}"
            )
        return classifier
    if not isinstance(classifier, nn.Module) or not list(classifier.children()):
        raise TypeError(
            f"classifier must be an nn.Linear, a 1x1 nn.Conv2d, a head module holding one of them, or a "
            f"(K, C) weight tensor; {label} is a {type(classifier).__name__}: pass its final linear layer"
        )
    # A head may hold its own global pooling in front of the linear layer (timm's ClassifierHead): the pooling's
    # input is then the feature map, which the forward pass finds.
    layers = [m for m in _leaves(classifier) if not isinstance(m, _PASS_THROUGH)]
    while len(layers) > 1 and _is_global_average_pool(layers[0]):
        layers = layers[1:]
    if len(layers) == 1 and isinstance(layers[0], (nn.Linear, nn.Conv2d)):
        return _reduce_classifier(label, layers[0])
    if layers and isinstance(layers[0], nn.Conv2d) and _is_activation_then_global_pool(layers[1:]):
        return _reduce_classifier(label, layers[0])
    listing = " -> ".join(type(m).__name__ for m in _leaves(classifier)) or "nothing"
    raise ValueError(
        f"no class activation map: {label} is {listing}, not one linear layer on the globally pooled features, "
        "so the class scores are not a weighted sum of feature channels (an MLP head as in VGG and MobileNetV3, "
        "or a normalisation after pooling as in ConvNeXt). If a map from one of its layers is still wanted, pass "
        "feature_layer= or pool_layer= and classifier= explicitly"
    )


def _leaves(module: nn.Module) -> List[nn.Module]:
    children = list(module.children())
    if not children:
        return [module]
    return [leaf for child in children for leaf in _leaves(child)]


def _is_global_average_pool(module: nn.Module) -> bool:
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return module.output_size in (1, (1, 1))
    # camfix's TAPool and timm's SelectAdaptivePool2d, recognised without importing either's package.
    return type(module).__name__ in ("TAPool", "SelectAdaptivePool2d")


def _is_activation_then_global_pool(layers: List[nn.Module]) -> bool:
    if not layers or not _is_global_average_pool(layers[-1]):
        return False
    return all(isinstance(m, (nn.ReLU, nn.ReLU6, nn.LeakyReLU)) for m in layers[:-1])


def _conv_classifier_before_pooling(model: nn.Module, conv: nn.Conv2d) -> bool:
    """The head is a Sequential ``[dropout], 1x1 conv, [activation], global pooling`` (SqueezeNet)."""
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            layers = [m for m in _leaves(module) if not isinstance(m, _PASS_THROUGH)]
            if layers and layers[0] is conv and _is_activation_then_global_pool(layers[1:]):
                return True
    return False


def _find_pool(model: nn.Module) -> Optional[nn.Module]:
    return next(
        (getattr(model, name) for name in _POOL_NAMES if isinstance(getattr(model, name, None), nn.Module)), None
    )


def _suggest_layer(model: Optional[nn.Module]) -> str:
    """What to pass when the chosen layer ran several times: the model's pooling layer, when it has one."""
    pool = _find_pool(model) if model is not None else None
    if model is not None and pool is not None:
        return f"pass pool_layer={_module_names(model)[id(pool)]} (its input is the feature map) instead"
    return (
        "pass pool_layer= (the global pooling layer: its input is the feature map) or feature_layer= (a layer "
        "that runs once, whose output is the feature map)"
    )
