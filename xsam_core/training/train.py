"""Train the embedded X-SAM on the shapes world: X-SAM's unified co-training on a laptop.

    python -m xsam_core train --out runs/tiny --minutes 90            # start, or resume the same run
    python -m xsam_core train --out runs/tiny --export checkpoints/xsam-tiny-shapes

One model, every task mixed in every batch (chat, referring, reasoning, generic panoptic /
semantic / instance, grounded caption, interactive, visual-grounded). Scenes are generated on the
fly (step k always sees the same scenes, so a resumed run continues the same data stream); each
scene serves several tasks per batch, so the image encoders run once for them.

Losses: X-SAM's — next-token cross-entropy on the answer, Mask2Former's Hungarian-matched class
cross-entropy (no-object weight 0.1) + point-sampled mask BCE + dice on every decoder layer — and
two training-only terms that the inference model never sees (see embedded-training.md for why a
from-scratch LLM needs them):
* selection: for a condition with one target (a referring phrase, a visual prompt, a caption
  phrase), cross-entropy over the queries of that condition's log-probability, the matched query
  being right: this trains exactly the argmax over queries that inference takes;
* attributes: each condition embedding is classified (cosine classifier with an additive margin)
  into the category and colour of what it refers to, so that names and phrases cannot collapse
  onto one embedding.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from transformers import Mask2FormerConfig
from transformers.models.mask2former.modeling_mask2former import Mask2FormerLoss

from .. import shapes
from ..inference.processing import sam_mask, sam_pixels, siglip_pixels
from ..inference.templates import apply_template, encode_prompt
from ..inference.visual_prompts import build_regions
from ..masks import union
from ..modeling import embedded
from ..modeling.checkpoint import save_folder
from ..modeling.config import XSamConfig
from ..modeling.model import ImageEncoding, XSamModel, expand_ids, mark_ids, span_ids
from ..modeling.segmentor import PixelFeatures
from ..tasks import TASKS
from ..tasks.base import CLASS_MASKS, ONE_MASK, PHRASE_MASKS, SIMILAR_MASKS
from ..tasks.common import Choices

CATEGORIES = list(shapes.SHAPES + shapes.STUFF)
COLOURS = list(shapes.COLOURS)
TASK_WEIGHTS = {
    "chat": 1.5, "refseg": 2.0, "reaseg": 1.5, "genseg/panoptic": 2.0, "genseg/semantic": 0.5,
    "genseg/instance": 0.5, "gcgseg": 1.5, "intseg": 1.5, "vgdseg": 1.5,
}
LOSS_WEIGHTS = {"lm": 2.0, "class": 2.0, "mask": 5.0, "dice": 5.0, "select": 2.0, "attr": 1.0}


# --- samples --------------------------------------------------------------------------------------

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


def _answer(request: dict, rng: np.random.Generator) -> str:
    """The training answer: the world's for chat, else one of the task's official answers (after the
    grounded caption for grounded-caption requests)."""
    task = TASKS[request["task"]]
    if not task.answers:
        return request["answer"]
    if task.grounded_answer:
        return request["caption_grounded"] + " " + rng.choice(task.answers)
    return str(rng.choice(task.answers))


def make_sample(scene: shapes.Scene, request: dict, image: int, scaled, longest: int, tokenizer, template,
                rng: np.random.Generator) -> Sample:
    """A request with its answer and targets, prompted exactly as at inference (same task modules)."""
    h, w = scene.image.shape[:2]
    regions = build_regions(request["prompts"], h, w)
    spec = TASKS[request["task"]]
    question, meta = spec.prompt(request["text"], len(regions.masks), Choices(int(rng.integers(2**31))))
    prompt = encode_prompt(tokenizer, apply_template(question, template))
    answer = tokenizer.encode(_answer(request, rng) + template["SUFFIX"], add_special_tokens=False)
    sample = Sample(image, shapes.task_key(request), prompt + answer, len(prompt),
                    [sam_mask(m, scaled, longest) for m in regions.masks])
    things = {t.id: t for t in scene.objects}
    stuff_masks = {i: scene.stuff[name] for name, i in scene.stuff_ids.items()}

    def mask_of(i):
        return things[i].mask if i in things else stuff_masks[i]

    def name_of(i):
        return things[i].shape if i in things else next(n for n, j in scene.stuff_ids.items() if j == i)

    def colour_of(i):
        return COLOURS.index(things[i].colour) if i in things else -1

    def add(cls: int, ids: list[int]):
        sample.classes.append(cls)
        sample.masks.append(sam_mask(union((mask_of(i) for i in ids), (h, w)), scaled, longest).float())

    # Targets by the kind of result (a text-only task has none).
    if spec.output == ONE_MASK:
        target = request["targets"][0]
        add(0, [target])
        sample.cond_category, sample.cond_colour = [CATEGORIES.index(name_of(target))], [colour_of(target)]
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
    siglip: torch.Tensor  # [B_img, 3, s, s]
    sam: torch.Tensor  # [B_img, 3, S, S]
    samples: list

    def to(self, device) -> "Batch":
        for s in self.samples:
            s.regions = [r.to(device) for r in s.regions]
            s.masks = [m.to(device) for m in s.masks]
        return Batch(self.siglip.to(device), self.sam.to(device), self.samples)


def make_batch(step: int, seed: int, scenes: int, per_scene: int, cfg: XSamConfig, tokenizer,
               task_weights: dict | None = None) -> Batch:
    """Step `step`'s batch: always the same scenes and requests for the same (seed, step, weights)."""
    rng = np.random.default_rng([seed, step])
    template = cfg.template_strings
    longest = cfg.sam_processor["longest_edge"]
    sig, sam, samples = [], [], []
    task_weights = task_weights or TASK_WEIGHTS
    keys, weights = list(task_weights), np.array(list(task_weights.values()))
    for k in range(scenes):
        scene = shapes.generate_scene(rng)
        requests = {shapes.task_key(r): r for r in shapes.make_tasks(scene, rng)}
        pil = Image.fromarray(scene.image)
        sig.append(siglip_pixels(pil, cfg.siglip_processor))
        pixels, scaled = sam_pixels(pil, cfg.sam_processor)
        sam.append(pixels)
        available = [i for i, key in enumerate(keys) if key in requests]
        p = weights[available] / weights[available].sum()
        for i in rng.choice(available, size=min(per_scene, len(available)), replace=False, p=p):
            samples.append(make_sample(scene, requests[keys[i]], k, scaled, longest, tokenizer, template, rng))
    return Batch(torch.cat(sig), torch.cat(sam), samples)


# --- losses ---------------------------------------------------------------------------------------

class AttributeHead(nn.Module):
    """Training-only cosine classifiers with an additive margin (CosFace) on condition embeddings."""

    def __init__(self, dim: int, scale: float = 16.0, margin: float = 0.2):
        super().__init__()
        self.category = nn.Parameter(torch.randn(len(CATEGORIES), dim) * 0.02)
        self.colour = nn.Parameter(torch.randn(len(COLOURS), dim) * 0.02)
        self.scale, self.margin = scale, margin

    def loss(self, conds: torch.Tensor, category: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
        total = conds.new_zeros(())
        for table, target in ((self.category, category), (self.colour, colour)):
            keep = target >= 0
            if keep.any():
                cos = F.normalize(conds[keep], dim=-1) @ F.normalize(table, dim=-1).T
                cos = cos - self.margin * F.one_hot(target[keep], len(table))
                total = total + F.cross_entropy(self.scale * cos, target[keep])
        return total


def _mask2former_loss(num_points: int) -> Mask2FormerLoss:
    """HF's matcher and point-sampled mask losses (its class loss assumes a fixed label count)."""
    cfg = Mask2FormerConfig(num_labels=1, train_num_points=num_points, oversample_ratio=3.0,
                            importance_sample_ratio=0.75, class_weight=LOSS_WEIGHTS["class"],
                            mask_weight=LOSS_WEIGHTS["mask"], dice_weight=LOSS_WEIGHTS["dice"])
    return Mask2FormerLoss(cfg, weight_dict={})


def _class_loss(logits: torch.Tensor, classes: list, indices, no_object_weight: float = 0.1):
    b, q, k = logits.shape
    target = torch.full((b, q), k - 1, dtype=torch.long, device=logits.device)  # the background column is last
    for i, (src, tgt) in enumerate(indices):
        target[i, src] = classes[i][tgt]
    weight = torch.ones(k, device=logits.device)
    weight[-1] = no_object_weight
    return F.cross_entropy(logits.transpose(1, 2), target, weight=weight)


def _selection_loss(logits: torch.Tensor, classes: list, indices, selectable: list) -> torch.Tensor:
    """For conditions with a single target: the matched query must win the argmax over queries."""
    terms = []
    logp = logits.log_softmax(-1)  # [B, Q, K]
    for i, (src, tgt) in enumerate(indices):
        if not selectable[i]:
            continue
        for query, t in zip(src.tolist(), tgt.tolist()):
            scores = logp[i, :, classes[i][t]]
            terms.append(torch.logsumexp(scores, 0) - scores[query])
    return torch.stack(terms).mean() if terms else logits.new_zeros(())


def compute_losses(model: XSamModel, batch: Batch, criterion: Mask2FormerLoss, attr: AttributeHead,
                   special: dict) -> dict[str, torch.Tensor]:
    cfg = model.config
    n_sam = len(model.segmentor.encoder.layers)
    visual = model.visual_projector(model.siglip_features(batch.siglip))
    states = model.segmentor.encode(batch.sam, n_sam)
    seg_tokens = model.seg_projector(states[n_sam + 1 + cfg.visual_select_layer])
    pixels = model.segmentor.pixel_features(model.seg_connector([states[i] for i in cfg.connector_layers]))
    image_tokens = torch.cat([visual, seg_tokens], dim=1)
    side = int(round(seg_tokens.shape[1] ** 0.5))

    # language side: one right-padded batch (causal attention never sees the padding)
    embeds, expanded = [], []
    for s in batch.samples:
        enc = ImageEncoding(image_tokens[s.image : s.image + 1], seg_tokens[s.image].view(side, side, -1), None)
        regions = model.region_features(enc, torch.stack(s.regions)) if s.regions else None
        embeds.append(model.embed(s.ids, enc, regions)[0])
        expanded.append(expand_ids(s.ids, image_tokens.shape[1]))
    length = max(e.shape[0] for e in embeds)
    x = torch.stack([F.pad(e, (0, 0, 0, length - e.shape[0])) for e in embeds])
    hidden = model.llm.model(inputs_embeds=x).last_hidden_state
    losses = {"lm": _lm_loss(model, hidden, batch.samples, expanded)}

    proj = model.llm_projector(hidden)
    seg_batch, conds_all, cats, cols = [], [], [], []
    for b, (s, ids) in enumerate(zip(batch.samples, expanded)):
        if not s.masks:
            continue
        cond_ids = torch.tensor(span_ids(ids, special["<p>"], special["</p>"]), device=proj.device)
        seg_pos = [i for i, m in enumerate(mark_ids(ids, special["<SEG>"])) if m >= 0]
        conds = torch.stack([proj[b, : len(ids)][cond_ids == k].mean(0) for k in range(int(cond_ids.max()) + 1)])
        seg_batch.append((s, conds, proj[b, seg_pos[0]]))
        conds_all.append(conds)
        cats += s.cond_category
        cols += s.cond_colour
    if seg_batch:
        losses.update(_segmentation_losses(model, pixels, seg_batch, criterion))
        device = proj.device
        losses["attr"] = attr.loss(torch.cat(conds_all), torch.tensor(cats, device=device),
                                   torch.tensor(cols, device=device))
    return losses


def _lm_loss(model, hidden, samples, expanded) -> torch.Tensor:
    rows, targets = [], []
    for b, (s, ids) in enumerate(zip(samples, expanded)):
        start = len(ids) - (len(s.ids) - s.n_prompt)  # first answer position in the expanded sequence
        rows.append(hidden[b, start - 1 : len(ids) - 1])
        targets.append(torch.tensor(ids[start:], device=hidden.device))
    logits = model.llm.lm_head(torch.cat(rows))
    return F.cross_entropy(logits, torch.cat(targets))


def _segmentation_losses(model, pixels: PixelFeatures, seg_batch, criterion) -> dict[str, torch.Tensor]:
    samples = [s for s, _, _ in seg_batch]
    k_max = max(c.shape[0] for _, c, _ in seg_batch) + 1
    d = model.config.mask_dim
    bg = model.bg_embeds.weight[0]
    device = bg.device
    masks_in = torch.zeros(len(seg_batch), k_max, device=device)
    rows = []
    for i, (_, conds, _) in enumerate(seg_batch):
        rows.append(torch.cat([conds, torch.zeros(k_max - 1 - conds.shape[0], d, device=device), bg[None]]))
        masks_in[i, : conds.shape[0]] = 1
        masks_in[i, -1] = 1
    cond_in = torch.stack(rows)
    seg_in = torch.stack([seg for _, _, seg in seg_batch])[:, None]
    idx = torch.tensor([s.image for s in samples], device=device)
    feats = PixelFeatures(pixels.mask_features[idx], [m[idx] for m in pixels.multi_scale_features])
    out = model.segmentor(feats, cond_in, seg_in, masks_in)
    classes = [torch.tensor(s.classes, device=device) for s in samples]
    mask_labels = [torch.stack(s.masks) for s in samples]
    num_masks = float(sum(len(c) for c in classes))
    totals = {"class": 0.0, "mask": 0.0, "dice": 0.0}
    for layer, (hidden, mask_logits) in enumerate(zip(out.hidden, out.mask_logits_lowres)):
        logits = model.segmentor.class_logits(hidden.transpose(0, 1), cond_in, masks_in)
        with torch.no_grad():
            indices = criterion.matcher(mask_logits, logits, mask_labels, classes)
        totals["class"] = totals["class"] + _class_loss(logits, classes, indices)
        m = criterion.loss_masks(mask_logits, mask_labels, indices, num_masks)
        totals["mask"] = totals["mask"] + m["loss_mask"]
        totals["dice"] = totals["dice"] + m["loss_dice"]
        if layer == len(out.hidden) - 1:
            totals["select"] = _selection_loss(logits, classes, indices, [s.selectable for s in samples])
    return totals


# --- the loop -------------------------------------------------------------------------------------

def new_run(out: Path, seed: int) -> tuple[XSamModel, object]:
    tokenizer = embedded.build_tokenizer(embedded.corpus())
    special = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<SEG>", "<p>", "</p>")}
    cfg = embedded.embedded_config(len(tokenizer), special)
    torch.manual_seed(seed)
    model = XSamModel(cfg)
    (out / "tokenizer").mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out / "tokenizer")
    cfg.save(out / "config.json")
    return model, tokenizer


def schedule(step: int, progress: float, warmup: int, floor: float = 0.1) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to `floor` of the peak rate as
    `progress` (the fraction of the run's budget spent) goes from 0 to 1."""
    if step < warmup:
        return (step + 1) / warmup
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train(args) -> None:
    out = Path(args.out)
    state_file = out / "state.pt"
    torch.set_num_threads(args.threads)
    if state_file.exists():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(out / "tokenizer")
        model = XSamModel(XSamConfig.load(out / "config.json"))
    else:
        model, tokenizer = new_run(out, args.seed)
    special = model.config.special_token_ids
    attr = AttributeHead(model.config.mask_dim)
    model.to(args.device)
    attr.to(args.device)
    params = list(model.parameters()) + list(attr.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05)
    step, elapsed = 0, 0.0
    if state_file.exists():
        state = torch.load(state_file, weights_only=False, map_location=args.device)
        model.load_state_dict(state["model"])
        attr.load_state_dict(state["attr"])
        opt.load_state_dict(state["optimizer"])
        step, elapsed = state["step"], state["elapsed"]
        print(f"resumed {out} at step {step} ({elapsed / 60:.1f} training min)", file=sys.stderr)
    criterion = _mask2former_loss(args.points)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    log = (out / "log.jsonl").open("a")
    from tqdm import tqdm

    bar = tqdm(total=args.steps, initial=step, desc="train", file=sys.stderr, dynamic_ncols=True)
    model.train()
    last_save = time.perf_counter()
    while step < args.steps and elapsed < args.minutes * 60 and not stop["now"]:
        t0 = time.perf_counter()
        batch = make_batch(step, args.seed, args.scenes, args.per_scene, model.config, tokenizer,
                           args.weights).to(args.device)
        progress = max(step / args.steps, elapsed / (args.minutes * 60))  # whichever budget ends first
        for group in opt.param_groups:
            group["lr"] = args.lr * schedule(step, progress, args.warmup)
        losses = compute_losses(model, batch, criterion, attr, special)
        total = sum(LOSS_WEIGHTS[k] * v for k, v in losses.items())
        opt.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        step += 1
        elapsed += time.perf_counter() - t0
        record = {"step": step, "min": round(elapsed / 60, 2), "loss": round(total.item(), 4),
                  "grad": round(float(grad_norm), 2), "lr": opt.param_groups[0]["lr"],
                  **{k: round(v.item(), 4) for k, v in losses.items()}}
        log.write(json.dumps(record) + "\n")
        bar.update(1)
        bar.set_postfix(loss=f"{total.item():.2f}", lm=f"{losses['lm'].item():.2f}", min=f"{elapsed / 60:.1f}")
        if time.perf_counter() - last_save > args.save_minutes * 60:
            _save(state_file, model, attr, opt, step, elapsed)
            last_save = time.perf_counter()
        if args.eval_every and step % args.eval_every == 0:
            _eval(model, tokenizer, out, args, step, log)
    _save(state_file, model, attr, opt, step, elapsed)
    log.close()


def _save(path: Path, model, attr, opt, step: int, elapsed: float) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "attr": attr.state_dict(), "optimizer": opt.state_dict(),
                "step": step, "elapsed": elapsed}, tmp)
    tmp.replace(path)  # atomic: an interrupted save never corrupts the last state


def _eval(model, tokenizer, out: Path, args, step: int, log) -> None:
    from ..evaluation.evaluate import evaluate
    from ..inference.predictor import Predictor

    heldout = out / "heldout"
    if not (heldout / "annotations.json").exists():
        shapes.write_dataset(heldout, args.eval_scenes, seed=args.seed + 1_000_003)
    model.eval()
    results = evaluate(Predictor(model, tokenizer, cache_bytes=0), heldout, limit=args.eval_scenes)
    model.train()
    summary = {k: {m: round(v, 4) for m, v in r.items() if isinstance(v, float)} for k, r in results.items()}
    log.write(json.dumps({"step": step, "eval": summary}) + "\n")
    log.flush()
    print(json.dumps({"step": step, "eval": summary}), file=sys.stderr)


def export(run: Path, dest: Path) -> None:
    from transformers import AutoTokenizer

    model = XSamModel(XSamConfig.load(run / "config.json"))
    state = torch.load(run / "state.pt", weights_only=False, map_location="cpu")
    model.load_state_dict(state["model"])
    tokenizer = AutoTokenizer.from_pretrained(run / "tokenizer")
    save_folder(model, tokenizer, dest, dtype=torch.bfloat16,  # 15 MB instead of 31: the 30 MB budget
                extra={"steps": state["step"], "training_minutes": round(state["elapsed"] / 60, 1)})
    print(f"exported step {state['step']} ({state['elapsed'] / 60:.1f} min) to {dest}")


def _task_weights(text: str) -> dict:
    weights = dict(TASK_WEIGHTS)
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in weights:
            raise argparse.ArgumentTypeError(f"unknown task {key!r}; tasks: {', '.join(weights)}")
        weights[key] = float(value)
    return weights


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="xsam train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="run folder (state, log, tokenizer); an existing one resumes")
    ap.add_argument("--export", help="write the run's model as a self-contained folder here and exit")
    ap.add_argument("--steps", type=int, default=100_000, help="stop after this many steps")
    ap.add_argument("--minutes", type=float, default=90.0,
                    help="stop after this much training time; the learning rate decays over whichever "
                         "budget (steps or minutes) ends first")
    ap.add_argument("--scenes", type=int, default=4, help="scenes per batch")
    ap.add_argument("--per-scene", type=int, default=3, help="task samples per scene")
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--points", type=int, default=1024, help="sampled points per mask for the mask losses")
    ap.add_argument("--weights", type=_task_weights, default=dict(TASK_WEIGHTS),
                    help="task mix, e.g. chat=3,gcgseg=2 (the others keep their defaults: "
                         + ", ".join(f"{k}={v}" for k, v in TASK_WEIGHTS.items()) + ")")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (one per physical core)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cuda when available (untested here: no GPU), else cpu")
    ap.add_argument("--save-minutes", type=float, default=5.0)
    ap.add_argument("--eval-every", type=int, default=0, help="evaluate on held-out scenes every N steps")
    ap.add_argument("--eval-scenes", type=int, default=40)
    args = ap.parse_args(argv)
    if args.export:
        export(Path(args.out), Path(args.export))
        return 0
    train(args)
    return 0

