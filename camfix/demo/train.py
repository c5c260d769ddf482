"""Training the demo's classifiers from scratch on the CPU, reproducibly."""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Iterator, List

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from camfix._validation import check_int, check_number
from camfix.images import normalize_images
from camfix.demo.data import SyntheticWSOL

__all__ = ["deterministic", "predict", "to_model_input", "train_classifier"]

logger = logging.getLogger(__name__)

WEIGHT_DECAY = 5e-4
MOMENTUM = 0.9


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed torch and ask for deterministic kernels inside the block; the previous settings are restored after.

    ``torch.use_deterministic_algorithms(True)`` also fills every new uninitialised tensor with NaN (a check for
    code that reads memory it never wrote, which no kernel here does); that costs 8% of a training step on the
    CPU, so it is switched off inside the block (``torch.utils.deterministic.fill_uninitialized_memory``).

    Args:
        seed: passed to ``torch.manual_seed`` (which fixes, e.g., the initial weights of a model built inside).
    """
    previous = torch.are_deterministic_algorithms_enabled()
    settings = getattr(torch.utils, "deterministic", None)
    previous_fill = getattr(settings, "fill_uninitialized_memory", None)
    torch.use_deterministic_algorithms(True)
    if previous_fill is not None:
        settings.fill_uninitialized_memory = False
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
        if previous_fill is not None:
            settings.fill_uninitialized_memory = previous_fill


def to_model_input(images: np.ndarray) -> torch.Tensor:
    """The classifiers' input: :func:`camfix.normalize_images` with ImageNet's statistics, which keeps
    :func:`camfix.localize`'s default un-normalisation (for the CRF) valid.

    Args:
        images: uint8 RGB ``(N, H, W, 3)``, the demo's numpy layout.

    Returns:
        float32 ``(N, 3, H, W)``, contiguous.
    """
    return normalize_images(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)).contiguous()


def _learning_rate(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to zero at step ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def train_classifier(
    model: nn.Module,
    data: SyntheticWSOL,
    epochs: int,
    seed: int,
    batch_size: int = 64,
    lr: float = 0.1,
    description: str = "train",
    progress: bool = True,
    channels_last: bool = False,
) -> List[float]:
    """Train ``model`` with SGD (Nesterov momentum 0.9, weight decay 5e-4) and random horizontal flips.

    The learning rate rises linearly over the first epoch, then follows a cosine to zero.

    Args:
        model: a classifier taking ``(N, 3, H, W)`` ImageNet-normalised images and returning ``(N, K)`` logits.
        data: the training split; images ``(N, H, W, 3)`` uint8, labels ``(N,)``.
        epochs: passes over ``data``, at least 1.
        seed: drives the batch order and the flips (the initial weights are the model's own: build it under
            :func:`deterministic` to fix them).
        batch_size: images per step.
        lr: peak learning rate.
        description: label of the progress bar.
        progress: show a tqdm progress bar.
        channels_last: put the model (it stays so) and its inputs in the channels-last memory format, in which the
            CPU's convolutions run about a quarter faster; the demo does. The trained weights differ from those of
            the default format by float rounding, amplified by training.

    Returns:
        The mean training loss of each epoch.
    """
    epochs = check_int("epochs", epochs, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    lr = check_number("lr", lr, 0.0, math.inf, low_inclusive=False)
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0))
    images = torch.from_numpy(data.images)
    labels = torch.from_numpy(data.labels)
    steps_per_epoch = math.ceil(len(data) / batch_size)
    total = epochs * steps_per_epoch
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, nesterov=True)
    model.train()
    losses: List[float] = []
    step = 0
    with tqdm(total=total, desc=description, unit="step", disable=not progress, leave=False) as bar:
        for epoch in range(epochs):
            order = torch.randperm(len(data), generator=generator)
            running = 0.0
            for start in range(0, len(data), batch_size):
                index = order[start : start + batch_size]
                x = to_model_input(images[index].numpy())
                flip = torch.rand(len(index), generator=generator) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(3), x).contiguous(memory_format=memory_format)
                for group in optimizer.param_groups:
                    group["lr"] = _learning_rate(step, total, steps_per_epoch, lr)
                loss = F.cross_entropy(model(x), labels[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                running += float(loss.detach()) * len(index)
                step += 1
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{float(loss.detach()):.3f}")
            losses.append(running / len(data))
            logger.debug("%s epoch %d/%d: loss %.4f", description, epoch + 1, epochs, losses[-1])
    model.eval()
    return losses


@torch.no_grad()
def predict(model: nn.Module, data: SyntheticWSOL, batch_size: int = 256) -> np.ndarray:
    """Top-1 predictions of a classifier.

    Args:
        model: a classifier taking ImageNet-normalised ``(N, 3, H, W)``; it is put in eval mode.
        data: the images to classify.
        batch_size: images per forward pass.

    Returns:
        ``(N,)`` int64 predicted classes.
    """
    model.eval()
    return np.concatenate(
        [
            model(to_model_input(data.images[start : start + batch_size])).argmax(1).numpy()
            for start in range(0, len(data), batch_size)
        ]
    )
