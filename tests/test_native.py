"""The compiled kernels (``camfix.metrics._kernels``): built, checked at the boundary, and replaced with one warning.

The kernels' numbers are tested through the metrics (test_metrics_*.py run with and without them); here: the
histogram and confusion kernels against NumPy written from their definitions on the awkward values, the argument
checks of the module, and what a process without the extension sees.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from camfix.metrics import _native, cam_thresholds, mean_iou, pxap

kernels = _native.load()
needs_kernels = pytest.mark.skipif(kernels is None, reason="the compiled kernels are not built")


def run_python(code: str, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **environment}
    )


@pytest.mark.skipif(
    os.environ.get("CAMFIX_NO_NATIVE", "") not in ("", "0"), reason="CAMFIX_NO_NATIVE selects the pure paths"
)
def test_the_extension_is_built_by_the_install() -> None:
    # pip install . and pip install -e . (what dev.py runs) compile it; a missing one means the build failed.
    assert kernels is not None, "camfix.metrics._kernels is missing: reinstall camfix with a C compiler"
    assert kernels.MAX_LEVELS == _native.MAX_LEVELS


def level_definition(values: np.ndarray, edges: np.ndarray, strict: bool) -> np.ndarray:
    """#{edge < value} or #{edge <= value}, one value at a time."""
    return np.array([sum((e < v) if strict else (e <= v) for e in edges) for v in values.ravel()])


@needs_kernels
@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize(
    "edges",
    [
        cam_thresholds(0.01),
        np.append(cam_thresholds(0.001), 1.0),
        np.array([0.0, 0.0, 0.5, 0.5, 1.0, 1.0]),  # repeated edges: all of them count at once
        np.array([1e-9, 2e-9, 3e-9, 0.999999999]),  # many edges in one cell of the kernel's table
        np.array([1.0]),
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_level_histograms_equal_the_definition(strict, edges, dtype) -> None:
    rng = np.random.default_rng(0)
    on = np.append(edges, [0.0, 1.0])
    values = np.concatenate([on, np.nextafter(on, -1), np.nextafter(on, 2), rng.random(200)])
    values = np.clip(values, 0, 1).astype(dtype)
    values = np.resize(values, 3 * 10 * 11).reshape(3, 10, 11)
    masks = rng.random(values.shape) < 0.5
    ignore = rng.random(values.shape) < 0.3
    levels = level_definition(values.astype(np.float64), edges, strict).reshape(values.shape)
    bins = len(edges) + 1
    for per_image in (False, True):
        for skip in (None, ignore):
            fg, bg = _native.level_histograms(kernels, values, masks, skip, edges, strict, per_image)
            counted = ~masks if skip is None else ~masks & ~skip
            expected_fg = np.stack([np.bincount(levels[i][masks[i]], minlength=bins) for i in range(3)])
            expected_bg = np.stack([np.bincount(levels[i][counted[i]], minlength=bins) for i in range(3)])
            if not per_image:
                expected_fg, expected_bg = expected_fg.sum(0, keepdims=True), expected_bg.sum(0, keepdims=True)
            np.testing.assert_array_equal(fg, expected_fg)
            np.testing.assert_array_equal(bg, expected_bg)


@needs_kernels
@pytest.mark.parametrize("bad", [np.nan, -1e-300, 1.0000000000000002, np.inf, -np.inf])
def test_level_histograms_reject_values_outside_zero_one(bad) -> None:
    values = np.full((2, 3, 3), 0.5)
    values[1, 2, 2] = bad
    masks = np.ones(values.shape, dtype=bool)
    with pytest.raises(_native.MapValueError):
        _native.level_histograms(kernels, values, masks, None, cam_thresholds(0.1), True, False)


@needs_kernels
@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64]
)
def test_confusion_equals_the_definition_for_every_integer_type(dtype) -> None:
    rng = np.random.default_rng(1)
    preds = rng.integers(0, 5, (2, 7, 6)).astype(dtype)
    targets = rng.integers(0, 5, (2, 7, 6)).astype(dtype)
    targets[0, 0, :3] = 100  # ignore_index
    expected = np.zeros((5, 5), dtype=np.int64)
    for t, p in zip(targets.ravel(), preds.ravel()):
        if t != 100:
            expected[t, p] += 1
    np.testing.assert_array_equal(_native.confusion(kernels, preds, targets, 5, 100), expected)
    with pytest.raises(_native.LabelValueError):  # without ignore_index, 100 is a label outside the classes
        _native.confusion(kernels, preds, targets, 5, None)


@needs_kernels
def test_confusion_rejects_labels_outside_the_classes() -> None:
    labels = np.zeros((1, 2, 2), dtype=np.int64)
    for preds, targets in ((labels - 1, labels), (labels + 3, labels), (labels, labels - 1), (labels, labels + 3)):
        with pytest.raises(_native.LabelValueError):
            _native.confusion(kernels, preds, targets, 3, 255)
    assert _native.confusion(kernels, labels, labels + 255, 3, 255).sum() == 0


@needs_kernels
def test_the_module_checks_its_arguments_instead_of_reading_out_of_bounds() -> None:
    maps = np.zeros((2, 4, 4))
    masks = np.zeros((2, 4, 4), dtype=bool)
    edges = cam_thresholds(0.1)
    out = np.zeros((1, 11), dtype=np.int64)
    with pytest.raises(ValueError, match="masks must have the shape of the maps"):
        kernels.level_histograms(maps, masks[:, :3].copy(), None, edges, True, out, out.copy())
    with pytest.raises(TypeError, match="maps has elements of format"):
        kernels.level_histograms(maps.astype(np.int64), masks, None, edges, True, out, out.copy())
    with pytest.raises(TypeError, match="masks has elements"):
        kernels.level_histograms(maps, masks.astype(np.int32), None, edges, True, out, out.copy())
    with pytest.raises(ValueError, match="contiguous"):
        kernels.level_histograms(maps[:, ::2], masks[:, ::2], None, edges, True, out, out.copy())
    with pytest.raises(ValueError, match="histograms"):
        kernels.level_histograms(maps, masks, None, edges, True, out[:, :5], out.copy())
    for bad_edges in (np.array([0.5, 0.2]), np.array([-0.1, 0.5]), np.array([0.5, np.nan])):
        with pytest.raises(ValueError, match=r"edges must be non-decreasing values in \[0, 1\]"):
            kernels.level_histograms(maps, masks, None, bad_edges, True, out[:, :3].copy(), out[:, :3].copy())
    with pytest.raises(ValueError, match="read-only"):
        frozen = out.copy()
        frozen.flags.writeable = False
        kernels.level_histograms(maps, masks, None, edges, True, frozen, out.copy())
    boxes = np.zeros((1, 4), dtype=np.int64)
    results = (np.zeros((2, 11)), np.zeros((2, 11)), np.zeros((2, 11), dtype=bool))
    with pytest.raises(ValueError, match="box_start"):  # the second map would read a box that is not there
        kernels.box_ious(maps, edges, boxes, np.array([0, 1, 2]), True, True, True, *results)
    with pytest.raises(ValueError, match="confusion must be"):
        kernels.confusion(masks.astype(np.uint8), masks.astype(np.uint8), 3, None, np.zeros((2, 2), np.int64))
    with pytest.raises(TypeError, match="preds must hold integers"):
        kernels.confusion(maps, maps, 3, None, np.zeros((3, 3), np.int64))


# ---------------------------------------------------------------------------------------------------------------
# Without the extension

WITHOUT_KERNELS = (
    "import sys, warnings; sys.modules['camfix.metrics._kernels'] = None; "  # as if it had not been built
    "warnings.simplefilter('always'); "
    "import torch, camfix.metrics as M; g = torch.Generator().manual_seed(0); "
    "maps = torch.rand(3, 9, 9, generator=g, dtype=torch.float64); masks = maps > 0.5; "
    "labels = (maps * 4).long(); "
    "values = [M.pxap(maps, masks).pxap, M.pxap(maps, masks, mode='continuous').pxap, "
    "M.peak_iou(maps, masks).peak, M.mean_iou(labels, labels.flip(0), 4).miou]; "
    "c = M.box_iou_curves(maps, torch.tensor([[1, 1, 6, 6], [0, 2, 8, 5], [3, 0, 8, 4]])); "
    "values += [c.single.sum().item(), c.multi.sum().item()]; "
    "print(M._native.load() is None, *values)"
)


def expected_values() -> list:
    generator = torch.Generator().manual_seed(0)
    maps = torch.rand(3, 9, 9, generator=generator, dtype=torch.float64)
    masks, labels = maps > 0.5, (maps * 4).long()
    from camfix.metrics import box_iou_curves, peak_iou

    curves = box_iou_curves(maps, torch.tensor([[1, 1, 6, 6], [0, 2, 8, 5], [3, 0, 8, 4]]))
    return [
        pxap(maps, masks).pxap,
        pxap(maps, masks, mode="continuous").pxap,
        peak_iou(maps, masks).peak,
        mean_iou(labels, labels.flip(0), 4).miou,
        curves.single.sum().item(),
        curves.multi.sum().item(),
    ]


def test_without_the_extension_one_warning_then_the_same_numbers() -> None:
    run = run_python(WITHOUT_KERNELS)
    assert run.returncode == 0, run.stderr
    assert run.stderr.count(_native.FALLBACK_WARNING) == 1, run.stderr  # five metric calls, one warning
    assert "RuntimeWarning" in run.stderr and "pip install" in run.stderr
    unavailable, *values = run.stdout.split()
    assert unavailable == "True"
    assert [float(v) for v in values] == expected_values()


def test_camfix_no_native_selects_the_pure_paths_silently() -> None:
    run = run_python(
        "import warnings; warnings.simplefilter('always'); import torch, camfix.metrics as M; "
        "M.pxap(torch.rand(1, 4, 4), torch.ones(1, 4, 4, dtype=torch.bool)); print(M._native.load() is None)",
        CAMFIX_NO_NATIVE="1",
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True"]
    assert _native.FALLBACK_WARNING not in run.stderr
