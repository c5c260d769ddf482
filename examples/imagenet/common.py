"""What the ImageNet recipe's scripts share: image lists, transforms, the model, checkpoints, torch.distributed.

``train.py``, ``evaluate_lid.py``, ``evaluate_wsol.py`` and ``evaluate_wsss.py`` import this module (it sits
beside them; Python puts a script's folder on ``sys.path``). Nothing here imports torchvision or timm:

- :func:`image_folder_samples` lists a class-per-folder tree exactly as ``torchvision.datasets.ImageFolder``
  does (same ``class_to_idx``, same order, same extensions), so labels agree with torchvision/timm checkpoints.
- Images are read with OpenCV and converted to RGB; batches stay ``uint8`` ``(N, 3, H, W)`` until
  :func:`normalize_batch` runs on the device, which moves 4x fewer bytes to the GPU and leaves the raw pixels at
  hand for the dense CRF.
- Training augmentation is a pure function of ``(seed, epoch, index)``, so a resumed run, any number of
  DataLoader workers and any number of ranks see the same crops and flips for the same sample.

Errors that come from what the user passed (a missing folder, a list naming missing files, a checkpoint of
another architecture, an output folder that cannot be written) raise :class:`InputError` (camfix's, shared with
``camfix evaluate``), ``ValueError`` or ``OSError``; :func:`run_main` prints the message as one ``error:`` line and
exits with status 2 (``--debug`` adds the traceback). Output folders are checked before any work, and every file
is written atomically.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler, Subset
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

import camfix
from camfix import models
from camfix.cli_support import (
    InputError,
    add_debug_option,
    atomic_write,
    check_int,
    check_number,
    check_output_path,
    read_text_lines,
    run_command,
)
from camfix.crf import DenseCRFParams, load_pydensecrf, refine_saliency_batch, usable_cpus
from camfix.thresholds import DEFAULT_PCT

__all__ = [
    "ARCHITECTURES",
    "IMG_EXTENSIONS",
    "MODEL_DEFAULTS",
    "MODEL_FIELDS",
    "DistributedContext",
    "EpochSampler",
    "EvalImages",
    "InputError",
    "TrainImages",
    "add_evaluation_arguments",
    "amp_dtype",
    "build_model",
    "check_evaluation_arguments",
    "check_output_folder",
    "check_state_dict_fits",
    "cpus_per_rank",
    "evaluation_batches",
    "find_classes",
    "ground_truth_paths",
    "image_folder_samples",
    "distributed",
    "load_checkpoint",
    "load_evaluation_model",
    "load_model_weights",
    "model_fields",
    "model_state_dict",
    "normalize_batch",
    "read_image_list",
    "read_label_map",
    "read_mask",
    "read_rgb",
    "resize_image",
    "resolve_model_fields",
    "run_main",
    "saliency_maps",
    "save_atomic",
    "setup_logging",
    "shard_indices",
    "to_image_size",
    "write_json",
    "write_png",
]

logger = logging.getLogger("camfix.imagenet")

#: torchvision's ``IMG_EXTENSIONS`` (``torchvision.datasets.folder``), compared case-insensitively.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

#: Architectures by name: each builder takes ``(num_classes, global_pool)``.
ARCHITECTURES: Dict[str, Callable[..., nn.Module]] = {
    "seresnet50": models.seresnet50,
    "resnet50": models.resnet50,
    "seresnet_small": models.seresnet_small,
}
POOLINGS = ("tap", "gap")
RESIZE_MODES = ("square", "shorter")

#: Checkpoint entries that describe the model; a checkpoint whose entries differ from the command line is refused.
MODEL_FIELDS = ("arch", "num_classes", "pool", "theta_tap")
#: The model an evaluation builds when neither the command line nor the checkpoint says: the paper's.
MODEL_DEFAULTS = {"arch": "seresnet50", "num_classes": 1000, "pool": "tap", "theta_tap": 0.05}
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def run_main(main: Callable[[], None]) -> None:
    """Run a script's ``main`` and exit: bad input (an :class:`InputError`, ``ValueError``, ``TypeError`` or
    ``OSError``) becomes ``<script>: error: <message>`` on stderr and exit status 2 (``--debug``: with its
    traceback)."""
    raise SystemExit(run_command(Path(sys.argv[0]).name, main, sys.argv[1:]))


def check_output_folder(parser: argparse.ArgumentParser, out: Path) -> None:
    """End with ``parser.error`` unless ``--out`` is, or can be created as, a writable folder; checked before any
    work, so that a run never fails at its first write."""
    try:
        check_output_path("--out", out, folder=True)
    except (TypeError, ValueError, OSError) as error:
        parser.error(str(error))


# ----------------------------------------------------------------------------------------------------- data


def _existing_dir(name: str, path: Path) -> Path:
    """``path`` if it is a folder, else an :class:`InputError` naming the argument ``name``."""
    if not path.is_dir():
        raise InputError(f"{name} must be an existing folder, got {str(path)!r} ({'a file' if path.exists() else 'missing'})")
    return path


def _existing_file(name: str, path: Path) -> Path:
    """``path`` if it is a file, else an :class:`InputError` naming the argument ``name``."""
    if not path.is_file():
        raise InputError(f"{name} must be an existing file, got {str(path)!r} ({'a folder' if path.exists() else 'missing'})")
    return path


def find_classes(root: Path, argument: str = "the image folder") -> Tuple[List[str], Dict[str, int]]:
    """Class names (the sub-folders of ``root``, sorted) and ``class_to_idx``, as torchvision's ``find_classes``;
    ``argument`` names ``root`` in error messages (e.g. ``"--train-dir"``)."""
    _existing_dir(argument, root)
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    if not classes:
        raise InputError(f"{argument} {str(root)!r} has no class sub-folders (expected <class>/<image> inside it)")
    return classes, {name: index for index, name in enumerate(classes)}


def image_folder_samples(root: Path, argument: str = "the image folder") -> Tuple[List[Tuple[Path, int]], List[str]]:
    """``(path, class_index)`` of every image under ``root/<class>/`` and the class names, as ``ImageFolder``.

    Same order as ``torchvision.datasets.folder.make_dataset``: classes sorted, then ``os.walk`` (following links)
    with sorted folders and sorted file names; a file is an image when its lower-cased name ends with one of
    :data:`IMG_EXTENSIONS`. A class folder without images is an error, as in torchvision. ``argument`` names
    ``root`` in error messages.
    """
    classes, class_to_idx = find_classes(root, argument)
    samples: List[Tuple[Path, int]] = []
    empty: List[str] = []
    for name in classes:
        before = len(samples)
        for folder, _, file_names in sorted(os.walk(root / name, followlinks=True)):
            for file_name in sorted(file_names):
                if file_name.lower().endswith(IMG_EXTENSIONS):
                    samples.append((Path(folder) / file_name, class_to_idx[name]))
        if len(samples) == before:
            empty.append(name)
    if empty:
        raise InputError(
            f"found no image in the class folders {empty[:5]} of {str(root)!r}; "
            f"supported extensions are {', '.join(IMG_EXTENSIONS)}"
        )
    return samples, classes


def read_image_list(
    list_file: Path, image_root: Path, min_labels: int = 0, arguments: Tuple[str, str] = ("the image list", "the image root")
) -> List[Tuple[Path, List[int]]]:
    """Read an image list: one image per line, ``relative/path.JPEG [label ...]``, whitespace separated.

    Args:
        list_file: the list; empty lines and lines starting with ``#`` are skipped.
        image_root: the folder the paths are relative to; every listed image must exist.
        min_labels: how many integer labels each line must have at least (0 for a plain image list).
        arguments: the command-line names of ``list_file`` and ``image_root``, for error messages.

    Returns:
        ``(absolute path, labels)`` per line, in file order.

    Raises:
        InputError: a missing file or folder, a malformed line, a listed image that does not exist.
    """
    _existing_file(arguments[0], list_file)
    _existing_dir(arguments[1], image_root)
    entries: List[Tuple[Path, List[int]]] = []
    missing: List[str] = []
    for number, line in enumerate(read_text_lines(list_file), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            labels = [int(field) for field in fields[1:]]
        except ValueError:
            raise InputError(f"{list_file}:{number}: expected 'path [label ...]' with integer labels, got {line!r}") from None
        if len(labels) < min_labels or any(label < 0 for label in labels):
            raise InputError(
                f"{list_file}:{number}: expected an image path and at least {min_labels} non-negative "
                f"integer label(s), got {line!r}"
            )
        path = image_root / fields[0]
        if not path.is_file():
            missing.append(fields[0])
        entries.append((path, labels))
    if missing:
        raise InputError(
            f"{len(missing)} image(s) named in {list_file} are not under {image_root}: {', '.join(missing[:5])}"
            + (" ..." if len(missing) > 5 else "")
        )
    if not entries:
        raise InputError(f"the image list {list_file} names no image")
    return entries


def read_rgb(path: Path) -> np.ndarray:
    """An image file as uint8 RGB ``(H, W, 3)`` (OpenCV decodes to BGR; grey and alpha images become RGB)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"cannot read image {str(path)!r} (missing, unreadable or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def ground_truth_paths(image_paths: Sequence[Path], image_root: Path, truth_root: Path, argument: str) -> List[Path]:
    """The ground truth of each image: ``TRUTH_ROOT/<its path relative to IMAGE_ROOT, with .png>``; all must exist.
    ``argument`` names ``truth_root`` in error messages."""
    _existing_dir(argument, truth_root)
    paths = [truth_root / path.relative_to(image_root).with_suffix(".png") for path in image_paths]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise InputError(
            f"{len(missing)} of {len(paths)} ground-truth files are missing under {truth_root}: {', '.join(missing[:5])}"
            + (" ..." if len(missing) > 5 else "")
        )
    return paths


def read_mask(path: Path) -> np.ndarray:
    """A ground-truth mask file as bool ``(H, W)``: True where any channel is non-zero (grey, RGB or palette PNG)."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise InputError(f"cannot read mask {str(path)!r} (missing, unreadable or not an image)")
    return mask != 0 if mask.ndim == 2 else (mask[..., :3] != 0).any(axis=2)


def read_label_map(path: Path) -> np.ndarray:
    """A segmentation ground truth as int64 ``(H, W)`` labels: a single-channel PNG (grey, or palette indices as in
    PASCAL VOC, read with Pillow so that the indices, not the palette colours, come back)."""
    from PIL import Image  # a dependency of matplotlib; OpenCV would expand a palette into colours

    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L", "I", "I;16"):
                raise InputError(f"label map {str(path)!r} must be a single-channel or palette PNG, got mode {image.mode}")
            return np.asarray(image).astype(np.int64)
    except OSError as error:
        raise InputError(f"cannot read label map {str(path)!r}: {error}") from None


def resize_image(rgb: np.ndarray, size: int, mode: str = "square") -> np.ndarray:
    """Resize uint8 ``(H, W, 3)`` to ``(size, size)`` (``"square"``, the paper's 384x384) or so that its shorter
    side is ``size`` (``"shorter"``, aspect ratio kept, as torchvision's ``Resize(int)``).

    Shrinking uses ``INTER_AREA`` and enlarging ``INTER_LINEAR``: the antialiased bilinear resampling that
    torchvision applies to PIL images, approximated with OpenCV.
    """
    height, width = rgb.shape[:2]
    if mode == "square":
        new_height = new_width = size
    elif mode == "shorter":
        scale = size / min(height, width)
        new_height, new_width = max(size, round(height * scale)), max(size, round(width * scale))
    else:
        raise ValueError(f"mode must be one of {RESIZE_MODES}, got {mode!r}")
    if (new_height, new_width) == (height, width):
        return rgb
    shrinking = new_height * new_width < height * width
    return cv2.resize(rgb, (new_width, new_height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def _to_chw(rgb: np.ndarray) -> Tensor:
    """uint8 ``(H, W, 3)`` (possibly a strided view: a crop or a flip) -> contiguous uint8 tensor ``(3, H, W)``."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


def normalize_batch(images: Tensor, channels_last: bool = False) -> Tensor:
    """uint8 RGB ``(N, 3, H, W)`` in ``[0, 255]`` -> float32 ``(N, 3, H, W)`` standardised with ImageNet's mean and
    std (``camfix.IMAGENET_MEAN``/``IMAGENET_STD``, what ImageNet checkpoints and ``camfix.localize`` expect), on the
    device of ``images``; in ``torch.channels_last`` memory format when asked."""
    mean = torch.tensor(camfix.IMAGENET_MEAN, device=images.device).mul(255).view(1, 3, 1, 1)
    std = torch.tensor(camfix.IMAGENET_STD, device=images.device).mul(255).view(1, 3, 1, 1)
    batch = (images.float() - mean) / std
    return batch.contiguous(memory_format=torch.channels_last) if channels_last else batch


class TrainImages(Dataset):
    """Training images with the paper's augmentation: resize to ``resize`` (384), random ``crop`` (336), flip.

    Items are keyed by ``(epoch, index)`` (see :class:`EpochSampler`): the crop offset and the flip of sample
    ``index`` in ``epoch`` come from ``numpy.random.default_rng((seed, epoch, index))`` and nothing else.

    Args:
        samples: ``(path, class_index)`` pairs.
        resize: side the image is resized to first (``resize_mode`` says how), ``>= crop``.
        crop: side of the random square crop.
        resize_mode: ``"square"`` (paper: "resized to 384x384") or ``"shorter"`` (shorter side, aspect kept).
        seed: the run's seed.

    An item is ``(image, label)``: uint8 RGB ``(3, crop, crop)`` and an int.
    """

    def __init__(self, samples: Sequence[Tuple[Path, int]], resize: int, crop: int, resize_mode: str, seed: int) -> None:
        self.samples = list(samples)
        self.resize = resize
        self.crop = crop
        self.resize_mode = resize_mode
        self.seed = seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: Tuple[int, int]) -> Tuple[Tensor, int]:
        epoch, index = key
        path, label = self.samples[index]
        image = resize_image(read_rgb(path), self.resize, self.resize_mode)
        rng = np.random.default_rng((self.seed, epoch, index))
        top = int(rng.integers(0, image.shape[0] - self.crop + 1))
        left = int(rng.integers(0, image.shape[1] - self.crop + 1))
        image = image[top : top + self.crop, left : left + self.crop]
        if rng.random() < 0.5:
            image = image[:, ::-1]
        return _to_chw(image), label


class EvalImages(Dataset):
    """Evaluation images, each resized as a whole to ``(size, size)`` so that the map covers the full image.

    An item is ``(image, index, height, width)``: uint8 RGB ``(3, size, size)``, its position in ``paths`` (the
    caller keeps the per-image metadata, masks or boxes, by index) and the original image size.
    """

    def __init__(self, paths: Sequence[Path], size: int) -> None:
        self.paths = list(paths)
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Tuple[Tensor, int, int, int]:
        rgb = read_rgb(self.paths[index])
        return _to_chw(resize_image(rgb, self.size, "square")), index, rgb.shape[0], rgb.shape[1]


class EpochSampler(Sampler[Tuple[int, int]]):
    """A :class:`DistributedSampler` (this rank's share of a seeded shuffle) that yields ``(epoch, index)``.

    Passing the epoch with each index lets :class:`TrainImages` draw its augmentation from ``(seed, epoch, index)``
    even in DataLoader workers, which hold their own copy of the dataset.
    """

    def __init__(self, size: int, rank: int, world_size: int, seed: int) -> None:
        self.sampler = DistributedSampler(
            range(size), num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        return ((self.epoch, index) for index in self.sampler)


def shard_indices(size: int, rank: int, world_size: int) -> List[int]:
    """This rank's strided share of ``range(size)`` for evaluation: ``rank, rank + world_size, ...``.

    Unlike ``DistributedSampler`` nothing is padded or repeated, so the shares partition the dataset and the
    reduced metric equals the one-process metric.
    """
    return list(range(rank, size, world_size))


# ------------------------------------------------------------------------------------------- torch.distributed


@dataclass(frozen=True)
class DistributedContext:
    """Where this process runs: its ``rank`` among ``world_size`` processes, ``local_rank`` on its node, and the
    ``device`` it computes on. ``world_size == 1`` without torchrun (no process group)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, shows the progress bar and writes the checkpoints and summaries."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process, joined in a ``torch.distributed`` process group."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every rank (nothing to wait for in a single process)."""
        if self.distributed:
            dist.barrier()

    def all_gather_object(self, value: Any) -> List[Any]:
        """``value`` of every rank, in rank order (``[value]`` in a single process)."""
        if not self.distributed:
            return [value]
        gathered: List[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered


@contextlib.contextmanager
def distributed(device: str) -> Iterator[DistributedContext]:
    """Join the process group that ``torchrun`` describes in the environment (or run as a single process) for
    the ``with`` block, and leave it afterwards, also when the block raises.

    Under torchrun (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT`` set) the backend is
    NCCL on CUDA (one GPU per process, ``cuda:LOCAL_RANK``) and gloo on the CPU.

    Args:
        device: ``"auto"`` (CUDA when available), ``"cuda"`` or ``"cpu"``.
    """
    if device not in ("auto", "cuda", "cpu"):
        raise InputError(f"--device must be auto, cuda or cpu, got {device!r}")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for, but torch.cuda.is_available() is False")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        torch_device = torch.device("cuda", local_rank)
    else:
        torch_device = torch.device("cpu")
    if world_size > 1:
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            timeout=datetime.timedelta(minutes=30),
            **({"device_id": torch_device} if use_cuda else {}),
        )
    try:
        yield DistributedContext(rank, world_size, local_rank, torch_device)
    finally:
        if world_size > 1:
            dist.destroy_process_group()


def setup_logging(context: DistributedContext, log_file: Optional[Path] = None) -> None:
    """INFO logging on rank 0 (to stderr and ``log_file``), warnings only on the other ranks."""
    handlers: List[logging.Handler] = [logging.StreamHandler()]
    if context.is_main and log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(
        level=logging.INFO if context.is_main else logging.WARNING,
        format=f"%(asctime)s [rank {context.rank}] %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )


# ------------------------------------------------------------------------------------------ model, checkpoints


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
    _existing_file(argument, path)
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


# ------------------------------------------------------------------------------------------------ evaluation


def add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every evaluation script shares: the model, how maps are made, how the run is spread."""
    model = parser.add_argument_group("model (defaults: what the checkpoint records, else the paper's)")
    model.add_argument("--checkpoint", type=Path, required=True, help="train.py's last.pth, or a state_dict (timm layout)")
    model.add_argument("--arch", choices=sorted(ARCHITECTURES), default=None, help=f"default {MODEL_DEFAULTS['arch']}")
    model.add_argument("--num-classes", type=int, default=None, help=f"default {MODEL_DEFAULTS['num_classes']}")
    model.add_argument("--pool", choices=POOLINGS, default=None, help="pooling the model was trained with (default tap)")
    model.add_argument("--theta-tap", type=float, default=None, help="TAP threshold (default 0.05)")
    maps = parser.add_argument_group("maps")
    maps.add_argument("--size", type=int, default=384,
                      help="images are resized to SIZE x SIZE as a whole (default 384: the training resize, so objects "
                           "have the scale they were trained at)")
    maps.add_argument("--no-nwc", action="store_true", help="keep negative classifier weights (original CAM)")
    maps.add_argument("--pct", type=float, default=DEFAULT_PCT,
                      help="PaS percentile: maps are divided by their PCT-th percentile and clipped to 1 (paper 98; 100: off)")
    maps.add_argument("--crf", action="store_true", help="refine every map with a dense CRF (camfix[crf])")
    maps.add_argument("--crf-workers", type=int, default=None,
                      help="CRF processes per rank (default: the node's CPUs shared among its torchrun processes)")
    run = parser.add_argument_group("run")
    run.add_argument("--out", type=Path, required=True, help="output folder: metrics.json and the maps")
    run.add_argument("--batch-size", type=int, default=32, help="images per rank per forward pass")
    run.add_argument("--workers", type=int, default=8, help="DataLoader worker processes per rank")
    run.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    run.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="auto", help="autocast on CUDA (auto: bf16)")
    add_debug_option(run)


def check_evaluation_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Range checks of :func:`add_evaluation_arguments`' options and a writable ``--out``; a bad value ends with
    ``parser.error``."""
    try:
        check_int("--size", args.size, 8)
        check_int("--batch-size", args.batch_size, 1)
        check_int("--workers", args.workers, 0)
        check_number("--pct", args.pct, 0.0, 100.0, low_inclusive=False)
        if args.num_classes is not None:
            check_int("--num-classes", args.num_classes, 1)
        if args.theta_tap is not None:
            check_number("--theta-tap", args.theta_tap, 0.0, 1.0, high_inclusive=False)
        if args.crf_workers is not None:
            check_int("--crf-workers", args.crf_workers, 1)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    check_output_folder(parser, args.out)
    if args.crf:
        try:
            load_pydensecrf()
        except ImportError as error:
            parser.error(str(error))


def amp_dtype(amp: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype: bf16/fp16 on CUDA as asked (``auto``: bf16), None (float32) on the CPU."""
    if device.type != "cuda":
        if amp in AMP_DTYPES:
            raise InputError(f"--amp {amp} needs CUDA; on the CPU use --amp off (or auto)")
        return None
    return None if amp == "off" else AMP_DTYPES.get(amp, torch.bfloat16)


def load_evaluation_model(args: argparse.Namespace) -> Tuple[nn.Module, Dict[str, Any]]:
    """The trained classifier on the CPU in eval mode, and its :data:`MODEL_FIELDS`."""
    checkpoint = load_checkpoint(args.checkpoint, "--checkpoint")
    requested = {"arch": args.arch, "num_classes": args.num_classes, "pool": args.pool, "theta_tap": args.theta_tap}
    fields = resolve_model_fields(checkpoint, requested)
    model = build_model(fields["arch"], fields["num_classes"], fields["pool"], fields["theta_tap"] or 0.0)
    load_model_weights(model, checkpoint, fields, args.checkpoint)
    return model.eval(), fields


class _Autocast(nn.Module):
    """Runs a classifier's forward pass under autocast, so that :func:`camfix.localize` gets bf16/fp16 speed while
    the class activation maps themselves are computed in float32 from the captured features."""

    def __init__(self, model: nn.Module, device_type: str, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self.device_type = device_type
        self.dtype = dtype

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.model(x)


def cpus_per_rank() -> int:
    """This process's share of the node's usable CPUs: torchrun says how many ranks share the node."""
    return max(1, usable_cpus() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


@torch.no_grad()
def saliency_maps(
    model: nn.Module,
    images: Tensor,
    labels: Optional[Tensor],
    *,
    clamp_negative: bool,
    pct: float,
    crf_params: Optional[DenseCRFParams],
    crf_workers: Optional[int],
    dtype: Optional[torch.dtype],
    channels_last: bool,
) -> Tuple[Tensor, Tensor, Tensor]:
    """The paper's saliency maps for a batch: CAM (NWC) -> min-max -> PaS -> dense CRF.

    Args:
        model: a ``camfix.models.ResNet`` in eval mode, on the device of ``images``.
        images: uint8 RGB ``(N, 3, S, S)`` in ``[0, 255]`` (the resized images; the CRF compares their colours).
        labels: ``(N,)`` int64 classes to map (GT-known), or None for each image's top-1 predicted class.
        clamp_negative: NWC (paper: on).
        pct: PaS percentile, see :func:`camfix.percentile_normalize` (paper 98; 100: off).
        crf_params: dense CRF parameters (:class:`camfix.crf.DenseCRFParams`), or None for no CRF.
        crf_workers: CRF processes (None: one per CPU).
        dtype: autocast dtype of the forward pass (None: float32).
        channels_last: feed the model channels_last inputs.

    Returns:
        ``(maps, classes, logits)``: float32 ``(N, S, S)`` in ``[0, 1]``, int64 ``(N,)`` (the mapped classes) and
        float32 ``(N, K)``, on the device of ``images``.
    """
    runner = model if dtype is None else _Autocast(model, images.device.type, dtype)
    result = camfix.localize(
        runner, normalize_batch(images, channels_last), labels, clamp_negative=clamp_negative, pct=pct,
        feature_layer=getattr(model, model.stage_names[-1]), classifier=model.get_classifier(),
    )
    maps = camfix.percentile_normalize(result.maps, pct)
    if crf_params is not None:
        maps = refine_saliency_batch(images, maps, crf_params, workers=crf_workers)
    return maps, result.classes, result.logits.float()


def to_image_size(saliency: Tensor, height: int, width: int) -> Tensor:
    """One map ``(S, S)`` in ``[0, 1]`` resized (bilinear) to the original image's ``(height, width)``, on the CPU."""
    return camfix.resize_maps(saliency[None].float().cpu(), (height, width), mode="bilinear")[0].clamp(0.0, 1.0)


def evaluation_batches(
    model: nn.Module,
    paths: Sequence[Path],
    labels: Optional[Tensor],
    args: argparse.Namespace,
    context: DistributedContext,
    description: str,
) -> Iterator[Tuple[List[int], Tensor, Tensor, Tensor, List[Tuple[int, int]]]]:
    """Saliency maps of this rank's share (:func:`shard_indices`) of ``paths``, batch by batch.

    Yields ``(indices, maps, classes, logits, sizes)``: positions in ``paths``, maps ``(B, S, S)`` float32 in
    ``[0, 1]`` and classes ``(B,)``, logits ``(B, K)`` (on ``context.device``) as :func:`saliency_maps` gives them,
    and each image's original ``(height, width)``. ``labels`` ``(len(paths),)`` int64 selects GT-known maps.
    """
    dtype = amp_dtype(args.amp, context.device)
    channels_last = context.device.type == "cuda"
    model.to(context.device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    crf_params = DenseCRFParams() if args.crf else None
    crf_workers = args.crf_workers or cpus_per_rank()
    dataset = Subset(EvalImages(paths, args.size), shard_indices(len(paths), context.rank, context.world_size))
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers, pin_memory=context.device.type == "cuda")
    for images, indices, heights, widths in tqdm(loader, desc=description, unit="batch", disable=not context.is_main, dynamic_ncols=True):
        batch_labels = None if labels is None else labels[indices].to(context.device)
        maps, classes, logits = saliency_maps(
            model, images.to(context.device, non_blocking=True), batch_labels, clamp_negative=not args.no_nwc,
            pct=args.pct, crf_params=crf_params, crf_workers=crf_workers, dtype=dtype, channels_last=channels_last,
        )
        yield indices.tolist(), maps, classes, logits, list(zip(heights.tolist(), widths.tolist()))


def write_png(path: Path, levels: Tensor) -> None:
    """Write uint8 ``(H, W)`` as a single-channel 8-bit PNG, atomically (parent folders created)."""
    encoded, data = cv2.imencode(".png", levels.cpu().numpy())
    if not encoded:
        raise OSError(f"OpenCV could not encode {path} as PNG")
    with atomic_write(path) as stream:
        stream.write(data.tobytes())


def write_json(path: Path, record: Mapping[str, Any]) -> None:
    """Write ``record`` as indented JSON, atomically (temporary file + ``os.replace``)."""
    with atomic_write(path) as stream:
        stream.write((json.dumps(record, indent=2) + "\n").encode("utf-8"))
