"""Two processes (gloo, CPU) each accumulate half of the data; ``sync()`` must give the one-process numbers."""

from __future__ import annotations

import os
import sys
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from camfix.metrics import BoxAccuracy, MeanIoU, PeakIoU, PxAP

WORLD_SIZE = 2


def dataset():
    """Deterministic data: 6 images, the same in every process."""
    generator = torch.Generator().manual_seed(0)
    maps = torch.rand(6, 12, 12, generator=generator, dtype=torch.float64)
    masks = torch.rand(6, 12, 12, generator=generator) > 0.6
    masks[:, 0, 0] = True
    boxes = torch.tensor([[1, 1, 8, 9], [0, 0, 11, 11], [3, 2, 6, 10], [5, 5, 11, 7], [0, 4, 4, 11], [2, 2, 9, 9]])
    labels = torch.randint(0, 3, (6, 12, 12), generator=generator)
    classes = torch.arange(6) % 3
    return maps, masks, boxes, labels, classes


def accumulate(indices):
    maps, masks, boxes, labels, classes = dataset()
    metrics = {
        "boxes": BoxAccuracy(),
        "peak_dataset": PeakIoU(),
        "peak_image": PeakIoU(reduction="image"),
        "pxap": PxAP(),
        "miou": MeanIoU(3),
    }
    for start in range(0, len(indices), 2):  # several updates per rank
        i = indices[start : start + 2]
        metrics["boxes"].update(maps[i], boxes[i], classes[i], (classes[i] + (i % 2)) % 3)
        metrics["peak_dataset"].update(maps[i], masks[i])
        metrics["peak_image"].update(maps[i], masks[i])
        metrics["pxap"].update(maps[i], masks[i])
        metrics["miou"].update(labels[i], (labels[i] + (i[:, None, None] % 2)) % 3)
    return metrics


def summary(metrics):
    boxes = metrics["boxes"].compute()
    return {
        "boxes": boxes.as_dict(),
        "single": boxes.single_accuracy.tolist(),
        "peak_dataset": metrics["peak_dataset"].compute().curve.tolist(),
        "peak_image": metrics["peak_image"].compute().curve.tolist(),
        "pxap": metrics["pxap"].compute().pxap,
        "miou": metrics["miou"].compute().miou,
    }


def worker(rank: int, init_file: str, results: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    try:
        own = torch.arange(rank, 6, WORLD_SIZE)  # interleaved shards, as a DistributedSampler gives
        metrics = accumulate(own)
        reduced = {name: metric.sync() for name, metric in metrics.items()}
        results[rank] = {
            "reduced": summary(reduced),
            "local_images": int(metrics["boxes"].num_images),  # sync() left the accumulator itself alone
        }
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
@pytest.mark.skipif(sys.platform == "win32", reason="file:// rendezvous test written for POSIX")
def test_two_process_sync_equals_one_process() -> None:
    expected = summary(accumulate(torch.arange(6)))
    with tempfile.TemporaryDirectory() as folder:
        manager = mp.Manager()
        results = manager.dict()
        mp.spawn(worker, args=(os.path.join(folder, "rendezvous"), results), nprocs=WORLD_SIZE, join=True)
        results = dict(results)
    for rank in range(WORLD_SIZE):
        assert results[rank]["local_images"] == 3
        assert results[rank]["reduced"] == expected  # exact: integer state, summed
