"""camfix.models: timm key parity, shapes, pooling swap, checkpoints and the torchvision loader."""

from __future__ import annotations

import math
from typing import List

import pytest
import torch

import camfix
from camfix.models import (
    ResNet,
    SEModule,
    load_torchvision_resnet,
    resnet50,
    se_channels,
    seresnet50,
    seresnet_small,
)

# ---------------------------------------------------------------------------------------------------------------
# Expected state_dict keys, written from timm's definition (timm/models/resnet.py: ResNet, Bottleneck,
# make_blocks, create_classifier; timm/layers/squeeze_excite.py: SEModule), not from camfix's code.
# seresnet50 = ResNet(Bottleneck, layers=[3, 4, 6, 3], block_args=dict(attn_layer='se')).
# ---------------------------------------------------------------------------------------------------------------
BN = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
STEM_KEYS = ["conv1.weight"] + [f"bn1.{s}" for s in BN]
# Registration order in timm's Bottleneck: conv1, bn1, act1, conv2, bn2, drop_block, act2, aa, conv3, bn3, se,
# act3, downsample; SEModule: fc1 (conv, bias), bn (Identity), act, fc2 (conv, bias), gate.
BLOCK_KEYS = (
    ["conv1.weight"] + [f"bn1.{s}" for s in BN]
    + ["conv2.weight"] + [f"bn2.{s}" for s in BN]
    + ["conv3.weight"] + [f"bn3.{s}" for s in BN]
)
SE_KEYS = ["se.fc1.weight", "se.fc1.bias", "se.fc2.weight", "se.fc2.bias"]
DOWNSAMPLE_KEYS = ["downsample.0.weight"] + [f"downsample.1.{s}" for s in BN]
HEAD_KEYS = ["fc.weight", "fc.bias"]
DEPTHS_50 = [3, 4, 6, 3]


def expected_keys(squeeze_excite: bool) -> List[str]:
    keys = list(STEM_KEYS)
    for stage, depth in enumerate(DEPTHS_50, start=1):
        for block in range(depth):
            suffixes = BLOCK_KEYS + (SE_KEYS if squeeze_excite else []) + (DOWNSAMPLE_KEYS if block == 0 else [])
            keys += [f"layer{stage}.{block}.{s}" for s in suffixes]
    return keys + HEAD_KEYS


# (key, shape) pairs from timm's channel arithmetic: outputs planes * 4, SE width make_divisible(C / 16, 8).
SERESNET50_SHAPES = {
    "conv1.weight": (64, 3, 7, 7),
    "layer1.0.conv1.weight": (64, 64, 1, 1),
    "layer1.0.conv2.weight": (64, 64, 3, 3),
    "layer1.0.conv3.weight": (256, 64, 1, 1),
    "layer1.0.se.fc1.weight": (16, 256, 1, 1),
    "layer1.0.se.fc1.bias": (16,),
    "layer1.0.se.fc2.weight": (256, 16, 1, 1),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer2.0.conv1.weight": (128, 256, 1, 1),
    "layer2.0.se.fc1.weight": (32, 512, 1, 1),
    "layer2.0.downsample.0.weight": (512, 256, 1, 1),
    "layer3.5.se.fc2.weight": (1024, 64, 1, 1),
    "layer4.0.downsample.0.weight": (2048, 1024, 1, 1),
    "layer4.2.se.fc1.weight": (128, 2048, 1, 1),
    "layer4.2.se.fc2.bias": (2048,),
    "fc.weight": (1000, 2048),
    "fc.bias": (1000,),
}


@pytest.fixture(scope="module")
def big_se() -> ResNet:
    return seresnet50().eval()


def test_seresnet50_keys_match_timm(big_se: ResNet) -> None:
    keys = list(big_se.state_dict())
    assert len(keys) == 384
    assert keys == expected_keys(squeeze_excite=True)
    shapes = {k: tuple(v.shape) for k, v in big_se.state_dict().items()}
    for key, shape in SERESNET50_SHAPES.items():
        assert shapes[key] == shape, key


def test_resnet50_keys_match_timm_and_torchvision() -> None:
    model = resnet50()
    assert list(model.state_dict()) == expected_keys(squeeze_excite=False)
    # Parameter counts published by timm/torchvision: resnet50 25,557,032; seresnet50 28,088,024.
    assert sum(p.numel() for p in model.parameters()) == 25_557_032


def test_seresnet50_parameter_count(big_se: ResNet) -> None:
    assert sum(p.numel() for p in big_se.parameters()) == 28_088_024


def test_module_paths_match_timm(big_se: ResNet) -> None:
    names = dict(big_se.named_modules())
    for path in [
        "act1", "maxpool", "layer1.0.act1", "layer1.0.drop_block", "layer1.0.act2", "layer1.0.aa", "layer1.0.act3",
        "layer1.0.se.bn", "layer1.0.se.act", "layer1.0.se.gate", "global_pool.pool", "global_pool.flatten",
    ]:
        assert path in names, path
    assert type(names["global_pool"]).__name__ == "SelectAdaptivePool2d"
    assert isinstance(names["layer1.0.se.bn"], torch.nn.Identity)
    assert isinstance(names["layer1.0.se.gate"], torch.nn.Sigmoid)


def test_forward_shapes(big_se: ResNet) -> None:
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert big_se.forward_features(x).shape == (2, 2048, 2, 2)
        assert big_se(x).shape == (2, 1000)
    small = seresnet_small(num_classes=7).eval()
    with torch.no_grad():
        features = small.forward_features(x)
        assert features.shape == (2, 512, 8, 8)
        assert bool((features >= 0).all())
        assert small.forward_head(features, pre_logits=True).shape == (2, 512)
        assert small(x).shape == (2, 7)
        for stride, side in [(16, 4), (32, 2)]:
            assert seresnet_small(3, output_stride=stride).eval().forward_features(x).shape == (2, 512, side, side)


def test_dilation_follows_timm_output_stride() -> None:
    # timm's make_blocks with output_stride=8: layer3 and layer4 keep stride 1 and dilate (2, then 4); the first
    # block of a dilated stage uses the previous stage's dilation.
    model = ResNet(DEPTHS_50, output_stride=8, squeeze_excite=True)
    dilations = {name: m.conv2.dilation[0] for name, m in model.named_modules() if name.startswith("layer") and name.count(".") == 1}
    assert dilations["layer3.0"] == 1 and dilations["layer3.1"] == 2 and dilations["layer3.5"] == 2
    assert dilations["layer4.0"] == 2 and dilations["layer4.1"] == 4
    assert model.layer3[0].conv2.stride == (1, 1) and model.layer2[0].conv2.stride == (2, 2)


def test_classifier_interface() -> None:
    model = seresnet_small(num_classes=5).eval()
    assert model.get_classifier() is model.fc
    assert model.fc.weight.shape == (5, 512)
    tap = camfix.TAPool(0.05, flatten=True)
    model.global_pool = tap
    model.reset_classifier(3)
    assert model.global_pool is tap and model.fc.weight.shape == (3, 512) and model.num_classes == 3
    model.reset_classifier(0)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 512)
    model.reset_classifier(4, global_pool="max")
    assert model.global_pool.pool_type == "max"


def test_tap_swap_keeps_state_dict_and_pools_with_tap() -> None:
    torch.manual_seed(0)
    model = seresnet_small(num_classes=4).eval()
    keys_before = list(model.state_dict())
    model.global_pool = camfix.TAPool(0.05, flatten=True)
    assert list(model.state_dict()) == keys_before
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        features = model.forward_features(x)
        expected = model.fc(camfix.tap(features, 0.05, flatten=True))
        torch.testing.assert_close(model(x), expected)


def test_unflattened_pool_is_reported() -> None:
    model = seresnet_small(num_classes=4).eval()
    model.global_pool = camfix.TAPool(0.05, flatten=False)
    with pytest.raises(ValueError, match="flatten=True"):
        model(torch.randn(1, 3, 32, 32))


def test_state_dict_round_trip_strict(tmp_path) -> None:
    torch.manual_seed(0)
    model = seresnet_small(num_classes=6)
    model.train()
    with torch.no_grad():  # move the BN statistics away from their defaults
        model(torch.randn(4, 3, 32, 32))
    model.eval()
    path = tmp_path / "small.pt"
    torch.save(model.state_dict(), path)
    restored = seresnet_small(num_classes=6, global_pool=camfix.TAPool(0.05, flatten=True))
    result = restored.load_state_dict(torch.load(path, weights_only=True), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    restored.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(restored.forward_features(x), model.forward_features(x))


def test_se_module_matches_reference() -> None:
    torch.manual_seed(0)
    se = SEModule(40).double()
    x = torch.rand(2, 40, 3, 4, dtype=torch.float64)
    w1, b1 = se.fc1.weight.detach()[:, :, 0, 0], se.fc1.bias.detach()
    w2, b2 = se.fc2.weight.detach()[:, :, 0, 0], se.fc2.bias.detach()
    expected = torch.empty_like(x)
    for n in range(2):
        squeezed = [sum(float(x[n, c, i, j]) for i in range(3) for j in range(4)) / 12 for c in range(40)]
        hidden = [max(0.0, float(b1[r]) + sum(float(w1[r, c]) * squeezed[c] for c in range(40))) for r in range(8)]
        for c in range(40):
            z = float(b2[c]) + sum(float(w2[c, r]) * hidden[r] for r in range(8))
            expected[n, c] = x[n, c] / (1.0 + math.exp(-z))
    with torch.no_grad():
        torch.testing.assert_close(se(x), expected)


@pytest.mark.parametrize(
    "channels, width", [(64, 8), (100, 8), (200, 16), (256, 16), (512, 32), (1024, 64), (2048, 128), (40, 8)]
)
def test_se_channels_is_nearest_multiple_of_8(channels: int, width: int) -> None:
    assert se_channels(channels) == width
    target = channels / 16  # the definition: nearest multiple of 8 (halves round up), at least 8
    assert width == max(8, 8 * math.floor(target / 8 + 0.5))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(layers=()), ValueError, "layers"),
        (dict(layers=(1, 1), channels=(8,)), ValueError, "channels"),
        (dict(layers=(1, 0), channels=(8, 8)), ValueError, r"layers\[1\]"),
        (dict(layers=(1,), channels=(8,), num_classes=-1), ValueError, "num_classes"),
        (dict(layers=(1,), channels=(8,), num_classes=2.0), TypeError, "num_classes"),
        (dict(layers=(1,), channels=(8,), output_stride=4), ValueError, "output_stride"),
        (dict(layers=(1,), channels=(8,), global_pool="gem"), ValueError, "global_pool"),
    ],
)
def test_constructor_validation(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ResNet(**kwargs)


def test_input_validation() -> None:
    model = seresnet_small(num_classes=2)
    with pytest.raises(ValueError, match="3 \\(RGB\\) channels"):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(TypeError, match="floating point"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


# ---------------------------------------------------------------------------------------------------------------
# torchvision checkpoints. torchvision cannot be imported here; its resnet50 state_dict has exactly timm's
# resnet50 keys (its parameter-free modules are named relu/avgpool), i.e. expected_keys(squeeze_excite=False).
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torchvision_checkpoint() -> dict:
    torch.manual_seed(1)
    state = resnet50().state_dict()
    assert list(state) == expected_keys(squeeze_excite=False)
    return {k: v.clone() for k, v in state.items()}


def test_torchvision_loader_fills_trunk_and_reports_se(torchvision_checkpoint: dict, tmp_path, caplog) -> None:
    path = tmp_path / "resnet50_torchvision.pth"
    torch.save(torchvision_checkpoint, path)
    model = seresnet50(num_classes=10)
    with caplog.at_level("WARNING"):
        result = load_torchvision_resnet(model, path, load_classifier=False)
    se_keys = [k for k in expected_keys(squeeze_excite=True) if ".se." in k]
    assert len(se_keys) == 64
    assert result.missing_keys == se_keys + HEAD_KEYS
    assert result.unexpected_keys == []
    assert "66 keys" in caplog.text
    state = model.state_dict()
    for key, value in torchvision_checkpoint.items():
        if not key.startswith("fc."):
            torch.testing.assert_close(state[key], value, msg=key)


def test_torchvision_loader_with_classifier(torchvision_checkpoint: dict) -> None:
    model = resnet50()
    result = load_torchvision_resnet(model, torchvision_checkpoint)
    assert result.missing_keys == [] and result.unexpected_keys == []
    torch.testing.assert_close(model.fc.weight, torchvision_checkpoint["fc.weight"])


def test_torchvision_loader_rejects_bad_checkpoints(torchvision_checkpoint: dict) -> None:
    with pytest.raises(ValueError, match="load_classifier=False"):
        load_torchvision_resnet(seresnet50(num_classes=10), torchvision_checkpoint)
    extra = dict(torchvision_checkpoint, **{"layer5.0.conv1.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="layer5.0.conv1.weight"):
        load_torchvision_resnet(seresnet50(), extra)
    partial = {k: v for k, v in torchvision_checkpoint.items() if not k.startswith("layer4.2.")}
    with pytest.raises(ValueError, match="lacks trunk keys.*layer4.2.conv1.weight"):
        load_torchvision_resnet(seresnet50(), partial)
    with pytest.raises(ValueError, match="shapes differ"):
        load_torchvision_resnet(ResNet(DEPTHS_50, channels=(32, 64, 128, 256)), torchvision_checkpoint)
    with pytest.raises(TypeError, match="state_dict"):
        load_torchvision_resnet(seresnet50(), [1, 2, 3])
