"""Bad checkpoints for camfix.models: every file that is not a ``torch.save`` file of tensors gives an error that
names the file (torch's own is a ``KeyError: 101`` for a text file, a zip-reader message for a truncated one), and
a state_dict of another architecture names the keys that do not fit."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Callable, Dict, Tuple

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from camfix.models import (
    check_state_dict,
    load_torchvision_resnet,
    read_checkpoint,
    read_state_dict,
    resnet50,
    seresnet_small,
)


@pytest.fixture(scope="module")
def good_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("checkpoints") / "good.pth"
    torch.save(seresnet_small(num_classes=3).state_dict(), path)
    return path


#: name -> (writes the bad file, the exception, text the message must contain besides the file name)
BAD_FILES: Dict[str, Tuple[Callable[[Path, bytes], None], type, str]] = {
    "empty": (lambda path, good: path.write_bytes(b""), ValueError, "or it is truncated (EOFError)"),
    "text": (lambda path, good: path.write_text("hello, this is text\n"), ValueError, "not a file written by torch"),
    "text starting with e": (lambda path, good: path.write_text("e\n"), ValueError, "not a file written by torch"),
    "first 1000 bytes": (lambda path, good: path.write_bytes(good[:1000]), ValueError, "or it is truncated"),
    "first half": (lambda path, good: path.write_bytes(good[: len(good) // 2]), ValueError, "or it is truncated"),
    "last byte missing": (lambda path, good: path.write_bytes(good[:-1]), ValueError, "or it is truncated"),
    "a JSON file": (lambda path, good: path.write_text('{"fc.weight": [1.0]}'), ValueError, "cannot load"),
    "a numpy file": (lambda path, good: np.save(path.open("wb"), np.zeros(3)), ValueError, "weights_only=True"),
    "a plain pickle": (lambda path, good: path.write_bytes(pickle.dumps({"a": 1})), ValueError, "weights_only"),
    "a pickled model": (
        lambda path, good: torch.save(torch.nn.Linear(2, 2), path),
        ValueError,
        "a whole pickled model? save model.state_dict() instead",
    ),
    "a foreign zip": (
        lambda path, good: zipfile.ZipFile(path, "w").writestr("a.txt", "x"),
        ValueError,
        "not a file written by torch.save",
    ),
    "random bytes": (
        lambda path, good: path.write_bytes(np.random.default_rng(0).bytes(4096)),
        ValueError,
        "cannot load the checkpoint",
    ),
}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on the plain pickle
@pytest.mark.parametrize("case", sorted(BAD_FILES))
@pytest.mark.parametrize("reader", ["read_checkpoint", "read_state_dict", "load_torchvision_resnet"])
def test_a_bad_checkpoint_file_is_named(case: str, reader: str, good_file: Path, tmp_path: Path) -> None:
    write, error, message = BAD_FILES[case]
    path = tmp_path / "bad.pth"
    write(path, good_file.read_bytes())
    call = {
        "read_checkpoint": lambda: read_checkpoint(path),
        "read_state_dict": lambda: read_state_dict(str(path)),
        "load_torchvision_resnet": lambda: load_torchvision_resnet(seresnet_small(num_classes=3), path),
    }[reader]
    with pytest.raises(error) as raised:
        call()
    assert str(path) in str(raised.value) and message in str(raised.value)
    assert "\n" not in str(raised.value)  # one line, fit for a command's error: line


@settings(max_examples=30)
@given(data=st.data())
def test_any_prefix_of_a_checkpoint_is_refused_naming_the_file(data: st.DataObject, good_file: Path) -> None:
    good = good_file.read_bytes()
    length = data.draw(st.integers(0, len(good) - 1))
    path = good_file.with_name(f"prefix_{length}.pth")
    path.write_bytes(good[:length])
    with pytest.raises(ValueError, match="cannot load the checkpoint") as raised:
        read_state_dict(path)
    assert str(path) in str(raised.value)


def test_missing_and_folder_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothere.pth' does not exist"):
        read_state_dict(tmp_path / "nothere.pth")
    with pytest.raises(IsADirectoryError, match="is a folder, not a file written by torch.save"):
        read_checkpoint(tmp_path)
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        read_checkpoint(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "content, message",
    [
        ([torch.zeros(1)], "holds a list"),
        (torch.zeros(3), "got Tensor"),
        ({"fc.weight": [1.0]}, "entry 'fc.weight' holds a list"),
        ({"model": {"fc.weight": "x"}}, "entry 'fc.weight' holds a str"),
    ],
)
def test_a_file_holding_no_state_dict_is_named(content: object, message: str, tmp_path: Path) -> None:
    path = tmp_path / "odd.pth"
    torch.save(content, path)
    with pytest.raises(TypeError) as raised:
        read_state_dict(path)
    assert str(path) in str(raised.value) and message.split()[-1] in str(raised.value)


def test_check_state_dict_names_what_does_not_fit() -> None:
    state = seresnet_small(num_classes=3).state_dict()
    with pytest.raises(ValueError, match=r"does not fit the model .*shapes \(checkpoint vs model\): fc.weight \(3, "):
        check_state_dict(seresnet_small(num_classes=4), state)
    with pytest.raises(ValueError, match="missing keys: .*unexpected keys: layer1.0.se"):
        check_state_dict(resnet50(num_classes=3), state)
    check_state_dict(seresnet_small(num_classes=4), state, ignore=("fc.weight", "fc.bias"))  # a new head fits
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        check_state_dict(state, state)  # type: ignore[arg-type]


@pytest.mark.parametrize("load_classifier", ["no", 0, None])
def test_load_classifier_must_be_a_bool(load_classifier: object) -> None:
    with pytest.raises(TypeError, match="load_classifier must be a bool"):
        load_torchvision_resnet(
            seresnet_small(num_classes=3), {}, load_classifier=load_classifier  # type: ignore[arg-type]
        )
