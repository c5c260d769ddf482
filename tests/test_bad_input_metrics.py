"""Bad input to camfix.metrics: each promise of docs/errors.md, one class of failure at a time.

- ``merge()`` refuses an accumulator built with other settings, naming the setting, and changes nothing.
- ``load_mask``, ``read_metadata`` and ``cam_thresholds`` check their arguments under their own names
  (no terabyte allocation, no nameless decoding error); ``resize_boxes``: test_boxes.py.
- ``BoxAccuracy.update`` checks the classes before its sweep, the expensive part.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Dict, Tuple

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from camfix import metrics
from camfix.metrics import (
    MIN_INTERVAL,
    BoxAccuracy,
    MeanIoU,
    PeakIoU,
    PxAP,
    cam_thresholds,
    load_mask,
    read_metadata,
)
from camfix.metrics import localization

# ------------------------------------------------------------------------------------------------------ merge()

THRESHOLDS = cam_thresholds(0.1)
SHIFTED = THRESHOLDS.copy()
SHIFTED[3] += 0.01  # same count, one other value

#: name -> (a factory of the accumulator, a factory of one with one setting changed, the setting's name)
MISMATCHES: Dict[str, Tuple[Callable[[], object], Callable[[], object], str]] = {
    "box mode": (lambda: BoxAccuracy(THRESHOLDS), lambda: BoxAccuracy(THRESHOLDS, mode="continuous"), "mode"),
    "box iou thresholds": (
        lambda: BoxAccuracy(THRESHOLDS),
        lambda: BoxAccuracy(THRESHOLDS, iou_thresholds=(40, 50, 60)),
        "iou_thresholds",
    ),
    "box iou threshold count": (
        lambda: BoxAccuracy(THRESHOLDS),
        lambda: BoxAccuracy(THRESHOLDS, iou_thresholds=(50,)),
        "iou_thresholds",
    ),
    "box threshold values": (lambda: BoxAccuracy(THRESHOLDS), lambda: BoxAccuracy(SHIFTED), "thresholds"),
    "box threshold count": (lambda: BoxAccuracy(THRESHOLDS), lambda: BoxAccuracy(cam_thresholds(0.2)), "thresholds"),
    "box multi_contour": (
        lambda: BoxAccuracy(THRESHOLDS),
        lambda: BoxAccuracy(THRESHOLDS, multi_contour=False),
        "multi_contour",
    ),
    "pxap mode": (lambda: PxAP(THRESHOLDS), lambda: PxAP(THRESHOLDS, mode="continuous"), "mode"),
    "pxap threshold values": (lambda: PxAP(THRESHOLDS), lambda: PxAP(SHIFTED), "thresholds"),
    "peak reduction": (lambda: PeakIoU(), lambda: PeakIoU(reduction="image"), "reduction"),
    "peak reduction reversed": (lambda: PeakIoU(reduction="image"), lambda: PeakIoU(), "reduction"),
    "peak thresholds": (lambda: PeakIoU(), lambda: PeakIoU(THRESHOLDS), "thresholds"),
    "miou classes": (lambda: MeanIoU(3), lambda: MeanIoU(4), "num_classes"),
    "miou ignore index": (lambda: MeanIoU(3), lambda: MeanIoU(3, ignore_index=None), "ignore_index"),
}


def _state(metric: object) -> Dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in metric._states().items()}  # type: ignore[attr-defined]


@pytest.mark.parametrize("case", sorted(MISMATCHES))
def test_merge_refuses_other_settings_naming_them(case: str) -> None:
    make, make_other, setting = MISMATCHES[case]
    metric, other = make(), make_other()
    before = _state(metric)
    with pytest.raises(ValueError, match=f"other has another {setting} than this"):
        metric.merge(other)  # type: ignore[attr-defined]
    assert all(torch.equal(before[name], value) for name, value in _state(metric).items())  # nothing added


def test_merge_of_equal_settings_still_adds() -> None:
    maps = torch.zeros(1, 8, 8)
    maps[0, 2:6, 2:6] = 1.0
    first, second = BoxAccuracy(THRESHOLDS), BoxAccuracy(THRESHOLDS.copy())
    first.update(maps, torch.tensor([[2, 2, 5, 5]]))
    second.update(maps, torch.tensor([[0, 0, 1, 1]]))
    assert first.merge(second).compute().num_images == 2


@pytest.mark.parametrize("other", [None, 3, "BoxAccuracy", PxAP()])
def test_merge_refuses_other_kinds(other: object) -> None:
    with pytest.raises(TypeError, match="other must be a BoxAccuracy"):
        BoxAccuracy().merge(other)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- constructors

BAD_CONSTRUCTIONS: Dict[str, Tuple[Callable[[], object], type, str]] = {
    "multi_contour 'no'": (lambda: BoxAccuracy(multi_contour="no"), TypeError, "multi_contour must be a bool"),
    "multi_contour 0": (lambda: BoxAccuracy(multi_contour=0), TypeError, "multi_contour must be a bool"),
    "mode array": (lambda: BoxAccuracy(mode=np.array(["reference"])), ValueError, "mode must be one of"),
    "mode None": (lambda: PxAP(mode=None), ValueError, "mode must be one of"),
    "reduction list": (lambda: PeakIoU(reduction=["dataset"]), ValueError, "reduction must be one of"),
    "num_classes 10**9": (lambda: MeanIoU(10**9), ValueError, "num_classes must be an int [1, 4096]"),
    "num_classes 0": (lambda: MeanIoU(0), ValueError, "num_classes must be an int [1, 4096]"),
    "num_classes float": (lambda: MeanIoU(3.0), TypeError, "num_classes must be an int"),
    "iou thresholds without 50": (lambda: BoxAccuracy(iou_thresholds=(30, 70)), ValueError, "must contain 50"),
    "workers 0": (lambda: BoxAccuracy(workers=0), ValueError, "workers must be an int >= 1"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONSTRUCTIONS))
def test_constructors_name_the_bad_setting(case: str) -> None:
    build, error, message = BAD_CONSTRUCTIONS[case]
    with pytest.raises(error, match=message.replace("[", r"\[").replace("]", r"\]")):
        build()


def test_box_iou_curves_flags_must_be_bools() -> None:
    maps, boxes = torch.rand(1, 4, 4), torch.tensor([[0, 0, 1, 1]])
    with pytest.raises(TypeError, match="single must be a bool"):
        metrics.box_iou_curves(maps, boxes, single="no")
    with pytest.raises(TypeError, match="multi must be a bool"):
        metrics.box_iou_curves(maps, boxes, multi=None)


def test_thresholds_of_any_real_tensor_and_masks_with_nan() -> None:
    assert PxAP(torch.tensor([0.0, 0.5], dtype=torch.bfloat16)).thresholds.tolist() == [0.0, 0.5]
    with pytest.raises(TypeError, match="thresholds must be real numbers, got a torch.complex64 tensor"):
        PeakIoU(torch.zeros(2, dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"masks must be binary \(bool, or integers 0 and 1\), got value nan"):
        metrics.pxap(torch.rand(1, 4, 4), torch.full((1, 4, 4), math.nan))


# ------------------------------------------------------------------------------------------- cam_thresholds


@given(st.floats(min_value=1e-300, max_value=MIN_INTERVAL, exclude_max=True))
def test_a_tiny_interval_is_refused_at_once(interval: float) -> None:
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"interval must be in \[0.0001, 1\]"):
        cam_thresholds(interval)
    assert time.perf_counter() - started < 0.5  # no allocation of 1 / interval thresholds first


@pytest.mark.parametrize("interval", [0.0, -0.01, 1.5, math.nan, math.inf, -math.inf])
def test_an_interval_outside_its_range_is_refused(interval: float) -> None:
    with pytest.raises(ValueError, match="interval must be in"):
        cam_thresholds(interval)


@pytest.mark.parametrize("interval", ["0.01", None, True, torch.tensor(0.01)])
def test_an_interval_of_another_type_is_refused(interval: object) -> None:
    with pytest.raises(TypeError, match="interval must be a real number"):
        cam_thresholds(interval)  # type: ignore[arg-type]


def test_the_finest_interval_is_accepted() -> None:
    assert len(cam_thresholds(MIN_INTERVAL)) == 10_000


# ---------------------------------------------------------------------------------------- BoxAccuracy.update


def test_box_accuracy_checks_the_classes_before_the_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    def sweep_must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the sweep ran before the classes were checked")

    monkeypatch.setattr(localization, "_box_iou_curves", sweep_must_not_run)
    metric = BoxAccuracy()
    maps, boxes = torch.rand(2, 8, 8), torch.tensor([[0, 0, 3, 3], [1, 1, 4, 4]])
    for pred, target, message in [
        (torch.tensor([1, 2]), None, "given together"),
        (torch.tensor([1]), torch.tensor([1]), r"pred_classes must have shape \(2,\)"),
        (torch.tensor([1.0, 2.0]), torch.tensor([1, 2]), "pred_classes must be an integer tensor"),
        ([1, 2], torch.tensor([1, 2]), "pred_classes must be a torch.Tensor"),
    ]:
        with pytest.raises((TypeError, ValueError), match=message):
            metric.update(maps, boxes, pred, target)
    assert int(metric.num_images) == 0


# ---------------------------------------------------------------------------------------------------- load_mask


@pytest.fixture()
def mask_root(tmp_path: Path) -> Path:
    cv2.imwrite(str(tmp_path / "m.png"), np.full((4, 4), 255, np.uint8))
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "folder.png").mkdir()
    return tmp_path


BAD_MASK_CALLS: Dict[str, Tuple[dict, type, str]] = {
    "size 0": ({"size": (0, 4)}, ValueError, "size must be a pair of positive ints"),
    "size negative": ({"size": (4, -4)}, ValueError, "size must be a pair of positive ints"),
    "size float": ({"size": (4.0, 4)}, ValueError, "size must be a pair of positive ints"),
    "size float fraction": ({"size": (4.5, 4)}, ValueError, "size must be a pair of positive ints"),
    "size one int": ({"size": 4}, ValueError, "size must be a pair of positive ints"),
    "size None": ({"size": None}, ValueError, "size must be a pair of positive ints"),
    "mask_paths a string": ({"mask_paths": "m.png"}, TypeError, "mask_paths must be a tuple of str"),
    "mask_paths of ints": ({"mask_paths": (1,)}, TypeError, "mask_paths must be a tuple of str"),
    "mask_paths empty": ({"mask_paths": ()}, ValueError, "mask_paths must name at least one mask"),
    "ignore_path None": ({"ignore_path": None}, TypeError, "ignore_path must be a str"),
    "mask_root an int": ({"mask_root": 3}, TypeError, "mask_root must be a path"),
    "mask missing": ({"mask_paths": ("nothere.png",)}, FileNotFoundError, "nothere.png does not exist"),
    "mask a folder": ({"mask_paths": ("folder.png",)}, FileNotFoundError, "folder.png does not exist (it is a folder)"),
    "mask not an image": ({"mask_paths": ("text.png",)}, ValueError, "text.png is not an image"),
    "ignore not an image": ({"ignore_path": "text.png"}, ValueError, "text.png is not an image"),
}


@pytest.mark.parametrize("case", sorted(BAD_MASK_CALLS))
def test_load_mask_names_the_bad_argument_or_file(case: str, mask_root: Path) -> None:
    overrides, error, message = BAD_MASK_CALLS[case]
    arguments = {"mask_root": mask_root, "mask_paths": ("m.png",), "ignore_path": "", "size": (4, 4), **overrides}
    with pytest.raises(error) as raised:
        load_mask(**arguments)
    assert message in str(raised.value)


# ------------------------------------------------------------------------------------------------ read_metadata


def _write_split(folder: Path, files: Dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / f"{name}.txt").write_bytes(content)
    return folder


GOOD_SPLIT = {
    "image_ids": b"a.jpg\nb.jpg\n",
    "class_labels": b"a.jpg,0\nb.jpg,1\n",
    "image_sizes": b"a.jpg,10,10\nb.jpg,20,10\n",
    "localization": b"a.jpg,0,0,5,5\nb.jpg,1,1,19,9\n",
}

BAD_SPLITS: Dict[str, Tuple[Dict[str, bytes], type, str]] = {
    "latin-1 image ids": ({"image_ids": b"a.jpg\nb\xe9.jpg\n"}, ValueError, "image_ids.txt:2: not UTF-8 text"),
    "latin-1 labels": ({"class_labels": b"a.jpg,0\n\xff\xfe,1\n"}, ValueError, "class_labels.txt:2: not UTF-8"),
    "binary sizes": ({"image_sizes": b"\x80\x81\x82"}, ValueError, "image_sizes.txt:1: not UTF-8 text"),
    "utf-16 localization": (
        {"localization": "a.jpg,0,0,5,5\n".encode("utf-16")},
        ValueError,
        "localization.txt:1: not UTF-8 text",
    ),
    "negative class": ({"class_labels": b"a.jpg,-1\nb.jpg,1\n"}, ValueError, "class_labels.txt:1: expected a class"),
    "zero image size": ({"image_sizes": b"a.jpg,0,10\nb.jpg,20,10\n"}, ValueError, "has a box outside it"),
    "float box": ({"localization": b"a.jpg,0,0,5.5,5\nb.jpg,1,1,19,9\n"}, ValueError, "expected integers"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPLITS))
def test_read_metadata_names_the_file_and_line(case: str, tmp_path: Path) -> None:
    changes, error, message = BAD_SPLITS[case]
    with pytest.raises(error) as raised:
        read_metadata(_write_split(tmp_path / "split", {**GOOD_SPLIT, **changes}))
    assert message in str(raised.value)


@pytest.mark.parametrize("folder, error", [(3, TypeError), (None, TypeError), (b"bytes", TypeError)])
def test_read_metadata_folder_must_be_a_path(folder: object, error: type) -> None:
    with pytest.raises(error, match="folder must be a path"):
        read_metadata(folder)  # type: ignore[arg-type]


def test_read_metadata_of_a_file_or_nothing(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    for target, state in ((tmp_path / "file", "a file"), (tmp_path / "none", "missing")):
        with pytest.raises(FileNotFoundError, match=f"folder must be a metadata split folder.*{state}"):
            read_metadata(target)


def test_good_split_is_read(tmp_path: Path) -> None:
    assert read_metadata(_write_split(tmp_path / "split", GOOD_SPLIT)).image_ids == ("a.jpg", "b.jpg")

