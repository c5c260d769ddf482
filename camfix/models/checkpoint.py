"""Reading checkpoint files and the model's state_dict out of them, and checking that a state_dict fits a model."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence, Union

import torch
from torch import nn

__all__ = ["Checkpoint", "check_state_dict", "read_checkpoint", "read_state_dict"]

#: A checkpoint: a path to a file written by ``torch.save``, or what it holds.
Checkpoint = Union[str, "os.PathLike[str]", Mapping[str, Any]]

#: Entries under which training scripts nest the model's weights (camfix's recipe: "model"; many others:
#: "state_dict").
NESTED_KEYS = ("model", "state_dict")
DDP_PREFIX = "module."


def read_checkpoint(path: Union[str, "os.PathLike[str]"]) -> Any:
    """Load a file written by ``torch.save`` on the CPU with ``weights_only=True`` (tensors, numbers, strings and
    containers of them; no arbitrary Python objects, so an untrusted file cannot run code).

    Args:
        path: the file.

    Returns:
        What the file holds, typically a state_dict or a dict with one inside.

    Raises:
        TypeError: ``path`` is not a ``str`` or ``os.PathLike``.
        FileNotFoundError: the file does not exist; ``IsADirectoryError`` when it is a folder; another
            ``OSError`` when it cannot be opened (no permission).
        ValueError: the file is not a ``torch.save`` file of tensors (truncated, text, another format, or a
            pickled Python object such as a whole model); the message names the file.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__} {path!r}")
    file = Path(path)
    if file.is_dir():
        raise IsADirectoryError(f"the checkpoint {str(file)!r} is a folder, not a file written by torch.save")
    if not file.is_file():
        raise FileNotFoundError(f"the checkpoint {str(file)!r} does not exist")
    # Opened here, so that an OSError of open() (no permission, say) is told apart from the errors torch raises,
    # OSError among them, for a file whose content it cannot read.
    with open(file, "rb") as stream:
        try:
            return torch.load(stream, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise ValueError(
                f"cannot load the checkpoint {str(file)!r} with weights_only=True: it holds Python objects other "
                "than tensors, numbers, strings and containers (a whole pickled model? save model.state_dict() "
                "instead), or it is not a torch.save file"
            ) from None
        except Exception as error:  # truncated or foreign: RuntimeError, EOFError, KeyError, OSError, struct.error...
            detail = str(error).strip().split("\n")[0].split(". ")[0][:160]
            raise ValueError(
                f"cannot load the checkpoint {str(file)!r}: it is not a file written by torch.save, or it is "
                f"truncated ({type(error).__name__}{': ' + detail if detail else ''})"
            ) from None


def read_state_dict(checkpoint: Checkpoint) -> Dict[str, torch.Tensor]:
    """The model's state_dict from a checkpoint, as ``load_state_dict`` wants it.

    Accepts a plain state_dict (timm, torchvision), a dict that nests it under ``"model"`` or ``"state_dict"``
    (training checkpoints with optimizer state beside it), or a path to either, loaded with
    :func:`read_checkpoint`. The ``module.`` prefix that ``DistributedDataParallel`` adds to every key is removed.

    Args:
        checkpoint: a path (``str`` or ``os.PathLike``) to a file written by ``torch.save``, or the mapping such a
            file holds.

    Returns:
        A new ``dict`` of parameter and buffer names, ``module.`` prefixes removed, to the checkpoint's own
        tensors (not copied; those of a file are loaded on the CPU); ready for ``model.load_state_dict``.

    Raises:
        TypeError: the checkpoint does not hold a mapping of ``str`` to ``torch.Tensor``.
        FileNotFoundError: the path does not exist.
        ValueError: the file cannot be loaded (see :func:`read_checkpoint`).
    """
    source = "checkpoint"
    if isinstance(checkpoint, (str, os.PathLike)):
        source = f"the checkpoint {os.fspath(checkpoint)!r}"
        checkpoint = read_checkpoint(checkpoint)
    if not isinstance(checkpoint, Mapping):
        raise TypeError(
            f"{source} must be a state_dict (a mapping of str to torch.Tensor), a dict holding one under "
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
                f"{source} is not a state_dict: entry {key!r} holds a {type(value).__name__}, not a torch.Tensor"
            )
        state[key[len(DDP_PREFIX) :] if key.startswith(DDP_PREFIX) else key] = value
    return state


def _listing(keys: Sequence[str], limit: int = 6) -> str:
    """The first ``limit`` of ``keys``, comma-separated, with the total when some are left out."""
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], ignore: Sequence[str] = ()) -> None:
    """Check that ``state_dict`` fits ``model`` exactly, before ``model.load_state_dict(state_dict)``.

    ``load_state_dict(strict=True)`` would refuse a misfit too, with a message of every key; this one names the
    first few missing, unexpected and mis-shaped keys and says what a misfit usually means.

    Args:
        model: the destination model.
        state_dict: parameter and buffer names to tensors, e.g. from :func:`read_state_dict`.
        ignore: keys left out of the comparison on both sides (e.g. ``("fc.weight", "fc.bias")`` for a new head).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: keys are missing or unexpected, or shapes differ; the message lists them.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    expected = {key: value for key, value in model.state_dict().items() if key not in ignore}
    given = {key: value for key, value in state_dict.items() if key not in ignore}
    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    mismatched = [
        f"{key} {tuple(given[key].shape)} vs {tuple(value.shape)}"
        for key, value in expected.items()
        if key in given and given[key].shape != value.shape
    ]
    if missing or unexpected or mismatched:
        problems = [
            f"{label}: {_listing(keys)}"
            for label, keys in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shapes (checkpoint vs model)", mismatched),
            )
            if keys
        ]
        raise ValueError(
            "the checkpoint does not fit the model (another architecture or number of classes?); "
            + "; ".join(problems)
        )
