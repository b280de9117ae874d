"""The trainer: batches hold what they claim, a few steps reduce the loss, runs resume and export."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from xsam_core import shapes
from xsam_core.inference.predictor import Predictor
from xsam_core.modeling.config import XSamConfig
from xsam_core.modeling.model import XSamModel
from xsam_core.training import train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    model, tokenizer = train.new_run(out, seed=0)
    return out, model, tokenizer


def test_batches_are_reproducible_and_well_formed(run):
    _, model, tokenizer = run
    a = train.make_batch(5, 0, 3, 3, model.config, tokenizer)
    b = train.make_batch(5, 0, 3, 3, model.config, tokenizer)
    assert [s.ids for s in a.samples] == [s.ids for s in b.samples]
    assert torch.equal(a.sam, b.sam) and a.sam.shape == (3, 3, 128, 128)
    seg, p = model.config.special_token_ids["<SEG>"], model.config.special_token_ids["<p>"]
    assert {s.task for s in a.samples if s.masks}, "the batch holds no segmentation sample"
    for s in a.samples:
        answer = s.ids[s.n_prompt:]
        assert answer[-1] == tokenizer.eos_token_id  # the template suffix closes every answer
        if s.masks:  # segmentation samples say <SEG> once and have a class per target mask
            assert answer.count(seg) == 1
            assert len(s.classes) == len(s.masks) and all(m.shape == (128, 128) for m in s.masks)
            # one condition per <p>…</p> (prompt or answer); every target names one of them
            assert len(s.cond_category) == len(s.cond_colour) == s.ids.count(p), s.task
            used = set(s.classes)
            assert used <= set(range(len(s.cond_category))), s.task
            if not s.task.startswith("genseg"):  # genseg also names classes absent from the scene
                assert used == set(range(len(s.cond_category))), s.task
        assert len(s.regions) == s.ids.count(-300)


def test_a_few_steps_reduce_the_loss(run):
    _, model, tokenizer = run
    torch.manual_seed(0)
    batch = train.make_batch(0, 0, 2, 3, model.config, tokenizer)
    attr = train.AttributeHead(model.config.mask_dim)
    token_head = train.TokenHead(model.config.llm_hidden)
    criterion = train.mask2former_loss(256)
    params = [*model.parameters(), *attr.parameters(), *token_head.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3)
    totals = []
    for _ in range(8):
        losses = train.compute_losses(model, batch, criterion, attr, token_head, model.config.special_token_ids)
        total = sum(train.LOSS_WEIGHTS[k] * v for k, v in losses.items())
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        totals.append(total.item())
    assert set(losses) == {"lm", "chat", "class", "mask", "dice", "select", "attr", "tokens"}
    assert totals[-1] < 0.7 * totals[0]


def test_training_resumes_and_exports(tmp_path):
    out = tmp_path / "run"
    args = ["--out", str(out), "--steps", "2", "--scenes", "1", "--per-scene", "2", "--minutes", "5"]
    assert train.main(args) == 0
    assert train.main(args[:3] + ["3"] + args[4:]) == 0  # resumes at step 2, runs one more
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    assert train.main(["--out", str(out), "--export", str(tmp_path / "model")]) == 0
    pred = Predictor.load(str(tmp_path / "model"))
    assert pred.config.name == "xsam-tiny-shapes"
    # the export is the run's last state, in bf16, and answers as that state does
    state = torch.load(out / "state.pt", weights_only=False)
    assert state["step"] == 3
    weights = {k: v.to(torch.bfloat16).float() if v.is_floating_point() else v for k, v in state["model"].items()}
    exported = pred.model.state_dict()
    assert exported.keys() == weights.keys()
    assert all(torch.equal(exported[k], v) for k, v in weights.items()), "exported weights differ from the run's"
    trained = XSamModel(XSamConfig.load(out / "config.json"))
    trained.load_state_dict(weights)
    run_pred = Predictor(trained.eval(), AutoTokenizer.from_pretrained(out / "tokenizer"))
    scene = shapes.generate_scene(np.random.default_rng(1)).image
    ask = (scene, "chat", "How many shapes are there?")
    answer = pred.predict(*ask, max_new_tokens=4)
    assert answer.task == "chat" and answer.raw_text == run_pred.predict(*ask, max_new_tokens=4).raw_text
