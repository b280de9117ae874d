"""Greedy decoding with hidden states, as the official demo generates (spec §4.0): greedy, stopped by
the tokenizer's eos or a template stop word found in the decoded text with `\\r`/`\\n` removed."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from ..modeling.model import XSamModel


@dataclass
class Generation:
    ids: list[int]  # the generated ids (the stop token included)
    hidden: torch.Tensor  # [L, H] last-layer states of every token fed to the LLM: the prompt, then each
    # generated token but the last (generation stops before feeding it back)


class StopRule:
    def __init__(self, tokenizer, stop_words: list[str]):
        self.tokenizer, self.stop_words, self.eos_id = tokenizer, stop_words, tokenizer.eos_token_id

    def __call__(self, generated: list[int]) -> bool:
        if generated[-1] == self.eos_id:
            return True
        text = self.tokenizer.decode(generated).replace("\r", "").replace("\n", "")
        return any(text.endswith(w) for w in self.stop_words)


def generate(model: XSamModel, prompt_embeds: torch.Tensor, cache, states: list[torch.Tensor], budget: int,
             stop: StopRule, forced: list[int] | None = None, timer=lambda stage: nullcontext()) -> Generation:
    """Prefill `prompt_embeds` onto `cache` (which may already hold a prefix whose states are `states`),
    then decode greedily up to `budget` tokens; `forced` replaces the argmax by the given tokens
    (teacher forcing, as the official evaluation runs)."""
    table = model.llm.get_input_embeddings()
    with timer("prefill"):
        rest, _ = model.lm_hidden(prompt_embeds, cache)
    states = states + [rest]
    generated: list[int] = []
    with timer("decode"):
        last = rest[:, -1]
        for step in range(len(forced) if forced is not None else max(budget, 0)):
            token = forced[step] if forced is not None else int(model.llm.lm_head(last).argmax(-1))
            generated.append(token)
            if stop(generated):
                break
            h, _ = model.lm_hidden(table(torch.tensor([[token]], device=model.device)), cache)
            states.append(h)
            last = h[:, -1]
    return Generation(generated, torch.cat(states, dim=1)[0])
