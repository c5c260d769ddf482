"""ResNet and SE-ResNet with timm's module structure and state_dict key names.

The layout mirrors ``timm.models.resnet.ResNet`` with ``Bottleneck`` blocks (``resnet50``, ``seresnet50``): stem
``conv1, bn1, act1, maxpool``; stages ``layer1..layer4``; head ``global_pool`` (``pool``, ``flatten``) and ``fc``.
A timm checkpoint of ``resnet50``/``seresnet50`` therefore loads with ``strict=True``, and the model exposes the
timm interface that :func:`camfix.localize` relies on: ``forward_features``, ``forward_head``,
``get_classifier`` and ``reset_classifier``.

The pooling is swappable without touching the state_dict: ``model.global_pool = camfix.TAPool(0.05,
flatten=True)``.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Union

import torch
from torch import nn

from camfix._validation import check_int, check_tensor
from camfix.models.layers import POOL_TYPES, SEModule, SelectAdaptivePool2d

__all__ = ["Bottleneck", "ResNet", "resnet50", "seresnet50", "seresnet_small"]

OUTPUT_STRIDES = (8, 16, 32)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 convolution), timm's ``Bottleneck`` with cardinality 1.

    Args:
        inplanes: input channels.
        planes: width of the 1x1 and 3x3 convolutions; the block outputs ``planes * 4`` channels.
        stride: stride of the 3x3 convolution (1 or 2).
        downsample: projection of the shortcut when the shape changes (``Sequential(conv 1x1, bn)``), or None.
        dilation: dilation of the 3x3 convolution of the following blocks of the stage.
        first_dilation: dilation of this block's 3x3 convolution (differs from ``dilation`` in the first block
            of a dilated stage); defaults to ``dilation``.
        squeeze_excite: add an :class:`SEModule` (``se``) before the residual sum, as in SE-ResNet.
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        dilation: int = 1,
        first_dilation: Optional[int] = None,
        squeeze_excite: bool = False,
    ) -> None:
        super().__init__()
        outplanes = planes * self.expansion
        first_dilation = first_dilation or dilation
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(
            planes, planes, kernel_size=3, stride=stride, padding=first_dilation, dilation=first_dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        # DropBlock and anti-aliasing are off in resnet50/seresnet50; the identities keep timm's module paths.
        self.drop_block = nn.Identity()
        self.act2 = nn.ReLU(inplace=True)
        self.aa = nn.Identity()
        self.conv3 = nn.Conv2d(planes, outplanes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(outplanes)
        self.se = SEModule(outplanes) if squeeze_excite else None
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x`` (N, inplanes, H, W) to (N, planes * 4, H / stride, W / stride)."""
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.aa(self.act2(self.drop_block(self.bn2(self.conv2(x)))))
        x = self.bn3(self.conv3(x))
        if self.se is not None:
            x = self.se(x)
        return self.act3(x + shortcut)


def _make_pool(global_pool: Union[str, nn.Module]) -> nn.Module:
    if isinstance(global_pool, nn.Module):
        return global_pool
    if global_pool not in POOL_TYPES:
        raise ValueError(
            f"global_pool must be one of {POOL_TYPES} or an nn.Module mapping (N, C, H, W) to (N, C) "
            f"(e.g. camfix.TAPool(0.05, flatten=True)), got {global_pool!r}"
        )
    return SelectAdaptivePool2d(global_pool, flatten=True)


def _make_fc(num_features: int, num_classes: int) -> nn.Module:
    # timm's convention: num_classes=0 leaves the pooled features as the output.
    return nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()


class ResNet(nn.Module):
    """ResNet / SE-ResNet with Bottleneck blocks, module-for-module timm's ``ResNet``.

    Args:
        layers: blocks per stage, e.g. ``(3, 4, 6, 3)`` for ResNet-50; stages are named ``layer1``, ``layer2``...
        channels: bottleneck width per stage (outputs are 4x wider); ResNet-50: ``(64, 128, 256, 512)``.
        num_classes: classifier outputs ``K``; 0 replaces ``fc`` by an identity (pooled features out).
        global_pool: ``"avg"`` (GAP, default), ``"max"``, or a module mapping ``(N, C, H, W)`` to ``(N, C)``
            such as ``camfix.TAPool(0.05, flatten=True)`` (TAP, the paper's pooling with ``theta_tap = 0.05``).
        stem_width: output channels of the 7x7 stem convolution; timm and torchvision fix it to 64.
        output_stride: total stride of ``forward_features``, 32 (default), 16 or 8; below 32 the last stages are
            dilated instead of strided (timm's rule), which gives larger class activation maps.
        squeeze_excite: put an SE module in every block (SE-ResNet).

    Input images: float tensor ``(N, 3, H, W)``, normalised as the weights expect (ImageNet mean/std for
    ImageNet checkpoints). ``forward_features`` returns ``(N, channels[-1] * 4, H / s, W / s)`` for the output
    stride ``s`` (rounded up); ``forward`` returns logits ``(N, K)``.
    """

    def __init__(
        self,
        layers: Sequence[int],
        channels: Sequence[int] = (64, 128, 256, 512),
        num_classes: int = 1000,
        global_pool: Union[str, nn.Module] = "avg",
        stem_width: int = 64,
        output_stride: int = 32,
        squeeze_excite: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(layers, (list, tuple)) or not 1 <= len(layers) <= 4:
            raise ValueError(f"layers must be a list or tuple of 1 to 4 block counts, got {layers!r}")
        if not isinstance(channels, (list, tuple)) or len(channels) != len(layers):
            raise ValueError(f"channels must be a list or tuple of {len(layers)} widths (one per stage), got {channels!r}")
        layers = [check_int(f"layers[{i}]", n, 1) for i, n in enumerate(layers)]
        channels = [check_int(f"channels[{i}]", c, 1) for i, c in enumerate(channels)]
        self.num_classes = check_int("num_classes", num_classes, 0)
        stem_width = check_int("stem_width", stem_width, 1)
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride!r}")

        self.conv1 = nn.Conv2d(3, stem_width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        inplanes = stem_width
        net_stride = 4
        dilation = previous_dilation = 1
        for stage, (planes, num_blocks) in enumerate(zip(channels, layers)):
            stride = 1 if stage == 0 else 2
            if net_stride >= output_stride:
                dilation *= stride
                stride = 1
            else:
                net_stride *= stride
            outplanes = planes * Bottleneck.expansion
            downsample = None
            if stride != 1 or inplanes != outplanes:
                downsample = nn.Sequential(
                    nn.Conv2d(inplanes, outplanes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(outplanes)
                )
            blocks: List[nn.Module] = []
            for index in range(num_blocks):
                blocks.append(
                    Bottleneck(
                        inplanes,
                        planes,
                        stride=stride if index == 0 else 1,
                        downsample=downsample if index == 0 else None,
                        dilation=dilation,
                        first_dilation=previous_dilation,
                        squeeze_excite=squeeze_excite,
                    )
                )
                previous_dilation = dilation
                inplanes = outplanes
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
        self.stage_names = [f"layer{stage + 1}" for stage in range(len(layers))]

        self.num_features = inplanes
        self.global_pool = _make_pool(global_pool)
        self.fc = _make_fc(self.num_features, self.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # timm's init: He-normal (fan_out) convolutions, and the last BN of each residual branch at zero so that
        # every block starts as the identity, which makes training from scratch stable.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, Bottleneck):
                nn.init.zeros_(module.bn3.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, the input of ``global_pool`` and of a class activation map.

        Args:
            x: images ``(N, 3, H, W)``, floating point, normalised as the weights expect.

        Returns:
            Features ``(N, num_features, h, w)`` after the last ReLU (so ``>= 0``), ``h = ceil(H / s)`` for the
            output stride ``s``; dtype of ``x``.
        """
        check_tensor("x", x, 4, shape_hint="(N, 3, H, W)")
        if x.shape[1] != 3:
            raise ValueError(f"x must have 3 (RGB) channels, shape (N, 3, H, W), got shape {tuple(x.shape)}")
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool the features and classify them.

        Args:
            x: features ``(N, C, h, w)`` from :meth:`forward_features`.
            pre_logits: stop after the pooling.

        Returns:
            Pooled features ``(N, C)`` with ``pre_logits``, else logits ``(N, K)`` (unnormalised scores).

        Raises:
            ValueError: a replacement ``global_pool`` did not return ``(N, C)``.
        """
        x = self.global_pool(x)
        if x.dim() != 2:
            raise ValueError(
                f"global_pool must return (N, C), got shape {tuple(x.shape)}; "
                "a replacement pooling module needs flatten=True (e.g. camfix.TAPool(0.05, flatten=True))"
            )
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(N, 3, H, W)`` -> logits ``(N, K)`` (pooled features when ``num_classes == 0``)."""
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        """The classifier, as timm names it.

        Returns:
            ``fc``: an ``nn.Linear`` with weight ``(K, C)`` (the CAM weights), or an ``nn.Identity`` when ``K == 0``.
        """
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[Union[str, nn.Module]] = None) -> None:
        """Replace ``fc`` by a freshly initialised one, e.g. to fine-tune on another label set.

        Unlike timm, whose default resets the pooling to ``"avg"``, the current ``global_pool`` (a TAP layer, say)
        is kept unless ``global_pool`` is given.

        Args:
            num_classes: outputs ``K`` of the new ``fc``, ``>= 0`` (0: an identity, pooled features out).
            global_pool: ``None`` (keep the current pooling), ``"avg"``, ``"max"`` or a pooling module.
        """
        self.num_classes = check_int("num_classes", num_classes, 0)
        if global_pool is not None:
            self.global_pool = _make_pool(global_pool)
        self.fc = _make_fc(self.num_features, self.num_classes)


def resnet50(num_classes: int = 1000, global_pool: Union[str, nn.Module] = "avg") -> ResNet:
    """ResNet-50 (timm ``resnet50``; torchvision's has the same state_dict keys): 25.6M parameters.

    Args:
        num_classes: classifier outputs; default 1000 (ImageNet).
        global_pool: ``"avg"`` (GAP, default), ``"max"`` or a module such as ``camfix.TAPool(0.05, flatten=True)``.

    Returns:
        An untrained :class:`ResNet` (He-normal initialisation).
    """
    return ResNet((3, 4, 6, 3), num_classes=num_classes, global_pool=global_pool)


def seresnet50(num_classes: int = 1000, global_pool: Union[str, nn.Module] = "avg") -> ResNet:
    """SE-ResNet-50 (timm ``seresnet50``), the paper's ResNet50-SE backbone: 28.1M parameters with 1000 classes.

    The paper trains it with TAP (``global_pool=camfix.TAPool(0.05, flatten=True)``) on 336x336 crops.

    Args:
        num_classes: classifier outputs; default 1000 (ImageNet).
        global_pool: ``"avg"`` (GAP, default), ``"max"`` or a module such as ``camfix.TAPool(0.05, flatten=True)``.

    Returns:
        An untrained :class:`ResNet` with SE blocks.
    """
    return ResNet((3, 4, 6, 3), num_classes=num_classes, global_pool=global_pool, squeeze_excite=True)


def seresnet_small(
    num_classes: int,
    global_pool: Union[str, nn.Module] = "avg",
    layers: Sequence[int] = (1, 1, 1, 1),
    channels: Sequence[int] = (16, 32, 64, 128),
    stem_width: int = 16,
    output_stride: int = 8,
) -> ResNet:
    """A narrow, shallow SE-ResNet with the same structure and key pattern as ``seresnet50``, for CPU training.

    The defaults (the demo's classifier) have 0.56M parameters with 8 classes and 512 output channels; a 64x64
    image gives an 8x8 class activation map.

    Args:
        num_classes: classifier outputs ``K``.
        global_pool: ``"avg"`` (GAP, default), ``"max"`` or a module such as ``camfix.TAPool(0.05, flatten=True)``.
        layers: blocks per stage; default one in each of four stages.
        channels: bottleneck width per stage (outputs are 4x wider); default a quarter of ResNet-50's.
        stem_width: channels of the 7x7 stem; default 16.
        output_stride: 8 (default), 16 or 32.

    Returns:
        An untrained :class:`ResNet` with SE blocks.
    """
    return ResNet(
        layers,
        channels,
        num_classes=num_classes,
        global_pool=global_pool,
        stem_width=stem_width,
        output_stride=output_stride,
        squeeze_excite=True,
    )
