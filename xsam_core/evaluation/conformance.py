"""Verification runner: replay reference cases of the official implementation and compare.

    python -m xsam_core conformance DIR [--case NAME ...] [--atol 1e-4]

DIR is a folder in the format of the shared `xsam-ref` fixture (config.json in the fixture format,
pytorch_model.bin in an official key layout, tokenizer/, cases/<case>/{image.png, meta.json,
tensors.safetensors, vprompt_mask_*.png}). Every case is run through the real `Predictor` path
(teacher-forced with the case's answer, seeded with its seed so template choice, class shuffle and
sampler points replay the official RNG), every reference tensor is compared, then the
post-processed outputs. One line per case and tensor; the last line is `N passed, M failed`; the
exit status is non-zero on any difference above the tolerance.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from ..inference.predictor import Predictor
from ..modeling.checkpoint import load_tokenizer, load_weights, read_state_dict
from ..modeling.config import XSamConfig
from ..modeling.model import XSamModel

TASK_NAMES = {"imgconv": "chat", "img_chat": "chat"}
MODES = {"pan": "panoptic", "sem": "semantic", "ins": "instance"}


class Report:
    def __init__(self, atol: float):
        self.atol, self.passed, self.failed = atol, 0, 0

    def line(self, case: str, name: str, ok: bool, detail: str) -> None:
        self.passed += ok
        self.failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {case:18s} {name:48s} {detail}", flush=True)

    def tensor(self, case: str, name: str, ours, ref: torch.Tensor) -> None:
        if ours is None:
            return self.line(case, name, False, "not computed")
        ours = torch.as_tensor(ours).detach().cpu()
        if tuple(ours.shape) != tuple(ref.shape):
            return self.line(case, name, False, f"shape {list(ours.shape)} vs reference {list(ref.shape)}")
        diff = (ours.double() - ref.double()).abs().max().item() if ref.numel() else 0.0
        self.line(case, name, diff <= self.atol, f"max|Δ| {diff:.3g}")

    def value(self, case: str, name: str, ours, ref) -> None:
        self.line(case, name, ours == ref, "equal" if ours == ref else f"{ours!r} vs reference {ref!r}")

    def pixels(self, case: str, name: str, ours: np.ndarray, ref: torch.Tensor, allowed: int) -> None:
        ref = ref.numpy()
        if ours is None or ours.shape != ref.shape:
            return self.line(case, name, False, f"shape {None if ours is None else ours.shape} vs {ref.shape}")
        wrong = int((ours.astype(np.float64) != ref.astype(np.float64)).sum())
        self.line(case, name, wrong <= allowed, f"{wrong} pixels differ (allowed {allowed}: near-zero logits)")


def load_predictor(folder: Path) -> Predictor:
    cfg = XSamConfig.load(folder / "config.json")
    model = XSamModel(cfg, attn_implementation="eager")
    load_weights(model, read_state_dict(folder / "pytorch_model.bin"))
    return Predictor(model, load_tokenizer(folder / "tokenizer"), name=cfg.name)


def run_case(pred: Predictor, case_dir: Path, report: Report) -> None:
    case = case_dir.name
    meta = json.loads((case_dir / "meta.json").read_text())
    refs = load_file(case_dir / "tensors.safetensors")
    task = TASK_NAMES.get(meta["task_name"], meta["task_name"])
    prompts = [{"kind": "mask", "array": np.asarray(Image.open(case_dir / f).convert("L")) > 128, "prompt": str(k)}
               for k, f in enumerate(meta["vprompt_masks"])]
    trace: dict = {}
    out = pred.predict(case_dir / meta["image"], task, meta["user_prompt"], prompts, threshold=meta["threshold"],
                       seed=meta["seed"], force_answer=meta["forced_answer"], trace=trace)
    report.value(case, "prompt_text", out.info["prompt"], meta["prompt_text"])
    for name in sorted(n for n in refs if not n.startswith("post")):
        ours = trace.get(name)
        if name == "sam.neck_out" and "sam.hidden_states" in trace:
            with torch.inference_mode():
                ours = pred.model.segmentor.encoder.neck(trace["sam.hidden_states"][-1:])
        report.tensor(case, name, ours, refs[name])
    check_text(pred, out, meta, report)
    mode = meta["task_name_postprocess"].partition("(")[2].rstrip(")")
    if mode in MODES:
        report.value(case, "mode", out.mode, MODES[mode])
    if task != "chat":
        check_postprocess(out, meta, refs, report)


def check_text(pred, out, meta, report) -> None:
    case = meta["case"]
    cross = meta.get("predict_mode_cross_check", {})
    if "demo_generation_output" in cross:
        report.value(case, "answer text", out.text, cross["demo_generation_output"])
    if cross.get("demo_output_phrases"):
        report.value(case, "phrases", out.phrases, cross["demo_output_phrases"])


def _segments_info(out) -> list[dict]:
    return out.info.get("segments_info", [])


def check_postprocess(out, meta, refs, report) -> None:
    case, post = meta["case"], meta["postprocess"]
    allowed = int(meta.get("decision_margins", {}).get("num_mask_logits_with_abs_below_1e-4", 0))
    if "post.segmentation" in refs:
        report.pixels(case, "post.segmentation", out.label_map, refs["post.segmentation"], allowed)
    if "post_idmap.segmentation" in refs:
        report.pixels(case, "post_idmap.segmentation", out.label_map, refs["post_idmap.segmentation"], allowed)
    if isinstance(post.get("post.segments_info"), list) and "post.instances" not in post:
        ours = _segments_info(out)
        ref = post["post.segments_info"]
        same = len(ours) == len(ref) and all(
            all(abs(o[k] - r[k]) <= 1e-5 if k == "score" else o[k] == r[k] for k in r if k in o)
            for o, r in zip(ours, ref))
        report.line(case, "post.segments_info", same, f"{len(ours)} segments vs reference {len(ref)}")
    if "post.segments_info.score" in post:
        score = out.segments[0].score if out.segments else None
        ok = score is not None and abs(score - post["post.segments_info.score"]) <= 1e-5
        report.line(case, "post.segments_info.score", ok, f"{score} vs reference {post['post.segments_info.score']}")
    if "post.instances.pred_masks" in refs:
        check_instances(out, refs, report, case)
    if "post.vprompt_masks" in refs:
        ref = refs["post.vprompt_masks"].numpy().astype(bool)
        ours = np.stack(out.regions) if out.regions else None
        ok = ours is not None and ours.shape == ref.shape and bool((ours == ref).all())
        report.line(case, "post.vprompt_masks", ok, "equal" if ok else "differ")


def check_instances(out, refs, report, case) -> None:
    """Instance outputs are compared as sets: their order is whatever top-k returns."""
    ref_masks = refs["post.instances.pred_masks"].numpy().astype(bool)
    ref_scores = refs["post.instances.scores"].numpy()
    ref_classes = refs["post.instances.pred_classes"].numpy()
    ref_boxes = refs["post.instances.pred_boxes"].numpy()
    ours = [(s.mask, s.score, s.category_id) for s in out.segments]
    unmatched = list(range(len(ref_masks)))
    worst = 0.0
    for mask, score, cls in ours:
        hit = next((i for i in unmatched if ref_classes[i] == cls and (ref_masks[i] == mask).all()), None)
        if hit is None:
            return report.line(case, "post.instances", False, f"an instance (class {cls}, score {score:.6f}) "
                               "matches no reference instance")
        unmatched.remove(hit)
        worst = max(worst, abs(score - float(ref_scores[hit])))
        ys, xs = np.nonzero(mask)
        box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(xs) else [0, 0, 0, 0]
        if not np.allclose(box, ref_boxes[hit]):
            return report.line(case, "post.instances", False, f"box {box} vs reference {ref_boxes[hit].tolist()}")
    ok = not unmatched and worst <= 1e-5
    report.line(case, "post.instances", ok, f"{len(ours)} vs {len(ref_masks)} instances, max score |Δ| {worst:.2g}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="xsam conformance", description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--case", action="append", help="run only these cases")
    ap.add_argument("--atol", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the references used 1)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    index = args.folder / "index.json"
    cases = json.loads(index.read_text())["cases"] if index.exists() else sorted(
        p.name for p in (args.folder / "cases").iterdir() if p.is_dir())
    unknown = set(args.case or []) - set(cases)
    if unknown:
        print(f"no such case: {', '.join(sorted(unknown))} (have: {', '.join(cases)})")
        return 2
    pred = load_predictor(args.folder)
    report = Report(args.atol)
    for case in cases:
        if args.case and case not in args.case:
            continue
        try:
            run_case(pred, args.folder / "cases" / case, report)
        except Exception as e:  # a crash is a failed case, and the run goes on
            report.line(case, "run", False, f"{type(e).__name__}: {e}")
    print(f"{report.passed} passed, {report.failed} failed")
    return 1 if report.failed or not report.passed else 0

