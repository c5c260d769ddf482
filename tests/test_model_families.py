"""``localize`` on the real model classes of torchvision, timm and lukemelas' EfficientNet (``weights=None``).

Each family found automatically is checked against a hand-written CAM of the same model: the feature map hooked
explicitly where that family's code computes it (for timm, ``forward_features``; for lukemelas'
EfficientNet, ``extract_features``), the weight taken from the classifier, the map written from its definition in
float64. Families without a class activation map are refused with the reason.
"""

from __future__ import annotations

from typing import Callable, Dict, Tuple

import pytest
import torch
from torch import Tensor, nn

import camfix
from camfix.models import import_torchvision
from nets import all_hooks

try:
    tv = import_torchvision()
except ImportError as error:  # pragma: no cover - the test extra installs torchvision
    pytest.skip(f"needs torchvision ({error})", allow_module_level=True)
timm = pytest.importorskip("timm", reason="needs timm (pip install 'camfix[test]')")

NUM_CLASSES = 5
LABELS = torch.tensor([1, 3])

# How to get the feature map of one batch by hand: (module, "input" or "output", apply ReLU?) and the weight.
HookSpec = Tuple[Callable[[nn.Module], nn.Module], str, bool, Callable[[nn.Module], Tensor]]


def _fc(m: nn.Module) -> Tensor:
    return m.fc.weight


def _last_linear(m: nn.Module) -> Tensor:
    return m.classifier[-1].weight


TORCHVISION: Dict[str, Tuple[Dict, int, HookSpec]] = {
    # name: (constructor kwargs, image size, how to find the map by hand)
    "resnet18": ({}, 64, (lambda m: m.avgpool, "input", False, _fc)),
    "resnext50_32x4d": ({}, 64, (lambda m: m.avgpool, "input", False, _fc)),
    "wide_resnet50_2": ({}, 64, (lambda m: m.avgpool, "input", False, _fc)),
    "regnet_y_400mf": ({}, 64, (lambda m: m.avgpool, "input", False, _fc)),
    "regnet_x_400mf": ({}, 64, (lambda m: m.avgpool, "input", False, _fc)),
    "googlenet": ({"aux_logits": False, "init_weights": False}, 64, (lambda m: m.avgpool, "input", False, _fc)),
    "inception_v3": ({"aux_logits": False, "init_weights": False}, 139, (lambda m: m.avgpool, "input", False, _fc)),
    **{
        f"efficientnet_b{i}": ({}, 64, (lambda m: m.avgpool, "input", False, _last_linear))
        for i in range(8)
    },
    "efficientnet_v2_s": ({}, 64, (lambda m: m.avgpool, "input", False, _last_linear)),
    "mobilenet_v2": ({}, 64, (lambda m: m.features, "output", False, _last_linear)),
    "mnasnet0_5": ({}, 64, (lambda m: m.layers, "output", False, _last_linear)),
    "shufflenet_v2_x0_5": ({}, 64, (lambda m: m.conv5, "output", False, _fc)),
    "densenet121": ({}, 64, (lambda m: m.features, "output", True, lambda m: m.classifier.weight)),
    "squeezenet1_0": ({}, 64, (lambda m: m.classifier[1], "input", False, lambda m: m.classifier[1].weight)),
    "squeezenet1_1": ({}, 64, (lambda m: m.classifier[1], "input", False, lambda m: m.classifier[1].weight)),
    "swin_t": ({}, 64, (lambda m: m.avgpool, "input", False, lambda m: m.head.weight)),
}


def hand_written_cam(features: Tensor, weight: Tensor, classes: Tensor, clamp_negative: bool) -> Tensor:
    """``M_k(i, j) = sum_c w[k, c] F_c(i, j)`` in float64, one image and one channel at a time."""
    features, weight = features.double(), weight.double().flatten(1)
    if clamp_negative:
        weight = weight.clamp(min=0)
    maps = torch.zeros(features.shape[0], *features.shape[2:], dtype=torch.float64)
    for n in range(features.shape[0]):
        for c in range(features.shape[1]):
            maps[n] += weight[classes[n], c] * features[n, c]
    return maps


def record(module: nn.Module, where: str, run: Callable[[], object]) -> Tensor:
    seen = []
    if where == "input":
        handle = module.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    else:
        handle = module.register_forward_hook(lambda mod, args, out: seen.append(out))
    try:
        with torch.no_grad():
            run()
    finally:
        handle.remove()
    assert len(seen) == 1
    return seen[0]


def assert_localize_matches(model: nn.Module, images: Tensor, features: Tensor, weight: Tensor) -> None:
    for clamp_negative in (False, True):
        expected = camfix.normalize_maps(
            camfix.resize_maps(hand_written_cam(features, weight, LABELS, clamp_negative).float(), images.shape[-2:])
        )
        result = camfix.localize(model, images, LABELS, clamp_negative=clamp_negative, pct=100)
        torch.testing.assert_close(result.maps, expected, atol=2e-4, rtol=0)
    assert all_hooks(model) == 0


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_family_found_automatically(name: str) -> None:
    kwargs, size, (module_of, where, relu, weight_of) = TORCHVISION[name]
    model = getattr(tv.models, name)(weights=None, num_classes=NUM_CLASSES, **kwargs).eval()
    images = torch.randn(2, 3, size, size)
    features = record(module_of(model), where, lambda: model(images))
    if relu:  # DenseNet applies F.relu between its features and the pooling
        features = torch.relu(features)
    assert_localize_matches(model, images, features, weight_of(model))


@pytest.mark.parametrize(
    "build, pattern",
    [
        (lambda: tv.models.mobilenet_v3_small(num_classes=NUM_CLASSES), r"Linear -> Hardswish -> Dropout -> Linear"),
        (lambda: tv.models.mobilenet_v3_large(num_classes=NUM_CLASSES), r"Linear -> Hardswish -> Dropout -> Linear"),
        (lambda: tv.models.convnext_tiny(num_classes=NUM_CLASSES), r"LayerNorm2d -> Flatten -> Linear"),
        (lambda: tv.models.vgg11(num_classes=NUM_CLASSES), r"an MLP head as in VGG"),
        (lambda: tv.models.alexnet(num_classes=NUM_CLASSES), r"Linear -> ReLU -> Dropout -> Linear"),
        (lambda: tv.models.maxvit_t(num_classes=NUM_CLASSES), r"LayerNorm -> Linear -> Tanh -> Linear"),
    ],
)
def test_torchvision_heads_without_cam_are_refused_before_the_forward_pass(build: Callable, pattern: str) -> None:
    with torch.device("meta"):  # refused from the structure alone: no weights, no forward pass
        model = build()
    with pytest.raises(ValueError, match="no class activation map: model.classifier is " + ".*" + pattern):
        camfix.localize(model, torch.randn(1, 3, 64, 64))


def test_vision_transformer_is_refused_on_the_forward_pass() -> None:
    model = tv.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=NUM_CLASSES
    ).eval()
    with pytest.raises(ValueError, match=r"not the global average of the last 4-D activation.*class token"):
        camfix.localize(model, torch.randn(2, 3, 32, 32))
    assert all_hooks(model) == 0


TIMM_FOUND = [
    "resnet18", "resnext26ts", "seresnext26d_32x4d", "efficientnet_b0", "tf_efficientnet_lite0", "mobilenetv2_050",
    "mnasnet_050", "mixnet_s", "regnety_002", "densenet121", "dla34", "repvgg_a0",
]


@pytest.mark.parametrize("name", TIMM_FOUND)
def test_timm_family_found_automatically(name: str) -> None:
    model = timm.create_model(name, pretrained=False, num_classes=NUM_CLASSES).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(images)
    assert_localize_matches(model, images, features, model.get_classifier().weight)


@pytest.mark.parametrize(
    "name, kwargs, pattern",
    [
        ("mobilenetv3_small_050", {}, r"pooled features .* are not what the classifier receives"),
        ("ghostnet_100", {}, r"pooled features .* are not what the classifier receives"),
        ("convnext_atto", {}, r"not the global average of the last 4-D activation .*ConvNeXt"),
        ("vit_tiny_patch16_224", {"img_size": 32, "depth": 1}, r"not the global average of the last 4-D activation"),
        ("levit_128s", {}, r"model.head is BatchNorm1d -> Dropout -> Linear"),
    ],
)
def test_timm_heads_without_cam_are_refused(name: str, kwargs: Dict, pattern: str) -> None:
    model = timm.create_model(name, pretrained=False, num_classes=NUM_CLASSES, **kwargs).eval()
    size = kwargs.get("img_size", 224 if "levit" in name else 64)
    with pytest.raises(ValueError, match="no class activation map: .*" + pattern):
        camfix.localize(model, torch.randn(2, 3, size, size))


@pytest.mark.parametrize("package", ["efficientnet_pytorch", "efficientnet_lite_pytorch"])
def test_lukemelas_efficientnet_layout(package: str) -> None:
    """``_avg_pooling`` + ``_fc``, and one ``_swish`` module used in the stem and the head."""
    module = pytest.importorskip(package)
    name = "efficientnet-b0" if package == "efficientnet_pytorch" else "efficientnet-lite0"
    model = module.EfficientNet.from_name(name, num_classes=NUM_CLASSES).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.extract_features(images)
    assert_localize_matches(model, images, features, model._fc.weight)
    explicit = camfix.localize(model, images, LABELS, pool_layer=model._avg_pooling)
    torch.testing.assert_close(explicit.maps, camfix.localize(model, images, LABELS).maps)
    with pytest.raises(ValueError, match=r"model._swish.*ran 2 times; pass pool_layer=model._avg_pooling"):
        camfix.localize(model, images, feature_layer=model._swish)


def test_functional_pooling_under_autocast_and_channels_last() -> None:
    """The traced map is confirmed within the rounding of bfloat16, and channels_last input changes nothing."""
    model = tv.models.mobilenet_v2(weights=None, num_classes=NUM_CLASSES).eval()
    images = torch.randn(2, 3, 64, 64)
    reference = camfix.localize(model, images, LABELS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = camfix.localize(model, images, LABELS)
    assert low.maps.dtype == torch.float32
    assert (low.maps - reference.maps).abs().mean() < 0.02
    last = camfix.localize(model, images.contiguous(memory_format=torch.channels_last), LABELS)
    torch.testing.assert_close(last.maps, reference.maps, atol=1e-4, rtol=0)
