"""The unmodified reference evaluator (clovaai/wsolevaluation) for the benchmarks, imported from a checkout.

    git clone https://github.com/clovaai/wsolevaluation /tmp/wsolevaluation
    export CAMFIX_REFERENCE_DIR=/tmp/wsolevaluation

Its files are imported as they are, never copied or edited. What is put around them, and why:

- NumPy 1.24 removed the alias ``np.float`` (it was ``float``) that the reference still uses: restored when
  missing.
- Its ``data_loaders`` and ``config`` import ``munch`` (a dict with attribute access) and ``data_loaders`` imports
  torchvision: a small stand-in module when munch is not installed, and torchvision through camfix's
  :func:`~camfix.models.import_torchvision`.
- Metadata: written to a temporary folder in the reference's own formats and read by its own functions.
- ``_RESIZE_LENGTH`` (224, the size its evaluators resize boxes and masks to) is set to the maps' size.
- ``MaskEvaluator.accumulate`` reads each image's mask PNGs with ``get_mask``; :func:`mask_evaluator` replaces the
  module's ``get_mask`` with a lookup of the same mask in memory, in its encoding (1 foreground, 255 ignored, 0
  background), so that both sides time the metric and neither the PNG decoding.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import io
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

ENVIRONMENT = "CAMFIX_REFERENCE_DIR"
HOW_TO_GET = (
    f"reference evaluator skipped: set {ENVIRONMENT} to a checkout of clovaai/wsolevaluation "
    f"(git clone https://github.com/clovaai/wsolevaluation /tmp/wsolevaluation; {ENVIRONMENT}=/tmp/wsolevaluation)"
)


def load() -> Optional[types.ModuleType]:
    """The reference's ``evaluation`` module, or ``None`` (after printing how to get it) when it is not there."""
    folder = os.environ.get(ENVIRONMENT)
    if not folder or not (Path(folder) / "evaluation.py").is_file():
        print(HOW_TO_GET if not folder else f"{ENVIRONMENT}={folder} has no evaluation.py; {HOW_TO_GET}")
        return None
    if not hasattr(np, "float"):
        np.float = float  # type: ignore[attr-defined]
    try:
        importlib.import_module("munch")
    except ImportError:
        stand_in = types.ModuleType("munch")

        class Munch(dict):
            def __getattr__(self, name: str) -> object:
                try:
                    return self[name]
                except KeyError:
                    raise AttributeError(name) from None

            def __setattr__(self, name: str, value: object) -> None:
                self[name] = value

        stand_in.Munch = Munch  # type: ignore[attr-defined]
        sys.modules["munch"] = stand_in
    from camfix.models import import_torchvision

    import_torchvision()
    sys.path.insert(0, str(Path(folder).resolve()))
    return importlib.import_module("evaluation")


def _metadata(image_ids: Sequence[str], size: int, localization: List[str]) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="camfix-reference-"))
    atexit.register(shutil.rmtree, folder, True)
    (folder / "image_ids.txt").write_text("".join(f"{i}\n" for i in image_ids))
    (folder / "image_sizes.txt").write_text("".join(f"{i},{size},{size}\n" for i in image_ids))
    (folder / "localization.txt").write_text("".join(f"{line}\n" for line in localization))
    return folder


def box_evaluator(
    evaluation: types.ModuleType, boxes: Sequence[np.ndarray], size: int, thresholds: np.ndarray, multi: bool
) -> object:
    """The reference's ``BoxEvaluator`` for images ``"0", "1", ...`` of ``size x size`` with these inclusive boxes."""
    evaluation._RESIZE_LENGTH = size
    ids = [str(i) for i in range(len(boxes))]
    lines = [f"{i},{x0},{y0},{x1},{y1}" for i, image in zip(ids, boxes) for x0, y0, x1, y1 in image.tolist()]
    metadata = evaluation.configure_metadata(str(_metadata(ids, size, lines)))
    return evaluation.BoxEvaluator(
        metadata=metadata, dataset_name="ILSVRC", split="test", cam_threshold_list=list(thresholds),
        iou_threshold_list=[30, 50, 70], mask_root="", multi_contour_eval=multi,
    )  # fmt: skip


def encode_masks(masks: np.ndarray, ignore: np.ndarray) -> Dict[str, np.ndarray]:
    """What the reference's ``get_mask`` returns for each image: uint8, 1 foreground, 255 ignored, 0 background."""
    return {
        f"{index}.png": mask.astype(np.uint8) + 255 * (skip & ~mask).astype(np.uint8)
        for index, (mask, skip) in enumerate(zip(masks, ignore))
    }


def mask_evaluator(evaluation: types.ModuleType, encoded: Dict[str, np.ndarray], thresholds: np.ndarray) -> object:
    """The reference's ``MaskEvaluator`` for images ``"0", "1", ...`` with the masks of :func:`encode_masks`."""
    evaluation._RESIZE_LENGTH = next(iter(encoded.values())).shape[0]
    ids = [str(i) for i in range(len(encoded))]
    evaluation.get_mask = lambda mask_root, mask_paths, ignore_path: encoded[mask_paths[0]]
    metadata = evaluation.configure_metadata(str(_metadata(ids, 0, [f"{i},{i}.png,ignore.png" for i in ids])))
    return evaluation.MaskEvaluator(
        metadata=metadata, dataset_name="OpenImages", split="test", cam_threshold_list=list(thresholds),
        iou_threshold_list=[30, 50, 70], mask_root="", multi_contour_eval=False,
    )  # fmt: skip


def quiet_compute(evaluator: object) -> object:
    """``evaluator.compute()`` without the line it prints (and NumPy's warning for its 0 / 0 precision, which it
    leaves out of the area)."""
    with contextlib.redirect_stdout(io.StringIO()), np.errstate(invalid="ignore", divide="ignore"):
        return evaluator.compute()  # type: ignore[attr-defined]
