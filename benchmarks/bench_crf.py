"""Dense CRF refinement time per image: one worker vs threads vs the process pool, measured in the same run.

    python benchmarks/bench_crf.py [--sizes 224 336] [--batch 8] [--repeats 5] [--workers N]

For each size, a batch of synthetic scenes (a few coloured ellipses on a lit, noisy background; the lattice that
pydensecrf builds, hence the time, grows with the colour variety of the image) with coarse saliency maps is
refined with the default parameters (10 mean-field iterations):

- ``1 worker``: ``refine_saliency_batch(..., workers=1)``, the baseline;
- ``threads``: ``refine_saliency`` on each image from a thread pool of ``--workers`` threads;
- ``pool``: ``refine_saliency_batch(..., workers=N)``, processes (fork, pool start-up included);
- ``sweep``: ``refine_saliency_sweep(..., SWEEP_POINTS, workers=1)``, the CRF at four operating points with each
  image's kernels built once, per image and operating point, against one worker's time for one point.

Prints the median milliseconds per image over ``--repeats`` interleaved runs, the speed-up over the baseline, and
for the pool the cores it actually got (CPU seconds of this process and its workers / wall seconds): other
processes busy on the machine leave it fewer than ``workers`` cores, which the load average shows too.
Needs pydensecrf (``pip install "camfix[crf]"``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from camfix.crf import (
    DenseCRFParams,
    load_pydensecrf,
    refine_saliency,
    refine_saliency_batch,
    refine_saliency_sweep,
)
from camfix.parallel import usable_cpus

#: The operating points of the ``sweep`` variant.
SWEEP_POINTS = (0.2, 0.35, 0.5, 0.65)


def synthetic_batch(batch: int, size: int, seed: int = 0) -> Tuple[np.ndarray, torch.Tensor]:
    """Images uint8 (N, size, size, 3) and saliency maps float32 (N, size, size) of the first ellipse, made
    coarse as a CAM is: pooled to 1/32 resolution and upsampled bilinearly, then min-max normalised."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size].astype(np.float64) / size
    images: List[np.ndarray] = []
    masks: List[np.ndarray] = []
    for _ in range(batch):
        image = rng.uniform(40, 200, 3) * (0.7 + 0.6 * x[..., None])
        for index in range(4):
            cy, cx, ry, rx = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.3), rng.uniform(0.1, 0.3)
            inside = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1
            image[inside] = rng.uniform(0, 255, 3)
            if index == 0:
                masks.append(inside)
        images.append(np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8))
    truth = torch.from_numpy(np.stack(masks)).float()[:, None]
    coarse = F.interpolate(F.avg_pool2d(truth, 32), size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    low = coarse.amin(dim=(1, 2), keepdim=True)
    high = coarse.amax(dim=(1, 2), keepdim=True)
    return np.stack(images), (coarse - low) / (high - low)


def wall_and_cpu_seconds(fn: Callable[[], object]) -> Tuple[float, float]:
    """Wall-clock and CPU seconds (this process and its finished children) of one call of ``fn``."""
    start_wall, start = time.perf_counter(), os.times()
    fn()
    end_wall, end = time.perf_counter(), os.times()
    cpu = sum(getattr(end, field) - getattr(start, field) for field in ("user", "system", "children_user",
                                                                       "children_system"))
    return end_wall - start_wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 336])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=None, help="default: the usable CPU count")
    args = parser.parse_args()
    load_pydensecrf()
    cpus = usable_cpus()
    workers = min(args.workers or cpus, args.batch)
    params = DenseCRFParams()
    print(f"usable CPUs {cpus}, workers {workers}, batch {args.batch}, {params.iterations} iterations, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'size':>6s} {'1 worker ms/img':>16s} {'threads ms/img':>15s} {'speed-up':>9s} "
          f"{'pool ms/img':>12s} {'speed-up':>9s} {'pool cores used':>16s} {'sweep ms/img/point':>19s} "
          f"{'of 1 worker':>12s}")
    for size in args.sizes:
        images, saliency = synthetic_batch(args.batch, size)
        reference = refine_saliency_batch(images, saliency, params, workers=1)
        if not torch.equal(reference, refine_saliency_batch(images, saliency, params, workers=workers)):
            raise RuntimeError("the pool gave a different result from one worker")

        def threads() -> None:
            with ThreadPoolExecutor(max_workers=workers) as executor:
                list(executor.map(lambda pair: refine_saliency(pair[0], pair[1], params), zip(images, saliency)))

        variants = (
            lambda: refine_saliency_batch(images, saliency, params, workers=1),
            threads,
            lambda: refine_saliency_batch(images, saliency, params, workers=workers),
            lambda: refine_saliency_sweep(images, saliency, SWEEP_POINTS, params, workers=1),
        )
        # Interleaved, so that the load of other processes on the machine hits the variants alike.
        wall: List[List[float]] = [[], [], [], []]
        pool_cores: List[float] = []
        for _ in range(args.repeats):
            for index, variant in enumerate(variants):
                wall_s, cpu_s = wall_and_cpu_seconds(variant)
                wall[index].append(wall_s / args.batch)
                if index == 2:
                    pool_cores.append(cpu_s / wall_s)
        single_s, thread_s, pool_s, sweep_s = (statistics.median(times) for times in wall)
        sweep_s /= len(SWEEP_POINTS)
        print(f"{size:>6d} {single_s * 1e3:>16.1f} {thread_s * 1e3:>15.1f} {single_s / thread_s:>8.2f}x "
              f"{pool_s * 1e3:>12.1f} {single_s / pool_s:>8.2f}x {statistics.median(pool_cores):>16.2f} "
              f"{sweep_s * 1e3:>19.1f} {sweep_s / single_s:>11.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
