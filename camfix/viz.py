"""Pictures of localization results: maps overlaid on images, predicted and ground-truth boxes, grids, PNG files.

Everything works on numpy arrays and torch tensors alike, uint8 or floating point images, and returns plain
``(H, W, 3)`` uint8 RGB numpy arrays. Only OpenCV and numpy are used, so no GUI or matplotlib backend is needed
(a headless server or a CI job can write the pictures).

Conventions:

- An image is RGB: a numpy array ``(H, W, 3)`` or a tensor ``(3, H, W)`` (the layouts of OpenCV/PIL and of a
  torch model's input), or grayscale ``(H, W)`` (numpy or tensor) or ``(1, H, W)`` (tensor), repeated to three
  channels. uint8 in ``[0, 255]`` or floating point in ``[0, 1]`` (un-normalised: a model's input goes through
  :func:`camfix.denormalize_images` first).
- A saliency map is ``(H, W)`` floating point in ``[0, 1]``, e.g. a row of ``camfix.localize(...).maps``.
- Boxes are camfix's inclusive ``(x0, y0, x1, y1)`` integer pixel indices (:mod:`camfix.boxes`); the sentinel
  :data:`~camfix.boxes.NO_BOX` ``(-1, -1, -1, -1)`` (no box) is skipped.
- Predicted boxes are drawn green (:data:`PREDICTED_COLOR`), ground-truth boxes red
  (:data:`GROUND_TRUTH_COLOR`), as in the WSOL papers' figures.

Example:
    >>> import torch
    >>> from camfix.viz import draw_localization, image_grid
    >>> image = torch.rand(3, 32, 48)                      # float RGB in [0, 1]
    >>> saliency = torch.rand(32, 48)                      # a map in [0, 1]
    >>> tile = draw_localization(image, saliency, predicted=[4, 2, 30, 20], ground_truth=[6, 3, 28, 25])
    >>> tile.shape, tile.dtype.name
    ((32, 48, 3), 'uint8')
    >>> image_grid([tile, tile, tile], columns=2).shape     # 2 x 2 tiles, 2-pixel white padding
    (70, 102, 3)
"""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from torch import Tensor

from ._validation import check_finite, check_in_range, check_int, check_number, describe
from .boxes import NO_BOX, BoxesLike, check_boxes
from .cli_support import atomic_write, check_output_path

__all__ = [
    "COLORMAPS",
    "GROUND_TRUTH_COLOR",
    "PREDICTED_COLOR",
    "colorize",
    "draw_boxes",
    "draw_localization",
    "image_grid",
    "overlay",
    "save_image",
    "to_rgb_uint8",
]

ImageLike = Union[np.ndarray, Tensor]
Color = Tuple[int, int, int]

#: Colour of predicted boxes (RGB green).
PREDICTED_COLOR: Color = (0, 255, 0)
#: Colour of ground-truth boxes (RGB red).
GROUND_TRUTH_COLOR: Color = (255, 0, 0)
# OpenCV's default limit on the pixels of an image file (CV_IO_MAX_IMAGE_PIXELS): a larger grid could not be saved.
MAX_GRID_PIXELS = 2**30


def _opencv_colormaps() -> Dict[str, int]:
    prefix = "COLORMAP_"
    return {name[len(prefix) :].lower(): int(getattr(cv2, name)) for name in dir(cv2) if name.startswith(prefix)}


#: OpenCV's colormaps by lower-case name (``"jet"``, ``"viridis"``, ``"inferno"``, ``"turbo"``, ...).
COLORMAPS: Dict[str, int] = _opencv_colormaps()


def to_rgb_uint8(image: ImageLike, name: str = "image") -> np.ndarray:
    """An image as a contiguous uint8 RGB numpy array ``(H, W, 3)``.

    Args:
        image: numpy ``(H, W, 3)`` or ``(H, W)``, or tensor ``(3, H, W)``, ``(1, H, W)`` or ``(H, W)`` (any
            device); uint8 in ``[0, 255]``, or floating point (any float dtype) in ``[0, 1]``, finite. Grayscale
            is repeated to three channels.
        name: the argument name used in error messages.

    Returns:
        ``(H, W, 3)`` uint8; a float value ``v`` becomes ``round(255 * v)`` (halves to even).

    Raises:
        TypeError: not an array or tensor, or neither uint8 nor floating point.
        ValueError: another shape, or a float image with values outside ``[0, 1]`` or not finite.
    """
    if isinstance(image, Tensor):
        if image.dim() == 3 and image.shape[0] in (1, 3):
            image = image.permute(1, 2, 0)
        elif image.dim() != 2:
            raise ValueError(f"{name} must be a tensor of shape (3, H, W), (1, H, W) or (H, W), got {describe(image)}")
        image = image.detach().cpu()
        # numpy has no bfloat16; any float becomes float32, which represents every value of [0, 1] closely enough.
        image = (image.float() if image.is_floating_point() else image).numpy()
    elif not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array (H, W, 3) or a torch tensor (3, H, W), got {describe(image)}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(
            f"{name} must be RGB, numpy (H, W, 3) or tensor (3, H, W), or grayscale, got {describe(image)}"
        )
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"{name} must be uint8 in [0, 255] or floating point in [0, 1], got dtype {image.dtype}")
    image = _torch_float(image)
    check_finite(name, torch.from_numpy(np.ascontiguousarray(image)))
    if image.min() < 0 or image.max() > 1:
        raise ValueError(
            f"{name}: a floating point image must have values in [0, 1] (undo the model's normalisation first), "
            f"got values in [{image.min():g}, {image.max():g}]"
        )
    return np.ascontiguousarray(np.round(image.astype(np.float64) * 255).astype(np.uint8))


def _torch_float(array: np.ndarray) -> np.ndarray:
    """A floating point array in a dtype torch can wrap: long double (which torch lacks) becomes float64, exact
    enough for values in ``[0, 1]``."""
    return array if array.dtype in (np.float16, np.float32, np.float64) else array.astype(np.float64)


def _colormap_code(colormap: Union[str, int]) -> int:
    if isinstance(colormap, str) and colormap.lower() in COLORMAPS:
        return COLORMAPS[colormap.lower()]
    if (
        isinstance(colormap, numbers.Integral)
        and not isinstance(colormap, (bool, np.bool_))
        and int(colormap) in COLORMAPS.values()
    ):
        return int(colormap)
    raise ValueError(f"colormap must be one of {sorted(COLORMAPS)} or an OpenCV COLORMAP_* code, got {colormap!r}")


def _saliency_levels(saliency: ImageLike, shape: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """A ``(H, W)`` map in ``[0, 1]`` as uint8 levels ``round(255 * s)``, after checking it."""
    if not isinstance(saliency, (Tensor, np.ndarray)):
        raise TypeError(f"saliency must be a tensor or numpy array (H, W), got {describe(saliency)}")
    if isinstance(saliency, np.ndarray):
        if not np.issubdtype(saliency.dtype, np.floating):
            raise TypeError(f"saliency must be floating point in [0, 1], got dtype {saliency.dtype}")
        saliency = _torch_float(saliency)
    heat = torch.as_tensor(saliency).detach().cpu()
    if heat.dim() != 2 or heat.numel() == 0:
        raise ValueError(f"saliency must have shape (H, W), got {describe(saliency)}")
    if not heat.is_floating_point():
        raise TypeError(f"saliency must be floating point in [0, 1], got dtype {heat.dtype}")
    if shape is not None and tuple(heat.shape) != shape:
        raise ValueError(
            f"saliency must have the image's size (H, W) = {shape}, got {tuple(heat.shape)}; resize it first "
            "(camfix.resize_maps)"
        )
    heat = heat.double()
    check_finite("saliency", heat)
    check_in_range("saliency", heat, 0.0, 1.0)
    return np.round(heat.numpy() * 255).astype(np.uint8)


def colorize(saliency: ImageLike, colormap: Union[str, int] = "jet") -> np.ndarray:
    """A saliency map in colour: each value ``s`` becomes the colormap's colour at level ``round(255 * s)``.

    Args:
        saliency: ``(H, W)`` floating point map in ``[0, 1]``, tensor or numpy.
        colormap: a name of :data:`COLORMAPS` (default ``"jet"``, the CAM papers' choice) or an OpenCV
            ``cv2.COLORMAP_*`` code.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    return _colored(_saliency_levels(saliency), _colormap_code(colormap))


def _colored(levels: np.ndarray, code: int) -> np.ndarray:
    """uint8 levels ``(H, W)`` through the OpenCV colormap ``code``: ``(H, W, 3)`` uint8 RGB."""
    return cv2.cvtColor(cv2.applyColorMap(levels, code), cv2.COLOR_BGR2RGB)


def overlay(
    image: ImageLike, saliency: ImageLike, alpha: float = 0.5, colormap: Union[str, int] = "jet"
) -> np.ndarray:
    """Blend a colour-mapped saliency map over an image: ``round(alpha * colorize(map) + (1 - alpha) * image)``.

    Args:
        image: RGB or grayscale image, uint8 or float in ``[0, 1]``, see :func:`to_rgb_uint8`.
        saliency: ``(H, W)`` floating point map in ``[0, 1]`` of the image's size (tensor or numpy).
        alpha: weight of the map in ``[0, 1]``; 0 returns the image, 1 the coloured map. Default 0.5.
        colormap: a name of :data:`COLORMAPS` or an OpenCV ``cv2.COLORMAP_*`` code; default ``"jet"``.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    rgb = to_rgb_uint8(image)
    levels = _saliency_levels(saliency, rgb.shape[:2])
    return _blend(rgb, levels, check_number("alpha", alpha, 0.0, 1.0), _colormap_code(colormap))


def _blend(rgb: np.ndarray, levels: np.ndarray, alpha: float, code: int) -> np.ndarray:
    """:func:`overlay` of a checked uint8 RGB image ``(H, W, 3)`` and uint8 levels ``(H, W)``."""
    blended = alpha * _colored(levels, code).astype(np.float64) + (1.0 - alpha) * rgb.astype(np.float64)
    return np.rint(blended).astype(np.uint8)


def _check_color(name: str, color: object) -> Color:
    if (
        not isinstance(color, (tuple, list))
        or len(color) != 3
        or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c <= 255 for c in color)
    ):
        raise ValueError(f"{name} must be an (R, G, B) triple of ints in [0, 255], got {color!r}")
    return (int(color[0]), int(color[1]), int(color[2]))


def draw_boxes(
    image: ImageLike, boxes: BoxesLike, color: Color = PREDICTED_COLOR, thickness: int = 2
) -> np.ndarray:
    """Draw box outlines on a copy of an image.

    The outline covers the box's own border pixels (and grows inward with ``thickness``): a pixel of the box is
    coloured when it lies within ``thickness`` of the box's first or last column or row, nothing outside the box.

    Args:
        image: RGB or grayscale image, see :func:`to_rgb_uint8`; not modified.
        boxes: one box ``(4,)`` or ``(M, 4)`` integer ``(x0, y0, x1, y1)``, inclusive, ``0 <= x0 <= x1`` and
            ``0 <= y0 <= y1`` (tensor, numpy or nested lists); :data:`~camfix.boxes.NO_BOX` rows are skipped.
            A box may reach beyond the image (any int64 coordinates): only the part of its outline inside the
            image is drawn.
        color: ``(R, G, B)`` ints in ``[0, 255]``; default :data:`PREDICTED_COLOR` (green).
        thickness: outline width in pixels, at least 1; default 2.

    Returns:
        A new ``(H, W, 3)`` uint8 RGB array.
    """
    canvas = to_rgb_uint8(image).copy()
    box_array = _check_drawn_boxes("boxes", boxes)
    _outline(canvas, box_array, _check_color("color", color), check_int("thickness", thickness, 1))
    return canvas


def _check_drawn_boxes(name: str, boxes: BoxesLike) -> np.ndarray:
    """Boxes as :func:`draw_boxes` takes them, checked: ``(M, 4)`` int64, :data:`~camfix.boxes.NO_BOX` rows kept."""
    return check_boxes(name, boxes, kinds=(Tensor, np.ndarray, list), allow_no_box=True, allow_one_box=True)


def _outline(canvas: np.ndarray, boxes: np.ndarray, color: Color, thickness: int) -> None:
    """Draw the outlines of checked int64 ``boxes`` ``(M, 4)`` on the uint8 RGB ``canvas`` ``(H, W, 3)``, in place."""
    height, width = canvas.shape[:2]
    for x0, y0, x1, y1 in boxes.tolist():  # Python ints: x1 - thickness cannot overflow
        if (x0, y0, x1, y1) == NO_BOX:
            continue
        # Four bands of the outline, each clipped to the image by slicing; OpenCV's rectangle would centre thick
        # lines on the path (spilling outside the box) and cannot take coordinates beyond int32.
        bands = (
            (y0, min(y1, y0 + thickness - 1), x0, x1),  # top rows
            (max(y0, y1 - thickness + 1), y1, x0, x1),  # bottom rows
            (y0, y1, x0, min(x1, x0 + thickness - 1)),  # left columns
            (y0, y1, max(x0, x1 - thickness + 1), x1),  # right columns
        )
        for top, bottom, left, right in bands:
            top, left = min(top, height), min(left, width)  # start beyond the image: an empty slice
            canvas[top : min(bottom, height - 1) + 1, left : min(right, width - 1) + 1] = color


def draw_localization(
    image: ImageLike,
    saliency: Optional[ImageLike] = None,
    predicted: Optional[BoxesLike] = None,
    ground_truth: Optional[BoxesLike] = None,
    alpha: float = 0.5,
    colormap: Union[str, int] = "jet",
    thickness: int = 1,
) -> np.ndarray:
    """One picture of a localization: the map overlaid, ground-truth boxes in red, predicted boxes in green.

    Args:
        image: RGB or grayscale image, see :func:`to_rgb_uint8`.
        saliency: ``(H, W)`` floating point map in ``[0, 1]`` of the image's size, or ``None`` for no overlay.
        predicted: predicted boxes ``(4,)`` or ``(M, 4)``, inclusive ints, drawn in :data:`PREDICTED_COLOR`
            (on top); ``None`` for none.
        ground_truth: ground-truth boxes, same format, drawn in :data:`GROUND_TRUTH_COLOR`; ``None`` for none.
        alpha: weight of the map in ``[0, 1]`` (see :func:`overlay`); default 0.5.
        colormap: colormap name or OpenCV code (see :func:`colorize`); default ``"jet"``.
        thickness: box outline width in pixels; default 1.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    # Every argument is checked, once, even where it is unused (no saliency, no boxes), so that a bad one never
    # passes silently in one call and fails in the next.
    alpha = check_number("alpha", alpha, 0.0, 1.0)
    code = _colormap_code(colormap)
    thickness = check_int("thickness", thickness, 1)
    rgb = to_rgb_uint8(image)
    levels = None if saliency is None else _saliency_levels(saliency, rgb.shape[:2])
    truth = None if ground_truth is None else _check_drawn_boxes("ground_truth", ground_truth)
    boxes = None if predicted is None else _check_drawn_boxes("predicted", predicted)
    picture = rgb.copy() if levels is None else _blend(rgb, levels, alpha, code)
    if truth is not None:
        _outline(picture, truth, GROUND_TRUTH_COLOR, thickness)
    if boxes is not None:
        _outline(picture, boxes, PREDICTED_COLOR, thickness)
    return picture


def image_grid(
    images: Union[Sequence[ImageLike], ImageLike],
    columns: Optional[int] = None,
    padding: int = 2,
    background: Color = (255, 255, 255),
) -> np.ndarray:
    """Tile equally sized images row by row, like ``torchvision.utils.make_grid`` but RGB uint8 out.

    Args:
        images: a sequence of images (each as :func:`to_rgb_uint8` accepts them, mixed kinds allowed), or a
            batch: tensor ``(N, 3, H, W)`` or numpy ``(N, H, W, 3)``. All of the same ``(H, W)``.
        columns: tiles per row, at least 1; default ``None`` puts every image in one row.
        padding: pixels between tiles and around the grid, at least 0; default 2.
        background: ``(R, G, B)`` colour of the padding and of empty cells; default white.

    The grid may have at most ``2**30`` pixels, what OpenCV writes to an image file.

    Returns:
        ``(rows * H + (rows + 1) * padding, columns * W + (columns + 1) * padding, 3)`` uint8 RGB, with
        ``rows = ceil(N / columns)``.
    """
    if isinstance(images, (Tensor, np.ndarray)) and images.ndim == 4:
        images = list(images)
    if not isinstance(images, (list, tuple)):
        raise TypeError(f"images must be a sequence of images or a 4-D batch, got {describe(images)}")
    if not images:
        raise ValueError("images must not be empty")
    tiles = [to_rgb_uint8(image, f"images[{index}]") for index, image in enumerate(images)]
    height, width = tiles[0].shape[:2]
    for index, tile in enumerate(tiles):
        if tile.shape[:2] != (height, width):
            raise ValueError(
                f"images must all have the same size: images[0] is {(height, width)}, images[{index}] is "
                f"{tile.shape[:2]}"
            )
    columns = len(tiles) if columns is None else check_int("columns", columns, 1)
    padding = check_int("padding", padding, 0)
    background = _check_color("background", background)
    rows = -(-len(tiles) // columns)
    grid_height = rows * height + (rows + 1) * padding
    grid_width = columns * width + (columns + 1) * padding
    if grid_height * grid_width > MAX_GRID_PIXELS:
        raise ValueError(
            f"the grid would be {grid_height} x {grid_width} pixels, more than the {MAX_GRID_PIXELS} that OpenCV "
            f"writes to a file; lower columns ({columns}) or padding ({padding})"
        )
    grid = np.empty((grid_height, grid_width, 3), np.uint8)
    grid[...] = background
    for index, tile in enumerate(tiles):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        grid[top : top + height, left : left + width] = tile
    return grid


def save_image(path: Union[str, Path], image: ImageLike) -> Path:
    """Write an image to a file, PNG or another format OpenCV knows by the suffix; parent folders are created.

    Everything is checked before anything is created, and the file is written atomically (a temporary file
    renamed over ``path``): a failure leaves no new folder, no partial file, and an existing file unchanged.

    Args:
        path: the file to write; its suffix chooses the format (``.png``, ``.jpg``, ...).
        image: RGB or grayscale image, see :func:`to_rgb_uint8`.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        TypeError: ``path`` is not a ``str`` or ``os.PathLike``, or ``image`` is not an image (see
            :func:`to_rgb_uint8`).
        ValueError: OpenCV has no writer for the suffix, or ``image`` has a bad shape or values.
        OSError: the file cannot be written there (an existing folder, a file where a folder should be, no write
            permission, a full disk).
    """
    path = check_output_path("path", path)
    if not cv2.haveImageWriter(str(path)):
        raise ValueError(f"path must end with an image suffix OpenCV can write (.png, .jpg, ...), got {path.name!r}")
    rgb = to_rgb_uint8(image)
    encoded, data = cv2.imencode(path.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not encoded:
        raise OSError(f"OpenCV could not encode the image as {path.suffix} for {path}")
    with atomic_write(path) as stream:
        stream.write(data.tobytes())
    return path
