"""Bounded load test of the app's API on loopback: N clients × M requests over the task endpoints.

    python scripts/load_test.py [--model M] [--clients 8] [--requests 25]
    python scripts/load_test.py --url http://127.0.0.1:7860 --pid 1234   # a server already running

It starts `app.py` on 127.0.0.1 (unless --url), replays the example requests (the same few images,
so concurrent requests often produce byte-identical outputs: the case that truncated responses in
peers.md §4), and prints errors, p50/p95 latency and the server's memory growth after warm-up.
Only loopback addresses are accepted.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.examples import SHAPES  # noqa: E402

MAX_CLIENTS, MAX_REQUESTS = 16, 100  # bounds: this is a smoke test, not a stress tool
REQUEST_TIMEOUT_S = 120


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str | None, port: int) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "app.py"), "--port", str(port)] + (["--model", model] if model else [])
    env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited:\n{proc.stderr.read()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the server did not start within 180 s")


def one_client(url: str, index: int, n: int) -> list[tuple[float, str | None]]:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    out = []
    for k in range(n):
        ex = SHAPES[(index + k) % len(SHAPES)]
        start = time.perf_counter()
        try:
            job = client.submit(handle_file(ex.path), ex.text, json.dumps(ex.prompts), 0.5, api_name=f"/{ex.task}")
            overlay, _, result = job.result(timeout=REQUEST_TIMEOUT_S)
            if not Path(overlay).stat().st_size or "annotations" not in result:
                raise ValueError("empty overlay or result")
            out.append((time.perf_counter() - start, None))
        except Exception as e:  # counted and reported, not raised: the run goes on
            out.append((time.perf_counter() - start, f"{type(e).__name__}: {str(e)[:160]}"))
    return out


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="passed to app.py (default: the embedded model)")
    p.add_argument("--url", help="test a running server instead (loopback only)")
    p.add_argument("--pid", type=int, help="with --url: the server's pid, for its memory")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=25, help="per client")
    args = p.parse_args()
    if not (1 <= args.clients <= MAX_CLIENTS and 1 <= args.requests <= MAX_REQUESTS):
        p.error(f"at most {MAX_CLIENTS} clients × {MAX_REQUESTS} requests")

    proc = None
    if args.url:
        host = urlparse(args.url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            p.error("loopback servers only")
        url, pid = args.url, args.pid
    else:
        port = free_port()
        proc = start_server(args.model, port)
        url, pid = f"http://127.0.0.1:{port}/", proc.pid
    try:
        one_client(url, 0, len(SHAPES))  # warm-up: every example once (models, caches, first compiles)
        before = rss_mb(pid) if pid else float("nan")
        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            runs = list(pool.map(lambda i: one_client(url, i, args.requests), range(args.clients)))
        wall = time.perf_counter() - start
        after = rss_mb(pid) if pid else float("nan")
    finally:
        if proc:
            proc.terminate()
            proc.wait(30)

    results = [r for run in runs for r in run]
    latencies = [t for t, err in results if err is None]
    errors = Counter(err for _, err in results if err)
    total = len(results)
    print(f"{args.clients} clients × {args.requests} requests = {total} in {wall:.1f} s "
          f"({total / wall:.1f} req/s) against {url}")
    print(f"errors: {sum(errors.values())}/{total}")
    for err, count in errors.most_common():
        print(f"  {count}× {err}")
    if latencies:
        print(f"latency: p50 {percentile(latencies, 50):.2f} s · p95 {percentile(latencies, 95):.2f} s · "
              f"max {max(latencies):.2f} s")
    print(f"server memory (RSS): {before:.0f} MB after warm-up → {after:.0f} MB ({after - before:+.0f} MB)")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
