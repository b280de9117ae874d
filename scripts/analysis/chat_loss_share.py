"""Issue 10, step 1 (loss): the chat answer's share of the LM loss, measured with the shipped model.

    python scripts/analysis/chat_loss_share.py --batches 10 [--weights chat=3.5,reaseg=2,gcgseg=2]

Same forward as `losses.compute_losses`' LM term (one right-padded batch, one mean over all answer
tokens), split per token by task: the share of the summed cross-entropy that chat answer words carry,
and the mean CE per chat kind against the answer-blind entropy.
"""

from __future__ import annotations

import argparse
import collections
import math
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, ".")
from xsam_core.inference.predictor import Predictor  # noqa: E402
from xsam_core.modeling.model import expand_ids  # noqa: E402
from xsam_core.training import samples as S  # noqa: E402
from xsam_core.training.train import weights_option  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--weights", type=weights_option(S.TASK_WEIGHTS, "task"), default=dict(S.TASK_WEIGHTS))
    args = ap.parse_args()
    torch.set_num_threads(1)
    pred = Predictor.load(None, device="cpu", dtype="float32")
    m, tok = pred.model, pred.tokenizer
    ce_sum, n_tok = collections.Counter(), collections.Counter()
    with torch.no_grad():
        for step in range(args.batches):
            (batch,) = S.make_batch(step, 0, 4, 3, m.config, tok, args.weights)  # one part: X-SAM's square SAM view
            images = m.encode_images(batch.siglip, batch.sam)
            for s in batch.samples:
                enc = images.image(s.image)
                regions = m.region_features(enc, torch.stack(s.regions)) if s.regions else None
                x = m.embed(s.ids, enc, regions)
                ids = expand_ids(s.ids, enc.image_tokens.shape[1])
                start = len(ids) - (len(s.ids) - s.n_prompt)
                hidden = m.llm.model(inputs_embeds=x).last_hidden_state[0]
                ce = F.cross_entropy(
                    m.llm.lm_head(hidden[start - 1 : len(ids) - 1]), torch.tensor(ids[start:]), reduction="none"
                )
                key = s.task
                if s.task == "chat":
                    q = tok.decode([i for i in s.ids[: s.n_prompt] if i >= 0]).lower()
                    key = "chat/" + ("count" if "how many" in q else "colour" if "colour" in q else "exists")
                    ce_sum[key + " word"] += ce[0].item()
                    n_tok[key + " word"] += 1
                    ce_sum[key + " end"] += ce[1:].sum().item()
                    n_tok[key + " end"] += len(ce) - 1
                else:
                    ce_sum[key] += ce.sum().item()
                    n_tok[key] += len(ce)
    total_ce, total_n = sum(ce_sum.values()), sum(n_tok.values())
    print(
        f"{args.batches} batches, weights {args.weights}; LM loss = mean CE over {total_n} answer tokens "
        f"= {total_ce / total_n:.3f} nats"
    )
    print("  part                    tokens   mean CE   share of the LM loss")
    for k in sorted(ce_sum):
        print(f"  {k:22s} {n_tok[k] / total_n:7.1%}   {ce_sum[k] / n_tok[k]:7.3f}   {ce_sum[k] / total_ce:7.1%}")
    words = sum(v for k, v in ce_sum.items() if k.endswith(" word"))
    print(f"  chat answer words carry {words / total_ce:.1%} of the LM loss (so of its gradient's scale)")
    print(
        f"  answer-blind entropy: colour ln 8 = {math.log(8):.3f}, exists ln 2 = {math.log(2):.3f}, count ln 6 = {math.log(6):.3f}"
    )


if __name__ == "__main__":
    main()
