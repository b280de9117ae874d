"""Rehearse the release path end to end, offline, with random weights of the released shapes.

    python scripts/rehearse_release.py --size full      # ~9 GB written, then the app on it (not for CI)
    python scripts/rehearse_release.py --size fixture   # the reference fixture's config, a few minutes

1. Writes random weights in the official archive key layout (`--size full`: the 1,356 tensors of
   the released Phi-3 X-SAM, tests/data/xsam-ref/xsam-phi3-full-keys.json, 4.62 B elements, bf16 as
   in the released file; `--size fixture`: the 438 tensors of tests/data/xsam-ref) as a
   `pytorch_model.bin` (torch.save's zip format), tensor by tensor: the file's skeleton is saved
   with torch's `skip_data` from uninitialised tensors, then each tensor is generated on its own
   (seed, its index) and written at its record's offset, so the writer holds one tensor at a time.
   N(0, 0.02) for matrices, ones for the other weights, zeros for biases (as bench.phi3_random).
2. Lays it out in a Hugging Face cache (`--cache DIR` is HF_HOME; the hub cache is DIR/hub) exactly
   as the README's `preload_from_hub` leaves it: models--hao9610--X-SAM/{blobs/<sha256>, refs/main,
   snapshots/<commit>/<the released file path> → ../../blobs/...}, and the tokenizer files of
   `preload_from_hub` that the source has under models--microsoft--Phi-3-mini-4k-instruct.
   Checks that huggingface_hub (try_to_load_from_cache, hf_hub_download(local_files_only=True))
   and the core's own `resolve("hao9610/X-SAM")` find them offline.
3. Starts `HF_HUB_OFFLINE=1 python app.py --model hao9610/X-SAM` with HF_HOME / HF_HUB_CACHE on
   that cache, waits until it answers, sends one request per task (the app's examples, through
   gradio_client: /segment and one endpoint per task of xsam_core.tasks.TASKS), and prints the load
   time, the server's peak RSS (VmHWM) and every task's latency; `--json` writes them all.

`--size fixture` differs in one place only: the core builds hao9610/X-SAM from the full-size
Phi-3 preset, which the fixture's weights do not fit, so the app is started through a one-line
launcher that makes that preset the fixture's config (tests/data/xsam-ref/config.json) and then
runs app.py unchanged with the same arguments.

Tokenizer (`--tokenizer DIR`): default tests/data/phi3-tokenizer when it exists, else the bench's
stand-in (bench.stand_in_tokenizer: the embedded tokenizer padded to Phi-3's 32,011 tokens); at
`--size fixture` the fixture's own tokenizer_base. The output says which, and which preload files
it lacks. With random weights the model never says <|end|>: every generating task runs to
max_new_tokens (512 at full size, 32 for the fixture), so latencies are upper bounds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # before huggingface_hub is imported: nothing is ever fetched

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from xsam_core.modeling.checkpoint import HUB_REPO, RELEASED  # noqa: E402

REF = ROOT / "tests" / "data" / "xsam-ref"
WEIGHTS_FILE = RELEASED["xsam-phi3"]["file"]
TOKENIZER_REPO = RELEASED["xsam-phi3"]["tokenizer"]


def preload_list() -> dict[str, list[str]]:
    """The README front matter's `preload_from_hub`: repo id → files."""
    lines = (ROOT / "README.md").read_text().split("---")[1].splitlines()
    start = lines.index("preload_from_hub:")
    out = {}
    for line in lines[start + 1:]:
        if not line.startswith("  - "):
            break
        repo, files = line[4:].split(" ", 1)
        out[repo] = files.split(",")
    return out


# --- 1. the weights -----------------------------------------------------------------------------

def archive_keys(size: str) -> list[tuple[str, list[int]]]:
    if size == "full":
        return [(k, s) for k, s in json.loads((REF / "xsam-phi3-full-keys.json").read_text())["keys"]]
    return [(k, s) for k, s, _ in json.loads((REF / "state_dict_keys.json").read_text())]


def random_tensor(name: str, shape, index: int, seed: int, dtype=torch.bfloat16) -> torch.Tensor:
    """bench.phi3_random's init, tensor by tensor: N(0, 0.02) for matrices, zeros for biases, ones
    for the other vectors (norm weights, scales); each tensor from its own generator (seed, index)."""
    t = torch.empty(shape, dtype=dtype)
    if len(shape) >= 2:
        return t.normal_(0, 0.02, generator=torch.Generator().manual_seed(seed * 1_000_003 + index))
    return t.fill_(0.0 if name.endswith("bias") else 1.0)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_checkpoint(path: Path, keys, seed: int = 0, dtype=torch.bfloat16) -> dict:
    """A torch.save file of {name: tensor} in `keys` order, written without holding more than one tensor."""
    t0, rss0 = time.perf_counter(), peak_rss_mb()
    # uninitialised tensors: address space only (large allocations are mmap'ed and never touched, so
    # they take no memory); skip_data saves their records' headers without reading them
    skeleton = {name: torch.empty(shape, dtype=dtype) for name, shape in keys}
    with torch.serialization.skip_data():
        torch.save(skeleton, path)  # data.pkl and the records' headers; the data regions are left to fill
    del skeleton
    reader = torch._C.PyTorchFileReader(str(path))
    prefix = next(r for r in reader.get_all_records() if r.endswith("data.pkl"))[: -len("data.pkl")]
    nbytes = 0
    with open(path, "r+b") as f:
        for i, (name, shape) in enumerate(keys):  # storages are numbered in the order the dict pickles them
            t = random_tensor(name, shape, i, seed, dtype)
            data = t.view(-1).view(torch.uint8).numpy() if t.numel() else b""
            size = t.numel() * t.element_size()
            offset = reader.get_record_offset(f"{prefix}data/{i}")
            assert os.pwrite(f.fileno(), data, offset) == size, name
            nbytes += size
            del t, data
    del reader
    return {"path": str(path), "tensors": len(keys), "elements": sum(math.prod(s) for _, s in keys),
            "data_bytes": nbytes, "file_bytes": path.stat().st_size, "write_s": round(time.perf_counter() - t0, 1),
            "writer_peak_rss_mb": round(peak_rss_mb(), 1), "writer_rss_before_mb": round(rss0, 1)}


def check_checkpoint(path: Path, keys, seed: int, samples: int = 6) -> dict:
    """Read back through the core's reader (torch.load, mmap): names, order, shapes, dtype, and a few
    tensors (the largest and some others) equal to the ones generated."""
    from xsam_core.modeling.checkpoint import detect_layout, read_state_dict

    sd = read_state_dict(path)
    assert list(sd) == [k for k, _ in keys], "keys or their order differ"
    assert all(list(sd[k].shape) == list(s) for k, s in keys), "shapes differ"
    assert {v.dtype for v in sd.values()} == {torch.bfloat16}
    by_size = sorted(range(len(keys)), key=lambda i: -math.prod(keys[i][1]))
    picked = sorted({by_size[0], *range(0, len(keys), max(1, len(keys) // (samples - 1)))})
    for i in picked:
        name, shape = keys[i]
        assert torch.equal(sd[name], random_tensor(name, shape, i, seed)), name
    return {"layout": detect_layout(sd), "tensors_compared": len(picked)}


# --- 2. the cache -------------------------------------------------------------------------------

def git_blob_sha1(path: Path) -> str:
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    h.update(path.read_bytes())
    return h.hexdigest()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(64 << 20):
            h.update(chunk)
    return h.hexdigest()


LFS_SUFFIXES = (".bin", ".safetensors", ".model")


def publish(hub_cache: Path, repo_id: str, files: dict[str, Path], move: bool = False) -> Path:
    """Put files into huggingface_hub's cache as hf_hub_download leaves them: the content in
    blobs/<etag> (sha256 for LFS files, the git blob sha1 for the others), snapshots/<commit>/<path>
    a relative symlink to it (huggingface_hub's own _create_symlink), refs/main = <commit>."""
    from huggingface_hub.file_download import _create_symlink, repo_folder_name

    repo = hub_cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    commit = hashlib.sha1(f"rehearsal {repo_id}".encode()).hexdigest()
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    for rel, src in files.items():
        etag = sha256(src) if rel.endswith(LFS_SUFFIXES) else git_blob_sha1(src)
        blob = repo / "blobs" / etag
        if blob.exists():
            blob.unlink()
        shutil.move(src, blob) if move else shutil.copyfile(src, blob)
        (snapshot / rel).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / rel).unlink(missing_ok=True)
        _create_symlink(str(blob), str(snapshot / rel), new_blob=False)
    return snapshot


def tokenizer_source(arg: str | None, size: str, scratch: Path) -> tuple[Path, str]:
    if arg:
        return Path(arg), f"given: {arg}"
    if size == "fixture":
        return REF / "tokenizer_base", "the fixture's tokenizer_base (tests/data/xsam-ref)"
    from xsam_core.evaluation.bench import PHI3_TOKENIZER, stand_in_tokenizer

    if PHI3_TOKENIZER.is_dir():
        return PHI3_TOKENIZER, "tests/data/phi3-tokenizer"

    out = scratch / "stand-in-tokenizer"
    stand_in_tokenizer().save_pretrained(out)
    return out, ("stand-in (bench.stand_in_tokenizer: embedded tokenizer padded to 32,011 tokens), "
                 "NOT the Phi-3 tokenizer")


def check_cache(hub_cache: Path, tok_files: list[str]) -> dict:
    """The cache resolves offline through huggingface_hub and through the core's resolve()."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    from xsam_core.modeling import checkpoint

    found = {}
    for repo, name in [(HUB_REPO, WEIGHTS_FILE)] + [(TOKENIZER_REPO, f) for f in tok_files]:
        cached = try_to_load_from_cache(repo, name, cache_dir=hub_cache)
        downloaded = hf_hub_download(repo, name, cache_dir=hub_cache, local_files_only=True)
        assert isinstance(cached, str) and cached == downloaded, (repo, name, cached, downloaded)
        found[f"{repo}/{name}"] = cached
    files = checkpoint.resolve(HUB_REPO, cache_dir=hub_cache)
    assert files["weights"] == Path(found[f"{HUB_REPO}/{WEIGHTS_FILE}"]), files
    tok = checkpoint.load_tokenizer(files["tokenizer"])
    special = {t: tok.convert_tokens_to_ids(t) for t in ("<SEG>", "<p>", "</p>")}
    return {"weights": str(files["weights"]), "tokenizer_dir": str(files["tokenizer"]),
            "config": files["config"].name, "tokenizer_len": len(tok), "special_ids": special}


# --- 3. the app ---------------------------------------------------------------------------------

def requests() -> list[tuple[str, str, str, list]]:
    """(endpoint, image, text, prompts): the app's own examples, a photo where it has one for the
    task, else a shapes scene; /segment (Auto) with the referring photo's request."""
    from app.examples import PHOTOS, SHAPES
    from xsam_core.tasks import TASKS

    out = []
    for task in TASKS:
        ex = next(e for e in PHOTOS + SHAPES if e.task == task)
        out.append((task, ex.path, ex.text, ex.prompts))
    ref = next(e for e in PHOTOS if e.task == "refseg")
    out.append(("segment", ref.path, f"segment {ref.text}", []))
    return out


def proc_status(pid: int) -> dict:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            out[key] = round(int(value.split()[0]) / 1024, 1)  # kB → MB
    return out


def app_command(size: str, port: int, extra: list[str]) -> list[str]:
    args = ["--model", HUB_REPO, "--port", str(port), *extra]
    if size == "full":
        return [sys.executable, "app.py", *args]
    launcher = ("import runpy, sys; from xsam_core.modeling import checkpoint; "
                "from xsam_core.modeling.config import XSamConfig; "
                f"cfg = XSamConfig.load({str(REF / 'config.json')!r}); "
                "checkpoint.preset = lambda variant: cfg; "  # the fixture's config stands in for the Phi-3 preset
                "sys.argv = ['app.py', *sys.argv[1:]]; runpy.run_path('app.py', run_name='__main__')")
    return [sys.executable, "-c", launcher, *args]


def serve_and_call(size: str, home: Path, port: int, extra: list[str], log: Path, start_timeout: float) -> dict:
    import httpx
    from gradio_client import Client, handle_file

    env = {k: v for k, v in os.environ.items() if not k.startswith("XSAM_") and k != "GRADIO_SERVER_PORT"}
    env.update(HF_HOME=str(home), HF_HUB_CACHE=str(home / "hub"), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    cmd = app_command(size, port, extra)
    url = f"http://127.0.0.1:{port}/"
    t0 = time.perf_counter()
    with open(log, "w") as logf:
        server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT)
    try:
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the app exited ({server.returncode}) before answering:\n{log.read_text()[-3000:]}")
            if time.perf_counter() - t0 > start_timeout:
                raise RuntimeError(f"the app did not answer within {start_timeout} s")
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        load_s = time.perf_counter() - t0
        after_load = proc_status(server.pid)
        client = Client(url, verbose=False)
        tasks = []
        for endpoint, image, text, prompts in requests():
            t = time.perf_counter()
            try:
                _, answer, result = client.predict(handle_file(image), text, json.dumps(prompts), 0.5, "[]",
                                                   api_name=f"/{endpoint}")
            except Exception as e:  # one failing task must not lose the others' figures
                tasks.append({"endpoint": f"/{endpoint}", "ran_as": "ERROR", "image": Path(image).name, "text": text,
                              "latency_s": round(time.perf_counter() - t, 2), "model_ms": 0, "masks": 0,
                              "error": f"{type(e).__name__}: {e}"})
                print(f"  {endpoint:8s} failed: {e}", flush=True)
                continue
            seconds = time.perf_counter() - t
            timings = result.get("timings_ms", {})
            tasks.append({"endpoint": f"/{endpoint}", "ran_as": result["task"], "image": Path(image).name,
                          "text": text, "latency_s": round(seconds, 2),
                          "model_ms": round(sum(timings.values()), 1), "timings_ms": timings,
                          "masks": len(result["annotations"]), "answer_chars": len(answer),
                          "model": result["info"].get("model"), "dtype": result["info"].get("dtype")})
            print(f"  {endpoint:8s} {seconds:8.2f} s", flush=True)
        final = proc_status(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    logged = [line for line in log.read_text().splitlines() if " INFO " in line or "Error" in line]
    return {"command": " ".join(["HF_HUB_OFFLINE=1", *cmd[:2], *(["<fixture launcher>"] if size != "full" else []),
                                 *cmd[-len(extra) - 4:]]),
            "load_s": round(load_s, 1), "rss_after_load_mb": after_load, "rss_at_end_mb": final,
            "peak_rss_mb": final["VmHWM"], "tasks": tasks, "app_log": logged[-20:]}


# --- main ---------------------------------------------------------------------------------------

def table(report: dict) -> str:
    w, s = report["weights"], report["serve"]
    lines = [f"size: {report['size']}   weights: {w['tensors']} tensors, {w['elements']:,} elements, "
             f"{w['file_bytes'] / 2**30:.2f} GiB file, written in {w['write_s']} s, writer peak RSS "
             f"{w['writer_peak_rss_mb']:.0f} MB (before writing {w['writer_rss_before_mb']:.0f} MB)",
             f"tokenizer: {report['tokenizer']['source']}; in the cache: {', '.join(report['tokenizer']['cached'])}; "
             f"missing from preload_from_hub's list: {', '.join(report['tokenizer']['missing']) or 'none'}",
             f"app: {s['command']}",
             f"load (start → first answer): {s['load_s']} s   RSS after load {s['rss_after_load_mb']['VmRSS']:.0f} MB"
             f"   peak RSS (VmHWM) {s['peak_rss_mb']:.0f} MB",
             "", f"{'endpoint':10s} {'ran as':8s} {'image':15s} {'latency s':>9s} {'model ms':>9s} {'masks':>5s}",
             "-" * 62]
    for t in s["tasks"]:
        lines.append(f"{t['endpoint']:10s} {t['ran_as']:8s} {t['image']:15s} {t['latency_s']:9.2f} "
                     f"{t['model_ms']:9.0f} {t['masks']:5d}")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=["full", "fixture"], default="full")
    p.add_argument("--cache", help="HF_HOME of the rehearsal (hub cache in DIR/hub); default a new temporary folder")
    p.add_argument("--tokenizer", help="folder with the Phi-3-layout tokenizer files to put in the cache")
    p.add_argument("--port", type=int, default=7861)
    p.add_argument("--json", help="write the report here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reuse", action="store_true",
                   help="keep the weights of an earlier run in --cache (same size and seed)")
    p.add_argument("--start-timeout", type=float, default=3600)
    p.add_argument("app_args", nargs="*", help="after --: more app.py options (e.g. -- --dtype float32 --device cuda)")
    args = p.parse_args(argv)

    home = Path(args.cache or tempfile.mkdtemp(prefix="xsam-rehearsal-"))
    hub_cache = home / "hub"
    hub_cache.mkdir(parents=True, exist_ok=True)
    keys = archive_keys(args.size)
    stamp = home / "rehearsal-weights.json"
    print(f"cache: {home} (HF_HOME; hub cache {hub_cache})", flush=True)

    old = json.loads(stamp.read_text()) if args.reuse and stamp.exists() else None
    if old and (old["size"], old["seed"]) == (args.size, args.seed) and Path(old["weights"]["path"]).exists():
        weights = old["weights"]
        print("weights: reusing", weights["path"], flush=True)
    else:
        scratch = hub_cache / f"models--{HUB_REPO.replace('/', '--')}" / "blobs"
        scratch.mkdir(parents=True, exist_ok=True)
        tmp = scratch / f"writing-{os.getpid()}.incomplete"
        print(f"writing {len(keys)} tensors ...", flush=True)
        weights = write_checkpoint(tmp, keys, args.seed)
        weights.update(check_checkpoint(tmp, keys, args.seed))
        snapshot = publish(hub_cache, HUB_REPO, {WEIGHTS_FILE: tmp}, move=True)
        weights["path"] = str(snapshot / WEIGHTS_FILE)
        stamp.write_text(json.dumps({"size": args.size, "seed": args.seed, "weights": weights}))

    wanted = preload_list()[TOKENIZER_REPO]
    with tempfile.TemporaryDirectory() as scratch:
        src, source = tokenizer_source(args.tokenizer, args.size, Path(scratch))
        present = [f for f in wanted if (src / f).is_file()]
        publish(hub_cache, TOKENIZER_REPO, {f: src / f for f in present})
        tokenizer = {"source": source, "dir": str(src), "cached": present,
                     "missing": [f for f in wanted if f not in present],
                     "not_in_preload_list": sorted(f.name for f in src.iterdir() if f.name not in wanted)}

    print("checking the cache resolves offline ...", flush=True)
    resolved = check_cache(hub_cache, present)
    tokenizer.update(len=resolved["tokenizer_len"], special_ids=resolved["special_ids"])
    print(f"starting the app on port {args.port} ...", flush=True)
    log = home / "app.log"
    serve = serve_and_call(args.size, home, args.port, args.app_args, log, args.start_timeout)
    report = {"size": args.size, "seed": args.seed, "cache": str(home), "weights": weights, "tokenizer": tokenizer,
              "resolved": resolved, "serve": serve, "app_log_file": str(log),
              "machine": {"cpus": os.cpu_count(), "torch": torch.__version__,
                          "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}}
    print()
    print(table(report))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
        print(f"\nreport: {args.json}")
    return report


if __name__ == "__main__":
    main()
