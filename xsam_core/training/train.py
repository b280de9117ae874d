"""Train the embedded X-SAM on the shapes world: X-SAM's unified co-training on a laptop.

    python -m xsam_core train --out runs/tiny --minutes 90            # start, or resume the same run
    python -m xsam_core train --out runs/more --init checkpoints/xsam-tiny-shapes   # warm start
    python -m xsam_core train --out runs/tiny --export checkpoints/xsam-tiny-shapes

One model, every task mixed in every batch (chat, referring, reasoning, generic panoptic /
semantic / instance, grounded caption, interactive, visual-grounded): the batches are
`samples.make_batch`'s, the losses `losses.compute_losses`' (X-SAM's, a chat term, and training-only terms);
this module is the loop around them (resumable runs, learning-rate schedule, held-out evaluation,
export).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, IterableDataset

from .. import shapes
from ..inference.predictor import native_bf16
from ..modeling import embedded
from ..modeling.checkpoint import save_folder
from ..modeling.config import XSamConfig
from ..modeling.model import XSamModel
from ..modeling.modules import shuffled_grid
from .losses import LOSS_WEIGHTS, TrainingHeads, compute_losses, mask2former_loss, token_losses
from .samples import CROWDED, LOOK_WEIGHTS, TASK_WEIGHTS, make_batch

HEAD_LR_SCALE = 10.0
HEAD_KEYS = ("attr", "tokens", "place")  # the parts of TrainingHeads, under these keys in a run's state.pt
WORD_LR_SCALE = 50.0  # the phrase-word vectors' rate, against the model's (why: at `groups` in `train`)


def new_run(out: Path, seed: int, init: str | None = None, siglip_size: int | None = None,
            mask_refiner: int = 0, value_positions: bool = False,
            phrase_words: bool = False, seg_downsample: float | None = None,
            sam_canvases: list | None = None, sam_size: int | None = None) -> tuple[XSamModel, object]:
    """A fresh model (from scratch, or the weights, config and tokenizer of the model folder `init`),
    its SigLIP input resized to `siglip_size` if given, its SAM tokens unfolded to one LLM token per SAM
    patch if `seg_downsample` is 1, a mask refiner of width `mask_refiner` and the
    decoder's value positions and the phrase-word path added if asked for and it has none, and SAM
    views that keep an image's aspect (`sam_canvases`, (H, W) pixels: `processing.sam_view`) and SAM's
    square view of `sam_size` px if given; the LLM's context grows by the image tokens these add."""
    torch.manual_seed(seed)
    if init:
        from ..inference.predictor import Predictor

        start = Predictor.load(init, device="cpu", dtype="float32")
        model, tokenizer, cfg = start.model, start.tokenizer, start.model.config
    else:
        tokenizer = embedded.build_tokenizer(embedded.corpus())
        special = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<SEG>", "<p>", "</p>")}
        cfg = embedded.embedded_config(len(tokenizer), special)
        model = XSamModel(cfg)
    image_tokens = most_image_tokens(cfg)
    if siglip_size and siglip_size != cfg.vision["image_size"]:
        model = resize_siglip(model, siglip_size)
        cfg = model.config
    if seg_downsample and seg_downsample != cfg.seg_downsample_ratio:
        model = unfold_seg_tokens(model)
        cfg = model.config
    if mask_refiner and not cfg.mask_refiner:
        model = grow(model, "segmentor.refiner.", mask_refiner=mask_refiner)
        cfg = model.config
    if value_positions and not cfg.value_positions:
        model = grow(model, "segmentor.value_positions.", value_positions=True)
        cfg = model.config
    if phrase_words and not cfg.phrase_words:
        model = grow(model, "phrase_words.", phrase_words=True)
        cfg = model.config
    if sam_size and sam_size != cfg.sam_processor["longest_edge"]:
        resize_sam_view(cfg, sam_size)
    if sam_canvases:
        check_canvases(cfg, sam_canvases)
        cfg.sam_processor = {**cfg.sam_processor, "canvases": [list(c) for c in sam_canvases]}
    # the text keeps the room it had: the context grows by the image tokens that larger views add
    cfg.max_length += max(most_image_tokens(cfg) - image_tokens, 0)
    cfg.llm = {**cfg.llm, "max_position_embeddings": max(cfg.llm.get("max_position_embeddings", 0), cfg.max_length)}
    (out / "tokenizer").mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out / "tokenizer")
    cfg.save(out / "config.json")
    (out / "init.txt").write_text(f"{init or 'scratch'}\n")
    return model, tokenizer


def canvas_unit(cfg: XSamConfig) -> int:
    """The pixels every SAM canvas side is a multiple of: a whole number of SAM patches that the
    connector's coarsest map (pixel-shuffled by its smallest scale) and the LLM's pixel shuffle divide
    evenly."""
    scales = [s for s in cfg.connector_scales + [cfg.seg_downsample_ratio] if s < 1]
    return cfg.sam["patch_size"] * round(1 / min(scales, default=1))


def check_canvases(cfg: XSamConfig, canvases: list) -> None:
    """Every canvas side a multiple of `canvas_unit`."""
    unit = canvas_unit(cfg)
    bad = [c for c in canvases if any(side % unit for side in c)]
    if bad:
        raise ValueError(f"SAM canvases {bad}: every side must be a multiple of {unit} px")


def resize_sam_view(cfg: XSamConfig, size: int) -> None:
    """SAM's square view set to `size` px. No weight changes shape: SAM's absolute positions are
    resized to the patch grid when it encodes."""
    check_canvases(cfg, [[size, size]])
    cfg.sam_processor = {**cfg.sam_processor, "longest_edge": size}


def most_image_tokens(cfg: XSamConfig) -> int:
    """The most image tokens the LLM reads for one image: SigLIP's, and SAM's on the largest of its views
    (the square and each canvas, either way up)."""
    def sam_tokens(height: int, width: int) -> int:
        rows, cols = shuffled_grid(height // cfg.sam["patch_size"], width // cfg.sam["patch_size"],
                                   cfg.seg_downsample_ratio)
        return rows * cols

    views = [[cfg.sam_processor["longest_edge"]] * 2] + cfg.sam_processor.get("canvases", [])
    return (cfg.vision["image_size"] // cfg.vision["patch_size"]) ** 2 + max(sam_tokens(*v) for v in views)


def resize_siglip(model: XSamModel, size: int) -> XSamModel:
    """The same model with a SigLIP input of `size` px (same patch size, so more image tokens): every
    weight carried over, the position embeddings resized bicubically over their grid."""
    cfg = XSamConfig.from_dict({**model.config.to_dict(), "vision": {**model.config.vision, "image_size": size},
                                "siglip_processor": {**model.config.siglip_processor, "size": size}})
    resized = XSamModel(cfg)
    state = model.state_dict()
    key = "visual_encoder.embeddings.position_embedding.weight"
    old, side = state[key], size // cfg.vision["patch_size"]
    grid = old.T.reshape(1, old.shape[1], *(2 * [int(round(old.shape[0] ** 0.5))]))
    state[key] = F.interpolate(grid, size=(side, side), mode="bicubic", align_corners=False)[0].flatten(1).T
    resized.load_state_dict(state)
    return resized


def unfold_seg_tokens(model: XSamModel) -> XSamModel:
    """The same model with one SAM token per patch for the LLM (`seg_downsample_ratio` 1: a 16 x 16 map
    instead of 8 x 8 at 128 px) and every weight carried over. The projector's first layer read four
    patches side by side (the pixel shuffle's four channel blocks); the sum of its four blocks maps a
    patch to the token that a 2 x 2 group of four such patches made, so the LLM starts on familiar tokens."""
    cfg = XSamConfig.from_dict({**model.config.to_dict(), "seg_downsample_ratio": 1.0})
    unfolded = XSamModel(cfg)
    state = model.state_dict()
    key = "seg_projector.model.0.weight"
    state[key] = sum(state[key].chunk(round(1 / model.config.seg_downsample_ratio**2), dim=1))
    unfolded.load_state_dict(state)
    return unfolded


def grow(model: XSamModel, new: str, **changes) -> XSamModel:
    """The same model with the config `changes` that add a part (its weights under the key prefix `new`,
    made to start as a no-op: the mask refiner, the value positions, the phrase words); every other
    weight carried over."""
    grown = XSamModel(XSamConfig.from_dict({**model.config.to_dict(), **changes}))
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(new) for k in missing), (missing, unexpected)
    return grown


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
        model, tokenizer = new_run(out, args.seed, args.init, args.siglip_size, args.mask_refiner,
                                   args.value_positions, args.phrase_words, args.seg_downsample, args.sam_canvases,
                                   args.sam_size)
    special = model.config.special_token_ids
    heads = TrainingHeads(model.config)
    model.to(args.device)
    heads.to(args.device)
    if args.train_only:  # everything else, the LLM and its training heads included, stays bit for bit
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith(tuple(args.train_only)))
        heads.requires_grad_(False)
    params = [p for p in (*model.parameters(), *heads.parameters()) if p.requires_grad]
    # The training-only heads start from scratch in a warm start without --init-heads: a faster rate lets
    # them catch up with the model before their gradients push it around. The phrase-word vectors go
    # faster still: Adam moves a weight by about its rate whatever the gradient, their pull is noisy, and
    # at the heads' rate they reached a norm of 0.3 in 1,300 steps beside conditions of norm 1.9 (8-min
    # reasoning continuations, "leftmost" / "rightmost" conditions at cosine: 10x 0.881, 50x 0.835, 200x
    # 0.808 with the other place sentences drifting together; docs/embedded-chat-analysis.md §16).
    trained = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    words = [p for name, p in trained if name.startswith("phrase_words.")]
    slow = [p for name, p in trained if not name.startswith("phrase_words.")]
    groups = [{"params": slow, "scale": 1.0},
              {"params": [p for p in heads.parameters() if p.requires_grad], "scale": HEAD_LR_SCALE},
              {"params": words, "scale": WORD_LR_SCALE}]
    opt = torch.optim.AdamW(groups, lr=args.lr, weight_decay=0.05)
    step, elapsed = 0, 0.0
    if args.init_heads and not state_file.exists():
        _load_heads(heads, torch.load(Path(args.init_heads) / "state.pt", weights_only=False, map_location=args.device))
    if state_file.exists():
        state = torch.load(state_file, weights_only=False, map_location=args.device)
        model.load_state_dict(state["model"])
        _load_heads(heads, state)
        opt.load_state_dict(state["optimizer"])
        step, elapsed = state["step"], state["elapsed"]
        print(f"resumed {out} at step {step} ({elapsed / 60:.1f} training min)", file=sys.stderr)
    criterion = mask2former_loss(args.points)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    log = (out / "log.jsonl").open("a")
    from tqdm import tqdm

    bar = tqdm(total=args.steps, initial=step, desc="train", file=sys.stderr, dynamic_ncols=True)
    model.train()
    last_save = time.perf_counter()
    batches = iter(DataLoader(StepBatches(step, args, model.config, tokenizer), batch_size=None,
                              num_workers=args.workers, prefetch_factor=2 if args.workers else None))
    while step < args.steps and elapsed < args.minutes * 60 and not stop["now"]:
        t0 = time.perf_counter()
        parts = next(batches)  # one Batch per SAM canvas: their gradients add up, each by its share of scenes
        progress = max(step / args.steps, elapsed / (args.minutes * 60))  # whichever budget ends first
        for group in opt.param_groups:
            group["lr"] = args.lr * group["scale"] * schedule(step, progress, args.warmup)
        opt.zero_grad(set_to_none=True)
        total, logged = 0.0, {}
        for part in parts:
            part, share = part.to(args.device), part.siglip.shape[0] / args.scenes
            # bf16 autocast: weights, gradients and optimizer state stay float32; cross-entropies run in float32
            with torch.autocast(torch.device(args.device).type, dtype=torch.bfloat16, enabled=args.bf16):
                if args.tokens_only:
                    images = model.encode_images(part.siglip, part.sam, pixels=False)
                    losses = token_losses(images, part, heads.tokens)
                else:
                    losses = compute_losses(model, part, criterion, heads, special)
            loss = share * sum(args.loss_weights[k] * v for k, v in losses.items())
            if loss.requires_grad:  # with --train-only, a part of chat alone reaches nothing trained
                loss.backward()
            total += loss.item()
            for k, v in losses.items():
                logged[k] = logged.get(k, 0.0) + share * v.item()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        step += 1
        elapsed += time.perf_counter() - t0
        record = {"step": step, "min": round(elapsed / 60, 2), "loss": round(total, 4),
                  "grad": round(float(grad_norm), 2), "lr": opt.param_groups[0]["lr"],
                  **{k: round(v, 4) for k, v in logged.items()}}
        log.write(json.dumps(record) + "\n")
        bar.update(1)
        bar.set_postfix(loss=f"{total:.2f}", min=f"{elapsed / 60:.1f}")
        if time.perf_counter() - last_save > args.save_minutes * 60:
            save_state(state_file, model, opt, step, elapsed, _head_states(heads))
            last_save = time.perf_counter()
        if args.eval_every and step % args.eval_every == 0:
            _eval(model, tokenizer, out, args, step, log)
    save_state(state_file, model, opt, step, elapsed, _head_states(heads))
    log.close()


def _load_heads(heads: TrainingHeads, state: dict) -> None:
    for key in HEAD_KEYS:
        getattr(heads, key).load_state_dict(state[key])


class StepBatches(IterableDataset):
    """`make_batch` for steps start, start + 1, ...; with `--workers N` built in worker processes while
    the model trains. A batch takes about a quarter of a step on 2 CPU cores, but there a worker steals
    a core from the model (40 steps side by side: 1.45 s a step with one worker, 1.22 s inline), so it
    only pays where cores are spare, e.g. beside a GPU."""

    def __init__(self, start: int, args, cfg, tokenizer):
        self.start, self.args, self.cfg, self.tokenizer = start, args, cfg, tokenizer

    def __iter__(self):
        a = self.args
        for step in range(self.start, a.steps):
            yield make_batch(step, a.seed, a.scenes, 0 if a.tokens_only else a.per_scene, self.cfg,
                             self.tokenizer, a.weights, a.chat_every_scene and not a.tokens_only,
                             a.look_weights, a.caption_slips, a.crowded, a.absent, a.shape_counts)


def save_state(path: Path, model, opt, step: int, elapsed: float, heads: dict) -> None:
    """A run's state.pt, which `export` and resuming read: the model, the training heads' state dicts
    (`HEAD_KEYS`), the optimizer, the step and the training time."""
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), **heads, "optimizer": opt.state_dict(), "step": step,
                "elapsed": elapsed}, tmp)
    tmp.replace(path)  # atomic: an interrupted save never corrupts the last state


def _head_states(heads: TrainingHeads) -> dict:
    return {key: getattr(heads, key).state_dict() for key in HEAD_KEYS}


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


def _canvases(text: str) -> list[tuple[int, int]]:
    """An argparse type: "HxW,HxW" → [(H, W), ...]."""
    try:
        return [(int(h), int(w)) for h, w in (item.split("x") for item in text.split(",") if item)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give canvases as HxW pixels, e.g. 96x160,64x224") from None


def weights_option(defaults: dict, what: str):
    """An argparse type: "key=value,..." over `defaults` (the keys not given keep their defaults)."""
    def parse(text: str) -> dict:
        weights = dict(defaults)
        for item in filter(None, text.split(",")):
            key, _, value = item.partition("=")
            if key not in weights:
                raise argparse.ArgumentTypeError(f"unknown {what} {key!r}; {what}s: {', '.join(weights)}")
            weights[key] = float(value)
        return weights
    return parse


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="xsam train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="run folder (state, log, tokenizer); an existing one resumes")
    ap.add_argument("--export", help="write the run's model as a self-contained folder here and exit")
    ap.add_argument("--init", help="start a new run from this model folder's weights (warm start; "
                                   "ignored when the run folder resumes)")
    ap.add_argument("--init-heads", help="a new run's training-only heads (attributes, token labels, place) from this "
                                         "run folder's state, the run --init was exported from: else they start "
                                         "from scratch and their first gradients push the warm model around")
    ap.add_argument("--mask-refiner", type=int, default=0,
                    help="a new run's mask refiner width: mask logits at twice the resolution (0: none)")
    ap.add_argument("--value-positions", action="store_true",
                    help="a new run's decoder gathers sine positions with the image features (starts as a no-op)")
    ap.add_argument("--phrase-words", action="store_true",
                    help="a new run's phrase conditions add a learnt vector per word of the phrase (starts as a no-op)")
    ap.add_argument("--seg-downsample", type=float, choices=(1.0,),
                    help="1: a new run's LLM gets one token per SAM patch instead of X-SAM's one per 2 x 2 patches "
                         "(a warm start sums the projector's four input blocks)")
    ap.add_argument("--siglip-size", type=int,
                    help="a new run's SigLIP input side in px (a warm start's position embeddings are resized)")
    ap.add_argument("--sam-size", type=int,
                    help="a new run's SAM square view in px (128 in the embedded model; a multiple of 32): "
                         "small things cover more patches, and the LLM reads more SAM tokens")
    ap.add_argument("--sam-canvases", type=_canvases,
                    help="a new run's SAM views that keep an image's aspect besides the square, HxW px each "
                         "(also used transposed), e.g. 96x160,64x224: an image takes the one that enlarges it most")
    ap.add_argument("--chat-every-scene", action="store_true",
                    help="every scene gets its chat set besides its other tasks (give it again on resume)")
    ap.add_argument("--caption-slips", type=float, default=0.0,
                    help="the share of grounded captions trained after one phrase said wrong (a word changed), "
                         "its wrong word not learnt, so that a caption goes on right after a slip "
                         "(give it again on resume)")
    ap.add_argument("--crowded", type=float, default=0.0,
                    help=f"the share of scenes drawn with {CROWDED} to {shapes.MAX_THINGS} shapes, where counting "
                         "and captions fail most (give it again on resume)")
    ap.add_argument("--absent", type=float, default=0.0,
                    help="the share of referring requests that name an object the scene does not hold, trained "
                         "to score under the threshold, so that \"not there\" is said (give it again on resume)")
    ap.add_argument("--shape-counts", type=float, default=0.0,
                    help="the share of chat sets that also ask \"How many <shape> shapes are there?\" of two shapes "
                         "with different counts (give it again on resume)")
    ap.add_argument("--tokens-only", action="store_true",
                    help="train only the image encoders on the token labels (no requests, no LLM): many "
                         "more images a minute, e.g. with --scenes 32")
    ap.add_argument("--train-only", type=lambda v: [x for x in v.split(",") if x], default=[],
                    help="train only the parameters whose names start with one of these comma-separated "
                         "prefixes, e.g. segmentor.pixel_decoder,segmentor.decoder: the masks change, and what "
                         "the LLM says stays exactly as it was (give it again on resume)")
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
    ap.add_argument("--weights", type=weights_option(TASK_WEIGHTS, "task"), default=dict(TASK_WEIGHTS),
                    help="task mix, e.g. chat=3,gcgseg=2 (the others keep their defaults: "
                         + ", ".join(f"{k}={v}" for k, v in TASK_WEIGHTS.items()) + ")")
    ap.add_argument("--look-weights", type=weights_option(LOOK_WEIGHTS, "look"), default=dict(LOOK_WEIGHTS),
                    help="how often each look is drawn among the scenes drawn in a look, e.g. aspect=6 (defaults: "
                         + ", ".join(f"{k}={v}" for k, v in LOOK_WEIGHTS.items()) + ")")
    ap.add_argument("--loss-weights", type=weights_option(LOSS_WEIGHTS, "loss"), default=dict(LOSS_WEIGHTS),
                    help="loss terms' weights, e.g. chat=4 (defaults: "
                         + ", ".join(f"{k}={v}" for k, v in LOSS_WEIGHTS.items()) + ")")
    ap.add_argument("--bf16", action="store_true",
                    help="bf16 autocast for the forward pass (a GPU; CPUs with AVX512-BF16 or AMX): a joint "
                         "step's forward and backward 1.5 s -> 1.25 s on a 2-core AVX512-BF16 EPYC; never on an "
                         "AVX2-only CPU, where bf16 is emulated (2.2 s -> 45 s a step; lscpu's flags tell) "
                         "(give it again on resume)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (one per physical core)")
    ap.add_argument("--workers", type=int, default=0,
                    help="processes building the next batches (default 0: inline; more only with spare cores)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cuda when available (untested here: no GPU), else cpu")
    ap.add_argument("--save-minutes", type=float, default=5.0)
    ap.add_argument("--eval-every", type=int, default=0, help="evaluate on held-out scenes every N steps")
    ap.add_argument("--eval-scenes", type=int, default=40)
    args = ap.parse_args(argv)
    if args.export:
        export(Path(args.out), Path(args.export))
        return 0
    if args.bf16 and torch.device(args.device).type == "cpu" and not native_bf16():
        # emulated bf16 is slower, not faster: say so before a run spends its hours that way (analysis §52)
        print("warning: --bf16 on a CPU without AVX512-BF16 or AMX: bf16 is emulated there, and a step takes "
              "9-20x longer than in float32 (measured: a joint step 2.2 s -> 45 s, the mask side's alone "
              "2.0 s -> 18 s); leave --bf16 out", file=sys.stderr)
    train(args)
    return 0
