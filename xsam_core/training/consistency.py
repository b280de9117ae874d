"""Look-consistency training: the embedded model learns to encode a scene drawn in any look as it
encodes the same scene drawn plain.

    python -m xsam_core train-looks --out runs/looks --init checkpoints/xsam-tiny-shapes --minutes 40
    python -m xsam_core train --out runs/looks --export runs/looks-model    # the same run folder format

Training on the task losses with the weak looks drawn more often traded one look's cells for another's
and moved the plain scenes' answers too (analysis §29-§38). Here a frozen copy of the model, the
teacher, encodes a plain scene; the student encodes the same scene redrawn in a look
(`shapes.redraw_scene`: the same things at the same pixels, with another wall and floor, rims, noise,
blur or JPEG) and learns to give the teacher's encoding: the image tokens the LLM reads and the
pixel-decoder features the mask decoder reads. Only the image side (`IMAGE_SIDE`) trains; the LLM and
the mask decoder stay bit for bit, so whatever they do with the plain encoding they do with a look's.
A share of plain pairs (`--plain-share`) holds the plain encoding where it was.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .. import shapes
from ..inference.processing import sam_pixels, siglip_pixels
from ..modeling.config import XSamConfig
from ..modeling.model import ImageBatchEncoding, XSamModel, layers_to_run
from .train import HEAD_KEYS, new_run, save_state, schedule, weights_option

# What only the mask decoder reads (`--mask-side`): SAM's layers past the one the LLM takes its tokens
# from (`mask_side`), the connector, the pixel decoder and the refiner (which reads the image's pixels
# too). Trained alone they leave the LLM's input, and so every word the model says, bit for bit.
MASK_PATH = ("seg_connector.", "segmentor.pixel_decoder.", "segmentor.refiner.")
# The parameters that make an image's encoding: SigLIP, SAM, their projectors and the mask path.
IMAGE_SIDE = ("visual_encoder.", "visual_projector.", "segmentor.encoder.", "seg_projector.", *MASK_PATH)
LOOK_WEIGHTS = {look: 1.0 for look in shapes.SAME_PIXEL_LOOKS}
# The scenes' sizes: plain, or as the size and aspect looks draw them, so that every SAM canvas trains
# (a canvas the pairs never show is left to drift with the weights the others move).
GEOMETRIES = (None, "size", "aspect")


def make_pairs(step: int, seed: int, scenes: int, cfg: XSamConfig, plain_share: float,
               look_weights: dict) -> list[tuple[torch.Tensor, ...]]:
    """Step `step`'s pairs, always the same for the same arguments: per SAM canvas, the plain scenes'
    (SigLIP, SAM) pixels and the same scenes' pixels in a random look (plain again for `plain_share`).
    A scene's size is plain or drawn as `GEOMETRIES` says, so the pairs cover every canvas."""
    rng = np.random.default_rng([seed, step])
    names = list(look_weights)
    p = np.array([look_weights[n] for n in names])
    parts: dict[tuple, list] = {}
    for _ in range(scenes):
        scene = shapes.generate_scene(rng, look=GEOMETRIES[rng.integers(len(GEOMETRIES))])
        look = None if rng.random() < plain_share else names[rng.choice(len(names), p=p / p.sum())]
        drawn = scene.image if look is None else shapes.redraw_scene(scene, look, rng)
        views = []
        for image in (scene.image, drawn):
            pil = Image.fromarray(image)
            views += [siglip_pixels(pil, cfg.siglip_processor), sam_pixels(pil, cfg.sam_processor)[0]]
        parts.setdefault(tuple(views[1].shape[-2:]), []).append(views)
    return [tuple(torch.cat(column) for column in zip(*part)) for part in parts.values()]


def mask_side(cfg: XSamConfig) -> tuple[str, ...]:
    """The parameter prefixes only the mask decoder reads: `MASK_PATH` and SAM's layers after the hidden
    state the LLM's tokens come from (`visual_select_layer`)."""
    n_sam = cfg.sam["num_hidden_layers"]
    select = layers_to_run(cfg.visual_select_layer, n_sam)
    return (*(f"segmentor.encoder.layers.{i}." for i in range(select, n_sam)), *MASK_PATH)


def encoding_gap(student: ImageBatchEncoding, teacher: ImageBatchEncoding,
                 tokens: bool = True) -> dict[str, torch.Tensor]:
    """Mean squared differences, each relative to the teacher's variance, so that every output counts
    alike whatever its scale: SigLIP tokens, SAM tokens (unless `tokens` is False: the mask side alone
    cannot move them), mask features and the decoder's levels (one term)."""
    def gap(a, b):
        return F.mse_loss(a, b) / b.var().clamp_min(1e-8)

    s, t = student.pixels, teacher.pixels
    levels = [gap(a, b) for a, b in zip(s.multi_scale_features, t.multi_scale_features)]
    pixels = {"mask_features": gap(s.mask_features, t.mask_features), "levels": sum(levels) / len(levels)}
    if not tokens:
        return pixels
    return {"siglip": gap(student.visual_tokens, teacher.visual_tokens),
            "sam": gap(student.seg_tokens, teacher.seg_tokens), **pixels}


def load(out: Path, args) -> tuple[XSamModel, XSamModel, dict | None]:
    """(student, frozen teacher, the run's saved state or None): a new run from `args.init`, or the run
    in `out` resumed (its teacher is the model it started from, named in init.txt)."""
    state_file = out / "state.pt"
    if state_file.exists():
        init = (out / "init.txt").read_text().strip()
        student = XSamModel(XSamConfig.load(out / "config.json"))
        state = torch.load(state_file, weights_only=False, map_location="cpu")
        student.load_state_dict(state["model"])
    else:
        if not args.init:
            raise SystemExit("a new run needs --init: the model whose encodings the looks learn")
        init, state = args.init, None
        student, _ = new_run(out, args.seed, init)
    from ..inference.predictor import Predictor

    teacher = Predictor.load(init, device="cpu", dtype="float32").model
    teacher.requires_grad_(False)
    return student, teacher, state


def init_heads(init: str) -> dict:
    """The training-only heads of the model folder `init` (if it keeps them), carried into the run's
    state so that its exported model can be trained on with `train --init-heads`."""
    path = Path(init) / "state.pt"
    if not path.exists():
        return {}
    state = torch.load(path, weights_only=False, map_location="cpu")
    return {key: state[key] for key in HEAD_KEYS if key in state}


def train(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    student, teacher, state = load(out, args)
    trained = mask_side(student.config) if args.mask_side else IMAGE_SIDE
    for name, p in student.named_parameters():
        p.requires_grad_(name.startswith(trained))
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)  # decay would pull the warm weights away
    step, elapsed = 0, 0.0
    if state:
        opt.load_state_dict(state["optimizer"])
        step, elapsed = state["step"], state["elapsed"]
        print(f"resumed {out} at step {step} ({elapsed / 60:.1f} training min)", file=sys.stderr)
    heads = init_heads((out / "init.txt").read_text().strip())
    student.eval()  # inference's behaviour (no dropout); gradients flow all the same
    teacher.eval()
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    last_save = time.perf_counter()
    with (out / "log.jsonl").open("a") as log:
        while step < args.steps and elapsed < args.minutes * 60 and not stop["now"]:
            t0 = time.perf_counter()
            progress = max(step / args.steps, elapsed / (args.minutes * 60))
            for group in opt.param_groups:
                group["lr"] = args.lr * schedule(step, progress, args.warmup)
            opt.zero_grad(set_to_none=True)
            logged: dict[str, float] = {}
            for plain_siglip, plain_sam, siglip, sam in make_pairs(step, args.seed, args.scenes, student.config,
                                                                   args.plain_share, args.look_weights):
                share = siglip.shape[0] / args.scenes
                with torch.no_grad():
                    target = teacher.encode_images(plain_siglip, plain_sam)
                gaps = encoding_gap(student.encode_images(siglip, sam), target, tokens=not args.mask_side)
                (share * sum(gaps.values())).backward()
                for k, v in gaps.items():
                    logged[k] = logged.get(k, 0.0) + share * v.item()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, args.clip)
            opt.step()
            step += 1
            elapsed += time.perf_counter() - t0
            log.write(json.dumps({"step": step, "min": round(elapsed / 60, 2), "loss": round(sum(logged.values()), 5),
                                  "grad": round(float(grad_norm), 3), "lr": opt.param_groups[0]["lr"],
                                  **{k: round(v, 5) for k, v in logged.items()}}) + "\n")
            log.flush()
            if time.perf_counter() - last_save > args.save_minutes * 60:
                save_state(out / "state.pt", student, opt, step, elapsed, heads)
                last_save = time.perf_counter()
    save_state(out / "state.pt", student, opt, step, elapsed, heads)
    print(f"stopped at step {step} ({elapsed / 60:.1f} training min)", file=sys.stderr)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="xsam train-looks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="run folder; an existing one resumes")
    ap.add_argument("--init", help="the model folder to start from, which is also the teacher (a new run)")
    ap.add_argument("--steps", type=int, default=100_000, help="stop after this many steps")
    ap.add_argument("--minutes", type=float, default=40.0,
                    help="stop after this much training time; the rate decays over whichever budget ends first")
    ap.add_argument("--scenes", type=int, default=12, help="scene pairs per step")
    ap.add_argument("--plain-share", type=float, default=0.2,
                    help="the share of pairs whose second image is plain too (holds the plain encoding)")
    ap.add_argument("--look-weights", type=weights_option(LOOK_WEIGHTS, "look"), default=dict(LOOK_WEIGHTS),
                    help="how often each look is drawn, e.g. jpeg=3,outline=0 (0: never; default: all alike, "
                         + ", ".join(shapes.SAME_PIXEL_LOOKS) + ")")
    ap.add_argument("--mask-side", action="store_true",
                    help="train only what the mask decoder alone reads (SAM's last layers, the connector, the pixel "
                         "decoder, the refiner): the LLM's input, and every word, stay bit for bit")
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (one per physical core)")
    ap.add_argument("--save-minutes", type=float, default=5.0)
    args = ap.parse_args(argv)
    if min(args.look_weights.values()) < 0 or not sum(args.look_weights.values()):
        ap.error("--look-weights: no look left to draw (weights must be >= 0, one at least > 0)")
    train(args)
    return 0
