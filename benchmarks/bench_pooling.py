"""TAPool vs nn.AdaptiveAvgPool2d(1), forward + backward, measured in the same run.

    python benchmarks/bench_pooling.py [--repeats 20] [--threads N] [--device cpu|cuda]

Prints the time of each pooling layer alone on (64, 2048, 7, 7) and (64, 2048, 14, 14) and the ratio TAP/GAP,
then the same ratio for a whole training step (forward + backward) of the paper's SE-ResNet-50 (batch 8 at
224 px), which is what a user pays for the swap in practice.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_seconds  # noqa: E402

import camfix  # noqa: E402
from camfix.models import seresnet50  # noqa: E402


def pooling_step(pool: nn.Module, x: torch.Tensor) -> None:
    x.grad = None
    pool(x).sum().backward()


def train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(images), labels).backward()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    print(f"{'input':24s} {'GAP ms':>9s} {'TAP ms':>9s} {'TAP/GAP':>8s}")
    for shape in [(64, 2048, 7, 7), (64, 2048, 14, 14)]:
        x = torch.randn(shape, device=device).relu_().requires_grad_()
        timings = []
        for pool in (nn.AdaptiveAvgPool2d(1), camfix.TAPool(0.05)):
            timings.append(
                median_seconds(lambda: (pooling_step(pool, x), sync(device)), args.repeats)
            )
        gap, tap = timings
        print(f"{str(shape):24s} {gap * 1e3:9.2f} {tap * 1e3:9.2f} {tap / gap:8.2f}x")

    images = torch.randn(8, 3, 224, 224, device=device)
    labels = torch.randint(0, 1000, (8,), device=device)
    model = seresnet50().to(device)
    step_repeats = max(args.repeats // 5, 3)
    gap_step = median_seconds(lambda: (train_step(model, images, labels), sync(device)), step_repeats, warmup=1)
    model.global_pool = camfix.TAPool(0.05, flatten=True)
    tap_step = median_seconds(lambda: (train_step(model, images, labels), sync(device)), step_repeats, warmup=1)
    print(
        f"training step, seresnet50, batch 8 at 224 px: GAP {gap_step * 1e3:.1f} ms, "
        f"TAP {tap_step * 1e3:.1f} ms, TAP/GAP {tap_step / gap_step:.3f}x"
    )


if __name__ == "__main__":
    main()
