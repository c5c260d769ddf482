"""Bad input to the commands: ``camfix evaluate``, ``examples/localize_folder.py`` and the ImageNet recipe.

The promises (docs/errors.md):

- bad input ends with one ``<command>: error: ...`` line naming the option or the file, exit status 2, and no
  Python traceback (``--debug`` adds it);
- options, input files and output paths are checked before any work: nothing is printed or written first;
- output files are written atomically: a full disk leaves no truncated file and an older one unchanged;
- no file, however broken, crashes the interpreter (a child process reads a few hundred of them).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import cv2
import numpy as np
import pytest
import torch

from camfix.cli_support import InputError, atomic_write, check_output_path, run_command
from camfix.cli import main as camfix_main
from camfix.metrics import cli as evaluate_cli
from camfix.models import resnet50, seresnet_small

from refusals import fill_the_disk, make_read_only

ROOT = Path(__file__).resolve().parents[1]
IMAGENET = ROOT / "examples" / "imagenet"
IDS = ("val/img0.JPEG", "val/img1.JPEG", "val/img2.JPEG")


def _one_error_line(err: str, prog: str, alone: bool = True) -> str:
    """The error line, the last of stderr; with ``alone`` the only one (nothing ran before the check)."""
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith(f"{prog}: error: ") and (len(lines) == 1 or not alone), err
    assert "Traceback" not in err
    return lines[-1]


# ------------------------------------------------------------------------------------------------ camfix evaluate


@pytest.fixture()
def boxes(tmp_path: Path) -> Path:
    """A three-image box dataset in the reference's layout: meta/, maps/<id>.npy (16 x 16), pred.txt."""
    meta = tmp_path / "meta"
    meta.mkdir()
    (meta / "image_ids.txt").write_text("".join(f"{i}\n" for i in IDS))
    (meta / "class_labels.txt").write_text("".join(f"{i},{k}\n" for k, i in enumerate(IDS)))
    (meta / "image_sizes.txt").write_text("".join(f"{i},40,30\n" for i in IDS))
    (meta / "localization.txt").write_text("".join(f"{i},4,4,30,20\n" for i in IDS))
    (tmp_path / "maps" / "val").mkdir(parents=True)
    for image_id in IDS:
        score = np.zeros((16, 16))
        score[3:12, 2:10] = 1.0
        np.save(tmp_path / "maps" / f"{image_id}.npy", score)
    (tmp_path / "pred.txt").write_text("".join(f"{i},{k}\n" for k, i in enumerate(IDS)))
    return tmp_path


def _evaluate_argv(root: Path, *extra: str) -> List[str]:
    return ["evaluate", "--scoremaps", str(root / "maps"), "--metadata", str(root / "meta"), "--no-progress", *extra]


def _write_npy(array: np.ndarray) -> Callable[[Path], None]:
    return lambda path: np.save(path, array)


def _truncated(path: Path) -> None:
    np.save(path, np.zeros((16, 16)))
    path.write_bytes(path.read_bytes()[:200])


#: name -> writes a bad score map for img1, and a phrase the error must contain
BAD_MAPS: Dict[str, Tuple[Callable[[Path], None], str]] = {
    "0-byte file": (lambda path: path.write_bytes(b""), "is not a readable .npy array"),
    "text": (lambda path: path.write_text("0.5 0.5\n"), "is not a readable .npy array"),
    "truncated": (_truncated, "is not a readable .npy array"),
    "pickled objects": (lambda path: np.save(path, np.array([{}], object), allow_pickle=True), "not a readable"),
    "npz archive": (lambda path: np.savez(path.open("wb"), a=np.zeros(2)), "must hold one array"),
    "NaN": (_write_npy(np.full((16, 16), np.nan)), "must be finite, got 256 NaN or infinite"),
    "one inf": (_write_npy(np.where(np.eye(16) > 0, np.inf, 0.5)), "must be finite, got 16 NaN or infinite"),
    "above 1": (_write_npy(np.full((16, 16), 1.5)), "must have values in [0, 1]"),
    "negative": (_write_npy(np.full((16, 16), -0.5)), "must have values in [0, 1]"),
    "0 x 0": (_write_npy(np.zeros((0, 0))), "must be a non-empty 2-D float array"),
    "16 x 0": (_write_npy(np.zeros((16, 0))), "must be a non-empty 2-D float array"),
    "3-D": (_write_npy(np.zeros((1, 16, 16))), "must be a non-empty 2-D float array"),
    "1-D": (_write_npy(np.zeros(16)), "must be a non-empty 2-D float array"),
    "integers": (_write_npy(np.zeros((16, 16), np.int64)), "must be a non-empty 2-D float array"),
    "bools": (_write_npy(np.zeros((16, 16), bool)), "must be a non-empty 2-D float array"),
    "complex": (_write_npy(np.zeros((16, 16), np.complex64)), "must be a non-empty 2-D float array"),
    "a folder": (lambda path: path.mkdir(), "lacks the score maps of 1 of 3 images"),
}


@pytest.mark.parametrize("case", sorted(BAD_MAPS))
def test_evaluate_names_the_bad_map(case: str, boxes: Path, capsys: pytest.CaptureFixture) -> None:
    write, message = BAD_MAPS[case]
    path = boxes / "maps" / f"{IDS[1]}.npy"
    path.unlink()
    write(path)
    assert camfix_main(_evaluate_argv(boxes, "--json", str(boxes / "out.json"))) == 2
    captured = capsys.readouterr()
    line = _one_error_line(captured.err, "camfix evaluate")
    assert "img1.JPEG.npy" in line and message in line
    assert captured.out == "" and not (boxes / "out.json").exists()  # no table, no file


def test_evaluate_reads_awkward_but_valid_maps(boxes: Path, capsys: pytest.CaptureFixture) -> None:
    # Not bad input: big-endian float32, float16 and long double maps, mixed in one dataset, all evaluate.
    score = np.load(boxes / "maps" / f"{IDS[0]}.npy")
    for image_id, dtype in zip(IDS, (">f4", np.float16, np.longdouble)):
        np.save(boxes / "maps" / f"{image_id}.npy", score.astype(dtype))
    assert camfix_main(_evaluate_argv(boxes)) == 0
    assert "max_box_acc" in capsys.readouterr().out


def _setup_predictions(content: bytes) -> Callable[[Path], List[str]]:
    def setup(root: Path) -> List[str]:
        (root / "bad_pred.txt").write_bytes(content)
        return ["--predictions", str(root / "bad_pred.txt")]

    return setup


def _masks_without_root(root: Path) -> List[str]:
    (root / "meta" / "localization.txt").write_text("".join(f"{i},masks/{i}.png,\n" for i in IDS))
    (root / "meta" / "image_sizes.txt").unlink()
    return []


def _masks_with_missing_root(root: Path) -> List[str]:
    return [*_masks_without_root(root), "--mask-root", str(root / "nowhere")]


def _masks_with_predictions(root: Path) -> List[str]:
    return [*_masks_without_root(root), "--mask-root", str(root), "--predictions", str(root / "pred.txt")]


def _some_maps_missing(root: Path) -> List[str]:
    (root / "maps" / f"{IDS[2]}.npy").unlink()
    return []


#: name -> (sets up the case and returns the extra arguments, a phrase the error line must contain)
BAD_OPTIONS: Dict[str, Tuple[Callable[[Path], List[str]], str]] = {
    "interval 1e-12": (lambda root: ["--interval", "1e-12"], "--interval must be in [0.0001, 1]"),
    "interval 0": (lambda root: ["--interval", "0"], "--interval must be in [0.0001, 1]"),
    "interval negative": (lambda root: ["--interval", "-0.1"], "--interval must be in"),
    "interval 2": (lambda root: ["--interval", "2"], "--interval must be in"),
    "interval nan": (lambda root: ["--interval", "nan"], "--interval must be in"),
    "interval inf": (lambda root: ["--interval", "inf"], "--interval must be in"),
    "iou thresholds without 50": (lambda root: ["--iou-thresholds", "30", "70"], "--iou-thresholds must contain 50"),
    "iou thresholds repeated": (lambda root: ["--iou-thresholds", "50", "50"], "--iou-thresholds must be distinct"),
    "iou threshold 0": (lambda root: ["--iou-thresholds", "0", "50"], "--iou-thresholds must be ints in (0, 100]"),
    "iou threshold 101": (lambda root: ["--iou-thresholds", "50", "101"], "--iou-thresholds must be ints"),
    "batch size 0": (lambda root: ["--batch-size", "0"], "--batch-size must be an int >= 1"),
    "batch size negative": (lambda root: ["--batch-size", "-3"], "--batch-size must be an int >= 1"),
    "predictions a folder": (lambda root: ["--predictions", str(root / "maps")], "--predictions must be an existing"),
    "predictions missing": (lambda root: ["--predictions", str(root / "no.txt")], "--predictions must be an existing"),
    "predictions latin-1": (_setup_predictions(b"val/img0.JPEG,0\nval/\xe9.JPEG,1\n"), "bad_pred.txt:2: not UTF-8"),
    "predictions malformed": (_setup_predictions(b"val/img0.JPEG;0\n"), "bad_pred.txt:1: expected 'image_id,class'"),
    "predictions twice": (
        _setup_predictions(b"val/img0.JPEG,0\nval/img0.JPEG,1\n"),
        "bad_pred.txt:2: a second prediction for image 'val/img0.JPEG'",
    ),
    "predictions negative": (_setup_predictions(b"val/img0.JPEG,-1\n"), "with a class >= 0"),
    "predictions incomplete": (_setup_predictions(b"val/img0.JPEG,0\n"), "has no prediction for 2 image(s)"),
    "json a folder": (lambda root: ["--json", str(root / "maps")], "--json must be a file to write"),
    "json under a file": (lambda root: ["--json", str(root / "pred.txt" / "out.json")], "is a file, not a folder"),
    "json empty": (lambda root: ["--json", ""], "--json must be a file to write, got '.'"),
    "scoremaps missing": (lambda root: ["--scoremaps", str(root / "nowhere")], "--scoremaps must be an existing fold"),
    "scoremaps a file": (lambda root: ["--scoremaps", str(root / "pred.txt")], "--scoremaps must be an existing fold"),
    "metadata missing": (lambda root: ["--metadata", str(root / "nowhere")], "--metadata must be an existing folder"),
    "some maps missing": (_some_maps_missing, "lacks the score maps of 1 of 3 images"),
    "masks without --mask-root": (_masks_without_root, "describes masks: give their folder with --mask-root"),
    "mask root missing": (_masks_with_missing_root, "--mask-root must be an existing folder"),
    "predictions with masks": (_masks_with_predictions, "--predictions (top-1 loc) needs a box dataset"),
}


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_evaluate_refuses_bad_options_before_evaluating(
    case: str, boxes: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_evaluation(*args: object) -> None:
        raise AssertionError("evaluated before checking the inputs")

    monkeypatch.setattr(evaluate_cli, "_evaluate", no_evaluation)
    setup, message = BAD_OPTIONS[case]
    assert camfix_main(_evaluate_argv(boxes, *setup(boxes))) == 2
    captured = capsys.readouterr()
    assert message in _one_error_line(captured.err, "camfix evaluate") and captured.out == ""


def test_evaluate_json_in_a_read_only_folder(
    boxes: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    (boxes / "locked").mkdir()
    make_read_only(monkeypatch, boxes / "locked")
    assert camfix_main(_evaluate_argv(boxes, "--json", str(boxes / "locked" / "sub" / "out.json"))) == 2
    captured = capsys.readouterr()
    assert "is not writable" in _one_error_line(captured.err, "camfix evaluate") and captured.out == ""
    assert list((boxes / "locked").iterdir()) == []


def test_evaluate_on_a_full_disk_leaves_the_old_json(
    boxes: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = boxes / "out.json"
    assert camfix_main(_evaluate_argv(boxes, "--json", str(out))) == 0
    old = out.read_bytes()

    fill_the_disk(monkeypatch)
    assert camfix_main(_evaluate_argv(boxes, "--json", str(out), "--mode", "continuous")) == 2
    assert "No space left on device" in _one_error_line(capsys.readouterr().err, "camfix evaluate")
    assert out.read_bytes() == old and sorted(p.name for p in boxes.iterdir() if p.name.startswith(".")) == []


def test_evaluate_debug_shows_the_traceback(boxes: Path, capsys: pytest.CaptureFixture) -> None:
    np.save(boxes / "maps" / f"{IDS[0]}.npy", np.full((16, 16), 2.0))
    assert camfix_main(_evaluate_argv(boxes, "--debug")) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("camfix evaluate: error: score map")


def test_evaluate_as_a_command_in_a_child_process(boxes: Path) -> None:
    np.save(boxes / "maps" / f"{IDS[0]}.npy", np.full((16, 16), np.nan))
    result = subprocess.run(
        [sys.executable, "-m", "camfix.cli", *_evaluate_argv(boxes)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "must be finite" in _one_error_line(result.stderr, "camfix evaluate")


# ------------------------------------------------------------------------------------- the shared mechanism


def test_run_command_reports_user_errors_and_keeps_bugs(capsys: pytest.CaptureFixture) -> None:
    def fails(error: BaseException) -> Callable[[], None]:
        def main() -> None:
            raise error

        return main

    for error in (InputError("bad\nthing"), ValueError("v"), TypeError("t"), PermissionError(13, "denied", "/x")):
        assert run_command("prog", fails(error), []) == 2
        _one_error_line(capsys.readouterr().err, "prog")
    assert run_command("prog", lambda: None, []) == 0 and run_command("prog", lambda: 3, []) == 3
    with pytest.raises(RuntimeError):  # a bug is not the user's input: it keeps its traceback
        run_command("prog", fails(RuntimeError("bug")), [])


def test_check_output_path_refuses_without_creating(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("x")
    refusals = [
        (lambda: check_output_path("--out", tmp_path / "file", folder=True), NotADirectoryError, "an existing file"),
        (lambda: check_output_path("--out", tmp_path / "file" / "a" / "b", folder=True), NotADirectoryError, "is a"),
        (lambda: check_output_path("--json", tmp_path), IsADirectoryError, "an existing folder"),
        (lambda: check_output_path("--json", 3), TypeError, "--json must be a path"),
        (lambda: check_output_path("--json", None), TypeError, "--json must be a path"),
        (lambda: check_output_path("--json", ""), ValueError, "--json must not be an empty path"),
    ]
    for call, error, message in refusals:
        with pytest.raises(error, match=message):
            call()
    make_read_only(monkeypatch, tmp_path)
    with pytest.raises(PermissionError, match=f"the folder '{tmp_path}' is not writable"):
        check_output_path("--out", tmp_path / "new" / "deeper", folder=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_atomic_write_keeps_the_old_file_when_the_block_fails(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_text("old")
    with pytest.raises(KeyError):
        with atomic_write(path) as stream:
            stream.write(b"half of the new")
            raise KeyError("the encoder failed")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.json"]
    with atomic_write(tmp_path / "new" / "a.bin") as stream:
        stream.write(b"new")
    assert (tmp_path / "new" / "a.bin").read_bytes() == b"new"
    assert oct((tmp_path / "new" / "a.bin").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------------------------ examples/localize_folder.py


def _load_script(path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def localize_folder() -> types.ModuleType:
    return _load_script(ROOT / "examples" / "localize_folder.py")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A good checkpoint of seresnet_small with 4 classes, and bad ones beside it (written once: resnet50 is big)."""
    folder = tmp_path_factory.mktemp("checkpoints")
    torch.save(seresnet_small(num_classes=4).state_dict(), folder / "good.pth")
    good = (folder / "good.pth").read_bytes()
    (folder / "truncated.pth").write_bytes(good[: len(good) // 3])
    (folder / "text.pth").write_text("weights, as text\n")
    torch.save(torch.nn.Linear(2, 2), folder / "pickled.pth")
    torch.save(resnet50(num_classes=4).state_dict(), folder / "resnet50.pth")
    return folder


@pytest.fixture()
def photos(tmp_path: Path, checkpoints: Path) -> Path:
    """Two images, and links to the checkpoints."""
    (tmp_path / "images").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg"):
        cv2.imwrite(str(tmp_path / "images" / name), rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    for checkpoint in checkpoints.iterdir():
        (tmp_path / checkpoint.name).symlink_to(checkpoint)
    (tmp_path / "file").write_text("x")
    return tmp_path


def _with_images(setup: Callable[[Path], None], *arguments: str) -> Callable[[Path], List[str]]:
    def prepare(root: Path) -> List[str]:
        setup(root)
        return list(arguments)

    return prepare


def _replace_args(*arguments: str) -> Callable[[Path], List[str]]:
    return lambda root: [argument.replace("ROOT", str(root)) for argument in arguments]


#: name -> (extra arguments, with ROOT standing for the fixture's folder; a phrase the error line must contain)
BAD_LOCALIZE: Dict[str, Tuple[Callable[[Path], List[str]], str]] = {
    "theta-loc 2": (_replace_args("--theta-loc", "2"), "--theta-loc must be in [0, 1], got 2.0"),
    "theta-loc nan": (_replace_args("--theta-loc", "nan"), "--theta-loc must be in [0, 1]"),
    "tap 1.5": (_replace_args("--tap", "1.5"), "--tap must be in [0, 1), got 1.5"),
    "tap negative": (_replace_args("--tap", "-0.1"), "--tap must be in [0, 1)"),
    "pct 0": (_replace_args("--pct", "0"), "--pct must be in (0, 100]"),
    "pct 101": (_replace_args("--pct", "101"), "--pct must be in (0, 100]"),
    "num-classes 0": (_replace_args("--num-classes", "0"), "--num-classes must be an int >= 1"),
    "label 4 of 4 classes": (_replace_args("--label", "4"), "--label must be an int [0, 3], got 4"),
    "label negative": (_replace_args("--label", "-1"), "--label must be an int [0, 3]"),
    "batch-size 0": (_replace_args("--batch-size", "0"), "--batch-size must be an int >= 1"),
    "size 4": (_replace_args("--size", "4"), "--size must be an int >= 8"),
    "device banana": (_replace_args("--device", "banana"), "--device must be a torch device"),
    "images missing": (_replace_args("--images", "ROOT/nowhere"), "--images must be an existing folder"),
    "images without images": (_replace_args("--images", "ROOT/out"), "--images must be an existing folder"),
    "images empty folder": (
        _with_images(lambda root: (root / "empty").mkdir(), "--images", "empty"),
        "no images (.bmp, .jpeg, .jpg, .png, .webp) under",
    ),
    "two images, one overlay": (
        _with_images(lambda root: cv2.imwrite(str(root / "images" / "a.jpg"), np.zeros((8, 8, 3), np.uint8))),
        "would both write the overlay",
    ),
    "out a file": (_replace_args("--out", "ROOT/file"), "--out must be a folder, got"),
    "out under a file": (_replace_args("--out", "ROOT/file/out"), "is a file, not a folder"),
    "checkpoint truncated": (_replace_args("--checkpoint", "ROOT/truncated.pth"), "or it is truncated"),
    "checkpoint text": (_replace_args("--checkpoint", "ROOT/text.pth"), "cannot load the checkpoint"),
    "checkpoint of a pickled model": (_replace_args("--checkpoint", "ROOT/pickled.pth"), "a whole pickled model?"),
    "checkpoint missing": (_replace_args("--checkpoint", "ROOT/none.pth"), "none.pth' does not exist"),
    "checkpoint a folder": (_replace_args("--checkpoint", "ROOT/images"), "is a folder, not a file"),
    "checkpoint of another arch": (
        _replace_args("--checkpoint", "ROOT/resnet50.pth"),
        "(--arch seresnet_small, --num-classes 4): the checkpoint does not fit the model (another architecture",
    ),
    "checkpoint of another class count": (
        _replace_args("--num-classes", "5"),
        "shapes (checkpoint vs model): fc.weight (4, 512) vs (5, 512)",
    ),
    "a corrupt JPEG": (
        _with_images(lambda root: (root / "images" / "c.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")),
        "cannot read image",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_LOCALIZE))
def test_localize_folder_refuses_bad_input_in_one_line(
    case: str, localize_folder: types.ModuleType, photos: Path, capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(photos)
    prepare, message = BAD_LOCALIZE[case]
    argv = ["--images", "images", "--checkpoint", "good.pth", "--arch", "seresnet_small", "--num-classes", "4",
            "--size", "32", "--out", "out", *prepare(photos)]  # fmt: skip
    assert run_command("localize_folder.py", lambda: localize_folder.main(argv), argv) == 2
    checked_before_work = case != "a corrupt JPEG"  # found when the batch is read, after the progress bar started
    assert message in _one_error_line(capsys.readouterr().err, "localize_folder.py", alone=checked_before_work)
    assert not (photos / "out" / "boxes.json").exists()
    assert not (photos / "out").exists() or not checked_before_work


def test_localize_folder_outmake_read_only(
    localize_folder: types.ModuleType, photos: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    (photos / "locked").mkdir()
    make_read_only(monkeypatch, photos / "locked")
    argv = ["--images", str(photos / "images"), "--out", str(photos / "locked" / "out"), "--size", "32",
            "--arch", "seresnet_small", "--num-classes", "4"]  # fmt: skip
    assert run_command("localize_folder.py", lambda: localize_folder.main(argv), argv) == 2
    assert "is not writable" in _one_error_line(capsys.readouterr().err, "localize_folder.py")
    assert list((photos / "locked").iterdir()) == []


def test_localize_folder_as_a_command(photos: Path) -> None:
    script = str(ROOT / "examples" / "localize_folder.py")
    result = subprocess.run(
        [sys.executable, script, "--images", str(photos / "images"), "--tap", "1.5"],
        capture_output=True, text=True, timeout=120, cwd=photos,
    )
    assert result.returncode == 2
    assert "--tap must be in [0, 1)" in _one_error_line(result.stderr, "localize_folder.py")
    assert not (photos / "camfix-out").exists()


# -------------------------------------------------------------------------------------------- the ImageNet recipe


@pytest.fixture(scope="module")
def imagenet() -> Dict[str, types.ModuleType]:
    sys.path.insert(0, str(IMAGENET))
    try:
        return {name: importlib.import_module(name) for name in ("evaluate_wsol", "evaluate_lid", "train")}
    finally:
        sys.path.remove(str(IMAGENET))


@pytest.mark.parametrize("script", ["evaluate_wsol", "evaluate_lid", "train"])
@pytest.mark.parametrize("where", ["read-only", "under a file", "a file"])
def test_imagenet_scripts_check_out_before_any_work(
    script: str, where: str, imagenet: Dict[str, types.ModuleType], tmp_path: Path,
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "locked").mkdir()
    make_read_only(monkeypatch, tmp_path / "locked")
    out = {
        "read-only": tmp_path / "locked" / "run", "under a file": tmp_path / "file" / "run", "a file": tmp_path / "file"
    }[where]
    required = {
        "evaluate_wsol": ["--metadata", "m", "--images", "i", "--checkpoint", "c"],
        "evaluate_lid": ["--images", "i", "--list", "l", "--masks", "m", "--checkpoint", "c"],
        "train": ["--train-dir", "t"],
    }[script]
    with pytest.raises(SystemExit) as exited:
        imagenet[script].parse_args([*required, "--out", str(out)])
    assert exited.value.code == 2
    assert "--out" in capsys.readouterr().err.strip().splitlines()[-1]
    assert list((tmp_path / "locked").iterdir()) == []


# -------------------------------------------------------------------------------- files that could crash a reader

CHILD = textwrap.dedent(
    """
    import sys, zipfile
    from pathlib import Path
    import numpy as np, torch
    from camfix.cli_support import InputError
    from camfix.metrics import cli, load_mask
    from camfix.models import read_state_dict, seresnet_small
    from camfix.viz import draw_boxes, save_image

    root = Path(sys.argv[1])
    rng = np.random.default_rng(0)
    torch.save(seresnet_small(num_classes=2).state_dict(), root / "good.pth")
    good = (root / "good.pth").read_bytes()
    np.save(root / "good.npy", rng.random((8, 8)))
    good_npy = (root / "good.npy").read_bytes()
    import cv2
    good_png = cv2.imencode(".png", rng.integers(0, 256, (8, 8), dtype=np.uint8))[1].tobytes()
    blobs = [rng.bytes(int(n)) for n in rng.integers(0, 3000, 40)]
    blobs += [good[: int(n)] for n in rng.integers(0, len(good), 40)]
    for index in range(40):  # flipped bytes inside a good file
        damaged = bytearray(good)
        for position in rng.integers(0, len(good), 8):
            damaged[position] ^= 0xFF
        blobs.append(bytes(damaged))
    tried = 0
    for index, blob in enumerate(blobs):
        (root / f"{index}.pth").write_bytes(blob)
        try:
            read_state_dict(root / f"{index}.pth")
        except (TypeError, ValueError, OSError):
            pass
        tried += 1
    image_blobs = [rng.bytes(int(n)) for n in rng.integers(0, 2000, 30)]
    image_blobs += [good_png[: int(n)] for n in rng.integers(0, len(good_png), 30)]
    for index, blob in enumerate(image_blobs):
        for suffix in (".png", ".jpg", ".bmp", ".tif", ".webp"):
            (root / f"m{index}{suffix}").write_bytes(blob)
            try:
                load_mask(root, (f"m{index}{suffix}",), "", (8, 8))
            except (TypeError, ValueError, OSError):
                pass
            tried += 1
    (root / "maps").mkdir()
    map_blobs = [rng.bytes(int(n)) for n in rng.integers(0, 600, 30)] + [good_npy[: int(n)] for n in range(0, 200, 7)]
    for index, blob in enumerate(map_blobs):
        (root / "maps" / f"{index}.npy").write_bytes(blob)
        try:
            cli._load_map(root / "maps", str(index))
        except InputError:
            pass
        tried += 1
    image = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    for box in ([0, 0, 2**62, 2**62], [2**31, 0, 2**63 - 1, 3], [0, 2**31 - 1, 5, 2**31]):
        draw_boxes(image, box, thickness=2**40)
        tried += 1
    print(tried)
    """
)


def test_no_broken_file_crashes_the_interpreter(tmp_path: Path) -> None:
    # A child process: a segmentation fault inside torch's zip reader or an OpenCV decoder would kill pytest itself.
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"exit status {result.returncode}:\n{result.stderr[-3000:]}"
    assert int(result.stdout.split()[-1]) == 120 + 300 + 59 + 3
