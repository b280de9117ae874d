"""Issue 10: where do grounded captions go wrong when they name the shapes?

    python scripts/analysis/gcg_names.py --data DIR [--model DIR] [--limit N]

Runs every gcgseg request of a shapes-world folder through `Predictor.predict` (greedy, as a user gets
it) and splits the object phrases ("a <size> <colour> <shape>") three ways:
(a) by position: predicted phrase k against the truth's k-th phrase (the folder's caption order: left
    to right in folders written before `caption_order`, later by colour, now large first, then by colour,
    analysis §7-8; meaningful only when the model was trained on the same order), per attribute (size,
    colour, shape, all three) and, for all three, per position (first, second, later); and how many
    things the caption names against the truth;
(b) by mask: each predicted object phrase against the thing its mask covers best (IoU >= 0.5), per
    attribute: a phrase whose mask lands on the right thing but whose words are wrong is a naming
    failure, not a grounding one;
(c) by scene: whether each predicted phrase names a thing that is in the scene at all, and how often it
    repeats an earlier phrase of the same caption;
(d) teacher-forced: the true caption fed in, each object phrase's size, colour and shape word against
    the model's top prediction there, given the true caption before it (first phrase and later ones
    apart): where (d) is right and (a) is not, the caption drifts once it has said one wrong thing;
(e) free-running, a later phrase right in all three words after a caption right so far, against after a
    wrong phrase: the drift measured directly;
(f) (b)'s shape word by how large the thing is in SAM's view (the square root of its area, the image
    scaled as the model's SAM canvas takes it): whether a shape is named wrong because it is a few pixels there;
(g) teacher-forced, the word after each object phrase ("," or "and" while things remain, "in" after the
    last): where it is at or under 0.5, a greedy caption may end early or name a thing too many;
(h) (b)'s colour words said wrong, as "true -> said" pairs, commonest first: whether a few neighbouring
    colours (the gallery's yellow star named orange, analysis §40) or all of them are confused.
"""

from __future__ import annotations

import argparse
import collections
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, ".")
from xsam_core import shapes  # noqa: E402
from xsam_core.evaluation.metrics import iou, normalize_phrase  # noqa: E402
from xsam_core.inference.predictor import Predictor  # noqa: E402
from xsam_core.inference.processing import sam_pixels, sam_view, siglip_pixels  # noqa: E402
from xsam_core.inference.templates import apply_template, encode_prompt  # noqa: E402
from xsam_core.tasks import TASKS  # noqa: E402
from xsam_core.tasks.common import Choices  # noqa: E402

ATTRS = ("size", "colour", "shape")
SAM_PX = (8, 12, 20)  # (f)'s bucket edges, in pixels of SAM's view (8-px patches)


def parse(text: str) -> tuple[str, str, str] | None:
    """("large", "orange", "star") from "a large orange star"; None for stuff or anything else."""
    words = normalize_phrase(text).split()
    if words[:1] == ["a"]:
        words = words[1:]
    return tuple(words) if len(words) == 3 else None


def attr_hits(pred, truth) -> dict[str, bool]:
    hits = {a: p == t for a, p, t in zip(ATTRS, pred, truth)}
    hits["all"] = all(hits.values())
    return hits


@torch.no_grad()
def forced_logits(predictor, image: np.ndarray, caption_grounded: str) -> tuple[list[int], torch.Tensor]:
    """The true caption fed in as the answer to the gcgseg prompt: its token ids, and the logits that
    predict each of them (row j predicts token j) given the image and the caption before it."""
    m, tok = predictor.model, predictor.tokenizer
    cfg = m.config
    question, _ = TASKS["gcgseg"].prompt("", 0, Choices(0))
    prompt = encode_prompt(tok, apply_template(question, cfg.template_strings))
    answer = tok.encode(caption_grounded, add_special_tokens=False)
    pil = Image.fromarray(image)
    enc = m.encode_image(siglip_pixels(pil, cfg.siglip_processor), sam_pixels(pil, cfg.sam_processor)[0])
    hidden, _ = m.lm_hidden(m.embed(prompt + answer, enc))
    return answer, m.llm.lm_head(hidden[0, -len(answer) - 1:-1]).float()


def phrase_starts(tok, answer: list[int]) -> list[int]:
    """Positions j of "<p>" that open an object phrase "<p> a <size> <colour> <shape> </p>" (its words
    at j+2 .. j+4)."""
    p_open = tok.convert_tokens_to_ids("<p>")
    return [j for j, t in enumerate(answer)
            if t == p_open and (words := tok.decode(answer[j + 1:j + 5]).split()) and len(words) == 4
            and words[0] == "a"]


def forced_words(predictor, image: np.ndarray, caption_grounded: str) -> tuple[list[list[bool]], list[float]]:
    """The true caption fed in: per object phrase, whether the model's top next token is its size, colour
    and shape word; and per object phrase, the probability of the true word after it ("," or "and" while
    things remain, "in" after the last), each given the true caption before it."""
    tok = predictor.tokenizer
    answer, logits = forced_logits(predictor, image, caption_grounded)
    probs = logits.softmax(-1)
    top = probs.argmax(-1).tolist()
    p_close = tok.convert_tokens_to_ids("</p>")
    words_right, after_phrase = [], []
    for j in phrase_starts(tok, answer):
        words_right.append([top[j + k] == answer[j + k] for k in (2, 3, 4)])
        if j + 6 < len(answer) and answer[j + 5] == p_close:
            after_phrase.append(probs[j + 6, answer[j + 6]].item())
    return words_right, after_phrase


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--model")
    ap.add_argument("--limit", type=int)
    args = ap.parse_args(argv)

    predictor = Predictor.load(args.model)
    coco, requests = shapes.load_dataset(args.data)
    images = {im["id"]: im for im in coco["images"]}
    anns = {a["id"]: a for a in coco["annotations"]}
    gcg = [r for r in requests if r["task"] == "gcgseg"][: args.limit]

    by_pos, by_mask = collections.defaultdict(list), collections.defaultdict(list)
    shape_by_px = collections.defaultdict(list)
    colour_slips = collections.Counter()  # (h): (true colour, said colour) of (b)'s phrases
    counts, real, repeats, unmatched, examples = [], [], [], 0, []
    forced, after = collections.defaultdict(list), collections.defaultdict(list)
    stops = []  # (g): per caption, the probability of the true word after each object phrase
    for r in gcg:
        image = shapes.dataset_image(args.data, images[r["image_id"]])
        (sam_h, _), _ = sam_view(*image.shape[:2], predictor.config.sam_processor)  # (f): the image's scale in SAM's view
        pred = predictor.predict(image, "gcgseg", r["text"], r["prompts"])
        truth = [(words, shapes.annotation_mask(anns[p["targets"][0]]))
                 for p in r["phrases"] if (words := parse(p["text"]))]
        said = [(words, s.mask) for s in pred.segments if (words := parse(s.label))]
        counts.append((len(said), len(truth)))
        words_right, stop_p = forced_words(predictor, image, r["caption_grounded"])
        stops.append(stop_p)
        for k, hits in enumerate(words_right):
            for a, h in zip(ATTRS, hits):
                forced[f"{a}@{min(k, 1)}"].append(h)
            forced[f"all@{min(k, 1)}"].append(all(hits))
        right_so_far = True
        in_scene = {t for t, _ in truth}
        for k, (words, mask) in enumerate(said):
            real.append(words in in_scene)
            repeats.append(words in [w for w, _ in said[:k]])
            if k < len(truth):
                hits = attr_hits(words, truth[k][0])
                for a, h in hits.items():
                    by_pos[a].append(h)
                by_pos[f"all@{min(k, 2)}"].append(hits["all"])
                if k:
                    after["right" if right_so_far else "wrong"].append(hits["all"])
                right_so_far &= hits["all"]
            overlaps = [iou(mask, m) for _, m in truth]
            best = int(np.argmax(overlaps)) if overlaps else -1
            if best >= 0 and overlaps[best] >= 0.5:
                for a, h in attr_hits(words, truth[best][0]).items():
                    by_mask[a].append(h)
                if words[1] != truth[best][0][1]:
                    colour_slips[truth[best][0][1], words[1]] += 1
                px = np.sqrt(truth[best][1].sum()) * sam_h / image.shape[0]
                shape_by_px[int(np.searchsorted(SAM_PX, px, side="right"))].append(words[2] == truth[best][0][2])
            else:
                unmatched += 1
        if len(examples) < 6:
            examples.append((" | ".join(" ".join(t) for t, _ in truth), " | ".join(" ".join(w) for w, _ in said)))

    def rates(d):
        return "  ".join(f"{a} {np.mean(d[a]):.2f}" for a in (*ATTRS, "all")) + f"  (n={len(d['all'])})"

    n_said = sum(c[0] for c in counts)
    print(f"{len(gcg)} captions; object phrases said {n_said}, true {sum(c[1] for c in counts)}; "
          f"count right {np.mean([a == b for a, b in counts]):.2f}")
    print(f"(a) k-th phrase vs the truth's k-th phrase: {rates(by_pos)}")
    print("    all three right by position: " + "  ".join(
        f"{'first second third+'.split()[k]} {np.mean(by_pos[f'all@{k}']):.2f}" for k in range(3)))
    print(f"(b) phrase vs the thing its mask covers:   {rates(by_mask)}; masks on no thing: {unmatched}/{n_said}")
    print(f"(c) phrase names a thing of the scene {np.mean(real):.2f}; repeats an earlier phrase {np.mean(repeats):.2f}")
    print("(d) teacher-forced, right word given the true caption before it: " + "  ".join(
        f"{a} {np.mean(forced[f'{a}@0']):.2f} / {np.mean(forced[f'{a}@1']):.2f}" for a in (*ATTRS, "all"))
        + "  (first phrase / later phrases)")
    print(f"(e) later phrase right in all three words: after a caption right so far {np.mean(after['right']):.2f} "
          f"(n={len(after['right'])}), after a wrong phrase {np.mean(after['wrong']):.2f} (n={len(after['wrong'])})")
    edges = [f"< {SAM_PX[0]} px", *(f"{a}-{b} px" for a, b in zip(SAM_PX, SAM_PX[1:])), f">= {SAM_PX[-1]} px"]
    print("(f) shape word by the thing's size in SAM's view: " + "  ".join(
        f"{e} {np.mean(shape_by_px[k]):.2f} (n={len(shape_by_px[k])})" for k, e in enumerate(edges) if shape_by_px[k]))
    p_after = np.array([p for caption in stops for p in caption])
    lowest = np.array([min(caption, default=1.0) for caption in stops])  # a caption's riskiest word after a phrase
    print(f"(g) teacher-forced, the true word after an object phrase (',' 'and' 'in'): probability over 0.5 "
          f"{np.mean(p_after > 0.5):.2f} (n={len(p_after)}); captions with one at or under 0.5 (greedy may end "
          f"early or name a thing too many) {np.mean(lowest <= 0.5):.2f}, "
          f"under 0.7 {np.mean(lowest < 0.7):.2f}")
    print(f"(h) colour said wrong (of {len(by_mask['colour'])}): " + ", ".join(
        f"{t} -> {w} {n}" for (t, w), n in colour_slips.most_common()))
    for t, s in examples:
        print(f"  truth: {t}\n  said:  {s}")


if __name__ == "__main__":
    main()
