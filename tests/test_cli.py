"""`python -m xsam_core`, run in-process (no second torch import)."""

import json

import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from xsam_core.cli import main
from xsam_core.tasks import TASKS

# pycocotools' decode trips a numpy-2 deprecation inside its own code
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
PANOPTIC = ["--task", "genseg", "--text", "ins: red box, blue ball; sem: sky, grass-merged", "--answer", "Sure, <SEG>."]


@pytest.fixture
def folder(tmp_path, scene):
    """Two good images (one of them a mirrored BMP), one corrupt PNG and a text file the CLI skips."""
    d = tmp_path / "images"
    d.mkdir()
    scene.save(d / "a.png")
    scene.transpose(Image.FLIP_LEFT_RIGHT).save(d / "b.bmp")
    (d / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (d / "notes.txt").write_text("not an image")
    return d


def test_predict_folder_writes_outputs_and_reports_the_bad_image(folder, tmp_path, ref_model, capsys):
    out = tmp_path / "out"
    rc = main(["predict", "--image", str(folder), *PANOPTIC, "--model", str(ref_model), "--out", str(out)])
    assert rc == 1  # c.png is corrupt
    stdout, stderr = capsys.readouterr()
    assert [line.split(":")[0] for line in stdout.splitlines()] == ["a.png", "b.bmp"]
    assert all(" genseg " in line and " masks " in line and line.endswith(" ms") for line in stdout.splitlines())
    assert "c.png: error: cannot read the image" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "a_overlay.png", "b.json", "b_overlay.png"]
    n_masks = 0
    for stem in ("a", "b"):
        result = json.loads((out / f"{stem}.json").read_text())
        assert result["image"] == {"height": 72, "width": 96} and result["task"] == "genseg"
        for ann in result["annotations"]:
            mask = mask_utils.decode({"size": ann["segmentation"]["size"],
                                      "counts": ann["segmentation"]["counts"].encode()})
            assert mask.shape == (72, 96) and mask.sum() == ann["area"]
            n_masks += 1
        assert Image.open(out / f"{stem}_overlay.png").size == (96, 72)
    assert n_masks > 0


def test_predict_single_image_with_prompts_file(tmp_path, scene, ref_model, capsys):
    scene.save(tmp_path / "scene.png")
    (tmp_path / "prompts.json").write_text(json.dumps([{"kind": "box", "box": [10, 10, 40, 40]}]))
    out = tmp_path / "out"
    rc = main(["predict", "--image", str(tmp_path / "scene.png"), "--task", "intseg", "--prompts",
               f"@{tmp_path / 'prompts.json'}", "--answer", "Sure, <SEG>.", "--model", str(ref_model),
               "--out", str(out)])
    assert rc == 0
    result = json.loads((out / "scene.json").read_text())
    assert [a["label"] for a in result["annotations"]] == ["prompt 1"]
    assert "scene.png: intseg 1 masks" in capsys.readouterr().out


@pytest.mark.parametrize("prompts,message", [('[{"kind": "point"', "not valid JSON"),
                                             ("@/nonexistent.json", "cannot read")])
def test_bad_prompts_fail_before_loading_the_model(tmp_path, scene, prompts, message, capsys):
    scene.save(tmp_path / "scene.png")
    rc = main(["predict", "--image", str(tmp_path / "scene.png"), "--task", "intseg", "--prompts", prompts,
               "--model", "/nonexistent-model"])
    assert rc == 2 and message in capsys.readouterr().err


def test_missing_images_and_missing_model(tmp_path, capsys):
    assert main(["predict", "--image", str(tmp_path / "nothing"), "--task", "chat", "--text", "hi"]) == 2
    assert "no images" in capsys.readouterr().err
    (tmp_path / "x.png").write_bytes(b"")
    assert main(["predict", "--image", str(tmp_path), "--task", "chat", "--text", "hi",
                 "--model", str(tmp_path / "no-model")]) == 2
    assert "cannot load the model" in capsys.readouterr().err


def test_tasks_lists_every_task(capsys):
    assert main(["tasks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["auto", *TASKS]


def test_conformance_delegates_every_argument(monkeypatch):
    seen = []
    monkeypatch.setattr("xsam_core.evaluation.conformance.main", lambda argv: seen.append(argv) or 7)
    assert main(["conformance", "DIR", "--case", "refseg", "--help"]) == 7
    assert seen == [["DIR", "--case", "refseg", "--help"]]


def test_unknown_task_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["predict", "--image", "x.png", "--task", "nope"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
