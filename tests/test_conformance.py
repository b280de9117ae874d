"""The conformance runner, in-process: it passes on the reference fixture (tests/data), it fails on a
perturbed copy, and it runs on a folder holding only some of the cases."""

import re
from pathlib import Path

import pytest
import torch

from xsam_core.evaluation import conformance

FIXTURE = Path(__file__).resolve().parent / "data" / "xsam-ref"  # = conftest.REF_MODEL

pytestmark = pytest.mark.usefixtures("ref_model")  # fails, never skips, without the fixture


@pytest.fixture
def run(capsys):
    """Run the runner; returns (exit code, output lines, passed, failed)."""
    threads = torch.get_num_threads()

    def _run(*argv):
        try:
            code = conformance.main([str(a) for a in argv])
        finally:
            torch.set_num_threads(threads)  # the runner sets 1 thread for the whole process
        lines = capsys.readouterr().out.splitlines()
        passed, failed = map(int, re.fullmatch(r"(\d+) passed, (\d+) failed", lines[-1]).groups())
        return code, lines, passed, failed

    return _run


def copy_fixture(dst: Path, cases=None) -> Path:
    """A copy of the fixture (cases linked, not copied), optionally with only some cases."""
    dst.mkdir()
    for name in ("config.json", "pytorch_model.bin", "tokenizer"):
        (dst / name).symlink_to(FIXTURE / name)
    (dst / "cases").mkdir()
    for case in cases or [p.name for p in (FIXTURE / "cases").iterdir()]:
        (dst / "cases" / case).symlink_to(FIXTURE / "cases" / case)
    return dst


def test_fixture_passes(run):
    code, lines, passed, failed = run(FIXTURE)
    assert (code, failed) == (0, 0), "\n".join(line for line in lines if line.startswith("FAIL"))
    assert lines[-1].endswith(" 0 failed") and passed > 300


def test_perturbed_weight_fails(run, tmp_path):
    folder = copy_fixture(tmp_path / "perturbed", ["refseg"])
    sd = torch.load(FIXTURE / "pytorch_model.bin", weights_only=True)
    sd["bg_embeds.weight"] += 0.1
    (folder / "pytorch_model.bin").unlink()
    torch.save(sd, folder / "pytorch_model.bin")
    code, lines, passed, failed = run(folder)
    assert code != 0 and failed > 0
    fails = [line for line in lines if line.startswith("FAIL")]
    assert any("cond_embeds" in line for line in fails)  # bg_embeds is the last condition row
    assert not any("llm.last_hidden_state" in line for line in fails)  # upstream of bg_embeds: untouched


def test_subset_of_cases(run, tmp_path):
    folder = copy_fixture(tmp_path / "subset", ["refseg"])  # no index.json: the runner lists cases/
    code, lines, passed, failed = run(folder)
    assert (code, failed) == (0, 0) and passed > 20
    assert all(line.split()[1] == "refseg" for line in lines[:-1])


def test_case_selection(run):
    code, lines, passed, failed = run(FIXTURE, "--case", "refseg")
    assert (code, failed) == (0, 0) and passed > 20
    assert {line.split()[1] for line in lines[:-1]} == {"refseg"}
