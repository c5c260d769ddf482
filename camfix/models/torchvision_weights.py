"""Load a torchvision ResNet checkpoint into a camfix (timm-layout) ResNet, e.g. the trunk of ``seresnet50``.

torchvision's ResNet-50 names its modules ``relu`` and ``avgpool`` where timm has ``act1`` and ``global_pool``;
neither holds parameters, so every parameter and buffer key is already the same. What a torchvision checkpoint
lacks, for an SE-ResNet, are the squeeze-and-excitation weights: they are reported (returned and logged), not
hidden, and stay at their initialisation until trained.
"""

from __future__ import annotations

import logging
from typing import List, NamedTuple

from torch import nn

from camfix._validation import check_bool
from camfix.models.checkpoint import Checkpoint, _listing, read_state_dict

__all__ = ["LoadResult", "load_torchvision_resnet"]

logger = logging.getLogger(__name__)

CLASSIFIER_KEYS = ("fc.weight", "fc.bias")


class LoadResult(NamedTuple):
    """What :func:`load_torchvision_resnet` did not fill: ``missing_keys`` (model keys left at their
    initialisation, in model order) and ``unexpected_keys`` (always empty: extra keys raise instead)."""

    missing_keys: List[str]
    unexpected_keys: List[str]


def _is_se_key(key: str) -> bool:
    return ".se." in key


def load_torchvision_resnet(
    model: nn.Module, checkpoint: Checkpoint, load_classifier: bool = True
) -> LoadResult:
    """Copy a torchvision ResNet state_dict into ``model`` (a :class:`camfix.models.ResNet`, SE or not).

    Args:
        model: the destination, e.g. ``camfix.models.seresnet50(num_classes=K)``; modified in place.
        checkpoint: a torchvision ResNet state_dict of the same depth (``torchvision.models.resnet50()``'s keys),
            or the path of one saved with ``torch.save``; loaded on the CPU with ``weights_only=True``.
        load_classifier: also copy ``fc``; set it to False when ``model`` has a different number of classes
            than the checkpoint (1000 for ImageNet), and train the new ``fc``.

    Returns:
        :class:`LoadResult`: ``missing_keys`` lists every key left at its initialisation (the 64 SE keys of
        ``seresnet50``, plus ``fc.*`` without ``load_classifier``); ``unexpected_keys`` is empty. The missing keys
        are also logged as a warning.

    Raises:
        TypeError: ``checkpoint`` is not a state_dict or a path to one, or ``load_classifier`` is not a bool.
        FileNotFoundError: the checkpoint file does not exist.
        ValueError: the checkpoint file cannot be loaded (see :func:`camfix.models.read_checkpoint`), has keys
            the model lacks, lacks trunk keys the model has, or a shape differs (another depth, or another class
            count with ``load_classifier=True``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module (a camfix.models.ResNet), got {type(model).__name__}")
    load_classifier = check_bool("load_classifier", load_classifier)
    state_dict = read_state_dict(checkpoint)
    if not load_classifier:
        for key in CLASSIFIER_KEYS:
            state_dict.pop(key, None)
    expected = model.state_dict()

    unexpected = [key for key in state_dict if key not in expected]
    if unexpected:
        raise ValueError(
            f"checkpoint has keys that the model lacks: {_listing(unexpected)}; "
            "it is not a torchvision ResNet state_dict of this depth"
        )
    mismatched = [
        f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(expected[key].shape)}"
        for key, value in state_dict.items()
        if value.shape != expected[key].shape
    ]
    if mismatched:
        hint = " (pass load_classifier=False to train a new fc)" if any(m.startswith("fc.") for m in mismatched) else ""
        raise ValueError(f"checkpoint shapes differ from the model's: {_listing(mismatched)}{hint}")
    allowed_missing = set(CLASSIFIER_KEYS) if not load_classifier else set()
    missing_trunk = [key for key in expected if key not in state_dict and not _is_se_key(key) and key not in allowed_missing]
    if missing_trunk:
        raise ValueError(f"checkpoint lacks trunk keys that the model has: {_listing(missing_trunk)}")

    result = model.load_state_dict(state_dict, strict=False)
    if result.missing_keys:
        logger.warning(
            "%d keys are not in the torchvision checkpoint and keep their initialisation: %s",
            len(result.missing_keys),
            _listing(result.missing_keys),
        )
    return LoadResult(list(result.missing_keys), list(result.unexpected_keys))
