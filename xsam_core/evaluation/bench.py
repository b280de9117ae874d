"""Benchmark: per-stage latency and peak memory, optimised vs the official pipeline's choices.

    python -m xsam_core bench [--models embedded,phi3] [--repeats 3] [--json bench.json]
                              [--device cuda] [--quantize 8bit|4bit|int8-cpu] [--scenarios cold,cached]

For each model, three scenarios, each in a fresh worker process (so that its peak memory is its
own), on the same image, request and machine:

* naive  — the official pipeline's choices: no cache, the whole prompt prefilled every time, all
           decoder predictions upsampled to the SAM canvas, every query's mask resized, SAM with
           eager attention;
* cold   — this Predictor, first request on an image;
* cached — this Predictor, a further request on the same image (another click / question).

Models: `embedded` (the shipped tiny model) and `phi3` (the full-size released Phi-3 architecture
with random bf16 weights: its speed and memory are those of the real model; the tokenizer is a
stand-in of the same prompt length, as the Phi-3 tokenizer cannot be downloaded here). Answers are
forced to the same tokens in every scenario so that decoding lengths are equal.

Printed: a table (milliseconds per stage, total, peak RSS, peak RSS above the loaded weights) and
one JSON object with every number and the ratios the targets are stated in.

Extras (`--extras`, the default; `--no-extras` to leave them out), printed first as one line: the
time to refuse an 8000×6000 PNG from its header and to draw a 4000×3000 overlay, which the tests do
not assert (a shared CPU makes timing asserts flaky). `--models ""` prints only them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import DynamicCache

from ..inference.predictor import Predictor
from ..inference.results import STAGES
from ..modeling.quantize import MODES, Int8Linear
from ..tasks.common import to_canvas, to_original

ANSWER = "Sure, it is <SEG>."


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def scene_image(size=(640, 480)) -> np.ndarray:
    """A 640×480 shapes-world scene (the official CPU measurement used 640×480 too)."""
    from .. import shapes

    rng = np.random.default_rng(7)
    return shapes.generate_scene(rng, width=size[0], height=size[1]).image


def click(image: np.ndarray, i: int) -> list[dict]:
    """The i-th request's one click: near the scene's middle, a few pixels further each time so that
    no two requests are alike."""
    h, w = image.shape[:2]
    return [{"kind": "point", "x": w // 3 + 7 * i, "y": h // 2 + 5 * i}]


def load(model: str, device: str | None = None, quantize: str | None = None):
    if model == "embedded":
        return Predictor.load(None, device=device, quantize=quantize)
    if model == "phi3":
        return phi3_random(device, quantize)
    raise ValueError(model)


def phi3_random(device: str | None = None, quantize: str | None = None):
    """The released Phi-3 X-SAM architecture, random bf16 weights, with `phi3_tokenizer`, on `device`
    (default cpu), its LLM decoder optionally quantised and the rest then in the dtype `Predictor.load`
    gives it (`quantize`)."""
    from ..inference.predictor import build_model
    from ..modeling.config import preset

    cfg = preset("xsam-phi3")
    model = random_init(build_model(cfg, torch.bfloat16, "sdpa"))
    device = device or "cpu"
    if quantize:  # before .to(device): bitsandbytes quantises on the move
        from ..inference.predictor import quantized_rest_dtype
        from ..modeling.quantize import quantize_llm

        rest = quantized_rest_dtype(device, quantize, model.state_dict())
        quantize_llm(model, quantize, rest, device)
        model.to(rest)  # what stays unquantised, as Predictor.load chooses it
    return Predictor(model.to(device), phi3_tokenizer(), name="xsam-phi3 (random weights)")


def random_init(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The usual init, in place: N(0, 0.02) matrices, unit norm scales, zero biases."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.02, generator=gen)
            else:
                p.fill_(0.0 if name.endswith("bias") else 1.0)
    return model


# Llama-2's vocabulary + Phi-3's added tokens (scripts/build_phi3_tokenizer.py), where the repository is at hand
PHI3_TOKENIZER = Path(__file__).resolve().parents[2] / "tests" / "data" / "phi3-tokenizer"


def phi3_tokenizer():
    """Phi-3's tokenizer as far as it can be had offline: the repository's stand-in folder (real Llama-2 ids,
    so real prompt lengths), else `stand_in_tokenizer`; X-SAM's <SEG>, <p>, </p> added."""
    from ..modeling.checkpoint import add_xsam_tokens, load_tokenizer

    if (PHI3_TOKENIZER / "tokenizer.json").exists():
        return load_tokenizer(PHI3_TOKENIZER)
    return add_xsam_tokens(stand_in_tokenizer())


def stand_in_tokenizer():
    """The fallback stand-in for the Phi-3 tokenizer: the embedded model's tokenizer padded with filler
    tokens to Phi-3's 32,011, so that X-SAM's <SEG>, <p>, </p> get Phi-3's ids (32011-32013)."""
    from ..modeling import embedded

    tok = embedded.build_tokenizer(embedded.corpus(200))
    tok.add_tokens([f"<filler{i}>" for i in range(32011 - len(tok))])
    return tok


class OfficialCosts(Predictor):
    """The official pipeline's costs on the same model: no image or prefix cache (the whole prompt is
    prefilled every time), every decoder prediction upsampled to the SAM canvas and every query's mask
    resized to the original image, and SAM's eager attention with its fp32 softmax (X-SAM builds SAM
    with attn_implementation="eager")."""

    def __init__(self, pred: Predictor):
        super().__init__(pred.model, pred.tokenizer, pred.name)
        from transformers.models.sam.modeling_sam import SamVisionAttention

        for layer in self.model.segmentor.encoder.layers:
            layer.attn.__class__ = SamVisionAttention  # same parameters, the eager forward
        self.model.segmentor.register_forward_hook(self._upsample_everything)
        self._sizes = None

    def _image_entry(self, img, key, timings):
        self.cache.clear()
        return super()._image_entry(img, key, timings)

    def _start(self, entry, ids, timings):
        return 0, DynamicCache(), []

    def _answer(self, spec, meta, entry, ids, gen, regions, canvas_masks, img, *rest):
        self._sizes = entry.canvas, entry.scaled, (img.height, img.width)
        return super()._answer(spec, meta, entry, ids, gen, regions, canvas_masks, img, *rest)

    def _upsample_everything(self, module, args, out):
        canvas, scaled, original = self._sizes
        upsampled = [to_canvas(m, canvas) for m in out.mask_logits_lowres]
        to_original(upsampled[-1][0], scaled, original)


def worker(model: str, scenario: str, repeats: int, device: str | None = None, quantize: str | None = None) -> dict:
    torch.manual_seed(0)
    before = _rss_mb()
    pred = load(model, device, quantize)
    if scenario == "naive":
        pred = OfficialCosts(pred)
    loaded = _rss_mb()
    image = scene_image()
    clicks = [click(image, i) for i in range(repeats + 1)]
    runs = []
    if scenario == "cached":  # the image was seen before: one request to warm the caches
        pred.predict(image, "intseg", prompts=clicks[-1], force_answer=ANSWER)
    for i in range(repeats):
        if scenario == "cold":
            pred.cache.clear()
        t = time.perf_counter()
        out = pred.predict(image, "intseg", prompts=clicks[i], force_answer=ANSWER)
        runs.append({"total": (time.perf_counter() - t) * 1000, **out.timings})
    stages = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in ["total", *STAGES]}
    peak = _peak_rss_mb()
    extra = {}
    if pred.device.type == "cuda":  # the memory that matters there
        extra["cuda_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated(pred.device) / 2**20, 1)
        extra["gpu"] = torch.cuda.get_device_name(pred.device)
    return {"model": model, "scenario": scenario, "repeats": repeats, "ms": stages, "quantize": quantize, **extra,
            "peak_rss_mb": round(peak, 1), "weights_rss_mb": round(loaded - before, 1),
            "peak_above_loaded_mb": round(peak - loaded, 1), "device": str(pred.device),
            "dtype": str(pred.model.dtype).replace("torch.", ""), "threads": torch.get_num_threads()}


def save_phi3(folder: str) -> dict:
    """Write the random-weights Phi-3 X-SAM as a bf16 folder (what `xsam convert` writes), once."""
    from ..modeling.checkpoint import save_folder

    if not (Path(folder) / "model.safetensors").exists():
        pred = phi3_random()
        save_folder(pred.model, pred.tokenizer, folder)
    return {"folder": folder}


def load_scenario(folder: str, quantize: str | None = None) -> dict:
    """Load the saved folder as a user would (`Predictor.load`, dtype auto, `quantize`): time and peak RSS
    against the bytes of the weights it holds (int8 ones included)."""
    before = _rss_mb()
    t = time.perf_counter()
    pred = Predictor.load(folder, quantize=quantize)
    seconds = time.perf_counter() - t
    peak = _peak_rss_mb()  # before anything below allocates
    tensors = {p.data_ptr(): p for p in pred.model.state_dict().values()  # tied weights once
               if isinstance(p, torch.Tensor)}.values()  # (an int8 layer also lists its packing's dtype)
    int8 = sum(m.in_features * m.out_features for m in pred.model.modules() if isinstance(m, Int8Linear))
    weights_mb = (sum(p.numel() * p.element_size() for p in tensors) + int8) / 2**20  # int8: a byte a weight
    return {"model": "phi3", "scenario": "load", "load_s": round(seconds, 1), "weights_mb": round(weights_mb),
            "peak_rss_mb": round(peak), "rss_before_mb": round(before),
            "peak_over_weights": round(peak / weights_mb, 3), "dtype": str(pred.model.dtype).replace("torch.", ""),
            "quantize": quantize}


def run_worker(model: str, scenario: str, repeats: int, device: str | None = None, quantize: str | None = None) -> dict:
    cmd = [sys.executable, "-m", "xsam_core", "bench", "--worker", model, scenario, "--repeats", str(repeats)]
    cmd += ["--device", device] if device else []
    cmd += ["--quantize", quantize] if quantize else []
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(results: list[dict]) -> str:
    cols = ["total", *STAGES]
    head = f"{'model':10s} {'scenario':8s} " + " ".join(f"{c[:9]:>9s}" for c in cols) + "   peak MB  work MB"
    lines = [head, "-" * len(head)]
    for r in results:
        ms = " ".join(f"{r['ms'][c]:9.1f}" for c in cols)
        mem = f"{r['peak_rss_mb']:9.0f} {r['peak_above_loaded_mb']:8.0f}"
        lines.append(f"{r['model']:10s} {r['scenario']:8s} {ms} {mem}")
    return "\n".join(lines)


def ratios(results: list[dict]) -> dict:
    out = {}
    for model in {r["model"] for r in results}:
        by = {r["scenario"]: r for r in results if r["model"] == model}
        if {"naive", "cold", "cached"} <= set(by):
            out[model] = {
                "cached_over_cold_time": round(by["cached"]["ms"]["total"] / by["cold"]["ms"]["total"], 3),
                "naive_over_cold_time": round(by["naive"]["ms"]["total"] / by["cold"]["ms"]["total"], 3),
                "cold_over_naive_peak_rss": round(by["cold"]["peak_rss_mb"] / by["naive"]["peak_rss_mb"], 3),
                "cold_over_naive_working_memory": round(
                    by["cold"]["peak_above_loaded_mb"] / max(by["naive"]["peak_above_loaded_mb"], 1e-9), 3),
            }
    return out


# --- extras: timings that tests must not assert (a shared CPU makes them flaky) ----------------------

def png_header(w: int, h: int) -> bytes:
    """A PNG that only claims its size, without pixel data: all a huge upload shows before decoding."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def refusal_and_render_timings(render_size=(4000, 3000), repeats: int = 3) -> dict:
    """Milliseconds (median of `repeats`): refusing an 8000×6000 PNG from its header (the image
    reading every request starts with), and drawing the overlay of two masks and a visual prompt on a
    `render_size` (w, h) image."""
    from PIL import Image

    from ..inference.processing import ImageError, load_image
    from ..inference.render import overlay
    from ..inference.results import Prediction
    from ..tasks.common import Segment

    def median_ms(fn) -> float:
        runs = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            runs.append((time.perf_counter() - t) * 1000)
        return round(statistics.median(runs), 2)

    header = png_header(8000, 6000)

    def refuse():
        try:
            load_image(header)
        except ImageError:
            return
        raise RuntimeError("an 8000×6000 image was not refused")

    w, h = render_size

    def box(y0, y1, x0, x1) -> np.ndarray:  # fractions of the image
        m = np.zeros((h, w), bool)
        m[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)] = True
        return m

    image = Image.new("RGB", (w, h), (100, 100, 100))
    pred = Prediction(task="vgdseg", text="", image_size=(h, w), region_names=["A"],
                      segments=[Segment(box(0, 0.5, 0, 0.5), "prompt A", 0.9, 0),
                                Segment(box(0.33, 0.97, 0.37, 0.97), "prompt A", 0.8, 0)],
                      regions=[box(0.03, 0.13, 0.03, 0.15)])
    return {"refuse_48mp_header_ms": median_ms(refuse), "overlay_ms": median_ms(lambda: overlay(image, pred)),
            "overlay_size": [w, h], "repeats": repeats}


def extras_line(t: dict) -> str:
    w, h = t["overlay_size"]
    return (f"extras (median of {t['repeats']}): refuse a 48-MP PNG header {t['refuse_48mp_header_ms']:.2f} ms, "
            f"overlay on {w}×{h} {t['overlay_ms']:.1f} ms")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="xsam bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="embedded,phi3")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--extras", action=argparse.BooleanOptionalAction, default=True,
                    help="first time refusing a 48-MP image and drawing a 12-MP overlay (timings the tests leave out)")
    ap.add_argument("--load", metavar="DIR", help="also the load scenario: the full-size Phi-3 (random bf16 "
                    "weights, written to DIR once, 9.3 GB) loaded in a fresh process: seconds and peak RSS")
    ap.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda when available, as Predictor.load)")
    ap.add_argument("--quantize", choices=MODES, help="LLM decoder weights (see xsam_core/modeling/quantize.py)")
    ap.add_argument("--scenarios", default="naive,cold,cached", help="a subset of naive,cold,cached")
    ap.add_argument("--worker", nargs=2, metavar=("MODEL", "SCENARIO"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        model, scenario = args.worker
        if scenario in ("save", "load"):  # MODEL is the folder
            print(json.dumps(save_phi3(model) if scenario == "save" else load_scenario(model, args.quantize)))
        else:
            print(json.dumps(worker(model, scenario, args.repeats, args.device, args.quantize)))
        return 0
    if args.load:
        print("# phi3 save, load ...", file=sys.stderr, flush=True)
        run_worker(args.load, "save", 1)
        print(json.dumps(run_worker(args.load, "load", 1, quantize=args.quantize)), flush=True)
    if args.extras:
        print(extras_line(refusal_and_render_timings()), flush=True)
    if not args.models:  # --models "": the extras only
        return 0
    results = []
    for model in args.models.split(","):
        repeats = args.repeats if model == "embedded" else 1
        for scenario in args.scenarios.split(","):
            print(f"# {model} {scenario} ...", file=sys.stderr, flush=True)
            results.append(run_worker(model, scenario, repeats, args.device, args.quantize))
    print(table(results))
    summary = {"results": results, "ratios": ratios(results)}
    print(json.dumps(summary))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0

