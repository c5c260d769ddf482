"""The recipe's images: ImageFolder-compatible listing, image lists, reading, resizing, augmentation, batches.

- :func:`image_folder_samples` lists a class-per-folder tree exactly as ``torchvision.datasets.ImageFolder``
  does (same ``class_to_idx``, same order, same extensions), so labels agree with torchvision/timm checkpoints.
  Nothing here imports torchvision or timm.
- Images are read with OpenCV and converted to RGB; batches stay ``uint8`` ``(N, 3, H, W)`` until
  :func:`normalize_batch` runs on the device, which moves 4x fewer bytes to the GPU and leaves the raw pixels at
  hand for the dense CRF.
- Training augmentation is a pure function of ``(seed, epoch, index)`` (:class:`TrainImages` with
  :class:`EpochSampler`), so a resumed run, any number of DataLoader workers and any number of ranks see the same
  crops and flips for the same sample.

What the user names that is missing or malformed (a folder, a list, an image) raises
``camfix.cli_support.InputError`` naming the option.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

import camfix
from camfix.cli_support import InputError, read_text_lines

__all__ = [
    "IMG_EXTENSIONS",
    "RESIZE_MODES",
    "EpochSampler",
    "EvalImages",
    "TrainImages",
    "existing_dir",
    "existing_file",
    "find_classes",
    "ground_truth_paths",
    "image_folder_samples",
    "normalize_batch",
    "read_image_list",
    "read_label_map",
    "read_mask",
    "read_rgb",
    "resize_image",
]

#: torchvision's ``IMG_EXTENSIONS`` (``torchvision.datasets.folder``), compared case-insensitively.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
RESIZE_MODES = ("square", "shorter")


def existing_dir(name: str, path: Path) -> Path:
    """``path`` if it is a folder, else an :class:`InputError` naming the argument ``name``."""
    if not path.is_dir():
        raise InputError(f"{name} must be an existing folder, got {str(path)!r} ({'a file' if path.exists() else 'missing'})")
    return path


def existing_file(name: str, path: Path) -> Path:
    """``path`` if it is a file, else an :class:`InputError` naming the argument ``name``."""
    if not path.is_file():
        raise InputError(f"{name} must be an existing file, got {str(path)!r} ({'a folder' if path.exists() else 'missing'})")
    return path


def find_classes(root: Path, argument: str = "the image folder") -> Tuple[List[str], Dict[str, int]]:
    """Class names (the sub-folders of ``root``, sorted) and ``class_to_idx``, as torchvision's ``find_classes``;
    ``argument`` names ``root`` in error messages (e.g. ``"--train-dir"``)."""
    existing_dir(argument, root)
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
    existing_file(arguments[0], list_file)
    existing_dir(arguments[1], image_root)
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
    existing_dir(argument, truth_root)
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
    std (:func:`camfix.normalize_images`: what ImageNet checkpoints and ``camfix.localize`` expect), on the device
    of ``images``; in ``torch.channels_last`` memory format when asked."""
    batch = camfix.normalize_images(images)
    return batch.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


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
