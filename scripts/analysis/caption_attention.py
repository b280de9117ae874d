"""Issue 10: while a grounded caption names a thing, does the LLM look at it?

    python scripts/analysis/caption_attention.py --data DIR [--model DIR] [--limit N]

Teacher-forced on every gcgseg request of a shapes-world folder (the true caption fed in, as in
`gcg_names.py` (d)): at each position that predicts a thing phrase's size, colour or shape word, the
weight each head of each LLM layer puts on the SAM tokens of the thing the phrase names
(`xsam_core.training.grounding`), the first phrase and the later ones apart, against the weight on all
SAM tokens (how much it looks at the image at all); then, at the shape word, the named thing's weight of
`GROUND_HEAD` when the shape word is predicted right against wrong.
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
from xsam_core.inference.predictor import Predictor  # noqa: E402
from xsam_core.inference.processing import sam_mask, sam_pixels, siglip_pixels  # noqa: E402
from xsam_core.inference.templates import apply_template, encode_prompt  # noqa: E402
from xsam_core.modeling.model import expand_ids  # noqa: E402
from xsam_core.tasks import TASKS  # noqa: E402
from xsam_core.tasks.common import Choices  # noqa: E402
from xsam_core.training.grounding import (  # noqa: E402
    GROUND_HEAD,
    GROUND_LAYER,
    AttentionInputs,
    covered_tokens,
    first_sam_token,
    phrase_rows,
    thing_mass,
)

WORDS = ("size", "colour", "shape")


@torch.no_grad()
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--model")
    ap.add_argument("--limit", type=int)
    args = ap.parse_args(argv)

    predictor = Predictor.load(args.model, dtype="float32")
    m, tok = predictor.model, predictor.tokenizer
    cfg = m.config
    layers = range(len(m.llm.model.layers))
    p_open = tok.convert_tokens_to_ids("<p>")
    question, _ = TASKS["gcgseg"].prompt("", 0, Choices(0))
    prompt = encode_prompt(tok, apply_template(question, cfg.template_strings))
    coco, requests = shapes.load_dataset(args.data)
    images = {im["id"]: im for im in coco["images"]}
    anns = {a["id"]: a for a in coco["annotations"]}

    on_thing, on_sam = collections.defaultdict(list), collections.defaultdict(list)
    by_answer = collections.defaultdict(list)
    for r in [r for r in requests if r["task"] == "gcgseg"][: args.limit]:
        image = shapes.dataset_image(args.data, images[r["image_id"]])
        pil = Image.fromarray(image)
        sam, scaled = sam_pixels(pil, cfg.sam_processor)
        enc = m.encode_image(siglip_pixels(pil, cfg.siglip_processor), sam)
        answer = tok.encode(r["caption_grounded"], add_special_tokens=False)
        ids = expand_ids(prompt + answer, enc.image_tokens.shape[1])
        with AttentionInputs(m.llm.model, layers) as tap:
            hidden, _ = m.lm_hidden(m.embed(prompt + answer, enc))
        top = m.llm.lm_head(hidden[0]).argmax(-1)
        num_sam = enc.seg_map.shape[0] * enc.seg_map.shape[1]
        grid, first = tuple(enc.seg_map.shape[:2]), first_sam_token(ids, num_sam)
        things = [n for n, p in enumerate(r["phrases"]) if p["text"].startswith("a ")]  # not the wall, floor
        rows = [(j, n) for j, n in phrase_rows(ids, p_open) if n in things]
        if not rows:
            continue
        masks = {n: covered_tokens(sam_mask(shapes.annotation_mask(anns[r["phrases"][n]["targets"][0]]), scaled,
                                           tuple(sam.shape[-2:])), grid) for n in things}
        targets = torch.stack([masks[n] for _, n in rows])
        everything = torch.ones_like(targets)
        for layer in layers:
            w = tap.weights(layer, 0, [j for j, _ in rows])  # [H, R, T]
            mass, sam_share = thing_mass(w, first, targets), thing_mass(w, first, everything)
            for h in range(w.shape[0]):
                for k, (_, n) in enumerate(rows):
                    key = (layer, h, WORDS[k % 3], "first" if n == 0 else "later")
                    on_thing[key].append(mass[h, k].item())
                    on_sam[key].append(sam_share[h, k].item())
            if layer == GROUND_LAYER:
                for k, (j, n) in enumerate(rows):
                    if k % 3 == 2:
                        by_answer[top[j].item() == ids[j + 1]].append(mass[GROUND_HEAD, k].item())

    print("weight on the named thing's SAM tokens (on all SAM tokens), first phrase / later phrases:")
    for layer in layers:
        for h in range(cfg.llm["num_attention_heads"]):
            cells = []
            for word in WORDS:
                f, lt = (layer, h, word, "first"), (layer, h, word, "later")
                cells.append(f"{word} {np.mean(on_thing[f]):.2f} ({np.mean(on_sam[f]):.2f}) / "
                             f"{np.mean(on_thing[lt]):.2f} ({np.mean(on_sam[lt]):.2f})")
            print(f"  layer {layer} head {h}:  " + "   ".join(cells))
    print(f"layer {GROUND_LAYER} head {GROUND_HEAD} at the shape word: on the thing {np.mean(by_answer[True]):.2f} "
          f"when the word is right (n={len(by_answer[True])}), {np.mean(by_answer[False]):.2f} when wrong "
          f"(n={len(by_answer[False])})")


if __name__ == "__main__":
    main()
