"""Small in-repo classifiers with the structure of the models camfix is dropped into, for the tests.

torchvision and timm cannot be imported here (camfix must not import them either), so the two layouts that
:func:`camfix.localize` recognises are rebuilt faithfully at a tiny width:

- :class:`TorchvisionResNet`: torchvision's ``ResNet`` with ``BasicBlock`` (module names and state_dict keys as in
  ``torchvision.models.resnet``: ``conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc``; the forward pass
  calls ``self.avgpool(x)`` then ``torch.flatten(x, 1)``).
- :class:`TimmStyleNet`: timm's model interface (``forward_features``, ``global_pool`` with submodules ``pool``
  and ``flatten``, ``forward_head``, ``get_classifier()``); its classifier is called ``head`` so that a test
  notices if ``get_classifier()`` is bypassed for a guessed attribute name.
- :class:`ConvHeadNet`: a model neither layout matches (1x1 convolution classifier, mean of the class maps), for
  the explicit ``feature_layer=`` / ``classifier=`` path.

Every model maps float images ``(N, 3, H, W)`` to logits ``(N, K)``.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn


class BasicBlock(nn.Module):
    """torchvision's ``BasicBlock``: two 3x3 convolutions with a residual connection (expansion 1)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class TorchvisionResNet(nn.Module):
    """torchvision's ``ResNet(BasicBlock, layers)`` with configurable widths (torchvision: 64, 128, 256, 512).

    Args:
        num_classes: ``K``, outputs of ``fc``.
        layers: blocks per stage (ResNet-18: ``(2, 2, 2, 2)``).
        widths: channels of the four stages; the stem has ``widths[0]`` channels as in torchvision.

    Input ``(N, 3, H, W)``; ``layer4`` gives ``(N, widths[3], H / 32, W / 32)`` (rounded up); output ``(N, K)``.
    """

    def __init__(
        self,
        num_classes: int = 5,
        layers: Sequence[int] = (1, 1, 1, 1),
        widths: Sequence[int] = (8, 16, 24, 32),
    ) -> None:
        super().__init__()
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(widths[0], layers[0])
        self.layer2 = self._make_layer(widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * BasicBlock.expansion, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                # Random affine parameters and statistics, so that eval-mode BN is not the identity and a
                # checkpoint that fails to load shows up as different outputs.
                nn.init.uniform_(module.weight, 0.5, 1.5)
                nn.init.uniform_(module.bias, -0.1, 0.1)
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * BasicBlock.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * BasicBlock.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * BasicBlock.expansion),
            )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * BasicBlock.expansion
        layers += [BasicBlock(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def features(self, x: Tensor) -> Tensor:
        """The input of ``avgpool``: ``layer4`` output ``(N, C, h, w)``, computed layer by layer."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        # torchvision's _forward_impl, line for line.
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)
        return x


class CountingResNet(TorchvisionResNet):
    """A :class:`TorchvisionResNet` with 5 classes that counts its forward passes; ``signed_weights`` redraws the
    classifier weight with both signs, so that NWC changes the maps."""

    def __init__(self, signed_weights: bool = False) -> None:
        super().__init__(num_classes=5)
        self.calls = 0
        if signed_weights:
            with torch.no_grad():
                self.fc.weight.copy_(torch.randn_like(self.fc.weight))

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        return super().forward(x)


def torchvision_resnet_keys() -> List[str]:
    """state_dict keys of ``TorchvisionResNet()`` (one block per stage), written from torchvision's naming.

    Stage 1 keeps the stem width with stride 1, so only stages 2 to 4 have a ``downsample`` projection.
    """
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    keys = ["conv1.weight"] + [f"bn1.{s}" for s in bn]
    for stage in range(1, 5):
        block = f"layer{stage}.0"
        keys += [f"{block}.conv1.weight"] + [f"{block}.bn1.{s}" for s in bn]
        keys += [f"{block}.conv2.weight"] + [f"{block}.bn2.{s}" for s in bn]
        if stage > 1:
            keys += [f"{block}.downsample.0.weight"] + [f"{block}.downsample.1.{s}" for s in bn]
    return keys + ["fc.weight", "fc.bias"]


class GlobalPool(nn.Module):
    """timm's ``SelectAdaptivePool2d(pool_type='avg', flatten=True)``: submodules ``pool`` and ``flatten``."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.flatten(self.pool(x))


class TimmStyleNet(nn.Module):
    """A small CNN with timm's model interface; the classifier is ``head`` (found only via ``get_classifier``).

    Input ``(N, 3, H, W)``; ``forward_features`` gives ``(N, width, H / 4, W / 4)``; output ``(N, K)``.
    """

    def __init__(self, num_classes: int = 4, width: int = 12) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.stages = nn.Sequential(nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU())
        self.global_pool = GlobalPool()
        self.head = nn.Linear(width, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.global_pool(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head


class ConvHeadNet(nn.Module):
    """A model with no ``avgpool``/``global_pool``: a 1x1 convolution classifier, then the mean of the class maps.

    Input ``(N, 3, H, W)``; ``features`` gives ``(N, width, H / 2, W / 2)``; output ``(N, K)``.
    """

    def __init__(self, num_classes: int = 3, width: int = 6) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU())
        self.classifier = nn.Conv2d(width, num_classes, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x)).mean(dim=(2, 3))


def all_hooks(model: nn.Module) -> int:
    """How many forward hooks and pre-hooks are registered on ``model`` and its submodules (0 after localize)."""
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())
