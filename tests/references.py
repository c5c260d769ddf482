"""Slow, independent references shared by several test files, written from the definitions."""

from __future__ import annotations

from collections import deque
from typing import Iterable, List, Sequence, Tuple

import numpy as np
import torch

Box = Tuple[int, int, int, int]


def reference_components(mask: np.ndarray) -> List[List[Tuple[int, int]]]:
    """8-connected components of a 2-D bool mask by breadth-first flood fill, as lists of (y, x) pixels.

    Components are listed in raster order of their first pixel (the scan starts a fill at every unvisited
    foreground pixel, row by row).
    """
    height, width = mask.shape
    seen = [[False] * width for _ in range(height)]
    components = []
    for y0 in range(height):
        for x0 in range(width):
            if not mask[y0, x0] or seen[y0][x0]:
                continue
            seen[y0][x0] = True
            queue = deque([(y0, x0)])
            pixels = []
            while queue:
                y, x = queue.popleft()
                pixels.append((y, x))
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        ny, nx = y + dy, x + dx
                        if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and not seen[ny][nx]:
                            seen[ny][nx] = True
                            queue.append((ny, nx))
            components.append(pixels)
    return components


def component_box(pixels: List[Tuple[int, int]]) -> Box:
    """Inclusive (x0, y0, x1, y1) box of a component's (y, x) pixels."""
    ys = [y for y, _ in pixels]
    xs = [x for _, x in pixels]
    return (min(xs), min(ys), max(xs), max(ys))


def constant_tolerance(dtype: torch.dtype) -> float:
    """The documented relative tolerance of a constant map: max(4 eps(dtype), 128 eps(float32))."""
    return max(4 * torch.finfo(dtype).eps, 128 * torch.finfo(torch.float32).eps)


def reference_is_constant(values: Iterable[float], dtype: torch.dtype) -> bool:
    """camfix's rule for a map that is constant up to float noise, from its documented definition in float64:
    max - min <= constant_tolerance(dtype) * max(|min|, |max|)."""
    ordered = sorted(float(v) for v in values)
    low, high = ordered[0], ordered[-1]
    return high - low <= constant_tolerance(dtype) * max(abs(low), abs(high))


def reference_outlines(
    image: np.ndarray, boxes: Sequence[Sequence[int]], colour: Tuple[int, int, int], thickness: int
) -> np.ndarray:
    """The documented outline of ``draw_boxes``: a pixel of the box within ``thickness`` of its border, the image's
    pixels only; ``NO_BOX`` draws nothing."""
    out = image.copy()
    height, width = image.shape[:2]
    for x0, y0, x1, y1 in boxes:
        if (x0, y0, x1, y1) == (-1, -1, -1, -1):
            continue
        for y in range(height):
            for x in range(width):
                inside = x0 <= x <= x1 and y0 <= y <= y1
                if inside and min(x - x0, x1 - x, y - y0, y1 - y) < thickness:
                    out[y, x] = colour
    return out


def reference_box(mask: np.ndarray) -> Box:
    """Box of the component with the most pixels; on a tie, the first in raster order of its first pixel."""
    components = reference_components(mask)
    if not components:
        return (-1, -1, -1, -1)  # camfix.NO_BOX
    return component_box(max(components, key=len))  # max() keeps the first of equal keys


def largest_component_boxes(mask: np.ndarray) -> List[Box]:
    """Boxes of every component tied for the most pixels."""
    components = reference_components(mask)
    most = max((len(c) for c in components), default=0)
    return [component_box(c) for c in components if len(c) == most]
