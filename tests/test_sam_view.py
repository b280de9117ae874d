"""SAM views that keep an image's aspect (the embedded model's `sam_processor.canvases`): where an image
goes, that every mask comes back to the right pixels, and that training batches group scenes by canvas."""

import numpy as np
import pytest
import torch
from PIL import Image

from xsam_core import shapes
from xsam_core.inference.predictor import EMBEDDED_MODEL, Predictor
from xsam_core.inference.processing import sam_pixels, sam_view
from xsam_core.modeling import embedded
from xsam_core.modeling.config import SAM_PROCESSOR, XSamConfig
from xsam_core.training import train

CANVASES = [[96, 160], [64, 224]]
SQUARE = dict(SAM_PROCESSOR, longest_edge=128)
ASPECT = dict(SQUARE, canvases=CANVASES)


@pytest.mark.parametrize("h, w", [(100, 100), (128, 320), (97, 301), (300, 260), (640, 96), (1, 500)])
def test_x_sam_s_square_view_is_unchanged(h, w):
    scale = 128 / max(h, w)  # the official preprocessor: longest side to 128, rounded half up
    assert sam_view(h, w, SQUARE) == ((int(h * scale + 0.5), int(w * scale + 0.5)), (128, 128))


@pytest.mark.parametrize("h, w, canvas, scaled", [
    (100, 100, (128, 128), (128, 128)),  # a square image keeps the square
    (300, 260, (128, 128), (128, 111)),
    (100, 200, (96, 160), (80, 160)),  # 2:1 fills 160 px of width instead of 128
    (100, 350, (64, 224), (64, 224)),  # 3.5:1 fills a 64 x 224 canvas (1.75x the square's scale)
    (350, 100, (224, 64), (224, 64)),  # a tall image takes the canvas transposed
])
def test_an_image_takes_the_canvas_that_enlarges_it_most(h, w, canvas, scaled):
    assert sam_view(h, w, ASPECT) == (scaled, canvas)
    pixels, got = sam_pixels(Image.new("RGB", (w, h), (255, 0, 0)), ASPECT)
    assert pixels.shape == (1, 3, *canvas) and got == scaled
    assert (pixels[0, 0, : scaled[0], : scaled[1]] > 0).all()  # the image, normalised red
    assert pixels[0, :, scaled[0]:].abs().sum() == 0 and pixels[0, :, :, scaled[1]:].abs().sum() == 0  # padding


@pytest.fixture(scope="module")
def aspect_predictor():
    """The shipped embedded model on these canvases (its config lists them since run 30; set here so that
    the geometry tests hold whatever checkpoint ships)."""
    predictor = Predictor.load(None)
    predictor.config.sam_processor = dict(predictor.config.sam_processor, canvases=CANVASES)
    return predictor


def test_a_wide_image_is_encoded_on_its_own_grid(aspect_predictor):
    image = np.zeros((90, 315, 3), np.uint8)  # 3.5:1
    entry, _ = aspect_predictor.encode(image)
    patch = aspect_predictor.config.sam["patch_size"]
    assert entry.canvas == (64, 224) and entry.scaled == (64, 224)
    assert entry.encoding.seg_map.shape[:2] == (64 // patch, 224 // patch)
    siglip = (aspect_predictor.config.vision["image_size"] // aspect_predictor.config.vision["patch_size"]) ** 2
    assert entry.encoding.image_tokens.shape[1] == siglip + 8 * 28


def test_masks_come_back_to_the_original_pixels_on_a_wide_canvas(aspect_predictor):
    """A box prompt goes onto the 64 x 224 canvas and back (nearest both ways: the box within a pixel
    of the canvas' scale); the one-click mask is full size and lies on the clicked thing."""
    scene = shapes.generate_scene(np.random.default_rng(4), look="aspect")
    h, w = scene.image.shape[:2]
    thing = max(scene.objects, key=lambda t: t.mask.sum())
    ys, xs = np.nonzero(thing.mask)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
    pred = aspect_predictor.predict(scene.image, "intseg", prompts=[{"kind": "box", "box": [x0, y0, x1, y1]}])
    assert aspect_predictor.encode(scene.image)[0].canvas != (128, 128), "the scene should be elongated"
    expected = np.zeros((h, w), bool)
    expected[y0: y1 + 1, x0: x1 + 1] = True
    prompt = pred.regions[0]
    assert prompt.shape == (h, w)
    assert (prompt ^ expected).sum() <= 2 * (h + w) * max(h, w) / 224
    mask = pred.segments[0].mask
    assert mask.shape == (h, w)
    assert (mask & thing.mask).sum() / (mask | thing.mask).sum() > 0.8


def test_training_batches_group_scenes_by_canvas(tmp_path):
    model, tokenizer = train.new_run(tmp_path, seed=0, sam_canvases=CANVASES)
    assert model.config.sam_processor["canvases"] == CANVASES
    looks = {look: 0.0 for look in shapes.LOOKS} | {"aspect": 1.0}
    parts = train.make_batch(1, 0, 8, 2, model.config, tokenizer, look_weights=looks)
    assert len(parts) > 1 and sum(p.sam.shape[0] for p in parts) == 8
    for part in parts:
        canvas = tuple(part.sam.shape[-2:])
        assert canvas in {(128, 128)} | {tuple(c) for c in CANVASES} | {tuple(c[::-1]) for c in CANVASES}
        assert part.labels.shape[-2:] == canvas and part.siglip_labels.shape[-2:] == (128, 128)
        for s in part.samples:
            assert 0 <= s.image < part.sam.shape[0]
            assert all(m.shape == canvas for m in s.masks + s.regions)
    # one step over all parts, as `train` takes it: every loss finite
    heads = train.TrainingHeads(model.config)
    for part in parts:
        losses = train.compute_losses(model, part, train.mask2former_loss(64), heads, model.config.special_token_ids)
        assert all(torch.isfinite(v) for v in losses.values()), losses


def test_canvases_must_fit_the_patch_grid(tmp_path):
    with pytest.raises(ValueError, match="multiple of 32"):
        train.new_run(tmp_path, seed=0, sam_canvases=[[100, 160]])
    with pytest.raises(SystemExit):
        train.main(["--out", str(tmp_path / "x"), "--sam-canvases", "96by160"])


def test_a_larger_sam_view_trains_on_its_own_grid(tmp_path):
    """`train --sam-size 192` on the shipped checkpoint: the LLM's context grows with the SAM tokens, and a
    batch of plain scenes is encoded and trained at 192 px (the square, or a canvas that keeps a scene's
    aspect and is as long), with finite losses."""
    model, tokenizer = train.new_run(tmp_path, seed=0, init=str(EMBEDDED_MODEL), sam_size=192)
    cfg, shipped = model.config, XSamConfig.load(EMBEDDED_MODEL / "config.json")
    assert cfg.sam_processor["longest_edge"] == 192  # and the text keeps the room it had
    assert cfg.max_length - train.most_image_tokens(cfg) == shipped.max_length - train.most_image_tokens(shipped)
    assert cfg.llm["max_position_embeddings"] >= cfg.max_length
    looks = {look: 0.0 for look in shapes.LOOKS} | {"texture": 1.0}  # sides as plain scenes have them
    parts = train.make_batch(1, 0, 4, 2, cfg, tokenizer, look_weights=looks)
    heads = train.TrainingHeads(cfg)
    for part in parts:
        assert max(part.sam.shape[-2:]) == 192 and part.labels.shape[-2:] == part.sam.shape[-2:]
        losses = train.compute_losses(model, part, train.mask2former_loss(64), heads, cfg.special_token_ids)
        assert all(torch.isfinite(v) for v in losses.values()), losses
    with pytest.raises(ValueError, match="multiple of 32"):
        train.new_run(tmp_path / "bad", seed=0, sam_size=150)


def test_image_tokens_count_the_largest_view():
    """From scratch the LLM reads 4 × 4 SigLIP and 8 × 8 SAM tokens (128 px, 8-px patches, pixel-shuffled by 2).
    At 160 px the square gives 10 × 10 SAM tokens, and a wide 96 × 288 canvas 6 × 18, more."""
    cfg = embedded.embedded_config(100, {"<SEG>": 97, "<p>": 98, "</p>": 99})
    assert train.most_image_tokens(cfg) == 4 * 4 + 8 * 8
    train.resize_sam_view(cfg, 160)
    assert train.most_image_tokens(cfg) == 4 * 4 + 10 * 10
    cfg.sam_processor["canvases"] = [[128, 192], [96, 288]]
    assert train.most_image_tokens(cfg) == 4 * 4 + 6 * 18
