"""Entry point (Spaces, Docker, local): options and environment → Predictor → page → launch.

    python app.py [--model M] [--tokenizer T] [--device D] [--dtype auto|float32|bfloat16|float16]
                  [--quantize 8bit|4bit|int8-cpu] [--port P] [--share]
                  [--log-dir DIR] [--concurrency N] [--mcp] [--replicas N [--replica-gpus G]]

`--model` (or XSAM_MODEL): empty for the embedded model, a folder, a weights file or a hub id
(hao9610/X-SAM). Server name and port also follow GRADIO_SERVER_NAME / GRADIO_SERVER_PORT.
`--mcp` (or XSAM_MCP=1) also serves the API endpoints as MCP tools for LLM agents, at
http://HOST:PORT/gradio_api/mcp/ (streamable HTTP) and /gradio_api/mcp/sse (SSE).
`--replicas N` (or XSAM_REPLICAS) serves the model from N Ray Serve replicas started on this machine
(`pip install -r requirements-serve.txt`; `--replica-gpus 1` = one GPU each, default CPU replicas);
requests for the same image go to the same replica. Without it Ray is not imported.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal

from xsam_core.cli import QUANTIZE_MODES  # torch-free: the option's choices, where the CLI keeps them


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="X-SAM demo")
    p.add_argument("--model", default=os.environ.get("XSAM_MODEL") or None,
                   help="embedded model (default), a folder, a weights file or a hub id; env XSAM_MODEL")
    p.add_argument("--tokenizer", default=os.environ.get("XSAM_TOKENIZER") or None,
                   help="tokenizer folder or hub id, when the model does not bring one")
    p.add_argument("--device", default=os.environ.get("XSAM_DEVICE") or None, help="cuda, cpu, … (default: auto)")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"],
                   default=os.environ.get("XSAM_DTYPE") or "auto",
                   help="weights and compute: auto = bf16 for the released model on CUDA, on CPUs with native bf16 "
                        "(AVX512-BF16 / AMX) and where float32 would not fit in half the memory; float32 "
                        "otherwise; env XSAM_DTYPE")
    p.add_argument("--quantize", choices=QUANTIZE_MODES, default=os.environ.get("XSAM_QUANTIZE") or None,
                   help="LLM weights: 8bit / 4bit for small GPUs (needs bitsandbytes), int8-cpu for CPUs "
                        "(torch's int8 kernels); env XSAM_QUANTIZE")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    p.add_argument("--log-dir", default=os.environ.get("XSAM_LOG_DIR") or None,
                   help="log every request (images, prompts, results) here; off by default")
    p.add_argument("--concurrency", type=int,
                   default=int(os.environ["XSAM_CONCURRENCY"]) if os.environ.get("XSAM_CONCURRENCY") else None,
                   help="model requests run at once (others wait in the queue); default 1, with --replicas "
                        "2 per replica")
    p.add_argument("--mcp", action="store_true", default=_flag(os.environ.get("XSAM_MCP")),
                   help="also serve /segment and the task endpoints as MCP tools (Gradio's MCP server) at "
                        "/gradio_api/mcp/; env XSAM_MCP=1")
    p.add_argument("--replicas", type=int, default=int(os.environ.get("XSAM_REPLICAS") or 0),
                   help="serve the model from N Ray Serve replicas on this machine, same image → same "
                        "replica (needs requirements-serve.txt); env XSAM_REPLICAS; 0 (default): in-process")
    p.add_argument("--replica-gpus", type=float, default=float(os.environ.get("XSAM_REPLICA_GPUS") or 0),
                   help="GPUs per replica with --replicas (1: one replica per GPU; 0, default: CPU replicas)")
    return p.parse_args(argv)


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from app import build_demo, launch_options

    load = dict(model=args.model, tokenizer=args.tokenizer, device=args.device, dtype=args.dtype,
                quantize=args.quantize)
    if args.replicas > 0:
        from xsam_core.serving.ray_serve import start_replicas

        predictor, runner = start_replicas(args.replicas, gpus_per_replica=args.replica_gpus, **load)
        concurrency = args.concurrency or 2 * args.replicas
    else:
        from xsam_core.inference.predictor import Predictor

        predictor, runner = Predictor.load(**load), None
        concurrency = args.concurrency or 1
    demo = build_demo(predictor, log_dir=args.log_dir, concurrency=concurrency, runner=runner)
    # SIGTERM (docker stop) as Ctrl-C: Gradio then closes the server and the process exits 0. Without it
    # the server, PID 1 in a container, ignores SIGTERM and is killed after docker's 10 s grace.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # mcp_server None (no --mcp) leaves Gradio's own GRADIO_MCP_SERVER switch in charge
    demo.launch(server_port=args.port, share=args.share, mcp_server=True if args.mcp else None, **launch_options())


if __name__ == "__main__":
    main()
