"""Where a process of the recipe runs: torchrun's process group, its device and autocast dtype, its share of the
evaluation images, its CPUs and its logging.

Without torchrun a script is one process (``world_size == 1``, no process group); under torchrun every rank runs
the same script and :func:`distributed` joins them.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List, Optional

import torch
import torch.distributed as dist

from camfix.cli_support import InputError
from camfix.parallel import usable_cpus

__all__ = [
    "AMP_DTYPES",
    "DistributedContext",
    "amp_dtype",
    "cpus_per_rank",
    "distributed",
    "setup_logging",
    "shard_indices",
]

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class DistributedContext:
    """Where this process runs: its ``rank`` among ``world_size`` processes, ``local_rank`` on its node, and the
    ``device`` it computes on. ``world_size == 1`` without torchrun (no process group)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, shows the progress bar and writes the checkpoints and summaries."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process, joined in a ``torch.distributed`` process group."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every rank (nothing to wait for in a single process)."""
        if self.distributed:
            dist.barrier()

    def all_gather_object(self, value: Any) -> List[Any]:
        """``value`` of every rank, in rank order (``[value]`` in a single process)."""
        if not self.distributed:
            return [value]
        gathered: List[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered


@contextlib.contextmanager
def distributed(device: str) -> Iterator[DistributedContext]:
    """Join the process group that ``torchrun`` describes in the environment (or run as a single process) for
    the ``with`` block, and leave it afterwards, also when the block raises.

    Under torchrun (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT`` set) the backend is
    NCCL on CUDA (one GPU per process, ``cuda:LOCAL_RANK``) and gloo on the CPU.

    Args:
        device: ``"auto"`` (CUDA when available), ``"cuda"`` or ``"cpu"``.
    """
    if device not in ("auto", "cuda", "cpu"):
        raise InputError(f"--device must be auto, cuda or cpu, got {device!r}")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for, but torch.cuda.is_available() is False")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        torch_device = torch.device("cuda", local_rank)
    else:
        torch_device = torch.device("cpu")
    if world_size > 1:
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            timeout=datetime.timedelta(minutes=30),
            **({"device_id": torch_device} if use_cuda else {}),
        )
    try:
        yield DistributedContext(rank, world_size, local_rank, torch_device)
    finally:
        if world_size > 1:
            dist.destroy_process_group()


def setup_logging(context: DistributedContext, log_file: Optional[Path] = None) -> None:
    """INFO logging on rank 0 (to stderr and ``log_file``), warnings only on the other ranks."""
    handlers: List[logging.Handler] = [logging.StreamHandler()]
    if context.is_main and log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(
        level=logging.INFO if context.is_main else logging.WARNING,
        format=f"%(asctime)s [rank {context.rank}] %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )


def shard_indices(size: int, rank: int, world_size: int) -> List[int]:
    """This rank's strided share of ``range(size)`` for evaluation: ``rank, rank + world_size, ...``.

    Unlike ``DistributedSampler`` nothing is padded or repeated, so the shares partition the dataset and the
    reduced metric equals the one-process metric.
    """
    return list(range(rank, size, world_size))


def amp_dtype(amp: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype: bf16/fp16 on CUDA as asked (``auto``: bf16), None (float32) on the CPU."""
    if device.type != "cuda":
        if amp in AMP_DTYPES:
            raise InputError(f"--amp {amp} needs CUDA; on the CPU use --amp off (or auto)")
        return None
    return None if amp == "off" else AMP_DTYPES.get(amp, torch.bfloat16)


def cpus_per_rank() -> int:
    """This process's share of the node's usable CPUs: torchrun says how many ranks share the node."""
    return max(1, usable_cpus() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
