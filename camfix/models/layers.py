"""Building blocks of the timm-compatible ResNet: squeeze-and-excitation and selectable global pooling.

Module and parameter names follow timm (``timm/layers/squeeze_excite.py`` and
``timm/layers/adaptive_avgmax_pool.py``) so that state_dicts are interchangeable with timm's.
"""

from __future__ import annotations

import torch
from torch import nn

POOL_TYPES = ("avg", "max")


def se_channels(channels: int, rd_ratio: float = 1.0 / 16) -> int:
    """Bottleneck width of an SE block: ``channels * rd_ratio`` rounded to the nearest multiple of 8, at least 8.

    This is timm's ``make_divisible(channels * rd_ratio, 8, round_limit=0.)``, so 256 -> 16 and 2048 -> 128.

    Args:
        channels: channels of the block's input and output.
        rd_ratio: reduction ratio; SE-ResNet's 1/16 by default.

    Returns:
        The width of ``fc1``'s output.
    """
    return max(8, int(channels * rd_ratio + 4) // 8 * 8)


class SEModule(nn.Module):
    """Squeeze-and-excitation (Hu et al., CVPR 2018) with timm's layout: ``fc1, bn, act, fc2, gate``.

    Args:
        channels: channels ``C`` of the input ``(N, C, H, W)``.
        rd_ratio: reduction ratio; the bottleneck has ``se_channels(C, rd_ratio)`` channels
            (1/16 as in SE-ResNet-50).

    ``fc1`` and ``fc2`` are 1x1 convolutions with bias, ``bn`` is an ``nn.Identity`` kept for key parity.
    """

    def __init__(self, channels: int, rd_ratio: float = 1.0 / 16) -> None:
        super().__init__()
        rd_channels = se_channels(channels, rd_ratio)
        self.fc1 = nn.Conv2d(channels, rd_channels, kernel_size=1, bias=True)
        self.bn = nn.Identity()
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(rd_channels, channels, kernel_size=1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rescale each channel of ``x`` (N, C, H, W) by a gate in (0, 1) computed from its spatial mean."""
        scale = self.fc2(self.act(self.bn(self.fc1(x.mean((2, 3), keepdim=True)))))
        return x * self.gate(scale)


class SelectAdaptivePool2d(nn.Module):
    """Global pooling with timm's submodule names ``pool`` and ``flatten``.

    Args:
        pool_type: ``"avg"`` (GAP, the CAM default) or ``"max"``.
        flatten: return ``(N, C)`` instead of ``(N, C, 1, 1)``; the ResNet head uses ``True``.

    A model's ``global_pool`` may be replaced by any module mapping ``(N, C, H, W)`` to ``(N, C)``, e.g.
    ``camfix.TAPool(0.05, flatten=True)``; no parameters live here, so state_dicts are unaffected.
    """

    def __init__(self, pool_type: str = "avg", flatten: bool = True) -> None:
        super().__init__()
        if pool_type not in POOL_TYPES:
            raise ValueError(f"pool_type must be one of {POOL_TYPES}, got {pool_type!r}")
        self.pool_type = pool_type
        self.pool = nn.AdaptiveAvgPool2d(1) if pool_type == "avg" else nn.AdaptiveMaxPool2d(1)
        self.flatten = nn.Flatten(1) if flatten else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool ``x`` (N, C, H, W) to (N, C) (or (N, C, 1, 1) without ``flatten``)."""
        return self.flatten(self.pool(x))

    def extra_repr(self) -> str:
        return f"pool_type={self.pool_type!r}"
