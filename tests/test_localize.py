"""camfix.localize on torchvision-style, timm-style and custom models: equal to the computation done by hand,
labels vs top-1, model state and hooks left as found (also after an exception), and bad input."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import pytest
import torch
from nets import ConvHeadNet, TimmStyleNet, TorchvisionResNet, all_hooks
from torch import Tensor, nn

import camfix
from camfix import (
    NO_BOX,
    LocalizationResult,
    TAPool,
    cam,
    localize,
    mask_to_box,
    normalize_maps,
    percentile_threshold,
    resize_maps,
)


def manual_localization(
    features: Tensor,
    fc_weight: Tensor,
    classes: Tensor,
    size: Sequence[int],
    clamp_negative: bool = True,
    theta_loc: float = 0.35,
    pct: float = 98.0,
    interpolation: str = "bicubic",
) -> dict:
    """The pipeline localize documents, step by step: cam -> resize -> normalise -> PaS threshold -> box."""
    raw = cam(features, fc_weight, clamp_negative=clamp_negative, classes=classes)
    maps = normalize_maps(resize_maps(raw.float(), tuple(size), mode=interpolation))
    thresholds = percentile_threshold(maps, theta_loc, pct)
    masks = maps > thresholds[:, None, None]
    return {"maps": maps, "thresholds": thresholds, "masks": masks, "boxes": mask_to_box(masks)}


def assert_matches(result: LocalizationResult, expected: dict) -> None:
    torch.testing.assert_close(result.maps, expected["maps"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(result.thresholds, expected["thresholds"], rtol=1e-5, atol=1e-6)
    # A pixel within float rounding of the threshold may flip; with continuous random maps none is that close.
    assert torch.equal(result.masks, expected["masks"])
    assert torch.equal(result.boxes, expected["boxes"])



def torchvision_model() -> TorchvisionResNet:
    model = TorchvisionResNet(num_classes=5).eval()
    with torch.no_grad():
        model.fc.weight.copy_(torch.randn_like(model.fc.weight))  # both signs, so that NWC changes the maps
    return model


IMAGES_SHAPE = (2, 3, 128, 96)  # a 4 x 3 feature map for the stride-32 ResNet


# ------------------------------------------------------------------------------------------ equals the hand version


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"clamp_negative": False, "pct": 100.0},
        {"theta_loc": 0.2, "pct": 90.0, "interpolation": "bilinear"},
        {"image_size": (50, 70)},
    ],
)
def test_torchvision_resnet_equals_manual_computation(options: dict) -> None:
    model = torchvision_model()
    images = torch.randn(IMAGES_SHAPE)
    labels = torch.tensor([3, 1])
    result = localize(model, images, labels, **options)
    with torch.no_grad():
        features = model.features(images)
        logits = model(images)
    size = options.pop("image_size", IMAGES_SHAPE[2:])
    assert_matches(result, manual_localization(features, model.fc.weight, labels, size, **options))
    assert torch.equal(result.classes, labels)
    torch.testing.assert_close(result.logits, logits)
    assert result.maps.shape == result.masks.shape == (2, *size)


def test_result_types_and_ranges() -> None:
    result = localize(torchvision_model(), torch.randn(IMAGES_SHAPE))
    assert result.maps.dtype == torch.float32 and result.masks.dtype == torch.bool
    assert result.boxes.dtype == torch.int64 and result.boxes.shape == (2, 4)
    assert result.thresholds.dtype == torch.float32 and result.thresholds.shape == (2,)
    assert result.classes.dtype == torch.int64 and result.logits.shape == (2, 5)
    assert float(result.maps.min()) >= 0.0 and float(result.maps.max()) <= 1.0
    for box, mask in zip(result.boxes.tolist(), result.masks):
        x0, y0, x1, y1 = box
        assert mask[y0 : y1 + 1, x0 : x1 + 1].any()  # inclusive box around foreground


def test_top1_when_no_labels() -> None:
    model = torchvision_model()
    images = torch.randn(IMAGES_SHAPE)
    result = localize(model, images)
    with torch.no_grad():
        logits = model(images)
        features = model.features(images)
    top1 = logits.argmax(dim=1)
    assert torch.equal(result.classes, top1)
    assert_matches(result, manual_localization(features, model.fc.weight, top1, IMAGES_SHAPE[2:]))
    other = (top1 + 1) % 5
    assert not torch.allclose(localize(model, images, other).maps, result.maps)


def test_labels_as_list_and_batch_of_one() -> None:
    model = torchvision_model()
    images = torch.randn(IMAGES_SHAPE)
    torch.testing.assert_close(localize(model, images, [3, 1]).maps, localize(model, images, torch.tensor([3, 1])).maps)
    single = localize(model, images[:1], [4])
    assert single.maps.shape == (1, *IMAGES_SHAPE[2:]) and single.boxes.shape == (1, 4)
    # BatchNorm in eval mode: an image's map does not depend on the rest of the batch.
    torch.testing.assert_close(single.maps[0], localize(model, images, [4, 4]).maps[0], rtol=1e-5, atol=1e-6)


def test_classifier_bias_is_ignored() -> None:
    model = torchvision_model()
    images = torch.randn(IMAGES_SHAPE)
    before = localize(model, images, [0, 2])
    with torch.no_grad():
        model.fc.bias.add_(torch.randn(5) * 10)
    after = localize(model, images, [0, 2])
    assert torch.equal(before.maps, after.maps) and torch.equal(before.boxes, after.boxes)


def test_maps_come_from_features_before_pooling_gap_or_tap() -> None:
    gap_model = torchvision_model()
    images = torch.randn(IMAGES_SHAPE)
    tap_model = TorchvisionResNet(num_classes=5).eval()
    tap_model.avgpool = TAPool(0.05)
    tap_model.load_state_dict(gap_model.state_dict(), strict=True)
    gap_result = localize(gap_model, images, [1, 2])
    tap_result = localize(tap_model, images, [1, 2])
    assert torch.equal(gap_result.maps, tap_result.maps)
    assert not torch.allclose(gap_result.logits, tap_result.logits)


def test_timm_style_model_uses_get_classifier() -> None:
    model = TimmStyleNet(num_classes=4).eval()
    model.global_pool = TAPool(0.05, flatten=True)
    images = torch.randn(2, 3, 24, 20)
    result = localize(model, images, [3, 0])
    with torch.no_grad():
        features = model.forward_features(images)
    assert_matches(result, manual_localization(features, model.head.weight, torch.tensor([3, 0]), (24, 20)))


def test_camfix_models_seresnet_small() -> None:
    models = pytest.importorskip("camfix.models")
    model = models.seresnet_small(num_classes=3).eval()
    images = torch.randn(1, 3, 48, 40)
    result = localize(model, images)
    with torch.no_grad():
        features = model.forward_features(images)
        logits = model(images)
    top1 = logits.argmax(dim=1)
    assert features.shape[-2:] == (6, 5)
    assert torch.equal(result.classes, top1)
    assert_matches(result, manual_localization(features, model.get_classifier().weight, top1, (48, 40)))


@pytest.mark.parametrize("as_weight", [False, True])
def test_custom_model_with_explicit_feature_layer_and_conv_classifier(as_weight: bool) -> None:
    model = ConvHeadNet(num_classes=3).eval()
    images = torch.randn(2, 3, 10, 12)
    classifier = model.classifier.weight if as_weight else model.classifier
    result = localize(model, images, feature_layer=model.features, classifier=classifier)
    with torch.no_grad():
        features = model.features(images)
        top1 = model(images).argmax(dim=1)
    assert model.classifier.weight.shape == (3, 6, 1, 1)
    assert_matches(result, manual_localization(features, model.classifier.weight, top1, (10, 12)))


def test_channels_last_and_float64_models() -> None:
    model = torchvision_model()
    images = torch.randn(IMAGES_SHAPE)
    expected = localize(model, images, [2, 3])
    channels_last = localize(model.to(memory_format=torch.channels_last),
                             images.to(memory_format=torch.channels_last), [2, 3])
    torch.testing.assert_close(channels_last.maps, expected.maps, rtol=1e-4, atol=1e-5)
    double = localize(model.double(), images.double(), [2, 3])
    assert double.maps.dtype == torch.float32 and double.logits.dtype == torch.float64
    torch.testing.assert_close(double.maps, expected.maps, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype, tol", [(torch.float16, 0.01), (torch.bfloat16, 0.05)])
def test_half_precision_models(dtype: torch.dtype, tol: float) -> None:
    model = torchvision_model()
    images = torch.randn(IMAGES_SHAPE)
    expected = localize(model, images, [2, 3])
    result = localize(model.to(dtype), images.to(dtype), [2, 3])
    assert result.maps.dtype == torch.float32 and result.logits.dtype == dtype
    torch.testing.assert_close(result.maps, expected.maps, rtol=0, atol=tol)


def test_under_cpu_autocast_bfloat16() -> None:
    model = torchvision_model()
    images = torch.randn(IMAGES_SHAPE)
    expected = localize(model, images, [2, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = localize(model, images, [2, 3])
    assert result.maps.dtype == torch.float32 and result.logits.dtype == torch.bfloat16
    assert float(result.maps.min()) >= 0.0 and float(result.maps.max()) <= 1.0
    torch.testing.assert_close(result.maps, expected.maps, rtol=0, atol=0.1)


def test_all_zero_map_gives_no_box() -> None:
    model = torchvision_model()
    with torch.no_grad():
        model.fc.weight[1] = -1.0  # NWC zeroes every weight of class 1: its map is all zeros
    result = localize(model, torch.randn(IMAGES_SHAPE), [1, 1])
    assert not result.masks.any() and (result.maps == 0).all()
    assert result.boxes.tolist() == [list(NO_BOX)] * 2


# ---------------------------------------------------------------------------------- model state and hooks restored


@pytest.mark.parametrize("training", [True, False])
def test_training_flag_restored(training: bool) -> None:
    model = torchvision_model().train(training)
    localize(model, torch.randn(IMAGES_SHAPE))
    assert model.training is training
    assert all(m.training is training for m in model.modules())


def test_mixed_submodule_modes_restored() -> None:
    model = torchvision_model().train()
    model.bn1.eval()
    model.layer1.eval()
    modes = {name: m.training for name, m in model.named_modules()}
    localize(model, torch.randn(IMAGES_SHAPE))
    assert {name: m.training for name, m in model.named_modules()} == modes


def test_localize_runs_the_model_in_eval_mode_without_grad() -> None:
    model = torchvision_model().train()
    seen = []
    model.fc.register_forward_hook(lambda module, args, out: seen.append((module.training, out.requires_grad)))
    running_mean = model.bn1.running_mean.clone()
    localize(model, torch.randn(IMAGES_SHAPE))
    assert seen == [(False, False)]
    assert torch.equal(model.bn1.running_mean, running_mean)  # BatchNorm statistics untouched


def test_hooks_removed_after_success_and_users_hooks_kept() -> None:
    model = torchvision_model()
    user_hook = model.avgpool.register_forward_pre_hook(lambda module, args: None)
    assert all_hooks(model) == 1
    localize(model, torch.randn(IMAGES_SHAPE))
    localize(model, torch.randn(IMAGES_SHAPE), feature_layer=model.layer4)  # forward-hook path
    assert all_hooks(model) == 1 and len(model.avgpool._forward_pre_hooks) == 1
    user_hook.remove()
    assert all_hooks(model) == 0


class Explodes(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        raise RuntimeError("boom in forward")


@pytest.mark.parametrize("explicit_layer", [False, True])
def test_hooks_removed_and_mode_restored_after_exception_in_forward(explicit_layer: bool) -> None:
    model = torchvision_model().train()
    model.avgpool = Explodes()  # runs after the feature map was recorded
    feature_layer = model.layer4 if explicit_layer else None
    with pytest.raises(RuntimeError, match="boom in forward"):
        localize(model, torch.randn(IMAGES_SHAPE), feature_layer=feature_layer)
    assert all_hooks(model) == 0
    assert model.training and all(m.training for m in model.modules())


# ------------------------------------------------------------------------------------------------------- bad input


class NoPooling(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 4, 3)
        self.out = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body(x).mean(dim=(2, 3)))


class PoolingWithoutClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 4, 3)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.avgpool(self.body(x)).flatten(1))


class SharedLayer(nn.Module):
    """Uses the same convolution twice: its output is not one well-defined feature map."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.stem = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(self.conv(self.stem(x))).mean(dim=(2, 3)))


class ReturnsDict(TorchvisionResNet):
    def forward(self, x: Tensor) -> dict:  # type: ignore[override]
        return {"logits": super().forward(x)}


class ConvOnly(nn.Module):
    """Class scores straight from a 3x3 convolution: no linear classifier to find."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 2, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x).mean(dim=(2, 3))


def test_found_by_structure_without_conventional_names() -> None:
    """Functional pooling and a pooling layer under an unknown name: found, and equal to the explicit form."""
    images = torch.randn(1, 3, 8, 8)
    for model in (NoPooling(), PoolingWithoutClassifier()):
        found = localize(model, images, pct=100, clamp_negative=False)
        explicit = localize(model, images, feature_layer=model.body, classifier=model.out, pct=100,
                            clamp_negative=False)
        torch.testing.assert_close(found.maps, explicit.maps)
        assert all_hooks(model) == 0


def test_model_where_nothing_is_found() -> None:
    with pytest.raises(ValueError, match="cannot find the classifier of ConvOnly.*classifier="):
        localize(ConvOnly(), torch.randn(1, 3, 8, 8))
    model = NoPooling()
    result = localize(model, torch.randn(1, 3, 8, 8), feature_layer=model.body, classifier=model.out)
    assert result.maps.shape == (1, 8, 8)


@pytest.mark.parametrize(
    "make_kwargs, error, pattern",
    [
        (lambda m: {"feature_layer": "layer4"}, TypeError, "feature_layer must be the nn.Module"),
        (lambda m: {"feature_layer": nn.Conv2d(3, 3, 1)}, ValueError,
         r"feature_layer \(Conv2d\) is not a submodule of model"),
        (lambda m: {"classifier": nn.Sequential(m.fc, nn.ReLU())}, ValueError, "no class activation map: classifier is Linear -> ReLU"),
        (lambda m: {"classifier": nn.Conv2d(8, 5, 3)}, ValueError, "classifier must be a 1x1 convolution"),
        (lambda m: {"feature_layer": m.layer4, "pool_layer": m.avgpool}, ValueError, "pass one of feature_layer="),
        (lambda m: {"pool_layer": "avgpool"}, TypeError, "pool_layer must be the nn.Module whose input"),
        (lambda m: {"classifier": "fc"}, TypeError, "classifier must be an nn.Linear"),
        (lambda m: {"feature_layer": m.fc}, ValueError, r"feature map .* must be a \(N, C, h, w\) tensor"),
    ],
)
def test_bad_feature_layer_or_classifier(make_kwargs: Callable, error: type, pattern: str) -> None:
    model = torchvision_model()
    with pytest.raises(error, match=pattern):
        localize(model, torch.randn(IMAGES_SHAPE), **make_kwargs(model))
    assert all_hooks(model) == 0


def test_feature_layer_run_twice() -> None:
    model = SharedLayer()
    with pytest.raises(ValueError, match="exactly once per forward pass, but it ran 2 times.*pool_layer="):
        localize(model, torch.randn(1, 3, 8, 8), feature_layer=model.conv)
    assert all_hooks(model) == 0


def test_top1_needs_logits() -> None:
    with pytest.raises(ValueError, match="labels=None needs the model to return"):
        localize(ReturnsDict().eval(), torch.randn(IMAGES_SHAPE))
    assert localize(ReturnsDict().eval(), torch.randn(IMAGES_SHAPE), [0, 1]).maps.shape == (2, 128, 96)


@pytest.mark.parametrize(
    "images, error, pattern",
    [
        (torch.full((1, 3, 64, 64), float("nan")), ValueError, "images must be finite, got 12288 NaN"),
        (torch.zeros(1, 3, 64, 64).index_fill_(2, torch.tensor([5]), float("inf")), ValueError,
         "images must be finite"),
        (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), TypeError, "images must be a floating point tensor"),
        (torch.zeros(3, 64, 64), ValueError, r"images must have shape \(N, C, H, W\)"),
        (torch.zeros(0, 3, 64, 64), ValueError, "images must not be empty"),
        (np.zeros((1, 3, 64, 64), dtype=np.float32), TypeError, "images must be a torch.Tensor"),
    ],
)
def test_bad_images(images: object, error: type, pattern: str) -> None:
    model = torchvision_model()
    with pytest.raises(error, match=pattern):
        localize(model, images)  # type: ignore[arg-type]
    assert all_hooks(model) == 0


@pytest.mark.parametrize(
    "labels, error, pattern",
    [
        ([1], ValueError, r"labels must have shape \(2,\) \(one class per image\), got \(1,\)"),
        (torch.tensor([[1], [2]]), ValueError, r"labels must have shape \(2,\)"),
        (torch.tensor(1), ValueError, r"labels must have shape \(2,\)"),
        ([0, 5], ValueError, r"labels must hold class indices in \[0, 4\], got values in \[0, 5\]"),
        (torch.tensor([-1, 2]), ValueError, r"labels must hold class indices in \[0, 4\]"),
        (torch.tensor([0.0, 1.0]), TypeError, "labels must be an integer tensor"),
        (torch.tensor([True, False]), TypeError, "labels must be an integer tensor"),
        ([0, 1.0], TypeError, "labels must hold ints"),
        ("01", TypeError, "labels must be a tensor or list of class indices"),
        (np.array([0, 1]), TypeError, "labels must be a tensor or list of class indices"),
    ],
)
def test_bad_labels(labels: object, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        localize(torchvision_model(), torch.randn(IMAGES_SHAPE), labels)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"image_size": (0, 10)}, ValueError, r"image_size must be a pair of positive ints \(H, W\)"),
        ({"image_size": 64}, ValueError, "image_size must be a pair of positive ints"),
        ({"pct": 101}, ValueError, r"pct must be in \[0, 100\]"),
        ({"pct": "98"}, TypeError, "pct must be a real number"),
        ({"clamp_negative": "yes"}, TypeError, "clamp_negative must be a bool"),
    ],
)
def test_bad_options(kwargs: dict, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        localize(torchvision_model(), torch.randn(IMAGES_SHAPE), **kwargs)


def test_bad_model() -> None:
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got function"):
        localize(lambda x: x, torch.randn(IMAGES_SHAPE))  # type: ignore[arg-type]


@pytest.mark.parametrize("theta_loc, error", [(1.5, ValueError), (-0.1, ValueError), ("0.35", TypeError)])
def test_bad_theta_loc_names_the_argument(theta_loc: object, error: type) -> None:
    with pytest.raises(error, match="theta_loc"):
        localize(torchvision_model(), torch.randn(IMAGES_SHAPE), theta_loc=theta_loc)  # type: ignore[arg-type]


def test_bad_interpolation_names_the_argument() -> None:
    with pytest.raises(ValueError, match="interpolation"):
        localize(torchvision_model(), torch.randn(IMAGES_SHAPE), interpolation="nearest")


# ------------------------------------------------------------------------------------------------------------ CUDA


@pytest.mark.cuda
@pytest.mark.parametrize("labels", [None, [3, 1]])
def test_localize_on_cuda_matches_cpu(labels: Optional[Sequence[int]]) -> None:
    model = torchvision_model()
    images = torch.randn(IMAGES_SHAPE)
    expected = localize(model, images, labels)
    result = localize(model.cuda(), images.cuda(), labels)
    for field in ("maps", "masks", "boxes", "thresholds", "classes"):
        assert getattr(result, field).device.type == "cuda", field
    # cuDNN may run the convolutions in TF32 (10-bit mantissa) by default: a loose tolerance.
    torch.testing.assert_close(result.maps.cpu(), expected.maps, rtol=0, atol=1e-2)
    assert torch.equal(result.classes.cpu(), expected.classes)


@pytest.mark.cuda
def test_localize_under_cuda_autocast_float16() -> None:
    model = torchvision_model().cuda()
    images = torch.randn(IMAGES_SHAPE, device="cuda")
    expected = localize(model, images, [2, 3])
    with torch.autocast("cuda", dtype=torch.float16):
        result = localize(model, images, [2, 3])
    assert result.maps.dtype == torch.float32 and result.logits.dtype == torch.float16
    torch.testing.assert_close(result.maps, expected.maps, rtol=0, atol=0.05)


@pytest.mark.crf
def test_crf_runs_after_pas_with_theta_loc_as_its_operating_point() -> None:
    pytest.importorskip("pydensecrf.densecrf")
    from camfix.crf import DenseCRFParams, refine_saliency_batch

    model = torchvision_model()
    images = torch.randn(2, 3, 40, 48)
    rgb = torch.randint(0, 256, (2, 3, 40, 48), dtype=torch.uint8)
    params = DenseCRFParams(iterations=3)
    result = localize(model, images, crf=True, crf_images=rgb, crf_params=params, crf_workers=1, theta_loc=0.4)
    with torch.no_grad():
        features = model.layer4(model.layer3(model.layer2(model.layer1(
            model.maxpool(model.relu(model.bn1(model.conv1(images))))))))
    plain = manual_localization(features, model.fc.weight, result.classes, (40, 48))["maps"]
    pas_maps = camfix.percentile_normalize(plain, 98.0)
    expected = refine_saliency_batch(rgb, pas_maps, params, workers=1, threshold=0.4)
    torch.testing.assert_close(result.maps, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(result.thresholds, torch.full((2,), 0.5))
    assert torch.equal(result.masks, result.maps > 0.5)
    assert torch.equal(result.boxes, mask_to_box(result.masks))
    # crf_threshold overrides theta_loc as the operating point; crf_alpha is PSA's power unary instead.
    kwargs = dict(crf=True, crf_images=rgb, crf_params=params, crf_workers=1)
    other = localize(model, images, theta_loc=0.4, crf_threshold=0.2, **kwargs)
    expected = refine_saliency_batch(rgb, pas_maps, params, workers=1, threshold=0.2)
    torch.testing.assert_close(other.maps, expected, rtol=1e-5, atol=1e-5)
    psa = localize(model, images, crf_alpha=4.0, **kwargs)
    expected = refine_saliency_batch(rgb, pas_maps, params, workers=1, alpha=4.0)
    torch.testing.assert_close(psa.maps, expected, rtol=1e-5, atol=1e-5)
    for bad, message in (
        (dict(theta_loc=0.0), "theta_loc is the CRF's operating point"),
        (dict(crf_threshold=1.0), "crf_threshold must be in (0, 1)"),
        (dict(crf_threshold=0.3, crf_alpha=4.0), "not both"),
        (dict(crf_alpha=-1.0), "crf_alpha"),
    ):
        with pytest.raises(ValueError) as info:
            localize(model, images, **bad, **kwargs)
        assert message in str(info.value)


def test_crf_default_images_are_the_unnormalised_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without crf_images, the CRF sees ``images * std + mean`` as uint8 RGB."""
    pytest.importorskip("pydensecrf.densecrf")
    import camfix.crf

    seen = {}

    def record(images: Tensor, maps: Tensor, params: object, workers: object, **operating_point: float) -> Tensor:
        seen["images"] = images
        seen["operating_point"] = operating_point
        return maps

    monkeypatch.setattr(camfix.crf, "refine_saliency_batch", record)
    rgb = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)
    mean, std = torch.tensor(camfix.IMAGENET_MEAN)[:, None, None], torch.tensor(camfix.IMAGENET_STD)[:, None, None]
    localize(torchvision_model(), (rgb.float() / 255 - mean) / std, crf=True)
    assert torch.equal(seen["images"], rgb)
    assert seen["operating_point"] == {"threshold": 0.35}  # theta_loc's default
