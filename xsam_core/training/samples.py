"""Training samples: shapes-world scenes and requests, prompted exactly as at inference, with their targets.

Scenes are generated on the fly (step k always sees the same scenes, so a resumed run continues the
same data stream), `LOOK_SHARE` of them in a random look (`shapes.looks`); each scene serves several
tasks per batch, so the image encoders run once for them. Every task is mixed in every batch, drawn
by `TASK_WEIGHTS` (keys: `shapes.task_key`); a scene drawn for chat gets a whole `shapes.chat_set`
(questions alike in form, unlike in answer), which is what makes an answer depend on the object named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import shapes
from ..inference.processing import canvas_shape, load_for_model, sam_mask, sam_pixels, sam_view, siglip_pixels
from ..inference.templates import apply_template, encode_prompt
from ..inference.visual_prompts import build_regions
from ..masks import union
from ..modeling.config import XSamConfig
from ..shapes.requests import SHAPE_RIDDLES
from ..tasks import TASKS
from ..tasks.base import CLASS_MASKS, ONE_MASK, PHRASE_MASKS, SIMILAR_MASKS
from ..tasks.common import Choices

CATEGORIES = list(shapes.SHAPES + shapes.STUFF)
COLOURS = list(shapes.COLOURS)
TASK_WEIGHTS = {
    "chat": 1.5, "refseg": 2.0, "reaseg": 1.5, "genseg/panoptic": 2.0, "genseg/semantic": 0.5,
    "genseg/instance": 0.5, "gcgseg": 1.5, "intseg": 1.5, "vgdseg": 1.5,
}
LOOK_SHARE = 0.5
# Elongated and re-sized images cost the most (model card: the aspect look 0.12-0.25 in every task
# but GCG, the size look up to 0.08), so they are drawn more often than the other looks.
LOOK_WEIGHTS = {look: 1.0 for look in shapes.LOOKS} | {"aspect": 3.0, "size": 2.0}
CHAT_SET = 3  # chat questions on a scene drawn for chat
CROWDED = 4  # a crowded scene (--crowded) asks for this many shapes or more
RIDDLE_SENTENCES = set(SHAPE_RIDDLES.values())
TOKEN_LABELS = len(shapes.SHAPES) + len(COLOURS)  # per SAM-canvas pixel: the shape and colour painted there
TOKEN_COVER = 0.1  # an image token's cell belongs to a thing that covers this share of it
PHRASE = re.compile(r"<p>(.*?)</p>")


@dataclass
class Sample:
    image: int  # index of its scene in the batch
    task: str
    ids: list[int]  # prompt + answer, with <image> / <region> placeholders
    n_prompt: int
    regions: list = field(default_factory=list)  # canvas masks, one per <region>
    classes: list = field(default_factory=list)  # per target: its condition index
    masks: list = field(default_factory=list)  # per target: canvas mask (float)
    cond_category: list = field(default_factory=list)  # per condition: index into CATEGORIES
    cond_colour: list = field(default_factory=list)  # per condition: index into COLOURS, -1 if none
    selectable: bool = False  # every condition has exactly one target
    slip: tuple[int, range] | None = None  # a slipped caption's phrase index, and its answer positions not learnt


def _answer(request: dict, rng: np.random.Generator) -> str:
    """The training answer: the world's for chat, else one of the task's official answers (after the
    grounded caption for grounded-caption requests)."""
    task = TASKS[request["task"]]
    if not task.answers:
        return request["answer"]
    if task.grounded_answer:
        return request["caption_grounded"] + " " + rng.choice(task.answers)
    return str(rng.choice(task.answers))


def slip_caption(answer: str, things: int, rng: np.random.Generator) -> tuple[int, str]:
    """A grounded-caption answer with one thing's phrase said wrong, and that phrase's index: any but the
    last thing's (`things` phrases name things, first in the caption) gets one of its size, colour or
    shape words changed. Teacher forcing never shows the LLM a caption gone wrong, but a generated one
    does, and then the next phrase is right only 0.53 of the time (analysis §24): trained after slips,
    later phrases go on from the scene, not from what was said. (A slip that repeated the phrase before
    went on past a thing never named: it taught captions to leave things out, analysis §25.)"""
    k = int(rng.integers(things - 1))
    spans = [m.span(1) for m in PHRASE.finditer(answer)]
    words = answer[slice(*spans[k])].split()  # "a {size} {colour} {shape}"
    i = int(rng.integers(1, 4))
    choices = (list(shapes.SIZES), COLOURS, list(shapes.SHAPES))[i - 1]
    words[i] = str(rng.choice([v for v in choices if v != words[i]]))
    return k, answer[: spans[k][0]] + " ".join(words) + answer[spans[k][1]:]


def changed_span(truth: list[int], said: list[int]) -> range:
    """The positions of `said` between its longest common prefix and suffix with `truth`."""
    head = next((i for i, (a, b) in enumerate(zip(truth, said)) if a != b), min(len(truth), len(said)))
    tail = 0
    while tail < min(len(truth), len(said)) - head and truth[-1 - tail] == said[-1 - tail]:
        tail += 1
    return range(head, len(said) - tail)


def make_sample(scene: shapes.Scene, request: dict, image: int, scaled, canvas: tuple, tokenizer, template,
                rng: np.random.Generator, slips: float = 0.0) -> Sample:
    """A request with its answer and targets, prompted exactly as at inference (same task modules); a
    grounded caption of two things or more is slipped (`slip_caption`) with probability `slips`."""
    h, w = scene.image.shape[:2]
    regions = build_regions(request["prompts"], h, w)
    spec = TASKS[request["task"]]
    question, meta = spec.prompt(request["text"], len(regions.masks), Choices(int(rng.integers(2**31))))
    prompt = encode_prompt(tokenizer, apply_template(question, template))
    text = _answer(request, rng)
    answer = tokenizer.encode(text + template["SUFFIX"], add_special_tokens=False)
    things = {t.id: t for t in scene.objects}
    slip = None
    if spec.grounded_answer and len(things) > 1 and slips and rng.random() < slips:
        k, text = slip_caption(text, len(things), rng)
        said = tokenizer.encode(text + template["SUFFIX"], add_special_tokens=False)
        slip, answer = (k, changed_span(answer, said)), said
    sample = Sample(image, shapes.task_key(request), prompt + answer, len(prompt),
                    [sam_mask(m, scaled, canvas) for m in regions.masks], slip=slip)
    stuff_masks = {i: scene.stuff[name] for name, i in scene.stuff_ids.items()}

    def mask_of(i):
        return things[i].mask if i in things else stuff_masks[i]

    def name_of(i):
        return things[i].shape if i in things else next(n for n, j in scene.stuff_ids.items() if j == i)

    def colour_of(i):
        return COLOURS.index(things[i].colour) if i in things else -1

    def add(cls: int, ids: list[int]):
        sample.classes.append(cls)
        sample.masks.append(sam_mask(union((mask_of(i) for i in ids), (h, w)), scaled, canvas).float())

    # Targets by the kind of result (a text-only task has none).
    if spec.output == ONE_MASK and "absent" in request:  # no target: every query learns "no object"
        colour, shape = request["absent"]
        sample.cond_category, sample.cond_colour = [CATEGORIES.index(shape)], [COLOURS.index(colour)]
    elif spec.output == ONE_MASK:
        target = request["targets"][0]
        add(0, [target])
        category, colour = CATEGORIES.index(name_of(target)), colour_of(target)
        if request["task"] == "reaseg":  # a sentence names no colour, and only a riddle names the kind
            category, colour = (category if request["text"] in RIDDLE_SENTENCES else -1), -1
        sample.cond_category, sample.cond_colour = [category], [colour]
        sample.selectable = True
    elif spec.output == PHRASE_MASKS:
        for j, phrase in enumerate(request["phrases"]):
            add(j, phrase["targets"])
            sample.cond_category.append(CATEGORIES.index(name_of(phrase["targets"][0])))
            sample.cond_colour.append(colour_of(phrase["targets"][0]))
        sample.selectable = True
    elif spec.output == SIMILAR_MASKS:
        for k, ids in enumerate(request["targets_per_region"]):
            for i in ids:
                add(k, [i])
            sample.cond_category.append(CATEGORIES.index(name_of(ids[0])))
            sample.cond_colour.append(-1)
    elif spec.output == CLASS_MASKS:
        classes = meta["classes"]
        by_class: dict[str, list[int]] = {}
        for i in request["targets"]:
            by_class.setdefault(name_of(i), []).append(i)
        for name, ids in by_class.items():
            cls = classes.index(name)
            if not meta["isthing"][cls]:  # a `sem:` class (all of them in semantic mode): one segment per class
                add(cls, ids)
            else:
                for i in ids:
                    add(cls, [i])
        sample.cond_category = [CATEGORIES.index(c) for c in classes]
        sample.cond_colour = [-1] * len(classes)
    return sample


@dataclass
class Batch:
    """The scenes of one step that share a SAM canvas, and their requests (`make_batch`)."""

    siglip: torch.Tensor  # [B_img, 3, s, s]
    sam: torch.Tensor  # [B_img, 3, H, W]
    samples: list
    labels: torch.Tensor  # [B_img, TOKEN_LABELS, H, W]: `canvas_labels` of each scene
    siglip_labels: torch.Tensor  # [B_img, TOKEN_LABELS, S, S]: the labels in SigLIP's frame (`siglip_frame`)

    def to(self, device) -> "Batch":
        for s in self.samples:
            s.regions = [r.to(device) for r in s.regions]
            s.masks = [m.to(device) for m in s.masks]
        return Batch(self.siglip.to(device), self.sam.to(device), self.samples, self.labels.to(device),
                     self.siglip_labels.to(device))


def canvas_labels(scene: shapes.Scene, scaled, canvas: int | tuple) -> torch.Tensor:
    """[TOKEN_LABELS, H, W] 0/1 on the SAM canvas: channel k < 6 where shape k is painted, 6 + c
    where colour c is (the targets of the training-only token-label loss)."""
    out = torch.zeros(TOKEN_LABELS, *canvas_shape(canvas))
    for t in scene.objects:
        m = sam_mask(t.mask, scaled, canvas).float()
        for channel in (shapes.SHAPES.index(t.shape), len(shapes.SHAPES) + COLOURS.index(t.colour)):
            out[channel] = torch.maximum(out[channel], m)
    return out


def siglip_frame(labels: torch.Tensor, scaled) -> torch.Tensor:
    """Labels on X-SAM's square SAM canvas (image at the top left, zero padding) moved to SigLIP's frame,
    where the image is centred in its square (`siglip_pixels`): the same square side, so a shift is enough."""
    side = labels.shape[-1]
    return torch.roll(labels, ((side - scaled[0]) // 2, (side - scaled[1]) // 2), dims=(-2, -1))


def make_batch(step: int, seed: int, scenes: int, per_scene: int, cfg: XSamConfig, tokenizer,
               task_weights: dict | None = None, chat_every_scene: bool = False,
               look_weights: dict | None = None, caption_slips: float = 0.0, crowded: float = 0.0,
               absent: float = 0.0, shape_counts: float = 0.0) -> list[Batch]:
    """Step `step`'s scenes and requests: always the same for the same (seed, step, weights), as one
    Batch per SAM canvas among them (images of one canvas encode together; a model with X-SAM's square
    view gets one). With `chat_every_scene`, every scene gets its chat set besides its `per_scene` other
    tasks (a chat sample costs only the LLM's share of a step: the image is encoded once per scene).
    `caption_slips`: the share of grounded captions trained after a slip (`make_sample`). `crowded`: the
    share of scenes drawn with CROWDED or more shapes, where counting and captions fail most (analysis §26).
    `absent`: the share of referring requests that name an object the scene does not hold
    (`shapes.absent_refseg`), so that the best query's score can say "not there" (X-SAM issue 8).
    `shape_counts`: the share of chat sets that also ask how many of two shapes there are
    (`shapes.shape_counts`), counting by shape as a way to count them all."""
    rng = np.random.default_rng([seed, step])
    template = cfg.template_strings
    longest = cfg.sam_processor["longest_edge"]
    parts: dict[tuple, list] = {}  # canvas → [(siglip, sam, labels, siglip labels, samples)] per scene
    task_weights = dict(task_weights or TASK_WEIGHTS)
    if chat_every_scene:
        task_weights.pop("chat", None)
    keys, weights = list(task_weights), np.array(list(task_weights.values()))
    for _ in range(scenes):
        # drawn only when asked, so that runs without it keep their random stream
        n_things = int(rng.integers(CROWDED, shapes.MAX_THINGS + 1)) if crowded and rng.random() < crowded else None
        scene = shapes.generate_scene(rng, n_things=n_things,
                                      look=shapes.random_look(rng, LOOK_SHARE, look_weights or LOOK_WEIGHTS))
        pil = load_for_model(scene.file or scene.image, cfg.chroma_fit, cfg.sam_processor)  # as `Predictor.view`
        pixels, scaled = sam_pixels(pil, cfg.sam_processor)
        canvas = tuple(pixels.shape[-2:])
        part = parts.setdefault(canvas, [])
        k = len(part)  # the scene's index within its canvas' Batch
        labels = canvas_labels(scene, scaled, canvas)
        square, _ = sam_view(pil.height, pil.width, {"longest_edge": longest})
        square_labels = labels if canvas == (longest, longest) else canvas_labels(scene, square, longest)
        samples = []
        part.append((siglip_pixels(pil, cfg.siglip_processor), pixels, labels, siglip_frame(square_labels, square),
                     samples))
        if not (per_scene or chat_every_scene):
            continue  # token-only batches: images and labels only (drawing requests is 13 % of such a step)
        requests = {shapes.task_key(r): [r] for r in shapes.make_tasks(scene, rng, for_training=True)}
        requests["chat"] = chat = shapes.chat_set(scene, rng, CHAT_SET)
        if absent and "refseg" in requests and rng.random() < absent:  # drawn only when asked, as above
            requests["refseg"] = [shapes.absent_refseg(scene, rng)]
        if shape_counts and rng.random() < shape_counts:  # drawn only when asked, as above
            chat += shapes.shape_counts(scene, rng)
        available = [i for i, key in enumerate(keys) if key in requests]
        p = weights[available] / weights[available].sum()
        for i in rng.choice(available, size=min(per_scene, len(available)), replace=False, p=p):
            samples += [make_sample(scene, r, k, scaled, canvas, tokenizer, template, rng, caption_slips)
                        for r in requests[keys[i]]]
        if chat_every_scene:
            samples += [make_sample(scene, r, k, scaled, canvas, tokenizer, template, rng) for r in chat]
    return [Batch(torch.cat(sig), torch.cat(sam), [s for samples in rows for s in samples], torch.stack(labels),
                  torch.stack(siglip_labels))
            for sig, sam, labels, siglip_labels, rows in (zip(*part) for part in parts.values())]
