"""Build the Docker image, run it, and prove it serves: health, API calls, uid, and what it writes.

    python scripts/container_check.py                 # as root, with docker.io and debootstrap installed
    python scripts/container_check.py --base python:3.11-slim --torch-wheel ''   # where Docker Hub is reachable

Steps (each timed): (1) a base image made from Debian packages with debootstrap (bookworm: python3,
python3-venv, ca-certificates; a venv on PATH stands in for python:3.11-slim's `python`/`pip`), imported
with `docker import` and kept as xsam-check-base:bookworm (skipped when it exists); (2) the project image
from the shipped Dockerfile with that base and torch from a local wheel (build arguments BASE and
TORCH_SOURCE); (3) the container on a network without a way out (`--internal`: the app must start
offline), a named volume on HF_HOME, and a wait for Docker's health status `healthy`; (4) /refseg,
/intseg and /segment through gradio_client from the host, each checked for an overlay, an answer and a
result JSON with its task and annotations; (5) every process in the container runs as uid 1000, and
`docker diff` lists nothing outside /tmp (the volume is a mount, so it is not listed at all);
(6) stop and remove the container, its network and volume. Exits non-zero on any failure.

Needs root (debootstrap, and dockerd if it is not running: then it is started here and stopped at the
end). The host needs gradio_client, numpy, pillow and pycocotools (the project's test venv has them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "assets" / "examples"
BASE_TAG = "xsam-check-base:bookworm"
IMAGE = "xsam-demo:check"
NAME = "xsam-check"
VOLUME = "xsam-check-hf"
NETWORK = "xsam-check-net"
DEFAULT_WHEEL = "/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
BASE_PACKAGES = ["python3", "python3-venv", "ca-certificates"]
ALLOWED_WRITES = ("/tmp",)  # besides the volume (/data/hf), which docker diff never lists
REQUESTS = [  # endpoint, image, text, prompts, task expected in the result (threshold 0.5, the default)
    ("/refseg", "shapes-2.png", "the red circle", [], "refseg"),
    ("/intseg", "shapes-8.png", "", [{"kind": "point", "x": 66, "y": 63}], "intseg"),
    ("/segment", "shapes-2.png", "segment the red circle", [], "refseg"),
]

T0 = time.monotonic()
results: list[tuple[str, bool, float, str]] = []  # step, ok, seconds, detail


def log(msg: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", flush=True)


def sh(*cmd: str, check: bool = True, quiet: bool = False, **kw) -> subprocess.CompletedProcess:
    """Run a command; its output streams to ours unless quiet (then it is captured and returned)."""
    if not quiet:
        log("$ " + " ".join(cmd))
    cap = {"capture_output": True, "text": True} if quiet else {}
    proc = subprocess.run(cmd, **cap, **kw)
    if check and proc.returncode:
        detail = (proc.stderr or "").strip()[-2000:] if quiet else ""
        raise RuntimeError(f"{' '.join(cmd[:3])} … exited {proc.returncode}{': ' + detail if detail else ''}")
    return proc


class Step:
    def __init__(self, name: str):
        self.name, self.detail = name, ""

    def __enter__(self):
        log(f"== {self.name}")
        self.t = time.monotonic()
        return self

    def __exit__(self, kind, exc, tb):
        dt = time.monotonic() - self.t
        ok = exc is None
        detail = self.detail if ok else f"{type(exc).__name__}: {exc}"
        results.append((self.name, ok, dt, detail))
        log(f"== {self.name}: {'ok' if ok else 'FAILED'} in {dt:.1f}s{' - ' + detail if detail else ''}")
        return False


def docker_ready() -> bool:
    return sh("docker", "info", check=False, quiet=True).returncode == 0


def start_dockerd() -> subprocess.Popen | None:
    if docker_ready():
        return None
    if not shutil.which("dockerd"):
        raise RuntimeError("no Docker engine answers and dockerd is not installed (apt-get install docker.io)")
    logf = open("/tmp/xsam-check-dockerd.log", "w")
    proc = subprocess.Popen(["dockerd"], stdout=logf, stderr=subprocess.STDOUT)
    for _ in range(60):
        if docker_ready():
            log(f"started dockerd (pid {proc.pid}, log /tmp/xsam-check-dockerd.log)")
            return proc
        time.sleep(1)
    proc.terminate()
    raise RuntimeError("dockerd did not come up in 60 s: see /tmp/xsam-check-dockerd.log")


def image_exists(tag: str) -> bool:
    return sh("docker", "image", "inspect", tag, check=False, quiet=True).returncode == 0


def build_base(step: Step, mirror: str | None, rebuild: bool) -> None:
    if image_exists(BASE_TAG) and not rebuild:
        step.detail = f"{BASE_TAG} cached"
        return
    if not shutil.which("debootstrap"):
        raise RuntimeError("debootstrap is not installed (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="xsam-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        sh("debootstrap", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES), "bookworm", str(rootfs),
           *([mirror] if mirror else []), stdout=subprocess.DEVNULL)
        # Extra CA certificates of this host (a TLS-inspecting proxy, say) so pip inside the build
        # reaches PyPI the way the host does; none on an ordinary machine.
        extra = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
        for crt in extra:
            shutil.copy(crt, rootfs / "usr/local/share/ca-certificates" / crt.name)
        if extra:
            sh("chroot", str(rootfs), "update-ca-certificates", stdout=subprocess.DEVNULL)
        sh("chroot", str(rootfs), "python3", "-m", "venv", "/opt/python")
        sh("chroot", str(rootfs), "apt-get", "clean")
        shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
        path = "/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        sh("docker", "import", "--change", f"ENV PATH={path}", "--change", "ENV LANG=C.UTF-8",
           "--change", "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt", "--change", 'CMD ["python"]',
           "-", BASE_TAG, stdin=tar.stdout, stdout=subprocess.DEVNULL)
        tar.wait()
    ver = sh("docker", "run", "--rm", BASE_TAG, "python", "--version", quiet=True).stdout.strip()
    step.detail = f"{BASE_TAG} built from debootstrap ({', '.join(BASE_PACKAGES)}; {ver}; " \
                  f"{len(extra)} extra CA cert(s) from this host)"


def build_image(step: Step, base: str, wheel: str) -> None:
    args = ["--build-arg", f"BASE={base}"]
    copied = None
    if wheel:
        copied = ROOT / "wheels" / Path(wheel).name
        shutil.copy(wheel, copied)
        args += ["--build-arg", "TORCH_SOURCE=--find-links /tmp/wheels"]
    try:
        env = {**os.environ, "DOCKER_BUILDKIT": os.environ.get("DOCKER_BUILDKIT", "0")}
        sh("docker", "build", *args, "-t", IMAGE, str(ROOT), env=env)
    finally:
        if copied:
            copied.unlink(missing_ok=True)
    size = sh("docker", "image", "inspect", "-f", "{{.Size}}", IMAGE, quiet=True).stdout.strip()
    torch = sh("docker", "run", "--rm", "--network", "none", IMAGE, "python", "-c",
               "import torch; print(torch.__version__, torch.cuda.is_available())", quiet=True).stdout.strip()
    if not torch.startswith("2.13.0+cpu"):
        raise RuntimeError(f"the image's torch is {torch!r}, not the 2.13.0+cpu build")
    step.detail = f"{IMAGE} on {base}, torch {torch.split()[0]} from " \
                  f"{Path(wheel).name if wheel else 'the CPU index'}, {int(size) / 2**30:.2f} GiB"


def inspect(fmt: str) -> str:
    return sh("docker", "inspect", "-f", fmt, NAME, quiet=True).stdout.strip()


def run_container(step: Step, timeout: float) -> str:
    sh("docker", "network", "create", "--internal", NETWORK, stdout=subprocess.DEVNULL)
    sh("docker", "volume", "create", VOLUME, stdout=subprocess.DEVNULL)
    sh("docker", "run", "-d", "--name", NAME, "--network", NETWORK, "-v", f"{VOLUME}:/data/hf", IMAGE,
       stdout=subprocess.DEVNULL)
    t = time.monotonic()
    last = ""
    while time.monotonic() - t < timeout:
        state = inspect("{{.State.Status}} {{.State.Health.Status}}")
        if state != last:
            log(f"container: {state}")
            last = state
        if state.endswith("healthy") and not state.endswith("unhealthy"):
            break
        if not state.startswith("running"):
            raise RuntimeError(f"container is {state}")
        time.sleep(1)
    else:
        raise RuntimeError(f"not healthy after {timeout:.0f}s (last: {last})")
    ip = inspect("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
    # Offline by construction (no traffic sent to find out): the container's only network is internal.
    internal = sh("docker", "network", "inspect", "-f", "{{.Internal}}", NETWORK, quiet=True).stdout.strip()
    if internal != "true":
        raise RuntimeError(f"the container's network {NETWORK} is not internal: it was not offline")
    step.detail = f"healthy {time.monotonic() - t:.1f}s after `docker run`, at http://{ip}:7860/, " \
                  "on an internal network (no route out)"
    return f"http://{ip}:7860/"


def check_requests(url: str) -> list[str]:
    from gradio_client import Client, handle_file
    from PIL import Image
    from pycocotools import mask as mask_utils

    client = Client(url, verbose=False)
    lines = []
    for endpoint, image, text, prompts, task in REQUESTS:
        with Step(f"request {endpoint}") as step:
            t = time.monotonic()
            overlay, answer, result = client.predict(handle_file(str(EXAMPLES / image)), text, json.dumps(prompts),
                                                     0.5, api_name=endpoint)
            dt = time.monotonic() - t
            with Image.open(EXAMPLES / image) as src, Image.open(overlay) as img:
                size = src.size
                if img.size != size:
                    raise AssertionError(f"overlay is {img.size}, the image {size}")
            if not isinstance(answer, str) or answer != result.get("text"):
                raise AssertionError(f"answer {answer!r} is not the result's text")
            if result.get("task") != task:
                raise AssertionError(f"result task {result.get('task')!r}, expected {task!r}")
            anns = result.get("annotations") or []
            if not anns:
                raise AssertionError(f"no annotations (rejected: {result.get('rejected')!r:.200})")
            for ann in anns:
                mask = mask_utils.decode({"size": ann["segmentation"]["size"],
                                          "counts": ann["segmentation"]["counts"].encode()})
                if mask.shape != size[::-1] or int(mask.sum()) != ann["area"]:
                    raise AssertionError(f"annotation mask {mask.shape} / area {ann['area']} inconsistent")
            ran = result.get("info", {}).get("ran_as")
            auto = f" (auto: {ran['reason']})" if ran else ""
            step.detail = (f"{image} {text or json.dumps(prompts)!r}: {dt:.2f}s; task {result['task']}{auto}; "
                           f"answer {answer!r}; {len(anns)} annotation(s): "
                           + ", ".join(f"{a['label']!r} score {a['score']:.2f} area {a['area']}" for a in anns)
                           + f"; overlay {Path(overlay).name} {size[0]}×{size[1]}")
            lines.append(step.detail)
    return lines


def check_uid(step: Step) -> None:
    top = sh("docker", "top", NAME, "-eo", "uid,pid,args", quiet=True).stdout.strip().splitlines()
    for line in top:
        log("  docker top: " + line)
    procs = [line.split(None, 2) for line in top[1:]]
    bad = [p for p in procs if p[0] != "1000"]
    if bad or not any("app.py" in p[2] for p in procs):
        raise AssertionError(f"processes not as uid 1000 (or no app.py): {bad or procs}")
    uid = sh("docker", "exec", NAME, "id", quiet=True).stdout.strip()
    step.detail = f"{len(procs)} process(es), all uid 1000 (server: python app.py); docker exec id: {uid}"


def check_diff(step: Step) -> None:
    diff = sh("docker", "diff", NAME, quiet=True).stdout.strip().splitlines()
    for line in diff:
        log("  docker diff: " + line)
    outside = [line for line in diff
               if not any(line[2:] == a or line[2:].startswith(a + "/") for a in ALLOWED_WRITES)]
    if outside:
        raise AssertionError(f"writes outside {', '.join(ALLOWED_WRITES)} and the volume: {outside}")
    step.detail = f"{len(diff)} change(s), all under {', '.join(ALLOWED_WRITES)}"


def cleanup() -> None:
    sh("docker", "rm", "-f", NAME, check=False, quiet=True)
    sh("docker", "network", "rm", NETWORK, check=False, quiet=True)
    sh("docker", "volume", "rm", VOLUME, check=False, quiet=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default=None, help=f"base image (default: {BASE_TAG}, built here with debootstrap)")
    p.add_argument("--torch-wheel", default=os.environ.get("XSAM_TORCH_WHEEL", DEFAULT_WHEEL),
                   help="torch wheel fed into the build ('' = the Dockerfile's default, the PyTorch CPU index)")
    p.add_argument("--mirror", help="Debian mirror for debootstrap (default: debootstrap's own)")
    p.add_argument("--rebuild-base", action="store_true", help="rebuild the debootstrap base even if it exists")
    p.add_argument("--health-timeout", type=float, default=300)
    args = p.parse_args()
    if args.torch_wheel and not Path(args.torch_wheel).is_file():
        p.error(f"no torch wheel at {args.torch_wheel} (pass --torch-wheel '' to use the PyTorch CPU index)")

    commit = sh("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD", quiet=True, check=False).stdout.strip()
    log(f"container check of {ROOT} (commit {commit or '?'})")
    dockerd = None
    try:
        with Step("docker engine") as step:
            dockerd = start_dockerd()
            step.detail = sh("docker", "version", "-f", "server {{.Server.Version}}, client {{.Client.Version}}",
                             quiet=True).stdout.strip() + (", dockerd started here" if dockerd else "")
        cleanup()  # leftovers of an interrupted run
        if args.base is None:
            with Step("base image (debootstrap)") as step:
                build_base(step, args.mirror, args.rebuild_base)
        with Step("project image (docker build)") as step:
            build_image(step, args.base or BASE_TAG, args.torch_wheel)
        with Step("run until healthy") as step:
            url = run_container(step, args.health_timeout)
        check_requests(url)
        with Step("server uid") as step:
            check_uid(step)
        with Step("writes (docker diff)") as step:
            check_diff(step)
        with Step("stop and remove") as step:
            t = time.monotonic()
            sh("docker", "stop", NAME, stdout=subprocess.DEVNULL)
            code = inspect("{{.State.ExitCode}}")
            step.detail = f"docker stop took {time.monotonic() - t:.1f}s, exit code {code}"
            if code != "0":  # 137: SIGTERM was ignored and docker killed it after its grace period
                raise RuntimeError(step.detail + " (not a clean exit on SIGTERM)")
    except Exception as exc:  # noqa: BLE001 - every failure ends in the summary
        if not results or results[-1][1]:
            results.append(("(aborted)", False, 0.0, f"{type(exc).__name__}: {exc}"))
        if sh("docker", "inspect", NAME, check=False, quiet=True).returncode == 0:
            logs = sh("docker", "logs", "--tail", "40", NAME, check=False, quiet=True)
            log("container log (last 40 lines):\n" + (logs.stdout or "") + (logs.stderr or ""))
    finally:
        cleanup()
        if dockerd:
            dockerd.terminate()
            dockerd.wait(timeout=60)
            log("stopped the dockerd started here")

    ok = all(r[1] for r in results)
    print("\nSUMMARY")
    for name, good, dt, detail in results:
        print(f"  {'PASS' if good else 'FAIL'}  {name:30s} {dt:7.1f}s  {detail}")
    print(f"  total {time.monotonic() - T0:.1f}s: {'all checks passed' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
