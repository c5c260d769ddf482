"""A synthetic WSOL benchmark, generated from a seed: one object per image, exact masks and boxes.

Each image holds one object on a cluttered, textured background. An object is a *body* (a wobbly ellipse,
striped or spotted, in a warm or a cool palette) with a small *head* (a disc of one colour) at one end. The body
pattern splits the eight classes into two families of four; the head colour decides the class:

==========  =======  =======  =======  =======
body        head     head     head     head
==========  =======  =======  =======  =======
stripes     white    violet   yellow   red
spots       cyan     lime     magenta  black
==========  =======  =======  =======  =======

The design carries the three situations of the paper without tuning anything to its numbers:

- *A small part decides the class.* The four classes of a family share the body distribution exactly; only
  the head, about a tenth of the object, tells them apart, so a classifier must look at it, while the body
  narrows the choice to a family at most.
- *Parts are shared between classes.* Each body pattern is shared by four classes and each palette, drawn at
  random for every image, by all eight, so channels that detect bodies fire inside the objects of classes for
  which their classifier weights are negative (section 2.3's negative-weight features).
- *Sizes spread.* The body's half-length is log-uniform between 14% and 40% of the image side, so objects cover
  about 4% to 40% of the image.

The background is a smooth colour field with grain plus distractors (lines, polygons, rings, and patches of
stripes and spots in random colours), so texture alone is not object evidence. Every sample is generated from
``(seed, split, index)`` only; nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import cv2
import numpy as np

from camfix._validation import check_int

__all__ = ["CLASS_NAMES", "FAMILIES", "HEADS", "SyntheticWSOL", "make_dataset", "render_sample"]

# Body pattern of each family; the palette (base, accent RGB) is drawn per image, independently of the class.
FAMILIES: Tuple[str, ...] = ("stripes", "spots")
PALETTES: Tuple[Tuple[Tuple[int, int, int], Tuple[int, int, int]], ...] = (
    ((230, 130, 40), (110, 45, 20)),  # warm: orange with dark brown
    ((50, 110, 220), (160, 225, 240)),  # cool: blue with pale cyan
)
HEADS = {
    "white": (240, 240, 235),
    "violet": (125, 60, 215),
    "yellow": (245, 225, 50),
    "red": (215, 25, 35),
    "cyan": (40, 215, 215),
    "lime": (120, 230, 40),
    "magenta": (225, 40, 200),
    "black": (25, 25, 30),
}
# class index -> (family index, head colour); see the table in the module docstring.
CLASSES: Tuple[Tuple[int, str], ...] = tuple((index // 4, head) for index, head in enumerate(HEADS))
CLASS_NAMES: Tuple[str, ...] = tuple(f"{FAMILIES[family]}/{head}" for family, head in CLASSES)
SPLITS = {"train": 0, "eval": 1, "val": 2}

# Body half-length range as a fraction of the image side (log-uniform), and the minor/major axis ratio range.
BODY_SCALE = (0.14, 0.40)
BODY_ASPECT = (0.45, 0.7)
# Head radius as a fraction of the body's half-width, and its minimum in pixels (keeps it visible when small).
HEAD_RADIUS = 0.5
MIN_HEAD_RADIUS = 2.5


@dataclass(frozen=True)
class SyntheticWSOL:
    """One split of the synthetic benchmark, as numpy arrays.

    Attributes:
        images: ``(N, H, W, 3)`` uint8 RGB.
        masks: ``(N, H, W)`` bool, the object's pixels (body and head), exact.
        part_masks: ``(N, H, W)`` bool, the head (the discriminative part), a subset of ``masks``.
        boxes: ``(N, 4)`` int64 ``(x0, y0, x1, y1)`` of ``masks``, inclusive (camfix's box convention).
        labels: ``(N,)`` int64 class indices into :data:`CLASS_NAMES`.
    """

    images: np.ndarray
    masks: np.ndarray
    part_masks: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _jitter(rng: np.random.Generator, color: Tuple[int, int, int], amount: float) -> np.ndarray:
    return np.clip(np.asarray(color, np.float32) * rng.uniform(1 - amount, 1 + amount, 3), 0, 255)


def _random_color(rng: np.random.Generator) -> Tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def _stripes(rng: np.random.Generator, size: int, angle: float, period: float) -> np.ndarray:
    """``(size, size)`` bool stripe pattern at ``angle`` (radians) with ``period`` pixels, random phase."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi)
    return np.sin((xs * np.cos(angle) + ys * np.sin(angle)) * (2 * np.pi / period) + phase) > 0


def _spots(rng: np.random.Generator, size: int, density: float, large_fraction: float) -> np.ndarray:
    """``(size, size)`` bool pattern of random discs of radius 1 or 2 px, about ``density`` discs per pixel."""
    pattern = np.zeros((size, size), bool)
    count = rng.poisson(density * size * size)
    centers = rng.integers(0, size, (count, 2))
    large = rng.random(count) < large_fraction
    for radius, chosen in ((1, centers[~large]), (2, centers[large])):
        impulses = np.zeros((size, size), np.uint8)
        impulses[chosen[:, 1], chosen[:, 0]] = 1
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        pattern |= cv2.dilate(impulses, disc).astype(bool)
    return pattern


def _polygon_mask(size: int, points: np.ndarray) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask.astype(bool)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth random colour field, grain and distractors; ``(size, size, 3)`` float32 in [0, 255]."""
    # Muted colours (grey plus a colour cast) at two scales, like out-of-focus scenery with some texture.
    coarse = rng.uniform(60, 190, (4, 4, 1)) + rng.normal(0, 28, (4, 4, 3))
    medium = rng.normal(0, 14, (12, 12, 3))
    image = cv2.resize(coarse.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    image += cv2.resize(medium.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    image += rng.normal(0, 6, (size, size, 3)).astype(np.float32)
    for _ in range(rng.integers(4, 10)):
        kind = rng.integers(0, 5)
        color = _random_color(rng)
        if kind == 0:  # line
            p0, p1 = rng.integers(0, size, (2, 2))
            cv2.line(image, tuple(int(v) for v in p0), tuple(int(v) for v in p1), color, int(rng.integers(1, 3)))
        elif kind == 1:  # ring
            center = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.circle(image, center, int(rng.integers(2, size // 6)), color, 1)
        else:  # filled polygon: plain, striped or spotted
            center = rng.uniform(0, size, 2)
            count = int(rng.integers(3, 7))
            angles = np.sort(rng.uniform(0, 2 * np.pi, count))
            radii = rng.uniform(0.03, 0.14, count) * size
            region = _polygon_mask(size, center + np.stack([np.cos(angles), np.sin(angles)], 1) * radii[:, None])
            image[region] = color
            if kind == 3:
                pattern = _stripes(rng, size, rng.uniform(0, np.pi), rng.uniform(3.5, 7))
            elif kind == 4:
                pattern = _spots(rng, size, 0.06, 0.3)
            else:
                continue
            image[region & pattern] = _random_color(rng)
    return image


def render_sample(rng: np.random.Generator, label: int, image_size: int = 64) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one image of class ``label``.

    Args:
        rng: the random generator; the sample is a deterministic function of its state.
        label: class index in ``[0, 8)`` (see :data:`CLASS_NAMES`).
        image_size: side ``S`` of the square image, at least 32.

    Returns:
        ``(image, mask, part_mask)``: ``(S, S, 3)`` uint8 RGB, ``(S, S)`` bool object mask, ``(S, S)`` bool head
        mask.
    """
    label = check_int("label", label, 0, len(CLASSES) - 1)
    size = check_int("image_size", image_size, 32)
    family, head = CLASSES[label]
    image = _background(rng, size)

    half_length = size * float(np.exp(rng.uniform(*np.log(BODY_SCALE))))
    half_width = half_length * rng.uniform(*BODY_ASPECT)
    head_radius = max(MIN_HEAD_RADIUS, HEAD_RADIUS * half_width)
    axis_angle = rng.uniform(0, 2 * np.pi)
    axis = np.array([np.cos(axis_angle), np.sin(axis_angle)])
    normal = np.array([-axis[1], axis[0]])
    # Keep body and head inside the image: the object spans half_length + 2 * head_radius along the axis.
    reach = half_length + 2 * head_radius + 1
    center = rng.uniform(reach, size - reach, 2) if size > 2 * reach else np.full(2, size / 2)

    theta = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    wobble = 1 + sum(
        rng.uniform(-0.08, 0.08) * np.cos(harmonic * theta + rng.uniform(0, 2 * np.pi)) for harmonic in (2, 3, 5)
    )
    outline = center + wobble[:, None] * (
        np.cos(theta)[:, None] * half_length * axis + np.sin(theta)[:, None] * half_width * normal
    )
    body = _polygon_mask(size, outline)
    head_center = center + axis * (half_length + 0.6 * head_radius)
    part = np.zeros((size, size), np.uint8)
    cv2.circle(part, tuple(int(round(v)) for v in head_center), int(round(head_radius)), 1, -1)
    part = part.astype(bool)

    base, accent = (_jitter(rng, color, 0.12) for color in PALETTES[rng.integers(len(PALETTES))])
    if FAMILIES[family] == "stripes":
        # Roughly across the body axis, like a tiger's stripes.
        pattern = _stripes(rng, size, axis_angle + rng.uniform(-0.35, 0.35), rng.uniform(3.5, 5.5))
    else:
        pattern = _spots(rng, size, 0.07, 0.25)
    image[body] = base
    image[body & pattern] = accent
    image[part] = _jitter(rng, HEADS[head], 0.08)

    image = cv2.GaussianBlur(image, (3, 3), 0.6) + rng.normal(0, 4, (size, size, 3)).astype(np.float32)
    return np.clip(image, 0, 255).round().astype(np.uint8), body | part, part


def _box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.int64)


def make_dataset(num_images: int, seed: int, split: str = "train", image_size: int = 64) -> SyntheticWSOL:
    """Generate a split with the classes balanced (``num_images`` rounded down to a multiple of 8), shuffled.

    Args:
        num_images: number of images, at least 8.
        seed: any non-negative int; the split is a deterministic function of ``(seed, split, image_size)``.
        split: ``"train"``, ``"val"`` (held out: the demo chooses its operating points there) or ``"eval"``; each
            draws from its own random stream, so the three share no image.
        image_size: side of the square images in pixels, at least 32 (the demo uses 64).

    Returns:
        A :class:`SyntheticWSOL`.
    """
    num_images = check_int("num_images", num_images, len(CLASSES))
    seed = check_int("seed", seed, 0)
    image_size = check_int("image_size", image_size, 32)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    per_class = num_images // len(CLASSES)
    labels = np.random.default_rng([seed, SPLITS[split], 0]).permutation(np.repeat(np.arange(len(CLASSES)), per_class))
    images = np.empty((len(labels), image_size, image_size, 3), np.uint8)
    masks = np.empty((len(labels), image_size, image_size), bool)
    part_masks = np.empty_like(masks)
    for index, label in enumerate(labels):
        rng = np.random.default_rng([seed, SPLITS[split], 1, index])
        images[index], masks[index], part_masks[index] = render_sample(rng, int(label), image_size)
    boxes = np.stack([_box(mask) for mask in masks])
    return SyntheticWSOL(images, masks, part_masks, boxes, labels.astype(np.int64))
