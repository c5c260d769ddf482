"""Reading a model's state_dict out of the checkpoint files that training code bases write."""

from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Union

import torch

__all__ = ["Checkpoint", "read_state_dict"]

#: A checkpoint: a path to a file written by ``torch.save``, or what it holds.
Checkpoint = Union[str, "os.PathLike[str]", Mapping[str, Any]]

#: Entries under which training scripts nest the model's weights (camfix's recipe: "model"; many others:
#: "state_dict").
NESTED_KEYS = ("model", "state_dict")
DDP_PREFIX = "module."


def read_state_dict(checkpoint: Checkpoint) -> Dict[str, torch.Tensor]:
    """The model's state_dict from a checkpoint, as ``load_state_dict`` wants it.

    Accepts a plain state_dict (timm, torchvision), a dict that nests it under ``"model"`` or ``"state_dict"``
    (training checkpoints with optimizer state beside it), or a path to either, loaded on the CPU with
    ``weights_only=True``. The ``module.`` prefix that ``DistributedDataParallel`` adds to every key is removed.

    Args:
        checkpoint: a path (``str`` or ``os.PathLike``) to a file written by ``torch.save``, or the mapping such a
            file holds.

    Returns:
        A new ``dict`` of parameter and buffer names, ``module.`` prefixes removed, to the checkpoint's own
        tensors (not copied; those of a file are loaded on the CPU); ready for ``model.load_state_dict``.

    Raises:
        TypeError: the checkpoint does not hold a mapping of ``str`` to ``torch.Tensor``.
        FileNotFoundError: the path does not exist.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = torch.load(os.fspath(checkpoint), map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, Mapping):
        raise TypeError(
            "checkpoint must be a state_dict (a mapping of str to torch.Tensor), a dict holding one under "
            f"{' or '.join(map(repr, NESTED_KEYS))}, or a path to either; got {type(checkpoint).__name__}"
        )
    for key in NESTED_KEYS:
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    state: Dict[str, torch.Tensor] = {}
    for key, value in checkpoint.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise TypeError(
                f"checkpoint is not a state_dict: entry {key!r} holds a {type(value).__name__}, not a torch.Tensor"
            )
        state[key[len(DDP_PREFIX) :] if key.startswith(DDP_PREFIX) else key] = value
    return state
