"""Issue 10, step 1 (model): does the shipped embedded model's chat answer read the object the question names?

    python scripts/analysis/chat_model.py --scenes 40 --probe-scenes 300 [--model DIR]

(a) question sensitivity: on one scene, "What colour is the X?" for every unique shape X and "Is there
    a X?" for all six shapes; the answer-token distribution across X (top-1 agreement, JS divergence),
    accuracy, and whether P(yes) separates present from absent shapes within a scene.
(b) attention (eager attention): at the answer position (the last prompt token, which predicts the
    answer word), the mass on the object word, on SigLIP's 16 / SAM's 64 image tokens and on the rest;
    from the object word, the mass on image tokens and how much of it lands on the tokens covering the
    named object, against that object's share of the tokens (enrichment = 1: no preference).
(c) linear probes (torch logistic regression, split by scene) on the image tokens the LLM receives:
    a shape's colour and its shape from the token(s) at its location, small vs large shapes.
"""

from __future__ import annotations

import argparse
import collections
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, ".")
from xsam_core import shapes  # noqa: E402
from xsam_core.inference.predictor import Predictor  # noqa: E402
from xsam_core.inference.processing import sam_mask, sam_pixels, siglip_pixels  # noqa: E402
from xsam_core.inference.templates import apply_template, encode_prompt  # noqa: E402
from xsam_core.modeling.model import expand_ids  # noqa: E402
from xsam_core.tasks import TASKS  # noqa: E402
from xsam_core.tasks.common import Choices  # noqa: E402

N_SAM = 64


def n_siglip(cfg) -> int:
    return (cfg.vision["image_size"] // cfg.vision["patch_size"]) ** 2


def coverage(scene, thing, cfg):
    """Fraction of each image token's cell covered by the thing: SigLIP's grid (4x4 at 64 px) and SAM's
    8x8 (row-major)."""
    img = Image.fromarray(thing.mask.astype(np.uint8) * 255)
    w, h = img.size
    side = max(w, h)
    canvas = Image.new("L", (side, side), 0)
    canvas.paste(img, ((side - w) // 2, (side - h) // 2))
    s = cfg.siglip_processor["size"]
    sig = torch.from_numpy(np.asarray(canvas.resize((s, s), Image.BILINEAR)) / 255.0).float()
    sig = F.avg_pool2d(sig[None, None], s // int(round(n_siglip(cfg) ** 0.5))).flatten()
    longest = cfg.sam_processor["longest_edge"]
    _, scaled = sam_pixels(Image.fromarray(scene.image), cfg.sam_processor)
    sm = sam_mask(thing.mask, scaled, longest).float()
    sam = F.avg_pool2d(sm[None, None], longest // 8).flatten()
    return sig, sam


class Model:
    def __init__(self, path=None):
        self.pred = Predictor.load(path, device="cpu", dtype="float32", attn_implementation="eager")
        self.m, self.tok = self.pred.model, self.pred.tokenizer
        self.cfg = self.m.config
        self.template = self.cfg.template_strings
        self.n_sig = n_siglip(self.cfg)

    def encode(self, scene):
        pil = Image.fromarray(scene.image)
        sig = siglip_pixels(pil, self.cfg.siglip_processor)
        sam, _ = sam_pixels(pil, self.cfg.sam_processor)
        return self.m.encode_image(sig, sam)

    def ask(self, enc, question):
        q, _ = TASKS["chat"].prompt(question, 0, Choices(0))
        ids = encode_prompt(self.tok, apply_template(q, self.template))
        x = self.m.embed(ids, enc)
        out = self.m.llm.model(inputs_embeds=x, output_attentions=True)
        logits = self.m.llm.lm_head(out.last_hidden_state[0, -1])
        return ids, expand_ids(ids, enc.image_tokens.shape[1]), logits, out.attentions


def part_masks(expanded, word_pos, n_sig):
    L = len(expanded)
    img = torch.tensor([i < 0 for i in expanded])
    first = int(img.nonzero()[0])
    sig = torch.zeros(L, dtype=torch.bool)
    sam = torch.zeros(L, dtype=torch.bool)
    sig[first : first + n_sig] = True
    sam[first + n_sig : first + n_sig + N_SAM] = True
    word = torch.zeros(L, dtype=torch.bool)
    word[word_pos] = True
    return first, sig, sam, word


def study(M: Model, n_scenes: int, seed: int):
    tok = M.tok
    colour_ids = {c: tok.convert_tokens_to_ids(c) for c in shapes.COLOURS}
    yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
    rng = np.random.default_rng(seed)
    agree, js, acc_c, n_c, pairs = 0, [], 0, 0, 0
    pair_diff_truth = 0
    ex_acc, ex_n, sep, ex_yes = 0, 0, [], 0
    att = collections.defaultdict(list)
    example = None
    done = 0
    while done < n_scenes:
        scene = shapes.generate_scene(rng)
        counts = collections.Counter(t.shape for t in scene.objects)
        unique = [t for t in scene.objects if counts[t.shape] == 1]
        if len(unique) < 2:
            continue
        done += 1
        enc = M.encode(scene)
        # (a) colour questions across the named object
        probs, truths = [], []
        for t in unique:
            ids, exp, logits, atts = M.ask(enc, f"What colour is the {t.shape}?")
            p = logits[list(colour_ids.values())].softmax(-1)
            probs.append(p)
            truths.append(t.colour)
            top = list(colour_ids)[int(p.argmax())]
            acc_c += top == t.colour
            n_c += 1
            # (b) attention
            word_id = tok.convert_tokens_to_ids(t.shape)
            word_pos = max(i for i, v in enumerate(exp) if v == word_id)
            first, sig, sam, word = part_masks(exp, word_pos, M.n_sig)
            other = ~(sig | sam | word)
            sig_cov, sam_cov = coverage(scene, t, M.cfg)
            others = [coverage(scene, o, M.cfg) for o in unique if o is not t]
            for layer, a in enumerate(atts):
                a = a[0].mean(0)  # heads averaged [L, L]
                row = a[-1]
                att[f"answer L{layer} word"].append(row[word].sum().item())
                att[f"answer L{layer} siglip"].append(row[sig].sum().item())
                att[f"answer L{layer} sam"].append(row[sam].sum().item())
                att[f"answer L{layer} other"].append(row[other].sum().item())
                w = a[word_pos]
                att[f"word L{layer} siglip"].append(w[sig].sum().item())
                att[f"word L{layer} sam"].append(w[sam].sum().item())
                att[f"word L{layer} text"].append(w[~(sig | sam)].sum().item())
                for name, m_, cov in (("siglip", sig, sig_cov), ("sam", sam, sam_cov)):
                    ws = w[m_]
                    if ws.sum() > 1e-6 and cov.sum() > 0:
                        on = (ws / ws.sum() * cov).sum() / cov.sum()  # attention-weighted coverage
                        base = cov.mean() / cov.sum()  # uniform attention
                        att[f"word L{layer} {name} enrichment"].append((on / base).item())
                        # same for the answer position
                        ra = row[m_]
                        on_a = (ra / ra.sum() * cov).sum() / cov.sum()
                        att[f"answer L{layer} {name} enrichment"].append((on_a / base).item())
                        # control: the same attention row, scored on the other (not named) unique shapes
                        ctl = []
                        for oc in others:
                            c2 = oc[0] if name == "siglip" else oc[1]
                            if c2.sum() > 0:
                                ctl.append((((ws / ws.sum() * c2).sum() / c2.sum()) / (c2.mean() / c2.sum())).item())
                        if ctl:
                            att[f"word L{layer} {name} control"].append(float(np.mean(ctl)))
                        ctl_a = []
                        for oc in others:
                            c2 = oc[0] if name == "siglip" else oc[1]
                            if c2.sum() > 0:
                                ctl_a.append((((ra / ra.sum() * c2).sum() / c2.sum()) / (c2.mean() / c2.sum())).item())
                        if ctl_a:
                            att[f"answer L{layer} {name} control"].append(float(np.mean(ctl_a)))
        P = torch.stack(probs)
        for i in range(len(P)):
            for j in range(i + 1, len(P)):
                pairs += 1
                agree += int(P[i].argmax() == P[j].argmax())
                pair_diff_truth += truths[i] != truths[j]
                mix = (P[i] + P[j]) / 2
                js.append(
                    0.5
                    * (F.kl_div(mix.log(), P[i], reduction="sum") + F.kl_div(mix.log(), P[j], reduction="sum")).item()
                )
        if example is None and len(unique) >= 3:
            example = (scene, unique, P)
        # (a) is-there questions for all six shapes
        pyes = {}
        for s in shapes.SHAPES:
            _, _, logits, _ = M.ask(enc, f"Is there a {s}?")
            pyes[s] = logits[[yes, no]].softmax(-1)[0].item()
            truth = counts[s] > 0
            ex_acc += (pyes[s] > 0.5) == truth
            ex_yes += pyes[s] > 0.5
            ex_n += 1
        pres = [pyes[s] for s in shapes.SHAPES if counts[s]]
        absn = [pyes[s] for s in shapes.SHAPES if not counts[s]]
        if pres and absn:
            sep.append(np.mean([float(a > b) + 0.5 * float(a == b) for a in pres for b in absn]))
        ex_range = max(pyes.values()) - min(pyes.values())
        att["is-there P(yes) range across the 6 shapes"].append(ex_range)
    print(f"(a) {done} scenes with >= 2 unique shapes (seed {seed}), {n_c} colour questions, {ex_n} is-there questions")
    print(
        f"  colour: accuracy {acc_c / n_c:.2f}; pairs of questions on one scene: {pairs}, truths differ in "
        f"{pair_diff_truth / pairs:.0%}; same top-1 answer in {agree / pairs:.0%}; mean JS divergence "
        f"{np.mean(js):.4f} nats (max possible ln2 = 0.693)"
    )
    print(
        f"  is-there: accuracy {ex_acc / ex_n:.2f}, says yes {ex_yes / ex_n:.0%}; within-scene AUC of P(yes), present vs "
        f"absent shapes: {np.mean(sep):.2f} (0.5 = question ignored); mean range of P(yes) across the six "
        f"shapes of one scene {np.mean(att.pop('is-there P(yes) range across the 6 shapes')):.3f}"
    )
    if example:
        scene, unique, P = example
        print("  example scene:", ", ".join(f"{t.size} {t.colour} {t.shape}" for t in scene.objects))
        for t, p in zip(unique, P):
            top = sorted(zip(shapes.COLOURS, p.tolist()), key=lambda kv: -kv[1])[:3]
            print(
                f"    what colour is the {t.shape}? truth {t.colour}; model "
                + ", ".join(f"{c} {v:.2f}" for c, v in top)
            )
    print("\n(b) attention mass, heads averaged, mean over colour questions (L = layer):")
    L = sum(k.startswith("answer L") and k.endswith(" word") for k in att)
    n_text = None
    print(
        "  answer position -> object word | SigLIP 16 | SAM 64 | other text;  enrichment on the object's tokens (SigLIP / SAM)"
    )
    for layer in range(L):
        g = lambda k: np.mean(att[f"answer L{layer} {k}"])  # noqa: E731
        print(
            f"    layer {layer}: {g('word'):.3f} | {g('siglip'):.3f} | {g('sam'):.3f} | {g('other'):.3f};"
            f"  {g('siglip enrichment'):.2f} / {g('sam enrichment'):.2f};"
            f"  control (other shapes) {g('siglip control'):.2f} / {g('sam control'):.2f}"
        )
    print(
        "  object word -> SigLIP 16 | SAM 64 | text;  enrichment on the named object's tokens (SigLIP / SAM;"
        " 1 = none) vs the same row on the scene's other shapes (control)"
    )
    for layer in range(L):
        g = lambda k: np.mean(att[f"word L{layer} {k}"])  # noqa: E731
        print(
            f"    layer {layer}: {g('siglip'):.3f} | {g('sam'):.3f} | {g('text'):.3f};"
            f"  named {g('siglip enrichment'):.2f} / {g('sam enrichment'):.2f};"
            f"  control {g('siglip control'):.2f} / {g('sam control'):.2f}"
        )
    seq = len(exp)
    print(f"  (sequence length {seq}: uniform attention would give one token {1 / seq:.3f})")
    return n_text


def logreg(xtr, ytr, xte, yte, classes, steps=300, wd=1e-3):
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-5
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    W = torch.zeros(xtr.shape[1], classes, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(xtr @ W + b, ytr) + wd * (W**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return (xte @ W + b).argmax(-1) == yte


def probe(M: Model, n_scenes: int, seed: int):
    rng = np.random.default_rng(seed)
    rows = []
    with torch.no_grad():
        for k in range(n_scenes):
            scene = shapes.generate_scene(rng)
            enc = M.encode(scene)
            tokens = enc.image_tokens[0]  # [80, 256]: what the LLM receives
            sig_t, sam_t = tokens[:M.n_sig], tokens[M.n_sig:]
            q, _ = TASKS["chat"].prompt("How many shapes are there?", 0, Choices(0))
            ids = encode_prompt(M.tok, apply_template(q, M.template))
            exp = expand_ids(ids, tokens.shape[0])
            first = exp.index(next(i for i in exp if i < 0))
            hid = M.m.llm.model(inputs_embeds=M.m.embed(ids, enc)).last_hidden_state[0]
            llm_sam = hid[first + M.n_sig : first + M.n_sig + N_SAM]
            for t in scene.objects:
                sig_cov, sam_cov = coverage(scene, t, M.cfg)
                rows.append(
                    dict(
                        scene=k,
                        size=t.size,
                        colour=list(shapes.COLOURS).index(t.colour),
                        shape=shapes.SHAPES.index(t.shape),
                        sig_peak=float(sig_cov.max()),
                        sam_peak=float(sam_cov.max()),
                        sig_best=sig_t[int(sig_cov.argmax())],
                        sam_best=sam_t[int(sam_cov.argmax())],
                        sig_w=(sig_cov[:, None] * sig_t).sum(0) / sig_cov.sum(),
                        sam_w=(sam_cov[:, None] * sam_t).sum(0) / sam_cov.sum(),
                        llm_best=llm_sam[int(sam_cov.argmax())],
                    )
                )
    n_train = int(n_scenes * 0.7)
    tr = [r for r in rows if r["scene"] < n_train]
    te = [r for r in rows if r["scene"] >= n_train]
    print(
        f"\n(c) linear probes on the LLM's image tokens: {n_scenes} scenes (seed {seed}), {len(rows)} shapes, "
        f"train scenes {n_train}, test {len(te)} shapes"
    )
    for size in ("small", "large"):
        rs = [r for r in rows if r["size"] == size]
        print(
            f"  {size}: n={len(rs)}, largest covered fraction of one token: SigLIP {np.mean([r['sig_peak'] for r in rs]):.2f},"
            f" SAM {np.mean([r['sam_peak'] for r in rs]):.2f}"
        )
    n_col = len(shapes.COLOURS)
    print("  test accuracy (chance: colour 1/8 = 0.125, shape 1/6 = 0.167):")
    print("    features                              colour small / large     shape small / large")
    for feat, desc in (
        ("sig_best", "SigLIP token most covered"),
        ("sam_best", "SAM token most covered"),
        ("sig_w", "SigLIP coverage-weighted mean"),
        ("sam_w", "SAM coverage-weighted mean"),
        ("llm_best", "LLM last layer at that SAM token"),
    ):
        xtr = torch.stack([r[feat] for r in tr])
        xte = torch.stack([r[feat] for r in te])
        out = []
        for target, classes in (("colour", n_col), ("shape", len(shapes.SHAPES))):
            ok = logreg(xtr, torch.tensor([r[target] for r in tr]), xte, torch.tensor([r[target] for r in te]), classes)
            small = torch.tensor([r["size"] == "small" for r in te])
            out.append(f"{ok[small].float().mean():.2f} / {ok[~small].float().mean():.2f}")
        print(f"    {desc:37s} {out[0]:24s} {out[1]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--probe-scenes", type=int, default=300)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--model", help="model folder (default: the embedded model)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    M = Model(args.model)
    with torch.no_grad():
        study(M, args.scenes, args.seed)
    probe(M, args.probe_scenes, args.seed + 1)


if __name__ == "__main__":
    main()
