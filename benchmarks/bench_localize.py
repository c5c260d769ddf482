"""camfix.localize vs the model's own forward pass, measured in the same run.

    python benchmarks/bench_localize.py [--batch 32] [--size 224] [--repeats 5] [--device cpu|cuda]

The model is the timm-layout ResNet-50 from camfix.models (random weights: the cost does not depend on them).
The baseline is ``model(images)`` in eval mode under ``torch.no_grad()``; ``localize`` adds the feature hook,
the class activation map of the top-1 class, the bicubic resize to the image size, min-max normalisation, the
98th-percentile threshold and the connected-component boxes. Also prints how the extra time splits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_seconds  # noqa: E402

import camfix  # noqa: E402
from camfix.models import resnet50  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = resnet50().to(device).eval()
    images = torch.randn(args.batch, 3, args.size, args.size, device=device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def forward() -> None:
        with torch.no_grad():
            model(images)
        sync()

    def full() -> None:
        camfix.localize(model, images)
        sync()

    # Interleaved, and the fastest of the repeats: on a shared machine the minimum is the figure least disturbed
    # by other load, and interleaving makes drift in that load hit both alike.
    forward_s = localize_s = float("inf")
    for _ in range(args.repeats):
        forward_s = min(forward_s, median_seconds(forward, 1, warmup=0))
        localize_s = min(localize_s, median_seconds(full, 1, warmup=0))

    result = camfix.localize(model, images)
    with torch.no_grad():
        features = model.forward_features(images)
    weight = model.get_classifier().weight
    post = median_seconds(
        lambda: camfix.percentile_box(
            camfix.normalize_maps(
                camfix.resize_maps(camfix.cam(features, weight, classes=result.classes), images.shape[-2:])
            )
        ),
        args.repeats,
    )
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    print(f"ResNet-50, batch {args.batch} at {args.size} px")
    print(f"model forward    {forward_s * 1e3:9.1f} ms  (fastest of {args.repeats})")
    print(f"camfix.localize  {localize_s * 1e3:9.1f} ms  (fastest of {args.repeats})")
    print(f"  of which map -> box after the forward: {post * 1e3:.1f} ms")
    print(f"overhead: {100 * (localize_s / forward_s - 1):+.2f}%  (post-processing alone {100 * post / forward_s:.2f}%)")


if __name__ == "__main__":
    main()
