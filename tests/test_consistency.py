"""Look-consistency training: pairs show one scene drawn two ways, the plain encoding is the target,
only the image side moves, and runs resume and export like `train`'s."""

import json

import pytest
import torch

from xsam_core import shapes
from xsam_core.inference.predictor import Predictor
from xsam_core.training import consistency, train

EMBEDDED = "checkpoints/xsam-tiny-shapes"


def test_pairs_are_one_scene_drawn_two_ways():
    cfg = Predictor.load(EMBEDDED).config
    looks = {look: (1.0 if look == "jpeg" else 0.0) for look in shapes.SAME_PIXEL_LOOKS}
    parts = consistency.make_pairs(3, 0, 6, cfg, 0.0, looks)
    again = consistency.make_pairs(3, 0, 6, cfg, 0.0, looks)
    assert sum(p[0].shape[0] for p in parts) == 6
    for part, same in zip(parts, again):
        plain_siglip, plain_sam, siglip, sam = part
        assert all(torch.equal(a, b) for a, b in zip(part, same))  # step k always sees the same pairs
        assert plain_sam.shape == sam.shape and plain_siglip.shape == siglip.shape
        assert not torch.equal(plain_sam, sam)  # JPEG'd
        assert (plain_sam - sam).abs().mean() < 0.1  # yet the same scene: a far smaller change than another scene's
    plain = consistency.make_pairs(3, 0, 6, cfg, 1.0, looks)
    assert all(torch.equal(p[0], p[2]) and torch.equal(p[1], p[3]) for p in plain)
    canvases = {tuple(p[1].shape[-2:]) for p in consistency.make_pairs(0, 0, 24, cfg, 1.0, looks)}
    assert len(canvases) >= 3, canvases  # square and both aspect canvases: none is left to drift


def test_the_gap_is_zero_for_the_teacher_s_own_encoding_and_grows_with_the_difference():
    model = Predictor.load(EMBEDDED).model
    cfg = model.config
    (plain_siglip, plain_sam, siglip, sam), *_ = consistency.make_pairs(
        0, 1, 2, cfg, 0.0, {look: float(look == "noise") for look in shapes.SAME_PIXEL_LOOKS})
    with torch.no_grad():
        target = model.encode_images(plain_siglip, plain_sam)
        same = consistency.encoding_gap(model.encode_images(plain_siglip, plain_sam), target)
        noisy = consistency.encoding_gap(model.encode_images(siglip, sam), target)
    assert set(same) == {"siglip", "sam", "mask_features", "levels"}
    assert all(v.item() < 1e-10 for v in same.values()), same
    assert all(v.item() > 1e-4 for v in noisy.values()), noisy


def test_only_the_image_side_moves_and_runs_resume_and_export(tmp_path):
    out = tmp_path / "run"
    args = ["--out", str(out), "--init", EMBEDDED, "--steps", "2", "--scenes", "2", "--warmup", "1", "--lr", "1e-3"]
    assert consistency.main(args) == 0
    assert consistency.main(args[:4] + ["--steps", "3"] + args[6:]) == 0  # resumes at step 2, runs one more
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert {"siglip", "sam", "mask_features", "levels"} <= set(rows[0])
    state = torch.load(out / "state.pt", weights_only=False)
    assert state["step"] == 3
    start = Predictor.load(EMBEDDED).model.state_dict()
    moved = {k for k, v in state["model"].items() if not torch.equal(v, start[k])}
    assert moved and all(k.startswith(consistency.IMAGE_SIDE) for k in moved), sorted(moved)[:5]
    assert {k.split(".")[0] for k in moved} >= {"visual_encoder", "segmentor", "seg_connector"}
    kept = torch.load(f"{EMBEDDED}/state.pt", weights_only=False)  # the training heads ride along
    assert all(torch.equal(v, state["tokens"][k]) for k, v in kept["tokens"].items())
    assert train.main(["--out", str(out), "--export", str(tmp_path / "model")]) == 0
    exported = Predictor.load(str(tmp_path / "model")).model.state_dict()
    frozen = [k for k in start if not k.startswith(consistency.IMAGE_SIDE)]
    assert frozen and all(torch.equal(exported[k], start[k]) for k in frozen)  # the LLM and mask decoder, bit for bit


def test_look_weights_must_leave_a_look_to_draw(tmp_path, capsys):
    zero = ",".join(f"{look}=0" for look in shapes.SAME_PIXEL_LOOKS)
    with pytest.raises(SystemExit):
        consistency.main(["--out", str(tmp_path / "run"), "--init", EMBEDDED, "--look-weights", zero])
    assert "no look left" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_mask_side_alone_leaves_what_the_llm_reads_bit_for_bit(tmp_path):
    out = tmp_path / "run"
    assert consistency.main(["--out", str(out), "--init", EMBEDDED, "--steps", "2", "--scenes", "2", "--warmup", "1",
                             "--lr", "1e-3", "--mask-side", "--look-weights", "jpeg=1"]) == 0
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert {"mask_features", "levels"} <= set(rows[0]) and "sam" not in rows[0]  # tokens cannot move: no term
    start = Predictor.load(EMBEDDED).model
    side = consistency.mask_side(start.config)
    assert "segmentor.encoder.layers.5." in side and "segmentor.encoder.layers.4." not in side  # the LLM reads state 5
    moved = {k for k, v in torch.load(out / "state.pt", weights_only=False)["model"].items()
             if not torch.equal(v, start.state_dict()[k])}
    assert moved and all(k.startswith(side) for k in moved), sorted(moved)[:5]
    assert train.main(["--out", str(out), "--export", str(tmp_path / "model")]) == 0
    student = Predictor.load(str(tmp_path / "model"), dtype="float32").model
    (_, _, siglip, sam), *_ = consistency.make_pairs(0, 2, 2, start.config, 0.0, {"jpeg": 1.0})
    with torch.no_grad():
        before, after = start.float().encode_images(siglip, sam), student.encode_images(siglip, sam)
    assert torch.equal(before.image_tokens, after.image_tokens)  # every word the model says stays as it was
    assert not torch.equal(before.pixels.mask_features, after.pixels.mask_features)
