"""TAP: thresholded average pooling, a drop-in replacement for global average pooling.

Global average pooling (GAP) gives a channel that fires strongly on a small region a small pooled value, so the
classifier learns a large weight for it, and the class activation map ends up dominated by small discriminative
parts. TAP averages each channel only over the activations above ``theta * max`` of that channel, so the pooled
value reflects how strongly the channel fires where it fires, not how large that region is (paper, section 2.2).
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
from torch import Tensor, nn

from ._validation import check_bool, check_number, check_tensor

__all__ = ["tap", "TAPool"]

#: Paper (LID 2020) default for ``theta``; the ECCV 2020 code used 0.1.
DEFAULT_THETA_TAP = 0.05


def tap(x: Tensor, theta: float = DEFAULT_THETA_TAP, flatten: bool = False) -> Tensor:
    """Thresholded average pooling over the spatial dimensions.

    For every sample ``n`` and channel ``c``, with ``tau = theta * max_{h,w} x[n, c]``::

        out[n, c] = sum(x[n, c] * [x[n, c] > tau]) / sum([x[n, c] > tau])

    The comparison is strict. A channel with no element above ``tau`` (an all-zero channel, say) pools to 0.
    ``theta = 0`` is *not* GAP: it averages the positive elements only. The gradient flows to the kept elements,
    each receiving ``grad / count``; the mask and the count are constants, as in the paper's code. A channel whose
    maximum is NaN or ``+inf`` pools to that maximum, so non-finite activations propagate as they would through
    GAP instead of vanishing.

    Args:
        x: features of shape ``(N, C, H, W)``, any floating dtype, any memory layout (``channels_last`` and
            non-contiguous views are fine). ``N`` may be 0.
        theta: relative threshold ``theta_tap`` in ``[0, 1)``; paper default 0.05.
        flatten: return ``(N, C)`` (timm's ``global_pool``) instead of ``(N, C, 1, 1)`` (torchvision's
            ``avgpool``).

    Returns:
        Pooled features of shape ``(N, C, 1, 1)``, or ``(N, C)`` with ``flatten``, in the dtype of ``x``.
        Half-precision inputs are accumulated in float32.
    """
    check_tensor("x", x, 4, shape_hint="(N, C, H, W)", allow_empty=True)
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"x must have a non-empty spatial size (H, W), got shape {tuple(x.shape)}")
    theta = check_number("theta", theta, 0.0, 1.0, high_inclusive=False)
    flatten = check_bool("flatten", flatten)
    pooled = _ThresholdedAveragePool.apply(x, theta)
    return pooled.flatten(1) if flatten else pooled


class _ThresholdedAveragePool(torch.autograd.Function):
    """TAP with a hand-written backward: four passes over the input, where autograd's graph of the same
    expression needs about twice as many (the max and the boolean mask each get their own backward work)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, theta: float) -> Tensor:
        compute_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        values = x.to(compute_dtype)
        channel_max = values.amax(dim=(2, 3), keepdim=True)
        tau = channel_max * theta
        # relu(x - tau) > 0 exactly where x > tau (x != tau implies x - tau != 0 in IEEE arithmetic), so one
        # buffer gives both the kept sum, sum(relu(x - tau)) + tau * count, and, after sign_(), the 0/1 mask that
        # counts and that the backward needs. Excluded -inf elements contribute relu(-inf) = 0, not -inf * 0 = NaN.
        kept = torch.relu_(values - tau)
        shifted_sum = kept.sum(dim=(2, 3), keepdim=True)
        count = kept.sign_().sum(dim=(2, 3), keepdim=True)
        # A channel with nothing above tau has a zero sum, so dividing by max(count, 1) pools it to 0.
        pooled = (shifted_sum + tau * count) / count.clamp_min(1.0)
        pooled = torch.where(torch.isfinite(channel_max), pooled, channel_max)
        ctx.save_for_backward(kept, count)
        ctx.input_dtype = x.dtype
        return pooled.to(x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> Tuple[Optional[Tensor], None]:
        kept, count = ctx.saved_tensors
        # The mask and the count are constants: each kept element receives grad / count, as in the paper's code.
        grad_input = kept * (grad_output.to(kept.dtype) / count.clamp_min(1.0))
        return grad_input.to(ctx.input_dtype), None


class TAPool(nn.Module):
    """Thresholded average pooling as a module: ``model.avgpool = TAPool(0.05)``.

    A drop-in for ``nn.AdaptiveAvgPool2d(1)`` (torchvision's ``avgpool``, output ``(N, C, 1, 1)``) or, with
    ``flatten=True``, for timm's ``global_pool`` (output ``(N, C)``). It has no parameters and no buffers, so a
    ``state_dict`` saved before the swap loads after it. See :func:`tap` for the definition.

    Args:
        theta: relative threshold ``theta_tap`` in ``[0, 1)``; paper default 0.05.
        flatten: output ``(N, C)`` instead of ``(N, C, 1, 1)``.

    Shape:
        - Input: ``(N, C, H, W)``.
        - Output: ``(N, C, 1, 1)``, or ``(N, C)`` with ``flatten``.
    """

    def __init__(self, theta: float = DEFAULT_THETA_TAP, flatten: bool = False) -> None:
        super().__init__()
        self.theta = check_number("theta", theta, 0.0, 1.0, high_inclusive=False)
        self.flatten = check_bool("flatten", flatten)

    def forward(self, x: Tensor) -> Tensor:
        return tap(x, self.theta, self.flatten)

    def extra_repr(self) -> str:
        return f"theta={self.theta}, flatten={self.flatten}"
