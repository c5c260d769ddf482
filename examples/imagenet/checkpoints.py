"""The recipe's model and its checkpoints: the classifier (GAP or TAP), what a checkpoint records of it, reading
and writing checkpoints, and the checks that a checkpoint fits the model.

``train.py`` writes checkpoints that record :data:`MODEL_FIELDS`; an evaluation builds the model those fields
describe (:func:`resolve_model_fields`), and a plain ``state_dict`` (a timm ``seresnet50`` checkpoint, say) works
too. Every mismatch raises ``camfix.cli_support.InputError`` naming the keys, shapes or fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Sequence, Union

import torch
from torch import Tensor, nn

import camfix
from camfix import models
from camfix.cli_support import InputError, atomic_write

from data import existing_file

__all__ = [
    "ARCHITECTURES",
    "MODEL_DEFAULTS",
    "MODEL_FIELDS",
    "POOLINGS",
    "build_model",
    "check_state_dict_fits",
    "load_checkpoint",
    "load_model_weights",
    "model_fields",
    "model_state_dict",
    "resolve_model_fields",
    "save_atomic",
]

#: Architectures by name: each builder takes ``(num_classes, global_pool)``.
ARCHITECTURES: Dict[str, Callable[..., nn.Module]] = {
    "seresnet50": models.seresnet50,
    "resnet50": models.resnet50,
    "seresnet_small": models.seresnet_small,
}
POOLINGS = ("tap", "gap")

#: Checkpoint entries that describe the model; a checkpoint whose entries differ from the command line is refused.
MODEL_FIELDS = ("arch", "num_classes", "pool", "theta_tap")
#: The model an evaluation builds when neither the command line nor the checkpoint says: the paper's.
MODEL_DEFAULTS = {"arch": "seresnet50", "num_classes": 1000, "pool": "tap", "theta_tap": 0.05}


def build_model(arch: str, num_classes: int, pool: str, theta_tap: float) -> nn.Module:
    """The classifier: a timm-layout ResNet (``camfix.models``) with GAP or TAP as its ``global_pool``.

    Args:
        arch: a key of :data:`ARCHITECTURES` (``"seresnet50"`` is the paper's ResNet50-SE).
        num_classes: classifier outputs ``K`` (1000 for ImageNet).
        pool: ``"tap"`` (``camfix.TAPool(theta_tap)``, the paper) or ``"gap"`` (global average pooling).
        theta_tap: TAP's relative threshold in ``[0, 1)``; paper 0.05. Ignored for GAP.
    """
    if arch not in ARCHITECTURES:
        raise InputError(f"--arch must be one of {sorted(ARCHITECTURES)}, got {arch!r}")
    if pool not in POOLINGS:
        raise InputError(f"--pool must be one of {POOLINGS}, got {pool!r}")
    global_pool: Union[str, nn.Module] = camfix.TAPool(theta_tap, flatten=True) if pool == "tap" else "avg"
    return ARCHITECTURES[arch](num_classes=num_classes, global_pool=global_pool)


def model_fields(arch: str, num_classes: int, pool: str, theta_tap: float) -> Dict[str, Any]:
    """The :data:`MODEL_FIELDS` a checkpoint records (``theta_tap`` is None for GAP)."""
    return {"arch": arch, "num_classes": num_classes, "pool": pool, "theta_tap": theta_tap if pool == "tap" else None}


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save(obj, path)`` that never leaves a half-written ``path`` (camfix's ``atomic_write``: a temporary
    file flushed to disk, then one ``os.replace``; on failure it is removed and ``path`` is untouched)."""
    with atomic_write(path) as stream:
        torch.save(obj, stream)


def load_checkpoint(path: Path, argument: str = "the checkpoint") -> Mapping[str, Any]:
    """Load a checkpoint file on the CPU with ``weights_only=True`` (tensors, numbers, strings, containers);
    ``argument`` names it in error messages (e.g. ``"--resume"``)."""
    existing_file(argument, path)
    try:
        checkpoint = models.read_checkpoint(path)
    except (ValueError, OSError) as error:
        raise InputError(f"{argument}: {error}") from None
    if not isinstance(checkpoint, Mapping):
        raise InputError(f"the checkpoint {str(path)!r} holds a {type(checkpoint).__name__}, not a state_dict or dict")
    return checkpoint


def model_state_dict(checkpoint: Mapping[str, Any]) -> Dict[str, Tensor]:
    """The model's state_dict from a loaded checkpoint (see :func:`camfix.models.read_state_dict`)."""
    try:
        return models.read_state_dict(checkpoint)
    except TypeError as error:
        raise InputError(str(error)) from None


def check_state_dict_fits(model: nn.Module, state: Mapping[str, Tensor], what: str, ignore: Sequence[str] = ()) -> None:
    """Raise :class:`InputError` naming the missing, unexpected and mis-shaped keys when ``state`` does not fit
    ``model`` exactly (keys in ``ignore`` excepted; :func:`camfix.models.check_state_dict`); ``what`` names the
    model in the message."""
    try:
        models.check_state_dict(model, state, ignore)
    except ValueError as error:
        raise InputError(f"{what}: {error}") from None


def resolve_model_fields(checkpoint: Mapping[str, Any], requested: Mapping[str, Any]) -> Dict[str, Any]:
    """The model an evaluation builds: each of :data:`MODEL_FIELDS` from the command line (``requested``, None
    where not given), else from the checkpoint (``train.py`` records them), else :data:`MODEL_DEFAULTS`.

    Raises:
        InputError: the command line contradicts what the checkpoint records.
    """
    recorded = {key: checkpoint[key] for key in MODEL_FIELDS if key in checkpoint}
    differences = [
        f"--{key.replace('_', '-')} {requested[key]!r} but the checkpoint was trained with {recorded[key]!r}"
        for key in recorded
        if requested.get(key) is not None and requested[key] != recorded[key]
    ]
    if differences:
        raise InputError("; ".join(differences) + " (leave the option out to use the checkpoint's)")
    chosen = {key: next(v for v in (requested.get(key), recorded.get(key), MODEL_DEFAULTS[key]) if v is not None) for key in MODEL_FIELDS}
    return model_fields(**chosen)


def load_model_weights(model: nn.Module, checkpoint: Mapping[str, Any], fields: Mapping[str, Any], source: Path) -> None:
    """Load trained weights into ``model`` strictly (``train.py``'s checkpoint, or a plain state_dict such as a timm
    ``seresnet50`` checkpoint); a mismatch raises :class:`InputError` naming the keys and shapes."""
    state = model_state_dict(checkpoint)
    check_state_dict_fits(model, state, f"--arch {fields['arch']} with {fields['num_classes']} classes ({source})")
    model.load_state_dict(state, strict=True)
