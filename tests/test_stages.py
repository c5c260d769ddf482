"""The stages of ``camfix.localize`` called one by one: ``class_maps`` -> ``saliency_maps`` -> thresholds and
boxes give exactly what ``localize`` gives, and each stage checks its own arguments under their names."""

from __future__ import annotations

import pytest
import torch

import camfix
from camfix import (
    class_maps,
    denormalize_images,
    localize,
    mask_to_box,
    percentile_normalize,
    percentile_threshold,
    saliency_maps,
)

from nets import CountingResNet, all_hooks


@pytest.fixture
def model() -> CountingResNet:
    torch.manual_seed(0)
    return CountingResNet(signed_weights=True).eval()


IMAGES = torch.randn(3, 3, 96, 64)


@pytest.mark.parametrize("clamp_negative", [True, False])
@pytest.mark.parametrize("labels", [None, [4, 0, 2]])
def test_class_maps_is_the_cam_resized_and_normalised(model: CountingResNet, clamp_negative: bool, labels) -> None:
    stage = class_maps(model, IMAGES, labels, clamp_negative=clamp_negative)
    assert model.calls == 1 and all_hooks(model) == 0
    with torch.no_grad():
        logits = model(IMAGES)
    classes = logits.argmax(1) if labels is None else torch.tensor(labels)
    with torch.no_grad():
        features = model.features(IMAGES)
    raw = camfix.cam(features, model.fc.weight, clamp_negative=clamp_negative, classes=classes)
    expected = camfix.normalize_maps(camfix.resize_maps(raw, (96, 64)))
    torch.testing.assert_close(stage.maps, expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(stage.classes, classes)
    torch.testing.assert_close(stage.logits, logits)
    assert stage.maps.dtype == torch.float32 and stage.classes.dtype == torch.int64


@pytest.mark.parametrize("pct", [98.0, 100.0, 50.0])
def test_saliency_maps_without_crf_is_pas(model: CountingResNet, pct: float) -> None:
    maps = class_maps(model, IMAGES).maps
    assert torch.equal(saliency_maps(maps, pct), percentile_normalize(maps, pct))


@pytest.mark.parametrize("options", [{}, {"theta_loc": 0.2, "pct": 90.0}, {"clamp_negative": False, "pct": 100.0}])
def test_the_stages_give_what_localize_gives(model: CountingResNet, options: dict) -> None:
    theta, pct = options.get("theta_loc", 0.35), options.get("pct", 98.0)
    result = localize(model, IMAGES, **options)
    stage = class_maps(model, IMAGES, clamp_negative=options.get("clamp_negative", True))
    assert torch.equal(result.maps, stage.maps) and torch.equal(result.classes, stage.classes)
    thresholds = percentile_threshold(stage.maps, theta, pct)
    masks = stage.maps > thresholds[:, None, None]
    assert torch.equal(result.thresholds, thresholds) and torch.equal(result.masks, masks)
    assert torch.equal(result.boxes, mask_to_box(masks))
    # PaS as a normalisation: the same mask at theta (no pixel sits exactly on the threshold here).
    assert torch.equal(saliency_maps(stage.maps, pct) > theta, masks)


def test_localize_with_crf_is_the_stages_with_theta_loc_as_the_operating_point(model: CountingResNet) -> None:
    pytest.importorskip("pydensecrf.densecrf")
    from camfix.crf import DenseCRFParams, refine_saliency_batch

    params = DenseCRFParams(iterations=3)
    images = torch.randn(2, 3, 64, 64)
    result = localize(model, images, crf=True, crf_params=params, crf_workers=1, theta_loc=0.3)
    rgb = denormalize_images(images)
    maps = class_maps(model, images).maps
    staged = saliency_maps(maps, crf_images=rgb, crf_params=params, crf_workers=1, crf_threshold=0.3)
    assert torch.equal(result.maps, staged)
    assert torch.equal(result.masks, staged > 0.5) and torch.equal(result.boxes, mask_to_box(staged > 0.5))
    expected = refine_saliency_batch(rgb, percentile_normalize(maps, 98.0), params, workers=1, threshold=0.3)
    assert torch.equal(staged, expected)
    # Without crf_threshold the stage uses the CRF's own default operating point, 0.5; crf_alpha is PSA's unary.
    default = saliency_maps(maps, crf_images=rgb, crf_params=params, crf_workers=1)
    assert torch.equal(default, refine_saliency_batch(rgb, percentile_normalize(maps, 98.0), params, workers=1))
    psa = saliency_maps(maps, 90.0, crf_images=rgb, crf_params=params, crf_workers=1, crf_alpha=4.0)
    assert torch.equal(psa, refine_saliency_batch(rgb, percentile_normalize(maps, 90.0), params, workers=1, alpha=4.0))


def test_class_maps_refuses_bad_arguments_before_the_forward_pass(model: CountingResNet) -> None:
    for kwargs, error, message in (
        ({"labels": [0, 1]}, ValueError, "labels"),
        ({"labels": [0, 1, 9]}, ValueError, "labels"),
        ({"interpolation": "nearest"}, ValueError, "interpolation must be one of"),
        ({"clamp_negative": 1}, TypeError, "clamp_negative must be a bool"),
        ({"image_size": (0, 4)}, ValueError, "image_size"),
    ):
        with pytest.raises(error) as raised:
            class_maps(model, IMAGES, **kwargs)
        assert message in str(raised.value), kwargs
    assert model.calls == 0 and all_hooks(model) == 0
    # A classifier of the wrong width shows only on the forward pass.
    with pytest.raises(ValueError, match="has C=32 channels but the classifier expects 3"):
        class_maps(model, IMAGES, classifier=torch.randn(5, 3))
    assert all_hooks(model) == 0
    with pytest.raises(TypeError, match="images must be a torch.Tensor"):
        class_maps(model, IMAGES.numpy())
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        class_maps(lambda x: x, IMAGES)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"pct": 101}, ValueError, "pct must be in [0, 100]"),
        ({"crf_threshold": 0.4}, ValueError, "crf_threshold set the dense CRF, which runs only with crf_images="),
        ({"crf_workers": 2, "crf_alpha": 4.0}, ValueError, "crf_workers, crf_alpha set the dense CRF"),
        ({"crf_images": torch.zeros(3, 3, 96, 64)}, TypeError, "crf_images must have dtype torch.uint8"),
        ({"crf_images": torch.zeros(2, 3, 96, 64, dtype=torch.uint8)}, ValueError, "crf_images must be uint8 RGB of shape (3, 3, 96, 64)"),
        ({"crf_images": torch.zeros(3, 3, 96, 64, dtype=torch.uint8), "crf_threshold": 1.0}, ValueError, "crf_threshold must be in (0, 1)"),
        ({"crf_images": torch.zeros(3, 3, 96, 64, dtype=torch.uint8), "crf_workers": 0}, ValueError, "crf_workers"),
        ({"crf_images": torch.zeros(3, 3, 96, 64, dtype=torch.uint8), "crf_params": {}}, TypeError, "crf_params must be"),
        ({"crf_images": torch.zeros(3, 3, 96, 64, dtype=torch.uint8), "crf_threshold": 0.3, "crf_alpha": 4.0}, ValueError, "not both"),
    ],
)
def test_saliency_maps_names_bad_arguments(kwargs: dict, error: type, message: str) -> None:
    if "crf_images" in kwargs:
        pytest.importorskip("pydensecrf.densecrf")
    with pytest.raises(error) as raised:
        saliency_maps(torch.rand(3, 96, 64), **kwargs)
    assert message in str(raised.value)


def test_saliency_maps_names_bad_maps() -> None:
    with pytest.raises(ValueError, match="maps"):
        saliency_maps(torch.full((2, 4, 4), float("nan")))
    with pytest.raises(TypeError, match="maps"):
        saliency_maps("maps")  # type: ignore[arg-type]


def test_the_demo_calls_the_stages_not_localize(monkeypatch: pytest.MonkeyPatch) -> None:
    """No caller runs localize and then redoes its steps: the demo's maps come from class_maps (the recipe's
    ``paper_maps`` is checked the same way in test_imagenet_example.py)."""
    from camfix.demo import ablation

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the demo called camfix.localize")

    monkeypatch.setattr(camfix, "localize", refuse)
    model = CountingResNet(signed_weights=True).eval()
    labels = torch.tensor([0, 1, 2])
    maps, predictions = ablation._cam_maps(model, IMAGES, labels, nwc=True, batch_size=2)
    whole = class_maps(model, IMAGES, labels)
    torch.testing.assert_close(maps, whole.maps)  # batches of 2 + 1 against one of 3
    assert predictions.shape == (3,) and torch.equal(predictions, whole.logits.argmax(1))


def test_stages_on_a_batch_of_one_channels_last_and_non_contiguous_input(model: CountingResNet) -> None:
    one = IMAGES[:1]
    reference = class_maps(model, one)
    last = class_maps(model, one.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(last.maps, reference.maps, rtol=1e-4, atol=1e-5)
    strided = torch.randn(1, 3, 64, 96).transpose(2, 3)  # (1, 3, 96, 64), not contiguous
    torch.testing.assert_close(class_maps(model, strided).maps, class_maps(model, strided.contiguous()).maps)
    assert reference.maps.shape == (1, 96, 64) and saliency_maps(reference.maps).shape == (1, 96, 64)


def test_class_maps_of_a_one_by_one_feature_map_are_zero(model: CountingResNet) -> None:
    """A 32 x 32 image gives a 1 x 1 feature map: a constant map, hence zeros (and no box from localize)."""
    stage = class_maps(model, torch.randn(2, 3, 32, 32))
    assert torch.equal(stage.maps, torch.zeros(2, 32, 32))
    assert torch.equal(saliency_maps(stage.maps), torch.zeros(2, 32, 32))


def test_class_maps_under_bf16_autocast_are_float32_and_close(model: CountingResNet) -> None:
    reference = class_maps(model, IMAGES)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        stage = class_maps(model, IMAGES)
    assert stage.maps.dtype == torch.float32 and torch.equal(stage.classes, reference.classes)
    assert float((stage.maps - reference.maps).abs().mean()) < 0.05


def test_class_maps_refuse_non_finite_images_before_the_forward_pass(model: CountingResNet) -> None:
    bad = IMAGES.clone()
    bad[0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="images must be finite"):
        class_maps(model, bad)
    assert model.calls == 0


def test_localize_with_crf_at_another_image_size_needs_crf_images_before_the_forward_pass(model: CountingResNet) -> None:
    pytest.importorskip("pydensecrf.densecrf")
    with pytest.raises(ValueError, match=r"image_size=\(48, 32\) .* pass crf_images="):
        localize(model, IMAGES, crf=True, image_size=(48, 32))
    assert model.calls == 0
    rgb = torch.randint(0, 256, (3, 3, 48, 32), dtype=torch.uint8)
    result = localize(model, IMAGES, crf=True, image_size=(48, 32), crf_images=rgb, crf_workers=1)
    assert result.maps.shape == (3, 48, 32) and model.calls == 1


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_saliency_maps_keep_the_dtype_without_the_crf_and_give_float32_with_it(dtype: torch.dtype) -> None:
    maps = torch.rand(1, 24, 20, dtype=dtype)
    assert saliency_maps(maps).dtype == dtype
    pytest.importorskip("pydensecrf.densecrf")
    from camfix.crf import DenseCRFParams

    rgb = torch.randint(0, 256, (1, 3, 24, 20), dtype=torch.uint8)
    refined = saliency_maps(maps, crf_images=rgb, crf_params=DenseCRFParams(iterations=2), crf_workers=1)
    assert refined.dtype == torch.float32 and refined.shape == (1, 24, 20)
    assert float(refined.min()) >= 0.0 and float(refined.max()) <= 1.0


def test_class_maps_of_a_float16_model() -> None:
    torch.manual_seed(0)
    model = CountingResNet(signed_weights=True).eval()
    reference = class_maps(model, IMAGES)
    half = class_maps(model.half(), IMAGES.half())
    assert half.maps.dtype == torch.float32 and half.logits.dtype == torch.float16
    assert float((half.maps - reference.maps).abs().mean()) < 0.05
