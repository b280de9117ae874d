"""Issue 10, step 1 (data): how much chat the trainer's own batches hold, and what signal it carries.

    python scripts/analysis/chat_data.py --batches 200 [--weights chat=3.5,reaseg=2,gcgseg=2]

Uses `training.samples.make_batch` unchanged (the scenes it draws are recorded by wrapping
`shapes.generate_scene`, which does not change the data stream). Prints: share of samples and of
answer tokens per task and per chat kind, the answer distribution per kind (majority = chance
baseline), question-blind baselines, how often one scene / one batch holds two chat questions with
different answers, and the chat answer's share of the LM loss's tokens.
"""

from __future__ import annotations

import argparse
import collections
import sys

import torch

sys.path.insert(0, ".")
from xsam_core import shapes  # noqa: E402
from xsam_core.inference.predictor import Predictor  # noqa: E402
from xsam_core.training import samples as S  # noqa: E402
from xsam_core.training.losses import LOSS_WEIGHTS  # noqa: E402
from xsam_core.training.train import weights_option  # noqa: E402


def kind_of(question: str) -> str:
    q = question.lower()
    return "count" if "how many" in q else "colour" if "colour" in q else "exists" if "is there" in q else "other"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--weights", type=weights_option(S.TASK_WEIGHTS, "task"), default=dict(S.TASK_WEIGHTS))
    args = ap.parse_args()
    torch.set_num_threads(1)
    pred = Predictor.load(None, device="cpu", dtype="float32")
    cfg, tok = pred.model.config, pred.tokenizer
    recorded = []
    orig = shapes.generate_scene

    def rec(*a, **k):
        scene = orig(*a, **k)
        recorded.append(scene)
        return scene

    shapes.generate_scene = rec
    n_samples, n_tok = collections.Counter(), collections.Counter()
    answers = collections.defaultdict(collections.Counter)
    scene_chats, batch_pairs_diff, batch_pairs_same_kind_diff = 0, 0, 0
    scenes_with_two_chats = 0
    colour_baselines = collections.Counter()
    total_samples = total_tokens = 0
    for step in range(args.batches):
        recorded.clear()
        (batch,) = S.make_batch(step, 0, 4, 3, cfg, tok, args.weights)  # one part: X-SAM's square SAM view
        chats = []
        per_scene = collections.Counter()
        for s in batch.samples:
            ans_ids = s.ids[s.n_prompt :]
            total_samples += 1
            total_tokens += len(ans_ids)
            key = s.task
            if s.task == "chat":
                q = tok.decode([i for i in s.ids[: s.n_prompt] if i >= 0])
                a = tok.decode(ans_ids[:1]).strip()  # the answer word (the rest is the template's end)
                k = kind_of(q)
                key = "chat/" + k
                answers[k][a] += 1
                chats.append((s.image, k, a))
                per_scene[s.image] += 1
                if k == "colour":
                    scene = recorded[s.image]
                    cols = collections.Counter(t.colour for t in scene.objects)
                    largest = max(scene.objects, key=lambda t: int(t.mask.sum())).colour
                    colour_baselines["n"] += 1
                    colour_baselines["all objects one colour"] += len(cols) == 1
                    colour_baselines["answer = most common colour in scene"] += a == cols.most_common(1)[0][0]
                    colour_baselines["answer = colour of largest object"] += a == largest
                    colour_baselines["answer in scene's colours (by construction)"] += a in cols
                    colour_baselines["objects in scene (sum)"] += len(scene.objects)
                    colour_baselines["distinct colours in scene (sum)"] += len(cols)
            n_samples[key] += 1
            n_tok[key] += len(ans_ids)
        scenes_with_two_chats += sum(v >= 2 for v in per_scene.values())
        scene_chats += len(per_scene)
        diff = any(a1 != a2 for i, (s1, k1, a1) in enumerate(chats) for (s2, k2, a2) in chats[i + 1 :])
        diff_kind = any(
            k1 == k2 and a1 != a2 for i, (s1, k1, a1) in enumerate(chats) for (s2, k2, a2) in chats[i + 1 :]
        )
        batch_pairs_diff += diff
        batch_pairs_same_kind_diff += diff_kind
    shapes.generate_scene = orig

    print(f"batches {args.batches} (4 scenes x 3 requests), weights {args.weights}")
    print(f"samples {total_samples}, answer tokens {total_tokens}")
    print("\nshare of samples / of answer tokens (the LM loss is one mean over all answer tokens of a batch):")
    chat_s = sum(v for k, v in n_samples.items() if k.startswith("chat"))
    chat_t = sum(v for k, v in n_tok.items() if k.startswith("chat"))
    for k in sorted(n_samples):
        print(
            f"  {k:18s} {n_samples[k] / total_samples:6.1%} samples  {n_tok[k] / total_tokens:6.1%} tokens"
            f"  ({n_tok[k] / n_samples[k]:.1f} tokens/answer)"
        )
    print(f"  {'chat (all)':18s} {chat_s / total_samples:6.1%} samples  {chat_t / total_tokens:6.1%} tokens")
    word_share = chat_s / total_tokens
    print(
        f"  chat answer WORDS (the only informative chat token): {word_share:.2%} of the LM loss's tokens;"
        f" LM weight {LOSS_WEIGHTS['lm']} of {LOSS_WEIGHTS}"
    )
    print(f"  chat samples per batch: {chat_s / args.batches:.2f}")
    print("\nanswer distribution per chat kind (majority = answer-blind chance):")
    for k, c in answers.items():
        n = sum(c.values())
        dist = ", ".join(f"{a} {v / n:.0%}" for a, v in c.most_common())
        print(f"  {k:7s} n={n:4d}  majority {c.most_common(1)[0][1] / n:.0%}  [{dist}]")
    n = colour_baselines.pop("n")
    print(f"\ncolour questions (n={n}): question-blind baselines")
    for k, v in colour_baselines.items():
        print(f"  {k}: {v / n:.2f}" + ("" if "sum" not in k else " per question"))
    print("\nbinding signal:")
    print(
        f"  scenes holding two chat questions in one batch: {scenes_with_two_chats} of {scene_chats} scenes with chat"
        " (make_batch draws the tasks of a scene without replacement and make_tasks gives one chat request per scene)"
    )
    print(
        f"  batches with two chat questions (any scenes) whose answers differ: {batch_pairs_diff / args.batches:.0%};"
        f" same kind, different answers: {batch_pairs_same_kind_diff / args.batches:.0%}"
    )


if __name__ == "__main__":
    main()
