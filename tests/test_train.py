"""The trainer: batches hold what they claim, a few steps reduce the loss, runs resume and export."""

import json
import re
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoTokenizer

from xsam_core import shapes
from xsam_core.inference.predictor import Predictor
from xsam_core.inference.processing import sam_pixels, siglip_pixels
from xsam_core.modeling.config import XSamConfig
from xsam_core.modeling.model import XSamModel
from xsam_core.shapes.requests import SHAPE_RIDDLES, _request
from xsam_core.shapes.scenes import RING_HOLE, draw_shape
from xsam_core.training import grounding, train
from xsam_core.training.losses import (
    MARGIN_LOGITS,
    _hole_loss,
    _lm_losses,
    _selection_loss,
    hole_cells,
    mask_centroids,
    token_targets,
)
from xsam_core.training.samples import (
    CATEGORIES,
    CHAT_SET,
    COLOURS,
    TOKEN_LABELS,
    Sample,
    canvas_labels,
    make_sample,
    siglip_frame,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    model, tokenizer = train.new_run(out, seed=0)
    return out, model, tokenizer


def test_batches_are_reproducible_and_well_formed(run):
    _, model, tokenizer = run
    (a,) = train.make_batch(5, 0, 3, 3, model.config, tokenizer)  # X-SAM's square view: one part
    (b,) = train.make_batch(5, 0, 3, 3, model.config, tokenizer)
    assert [s.ids for s in a.samples] == [s.ids for s in b.samples]
    assert torch.equal(a.sam, b.sam) and a.sam.shape == (3, 3, 128, 128)
    seg, p = model.config.special_token_ids["<SEG>"], model.config.special_token_ids["<p>"]
    assert {s.task for s in a.samples if s.masks}, "the batch holds no segmentation sample"
    for s in a.samples:
        answer = s.ids[s.n_prompt:]
        assert answer[-1] == tokenizer.eos_token_id  # the template suffix closes every answer
        if s.masks:  # segmentation samples say <SEG> once and have a class per target mask
            assert answer.count(seg) == 1
            assert len(s.classes) == len(s.masks) and all(m.shape == (128, 128) for m in s.masks)
            # one condition per <p>…</p> (prompt or answer); every target names one of them
            assert len(s.cond_category) == len(s.cond_colour) == s.ids.count(p), s.task
            used = set(s.classes)
            assert used <= set(range(len(s.cond_category))), s.task
            if not s.task.startswith("genseg"):  # genseg also names classes absent from the scene
                assert used == set(range(len(s.cond_category))), s.task
        assert len(s.regions) == s.ids.count(-300)


def test_attribute_targets_are_only_what_the_words_name(run):
    """The attribute term classifies a condition into what its text names: a place or size sentence
    names neither kind nor colour (asking for them pulled "leftmost" and "rightmost" onto one
    condition), a riddle names the kind, a referring phrase the kind and its colour."""
    _, model, tokenizer = run
    cfg = model.config
    scene = shapes.generate_scene(np.random.default_rng(2), n_things=3)
    _, scaled = sam_pixels(Image.fromarray(scene.image), cfg.sam_processor)
    thing = scene.objects[0]

    def targets(task, text):
        request = _request(task, text, targets=[thing.id])
        s = make_sample(scene, request, 0, scaled, cfg.sam_processor["longest_edge"], tokenizer,
                        cfg.template_strings, np.random.default_rng(0))
        return s.cond_category, s.cond_colour

    kind, colour = CATEGORIES.index(thing.shape), COLOURS.index(thing.colour)
    assert targets("reaseg", "the leftmost shape") == targets("reaseg", "the largest shape") == ([-1], [-1])
    assert targets("reaseg", SHAPE_RIDDLES[thing.shape]) == ([kind], [-1])
    assert targets("refseg", f"the {thing.colour} {thing.shape}") == ([kind], [colour])


def test_token_labels_lie_on_their_objects_in_both_frames(run):
    """The token-label targets sit where each object's colour is painted, in SAM's frame (image at the
    top left) and in SigLIP's (image centred in its square), on a tall and a wide scene."""
    _, model, _ = run
    cfg = model.config
    rng = np.random.default_rng(3)
    for _ in range(2):
        scene = shapes.generate_scene(rng, look="aspect")
        pil = Image.fromarray(scene.image)
        sam, scaled = sam_pixels(pil, cfg.sam_processor)
        labels = canvas_labels(scene, scaled, cfg.sam_processor["longest_edge"])
        sig = siglip_pixels(pil, dict(cfg.siglip_processor, size=labels.shape[-1]))
        frames = ((sam, labels, cfg.sam_processor), (sig, siglip_frame(labels, scaled), cfg.siglip_processor))
        for pixels, frame, proc in frames:
            rgb = pixels[0] * torch.tensor(proc["std"])[:, None, None] + torch.tensor(proc["mean"])[:, None, None]
            for thing in scene.objects:
                where = frame[len(shapes.SHAPES) + COLOURS.index(thing.colour)] > 0
                painted = (rgb[:, where].T * 255 - torch.tensor(shapes.COLOURS[thing.colour])).abs().mean()
                assert painted < 40, (thing.colour, float(painted))


def test_token_targets_name_the_shape_and_colour_covering_most_of_a_cell():
    labels = torch.zeros(1, TOKEN_LABELS, 16, 16)
    star, ring = shapes.SHAPES.index("star"), shapes.SHAPES.index("ring")
    red, blue = COLOURS.index("red"), COLOURS.index("blue")
    labels[0, star, :8, :8] = labels[0, len(shapes.SHAPES) + red, :8, :8] = 1  # cell 0: all star, red
    labels[0, ring, :8, 8:11] = labels[0, len(shapes.SHAPES) + blue, :8, 8:11] = 1  # cell 1: 3/8 ring
    labels[0, star, 8:16, 8:10] = labels[0, len(shapes.SHAPES) + red, 8:16, 8:10] = 1  # cell 3: 1/4 star
    labels[0, ring, 8:16, 10:15] = labels[0, len(shapes.SHAPES) + blue, 8:16, 10:15] = 1  # and 5/8 ring
    shape, colour = token_targets(labels, 2)
    none_shape, none_colour = len(shapes.SHAPES), len(COLOURS)
    assert shape.tolist() == [[star, ring, none_shape, ring]]
    assert colour.tolist() == [[red, blue, none_colour, blue]]


def test_mask_centroids_are_shares_of_the_canvas_side():
    masks = torch.zeros(2, 8, 8)
    masks[0, 2:4, 0:2] = 1  # rows 2-3, columns 0-1: x centre 1/8, y centre 3/8
    masks[1] = 1
    assert torch.allclose(mask_centroids(masks), torch.tensor([[0.125, 0.375], [0.5, 0.5]]))


def test_chat_every_scene_asks_each_scene_its_chat_set(run):
    _, model, tokenizer = run
    (batch,) = train.make_batch(5, 0, 3, 3, model.config, tokenizer, chat_every_scene=True)
    for image in range(3):
        chat = [s for s in batch.samples if s.image == image and s.task == "chat"]
        assert 2 <= len(chat) <= CHAT_SET and len({tuple(s.ids) for s in chat}) == len(chat)
        assert len([s for s in batch.samples if s.image == image and s.task != "chat"]) == 3


def test_shape_counts_ask_two_shapes_whose_counts_differ(run):
    """--shape-counts P: that share of chat sets also asks "How many <shape> shapes are there?" of a shape
    the scene holds and of one with another count, answered with the true number word."""
    _, model, tokenizer = run
    rng = np.random.default_rng(4)
    for _ in range(30):
        scene = shapes.generate_scene(rng)
        counts = Counter(t.shape for t in scene.objects)
        asked = [(re.fullmatch(r"How many (\w+) shapes are there\?", q["text"]).group(1), q["answer"])
                 for q in shapes.shape_counts(scene, rng)]
        assert counts[asked[0][0]] >= 1 and all(answer == shapes.NUMBER_WORDS[counts[shape]] for shape, answer in asked)
        # a second shape whose count differs, wherever one does (not when all six shapes are there once)
        assert len(asked) == 2 and counts[asked[1][0]] != counts[asked[0][0]] or len(counts) == 6 == len(scene.objects)
    (batch,) = train.make_batch(5, 0, 3, 0, model.config, tokenizer, chat_every_scene=True, shape_counts=1.0)
    for image in range(3):
        asked = [tokenizer.decode([i for i in s.ids if 0 <= i < len(tokenizer)]) for s in batch.samples
                 if s.image == image and s.task == "chat"]
        assert sum(" shapes are there" in q and "how many shapes" not in q for q in asked) == 2, asked
    (plain,) = train.make_batch(5, 0, 3, 0, model.config, tokenizer, chat_every_scene=True)
    assert len(plain.samples) == len(batch.samples) - 6


def test_look_weights_choose_the_looks_scenes_are_drawn_in(run, monkeypatch):
    _, model, tokenizer = run
    drawn, generate = [], shapes.generate_scene
    monkeypatch.setattr(shapes, "generate_scene",
                        lambda rng, look, n_things: drawn.append(look) or generate(rng, look=look, n_things=n_things))
    only_aspect = {look: 0.0 for look in shapes.LOOKS} | {"aspect": 1.0}
    train.make_batch(5, 0, 12, 0, model.config, tokenizer, look_weights=only_aspect)
    assert set(drawn) == {None, "aspect"}, drawn  # half the scenes plain, the others all elongated
    with pytest.raises(SystemExit):  # a look the generator does not know is refused, not ignored
        train.main(["--out", "unused", "--look-weights", "aspect=6,stretch=1"])


def test_crowded_scenes_ask_for_four_shapes_or_more(run, monkeypatch):
    """--crowded P draws that share of scenes with four to six shapes (counting fails most there,
    analysis §26); without it no scene's number is fixed, so older runs keep their random stream."""
    _, model, tokenizer = run
    asked, generate = [], shapes.generate_scene
    monkeypatch.setattr(shapes, "generate_scene",
                        lambda rng, look, n_things: asked.append(n_things) or generate(rng, look=look,
                                                                                       n_things=n_things))
    train.make_batch(5, 0, 12, 0, model.config, tokenizer, crowded=1.0)
    assert asked and all(n in (4, 5, 6) for n in asked), asked
    asked.clear()
    train.make_batch(5, 0, 12, 0, model.config, tokenizer, crowded=0.5)
    assert None in asked and set(asked) - {None} <= {4, 5, 6} and len(set(asked) - {None}) >= 1, asked
    asked.clear()
    train.make_batch(5, 0, 12, 0, model.config, tokenizer)
    assert asked == [None] * 12


def test_absent_objects_are_trained_as_no_object(run):
    """--absent P: that share of referring requests names a colour and shape the scene does not hold;
    such a sample has its phrase's condition but no target, so every query learns "no object" and the
    best query's score can say "not there" (X-SAM issue 8)."""
    _, model, tokenizer = run
    rng = np.random.default_rng(3)
    for _ in range(20):
        scene = shapes.generate_scene(rng)
        request = shapes.absent_refseg(scene, rng)
        assert request["absent"] not in {(t.colour, t.shape) for t in scene.objects}
        assert request["text"] == "the {} {}".format(*request["absent"]) and request["targets"] == []
    (batch,) = train.make_batch(5, 0, 4, 1, model.config, tokenizer, task_weights={"refseg": 1.0}, absent=1.0)
    assert [s.task for s in batch.samples] == ["refseg"] * 4
    for s in batch.samples:
        assert s.masks == [] and s.classes == [] and not s.selectable
        assert CATEGORIES[s.cond_category[0]] in shapes.SHAPES and s.cond_colour[0] >= 0
    heads = train.TrainingHeads(model.config)
    losses = train.compute_losses(model, batch, train.mask2former_loss(256), heads, model.config.special_token_ids)
    assert losses["class"] > 0 and losses["mask"] == losses["dice"] == losses["select"] == 0
    (mixed,) = train.make_batch(5, 0, 4, 1, model.config, tokenizer, task_weights={"refseg": 1.0}, absent=0.5)
    assert 0 < sum(not s.masks for s in mixed.samples) < 4  # and the same scenes' others keep their targets
    assert all(torch.isfinite(v) for v in
               train.compute_losses(model, mixed, train.mask2former_loss(256), heads,
                                    model.config.special_token_ids).values())


def test_resize_siglip_keeps_every_weight_and_resizes_the_grid(run):
    _, model, _ = run
    resized = train.resize_siglip(model, 128)
    assert resized.config.vision["image_size"] == resized.config.siglip_processor["size"] == 128
    key = "visual_encoder.embeddings.position_embedding.weight"
    before, after = model.state_dict(), resized.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before if k != key)
    old, new = before[key], after[key]  # [16, C] → [64, C]: a smooth resize keeps the grid's mean
    assert new.shape == (64, old.shape[1])
    assert torch.allclose(new.mean(0), old.mean(0), atol=0.05)
    pixels = torch.zeros(1, 3, 128, 128)
    assert resized.siglip_features(pixels).shape[1] == 64


def test_unfolded_seg_tokens_start_as_the_tokens_of_uniform_patch_groups(run):
    _, model, _ = run
    model.eval()
    unfolded = train.unfold_seg_tokens(model).eval()
    assert unfolded.config.seg_downsample_ratio == 1.0
    before, after = model.state_dict(), unfolded.state_dict()
    key = "seg_projector.model.0.weight"
    assert all(torch.equal(before[k], after[k]) for k in before if k != key)
    assert after[key].shape == (before[key].shape[0], before[key].shape[1] // 4)
    # SAM states whose 2 x 2 patch groups are uniform: every unfolded token is its group's folded token
    states = torch.randn(1, 8, 8, model.config.sam["hidden_size"]).repeat_interleave(2, 1).repeat_interleave(2, 2)
    with torch.no_grad():
        folded = model.seg_projector(states).reshape(1, 8, 8, -1)
        fine = unfolded.seg_projector(states).reshape(1, 16, 16, -1)
    assert torch.allclose(fine, folded.repeat_interleave(2, 1).repeat_interleave(2, 2), atol=1e-5)
    with torch.no_grad():  # and the LLM gets one token per SAM patch, the region sampler a 16 x 16 map
        side = unfolded.config.siglip_processor["size"]
        enc = unfolded.encode_images(torch.zeros(1, 3, side, side), torch.zeros(1, 3, 128, 128))
    assert enc.seg_tokens.shape[1] == 256 and enc.image(0).seg_map.shape[:2] == (16, 16)


def _without(model: XSamModel, prefix: str, **plain_config) -> XSamModel:
    """`model` without the part whose weights sit under `prefix` (its config switched off)."""
    plain = XSamModel(XSamConfig.from_dict({**model.config.to_dict(), **plain_config})).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith(prefix)})
    return plain


def test_a_mask_refiner_starts_as_a_plain_upsample_of_the_mask_features(run):
    """A warm start that adds the refiner keeps every weight and, until trained, gives the old mask
    features bilinearly upsampled to twice the grid; the image tokens do not change."""
    _, model, _ = run
    plain = _without(model, "segmentor.refiner.", mask_refiner=0)
    grown = train.grow(plain, "segmentor.refiner.", mask_refiner=8).eval()
    assert grown.config.mask_refiner == 8
    assert all(torch.equal(v, grown.state_dict()[k]) for k, v in plain.state_dict().items())
    torch.manual_seed(0)
    siglip, sam = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        before, after = plain.encode_images(siglip, sam), grown.encode_images(siglip, sam)
    old = before.pixels.mask_features
    assert after.pixels.mask_features.shape[-2:] == (2 * old.shape[-2], 2 * old.shape[-1])
    upsampled = torch.nn.functional.interpolate(old, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(after.pixels.mask_features, upsampled, atol=1e-5)
    assert torch.equal(after.image_tokens, before.image_tokens)


def test_value_positions_start_as_a_no_op_the_loss_reaches(run):
    """A warm start that adds the decoder's value positions answers exactly as before, and the loss
    reaches every level's new map (zero weights, but not a dead end)."""
    _, model, _ = run
    plain = _without(model, "segmentor.value_positions.", value_positions=False)
    grown = train.grow(plain, "segmentor.value_positions.", value_positions=True).eval()
    torch.manual_seed(0)
    siglip, sam = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 128, 128)
    dim = model.config.mask2former["hidden_dim"]
    cond, seg = torch.randn(1, 3, dim), torch.randn(1, 1, dim)
    with torch.no_grad():
        before = plain.decode_masks(plain.encode_images(siglip, sam), cond, seg)
        after = grown.decode_masks(grown.encode_images(siglip, sam), cond, seg)
    assert torch.equal(after.class_logits, before.class_logits)
    assert all(torch.equal(a, b) for a, b in zip(after.mask_logits_lowres, before.mask_logits_lowres))
    grown.decode_masks(grown.encode_images(siglip, sam), cond, seg).last_hidden.square().sum().backward()
    maps = grown.segmentor.value_positions
    assert all(m.weight.grad.abs().sum() > 0 for m in maps)


def test_phrase_words_start_as_a_no_op_and_part_words_the_llm_merged(run):
    """A warm start that adds the phrase-word vectors gives the same conditions; the loss reaches the
    vectors of the phrase's words; once trained, two phrases whose last-layer states are equal
    ("leftmost" and "rightmost" in the shipped run 18) get different conditions through their words."""
    _, model, tokenizer = run
    grown = train.grow(model, "phrase_words.", phrase_words=True).eval()
    p, q = model.config.special_token_ids["<p>"], model.config.special_token_ids["</p>"]
    left, right = ([p, *tokenizer.encode(f"the {w} shape", add_special_tokens=False), q, -200]
                   for w in ("leftmost", "rightmost"))
    phrase = [0] * (len(left) - 1) + [-1]  # the image slot after the span conditions nothing
    hidden = torch.randn(len(left), model.config.llm_hidden, requires_grad=True)
    assert torch.equal(grown.phrase_conditions(hidden, left, phrase), model.phrase_conditions(hidden, left, phrase))
    grown.phrase_conditions(hidden, left, phrase).square().sum().backward()
    reached = grown.phrase_words.weight.grad.abs().sum(-1).nonzero().flatten().tolist()
    assert reached == sorted(left[:-1])  # the span's words, not the image slot nor any other word
    torch.nn.init.normal_(grown.phrase_words.weight)
    with torch.no_grad():
        a, b = grown.phrase_conditions(hidden, left, phrase), grown.phrase_conditions(hidden, right, phrase)
    vectors = grown.phrase_words.weight
    assert torch.allclose(a - b, vectors[left[2]] - vectors[right[2]], atol=1e-5)  # a sum: the word's whole vector


def test_selection_counts_every_query_on_the_target_and_only_those():
    """Queries 0 and 1 both cover the target (the decoder proposes a thing more than once), query 2
    covers something else; query 0 is the matched one. The loss is the log-share of the queries on the
    target, so query 1 winning costs less than query 2 winning, and a quarter of what counting only
    the matched query would charge."""
    target = torch.zeros(1, 8, 8)
    target[0, :4, :4] = 1
    masks = torch.full((1, 3, 8, 8), -1.0)
    masks[0, 0, :4, :4] = masks[0, 1, :4, :3] = masks[0, 2, 4:, 4:] = 1.0
    indices = [(torch.tensor([0]), torch.tensor([0]))]

    def loss(condition_logits):  # [Q] logit of the condition per query; the background's stays 0
        logits = torch.stack([torch.tensor(condition_logits), torch.zeros(3)], -1)[None]
        return _selection_loss(logits, masks, [target], [torch.tensor([0])], indices, [True]).item()

    logp = torch.tensor([0.0, 5.0, 0.0]).sigmoid().log()
    assert loss([0.0, 5.0, 0.0]) == pytest.approx((logp.logsumexp(0) - logp[:2].logsumexp(0)).item())
    assert loss([0.0, 5.0, 0.0]) < loss([0.0, 0.0, 5.0])
    assert loss([0.0, 5.0, 0.0]) < (logp.logsumexp(0) - logp[0]).item() / 4  # the matched query alone: 1.38


def test_the_hole_term_charges_masks_in_holes_and_on_what_shows_through():
    """A ring's hole, and the middle of a square where a thing on top cuts into it, are cells the
    target encloses without covering: its query's mask must be off there. A star seen through the
    ring's hole must be on there under its own query. Nothing else is charged: not the rest of a
    target or of the image, and not an unmatched query."""
    ring = torch.from_numpy(draw_shape("ring", (32, 32), 24, 0.0, (64, 64)))
    star = torch.zeros(64, 64, dtype=torch.bool)
    star[26:38, 26:38] = True  # seen through the ring's hole
    square = torch.zeros(1, 64, 64, dtype=torch.bool)  # in a second image
    square[0, 8:56, 8:56] = True
    square[0, 24:40, 24:40] = False  # a thing on top
    holes = [hole_cells(torch.stack([ring, star]), (32, 32)), hole_cells(square, (32, 32))]
    (cells, charged), (square_cells, square_charged) = holes
    hole = torch.from_numpy(draw_shape("circle", (16, 16), RING_HOLE * 12, 0.0, (32, 32)))
    assert (charged[0] ^ hole).sum() <= 0.1 * hole.sum()  # the hole, to the grid's resampling
    assert charged[1].equal(cells[1]) and cells[1].sum() == 36  # all of the star lies in the hole
    assert square_charged.sum() == 64 and square_charged[0, 12:20, 12:20].all()
    assert not square_cells[0, 12:20, 12:20].any()
    indices = [(torch.tensor([1, 3]), torch.tensor([0, 1])), (torch.tensor([2]), torch.tensor([0]))]
    right = torch.stack([torch.where(cells, 20.0, -20.0)[[0, 0, 0, 1]],  # query q's mask is its target's
                         torch.where(square_cells, 20.0, -20.0)[[0, 0, 0, 0]]])
    assert _hole_loss(right, holes, indices).item() < 1e-8
    wrong = right.clone()
    wrong[0, 1][~charged[0]] = wrong[0, 3][~charged[1]] = wrong[1, 2][~square_charged[0]] = 5.0  # not charged
    wrong[0, 2] = 20.0  # an unmatched query
    assert _hole_loss(wrong, holes, indices).item() < 1e-8
    wrong[0, 1][charged[0]] = wrong[0, 3][charged[1]] = 0.0  # the ring's and the star's queries unsure there
    share = charged.sum().item() / (charged.sum() + square_charged.sum()).item()
    assert _hole_loss(wrong, holes, indices).item() == pytest.approx(np.log(2) * share, rel=1e-4)
    assert _hole_loss(wrong, [(c, torch.zeros_like(h)) for c, h in holes], indices).item() == 0.0


@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16-autocast"])
def test_a_few_steps_reduce_the_loss(bf16, tmp_path):
    model, tokenizer = train.new_run(tmp_path, seed=0)
    torch.manual_seed(0)
    (batch,) = train.make_batch(0, 0, 2, 3, model.config, tokenizer)
    heads = train.TrainingHeads(model.config)
    criterion = train.mask2former_loss(256)
    params = [*model.parameters(), *heads.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3)
    totals = []
    for _ in range(8):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            losses = train.compute_losses(model, batch, criterion, heads, model.config.special_token_ids)
        total = sum(train.LOSS_WEIGHTS[k] * v for k, v in losses.items())
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        totals.append(total.item())
    assert set(losses) == {"lm", "chat", "after", "margin", "class", "mask", "dice", "hole", "select", "attr", "place",
                           "tokens", "vtokens"}
    assert totals[-1] < 0.7 * totals[0]


def test_training_resumes_and_exports(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    args = ["--out", str(out), "--steps", "2", "--scenes", "1", "--per-scene", "2", "--minutes", "5"]
    assert train.main(args) == 0
    assert "--bf16" not in capsys.readouterr().err
    monkeypatch.setattr(train, "native_bf16", lambda: False)  # as on an AVX2-only CPU
    assert train.main(args[:3] + ["3"] + args[4:] + ["--bf16"]) == 0  # resumes at step 2, runs one more
    assert "warning: --bf16 on a CPU without AVX512-BF16 or AMX" in capsys.readouterr().err
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    assert train.main(["--out", str(out), "--export", str(tmp_path / "model")]) == 0
    # a warm start from the export takes the run's training-only heads with --init-heads
    warm = tmp_path / "warm"
    assert train.main(["--out", str(warm), "--init", str(tmp_path / "model"), "--init-heads", str(out),
                       "--steps", "0"]) == 0
    before, after = (torch.load(d / "state.pt", weights_only=False) for d in (out, warm))
    for head in ("attr", "tokens", "place"):
        assert all(torch.equal(v, after[head][k]) for k, v in before[head].items()), head
    pred = Predictor.load(str(tmp_path / "model"))
    assert pred.config.name == "xsam-tiny-shapes"
    # the export is the run's last state, in bf16, and answers as that state does
    state = torch.load(out / "state.pt", weights_only=False)
    assert state["step"] == 3
    weights = {k: v.to(torch.bfloat16).float() if v.is_floating_point() else v for k, v in state["model"].items()}
    exported = pred.model.state_dict()
    assert exported.keys() == weights.keys()
    assert all(torch.equal(exported[k], v) for k, v in weights.items()), "exported weights differ from the run's"
    trained = XSamModel(XSamConfig.load(out / "config.json"))
    trained.load_state_dict(weights)
    run_pred = Predictor(trained.eval(), AutoTokenizer.from_pretrained(out / "tokenizer"))
    scene = shapes.generate_scene(np.random.default_rng(1)).image
    ask = (scene, "chat", "How many shapes are there?")
    answer = pred.predict(*ask, max_new_tokens=4)
    assert answer.task == "chat" and answer.raw_text == run_pred.predict(*ask, max_new_tokens=4).raw_text


def test_tokens_only_trains_the_image_side_alone(tmp_path):
    """`--tokens-only` steps move SAM, SigLIP and their projectors, leave the LLM and the mask decoder
    as they were, log only the token terms, and a joint run resumes from the same folder."""
    out = tmp_path / "run"
    args = ["--out", str(out), "--steps", "2", "--scenes", "2", "--minutes", "5", "--tokens-only"]
    assert train.main(args) == 0
    before = train.new_run(tmp_path / "fresh", seed=0)[0].state_dict()  # the weights step 1 started from
    after = torch.load(out / "state.pt", weights_only=False)["model"]
    moved = {".".join(k.split(".")[:2 if k.startswith("segmentor.") else 1])
             for k in after if not torch.equal(after[k], before[k])}
    assert moved == {"visual_encoder", "visual_projector", "segmentor.encoder", "seg_projector"}, moved
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert {k for k in rows[0] if k not in ("step", "min", "loss", "grad", "lr")} == {"tokens", "vtokens"}
    assert train.main(args[:3] + ["3", "--scenes", "1", "--per-scene", "2", "--minutes", "5"]) == 0
    assert "lm" in json.loads((out / "log.jsonl").read_text().splitlines()[-1])


def test_train_only_moves_the_named_parts_and_keeps_what_the_llm_says(tmp_path):
    """`--train-only` steps move only the parameters under the named prefixes: the mask decoder learns,
    the LLM and the training heads stay bit for bit, and a resumed run keeps to the same parts."""
    out = tmp_path / "run"
    args = ["--out", str(out), "--steps", "2", "--scenes", "2", "--per-scene", "3", "--minutes", "5",
            "--train-only", "segmentor.pixel_decoder,segmentor.decoder"]
    assert train.main(args) == 0
    first = torch.load(out / "state.pt", weights_only=False)
    assert train.main(args[:3] + ["3"] + args[4:]) == 0  # resumes at step 2 with the same optimizer groups
    state = torch.load(out / "state.pt", weights_only=False)
    assert state["step"] == 3
    before = train.new_run(tmp_path / "fresh", seed=0)[0].state_dict()  # the weights step 1 started from
    moved = {".".join(k.split(".")[:2]) for k, v in state["model"].items() if not torch.equal(v, before[k])}
    assert moved == {"segmentor.pixel_decoder", "segmentor.decoder"}, moved
    for head in ("attr", "tokens", "place"):
        assert all(torch.equal(v, state[head][k]) for k, v in first[head].items()), head


def test_recomputed_attention_weights_are_the_llm_s_own(run):
    """`AttentionInputs.weights` recomputes a few rows of a layer's attention from what the fast kernel
    was given: they must be the weights eager attention returns for the same forward."""
    _, model, _ = run
    llm = model.llm.model
    x = torch.randn(2, 12, model.config.llm["hidden_size"])
    rows, layers = [0, 5, 11], range(len(llm.layers))
    with grounding.AttentionInputs(llm, layers) as tap:
        llm(inputs_embeds=x)
    model.llm.config._attn_implementation = "eager"
    try:
        eager = llm(inputs_embeds=x, output_attentions=True).attentions
    finally:
        model.llm.config._attn_implementation = "sdpa"
    for layer in layers:
        for b in range(2):
            torch.testing.assert_close(tap.weights(layer, b, rows), eager[layer][b][:, rows], atol=1e-5, rtol=1e-4)


def test_ground_rows_are_where_a_phrase_s_words_are_predicted(run):
    _, model, tokenizer = run
    ids = tokenizer.encode("<p>a large blue star</p> and <p>a small red ring</p>", add_special_tokens=False)
    rows = grounding.phrase_rows(ids, model.config.special_token_ids["<p>"])
    assert [(tokenizer.convert_ids_to_tokens(ids[r + 1]), n) for r, n in rows] == [
        ("large", 0), ("blue", 0), ("star", 0), ("small", 1), ("red", 1), ("ring", 1)]
    mask = torch.zeros(128, 128)
    mask[:24, 64:] = 1  # cells of 8 px: rows 0-2 fully, 64 px from the left
    cells = grounding.covered_tokens(mask, 16).view(16, 16)
    assert cells[:3, 8:].all() and cells.sum() == 3 * 8


def test_a_slipped_caption_learns_the_truth_around_its_slip(run):
    """A slipped grounded caption says one thing's phrase wrong (never the last thing's), keeps the true
    caption's every other token and every mask target, and the LM loss does not learn the wrong words:
    what predicts them does not move the loss, what predicts the words after them does."""
    _, model, tokenizer = run
    cfg = model.config
    rng = np.random.default_rng(5)
    for _ in range(6):
        scene = shapes.generate_scene(rng, n_things=4)
        request = next(r for r in shapes.make_tasks(scene, rng, for_training=True) if r["task"] == "gcgseg")
        _, scaled = sam_pixels(Image.fromarray(scene.image), cfg.sam_processor)
        args = (scene, request, 0, scaled, cfg.sam_processor["longest_edge"], tokenizer, cfg.template_strings)
        true, said = (make_sample(*args, np.random.default_rng(0), slips=p) for p in (0.0, 1.0))
        assert true.slip is None and said.slip is not None
        k, span = said.slip
        truth, answer = true.ids[true.n_prompt:], said.ids[said.n_prompt:]
        assert 0 <= k < 3 and len(span) >= 1
        assert answer[:span.start] == truth[:span.start]
        assert answer[span.stop:] == truth[len(truth) - (len(answer) - span.stop):]
        phrases = [tokenizer.decode(answer[:j]).count("<p>") for j in (span.start, span.stop)]
        assert phrases == [k + 1, k + 1]  # the changed words lie inside phrase k
        assert said.classes == true.classes and all(torch.equal(a, b) for a, b in zip(said.masks, true.masks))

    hidden = torch.randn(1, len(said.ids), model.llm.lm_head.in_features)
    start = said.n_prompt

    def lm(change: int) -> float:
        h = hidden.clone()
        h[0, start - 1 + change] += 10
        return _lm_losses(model, h, [said], [said.ids])["lm"].item()

    base = lm(len(answer))  # a row past the answer: no change at all
    assert all(lm(j) == pytest.approx(base) for j in span)
    assert lm(span.stop) != pytest.approx(base)


def test_the_after_term_learns_only_the_words_after_a_phrase(run):
    """`after` is the cross-entropy where a caption goes on or ends: on the rows that predict the word
    after each "</p>" (",", "and", "in" ...), and on no other row."""
    _, model, tokenizer = run
    text = ("<p>a large blue star</p>, <p>a small red ring</p> and <p>a small pink cross</p> "
            "in front of <p>the wall</p>.")
    answer = tokenizer.encode(text, add_special_tokens=False)
    prompt = tokenizer.encode("describe", add_special_tokens=False)
    sample = Sample(0, "gcgseg", prompt + answer, len(prompt))
    hidden = torch.randn(1, len(sample.ids), model.llm.lm_head.in_features)
    close = model.config.special_token_ids["</p>"]
    rows = [len(prompt) + j for j, t in enumerate(answer) if t == close]
    assert tokenizer.convert_ids_to_tokens([sample.ids[r + 1] for r in rows]) == [",", "and", "in", "."]

    def after(row: int) -> float:
        h = hidden.clone()
        h[0, row] += 10
        return _lm_losses(model, h, [sample], [sample.ids])["after"].item()

    base = after(len(sample.ids) - 1)  # the last row predicts nothing in the answer
    assert all(after(r) != pytest.approx(base) for r in rows)
    assert all(after(r - 1) == pytest.approx(base) for r in rows)  # the row predicting "</p>" itself
    chat = Sample(0, "chat", prompt + tokenizer.encode("five", add_special_tokens=False), len(prompt))
    assert _lm_losses(model, hidden[:, : len(chat.ids)], [chat], [chat.ids])["after"].item() == 0.0


def test_the_margin_term_is_spent_once_every_answer_token_leads_by_the_margin(run):
    """`margin` pushes each answer token's logit ahead of its runner-up by `MARGIN_LOGITS`, and then
    stops: minimised alone, every greedy word is the answer's, by at least that lead, and the term is 0."""
    _, model, tokenizer = run
    prompt = tokenizer.encode("describe", add_special_tokens=False)
    answer = tokenizer.encode("<p>a large yellow star</p>, <p>a large orange star</p>.", add_special_tokens=False)
    sample = Sample(0, "gcgseg", prompt + answer, len(prompt))
    hidden = torch.zeros(1, len(sample.ids), model.llm.lm_head.in_features, requires_grad=True)
    assert _lm_losses(model, hidden, [sample], [sample.ids])["margin"].item() == pytest.approx(MARGIN_LOGITS)
    opt = torch.optim.Adam([hidden], lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        loss = _lm_losses(model, hidden, [sample], [sample.ids])["margin"]
        if loss.item() == 0:
            break
        loss.backward()
        opt.step()
    assert loss.item() == 0
    logits = model.llm.lm_head(hidden[0, len(prompt) - 1:-1]).detach()
    top = logits.topk(2)
    assert top.indices[:, 0].tolist() == answer
    assert (top.values[:, 0] - top.values[:, 1]).min() >= MARGIN_LOGITS


def test_the_ground_term_moves_the_head_onto_the_named_thing(tmp_path):
    model, tokenizer = train.new_run(tmp_path, seed=0)
    # step 1's two grounded captions; on the smallest things the term moves slower (steps 0-4 all fall,
    # by 15-75 % in 10 updates), so the batch is fixed, not drawn
    (batch,) = train.make_batch(1, 0, 2, 1, model.config, tokenizer, task_weights={"gcgseg": 1})
    assert [s.task for s in batch.samples] == ["gcgseg", "gcgseg"]
    heads = train.TrainingHeads(model.config)
    opt = torch.optim.AdamW(model.llm.parameters(), lr=3e-3)
    values = []
    for _ in range(6):
        losses = train.compute_losses(model, batch, train.mask2former_loss(64), heads,
                                      model.config.special_token_ids)
        opt.zero_grad()
        losses["ground"].backward()
        opt.step()
        values.append(losses["ground"].item())
    # from about -log(share of the SAM tokens the thing covers) to well under it
    assert values[-1] < 0.7 * values[0], values
