"""scripts/average_models.py: the soup of two exported folders is their tensors' (weighted) mean and loads
as a model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from safetensors.torch import load_file

from xsam_core.inference.predictor import Predictor
from xsam_core.modeling.checkpoint import save_folder
from xsam_core.training import train

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("average_models", ROOT / "scripts" / "average_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_average_of_two_folders_is_their_mean_and_loads(tmp_path):
    folders = []
    for seed in (0, 1):
        model, tokenizer = train.new_run(tmp_path / f"run{seed}", seed=seed)
        folders.append(save_folder(model, tokenizer, tmp_path / f"model{seed}"))
    _script().main(["--out", str(tmp_path / "soup"), *map(str, folders)])
    _script().main(["--out", str(tmp_path / "soup21"), *map(str, folders), "--weights", "2,1"])
    a, b, soup, soup21 = (load_file(f / "model.safetensors")
                          for f in (*folders, tmp_path / "soup", tmp_path / "soup21"))
    assert soup.keys() == a.keys()
    for k in a:
        mean = ((a[k].float() + b[k].float()) / 2).to(a[k].dtype)
        assert torch.equal(soup[k], mean), k
        assert torch.equal(soup21[k], ((2 * a[k].float() + b[k].float()) / 3).to(a[k].dtype)), k
    assert any(not torch.equal(soup[k], a[k]) for k in a)  # the two seeds differ, so the soup is neither
    loaded = Predictor.load(str(tmp_path / "soup"), device="cpu", dtype="float32")
    assert loaded.model.config.to_dict() == Predictor.load(str(folders[0]), device="cpu").model.config.to_dict()
