"""The accumulators' private base: named sum-reducible state, ``reset``, ``merge`` and a ``torch.distributed`` sum.

Every metric keeps only per-threshold (or per-class) counts, so its state is O(thresholds) whatever the number of
images, and the state of a whole dataset is the element-wise sum of the states of its parts. That one property
gives all three ways of combining evaluations:

- ``merge(other)``: two accumulators in one process (e.g. two data loaders);
- ``sync(group)``: all ranks of a ``torch.distributed`` job (one ``all_reduce(SUM)`` per state tensor);
- order independence: shuffling the images cannot change a dataset-level number.

States are int64 counts wherever possible, so reductions are exact and a run over 8 ranks gives the same number
as one process, bit for bit. They live on the CPU (``sync`` moves them to the CUDA device only for an NCCL
reduction).

The base is private: it serves camfix's own accumulators (:class:`~camfix.metrics.BoxAccuracy`,
:class:`~camfix.metrics.PeakIoU`, :class:`~camfix.metrics.PxAP`, :class:`~camfix.metrics.MeanIoU`), whose
documented methods it provides, and is not a torchmetrics-style ``Metric`` to subclass (no ``state_dict``, no
``.to()``, no ``forward``).
"""

from __future__ import annotations

import copy
from typing import Dict, Optional, TypeVar

import numpy as np
import torch

AccumulatorT = TypeVar("AccumulatorT", bound="_Accumulator")


class _Accumulator:
    """Base of the camfix accumulators: ``update`` and ``compute`` are each subclass's, ``reset``, ``merge`` and
    ``sync`` are shared.

    Subclasses declare their state with :meth:`_add_state` in ``__init__`` and only ever add to it in
    ``update``, and list in :meth:`_settings` the constructor arguments that decide what the state counts.
    """

    def __init__(self) -> None:
        self._defaults: Dict[str, torch.Tensor] = {}

    def _add_state(self, name: str, default: torch.Tensor) -> None:
        self._defaults[name] = default.clone()
        setattr(self, name, default.clone())

    def _states(self) -> Dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in self._defaults}

    def reset(self) -> None:
        """Forget every update: back to the state right after construction."""
        for name, default in self._defaults.items():
            setattr(self, name, default.clone())

    def _settings(self) -> Dict[str, object]:
        """The settings that decide what the state counts (thresholds, mode, ...): two accumulators can be
        merged only when these are equal, since equal state shapes do not make equal meanings."""
        return {}

    def _check_compatible(self, other: "_Accumulator") -> None:
        if type(other) is not type(self):
            raise TypeError(f"other must be a {type(self).__name__}, got {type(other).__name__}")
        theirs = other._settings()
        for name, mine in self._settings().items():
            difference = _setting_difference(mine, theirs[name])
            if difference is not None:
                raise ValueError(
                    f"other has another {name} than this {type(self).__name__}: {difference}; only accumulators "
                    "built with the same settings can be merged"
                )

    def merge(self: AccumulatorT, other: AccumulatorT) -> AccumulatorT:
        """Add ``other``'s state to this one, as if this accumulator had also seen ``other``'s updates.

        Args:
            other: an accumulator of the same class, built with the same settings (thresholds, classes, ...);
                left unchanged. Its state may be on another device.

        Returns:
            ``self``, so that ``a.merge(b).compute()`` chains.

        Raises:
            TypeError: ``other`` is of another class.
            ValueError: ``other`` has other settings; the message names the first that differs. Nothing is
                added then.
        """
        self._check_compatible(other)
        for name, value in self._states().items():
            value += getattr(other, name).to(value.device)
        return self

    def sync(self: AccumulatorT, group: Optional[object] = None) -> AccumulatorT:
        """A copy whose state is the sum of the states of all processes in ``group``.

        A collective call: every rank of ``group`` (default: the whole job) must call it. The accumulator itself
        is left unchanged, so ``sync`` can be called at every epoch and updates can continue after it. With the
        NCCL backend the reduction runs on the current CUDA device. Outside a distributed job (or with one
        process) the copy equals this accumulator.

        Args:
            group: the ``torch.distributed`` process group to sum over; ``None`` (default) is the default group,
                all ranks.

        Returns:
            A new accumulator of the same class and settings holding the summed state, on this accumulator's
            device; call ``compute()`` on it.
        """
        reduced = copy.deepcopy(self)
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return reduced
        backend = torch.distributed.get_backend(group)
        device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else None
        for name, value in reduced._states().items():
            buffer = value.to(device) if device is not None else value
            torch.distributed.all_reduce(buffer, op=torch.distributed.ReduceOp.SUM, group=group)
            setattr(reduced, name, buffer.to(value.device))
        return reduced

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self) -> str:
        return ""



def _setting_difference(mine: object, theirs: object) -> Optional[str]:
    """How ``theirs`` differs from ``mine`` in words, or ``None`` when they are equal."""
    if isinstance(mine, np.ndarray):
        their_values = np.asarray(theirs)
        if their_values.shape != mine.shape:
            return f"{their_values.size} values instead of {mine.size}"
        unequal = np.flatnonzero(their_values != mine)
        if unequal.size == 0:
            return None
        index = int(unequal[0])
        return f"value {index} is {their_values[index].item()!r} instead of {mine[index].item()!r}"
    return None if mine == theirs else f"{theirs!r} instead of {mine!r}"
