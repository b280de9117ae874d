#!/usr/bin/env bash
# The GPU check, for a CUDA machine (at most ~8 minutes): the tests that have a device path on cuda,
# the embedded-model benchmark on cuda, and the full-size Phi-3 X-SAM (random weights) in bf16, 8-bit
# and 4-bit (bitsandbytes); everything lands in one JSON file.
#
#   scripts/gpu_check.sh [--dry-run] [--out gpu-check.json]
#
# Needs torch with CUDA and `pip install -r requirements-test.txt` (bitsandbytes). --dry-run prints the
# steps without running them (or needing a GPU). Each step has its own timeout, and the timeouts add up
# to 480 s (each includes ~10-20 s of import torch + CUDA start), so a stuck step cannot overrun the
# budget; a failed step is recorded and the next one runs.
# Exit status: 0 when every step passed.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
OUT=gpu-check.json
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT="$2"; shift ;;
    *) echo "usage: $0 [--dry-run] [--out FILE]" >&2; exit 2 ;;
  esac
  shift
done
PY=${PYTHON:-python}
WORK=$(mktemp -d)
: > "$WORK/steps.tsv"

SKIP=0  # set when there is no CUDA device: the other steps would only fail, slowly
step() {  # NAME SECONDS COMMAND...: run with a timeout, log to $WORK/NAME.log, record "name rc seconds"
  local name=$1 secs=$2
  shift 2
  [ "$SKIP" = 1 ] && return
  if [ "$DRY" = 1 ]; then
    echo "[$name, at most ${secs}s] $*"
    return
  fi
  echo "# $name (at most ${secs}s)" >&2
  local t0=$SECONDS rc
  timeout "$secs" "$@" > "$WORK/$name.log" 2>&1
  rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >> "$WORK/steps.tsv"
  tail -n 3 "$WORK/$name.log" >&2
}

BENCH=("$PY" -m xsam_core bench --device cuda --no-extras)
step gpu 45 "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"
[ "$DRY" = 0 ] && ! grep -q "^gpu	0	" "$WORK/steps.tsv" && SKIP=1
# The shared predictor (XSAM_TEST_DEVICE, tests/conftest.py) and the bitsandbytes tests on cuda.
step tests 75 env XSAM_TEST_DEVICE=cuda "$PY" -m pytest -q -rs -p no:cacheprovider \
  tests/test_quantize.py tests/test_predictor.py tests/test_cache.py tests/test_tasks.py \
  tests/test_routing.py tests/test_conversation.py
step bench_embedded 40 "${BENCH[@]}" --models embedded --repeats 3 --json "$WORK/bench_embedded.json"
# Full size: every worker builds the 4.6 B-parameter model afresh (random init on the CPU, then the move),
# so the quantised modes run the cold scenario only.
step bench_phi3_bf16 140 "${BENCH[@]}" --models phi3 --scenarios cold,cached --json "$WORK/bench_phi3_bf16.json"
step bench_phi3_8bit 90 "${BENCH[@]}" --models phi3 --quantize 8bit --scenarios cold --json "$WORK/bench_phi3_8bit.json"
step bench_phi3_4bit 90 "${BENCH[@]}" --models phi3 --quantize 4bit --scenarios cold --json "$WORK/bench_phi3_4bit.json"

if [ "$DRY" = 1 ]; then
  echo "[collect] steps, their last log lines and the bench JSON files of $WORK -> $OUT"
  rm -r "$WORK"
  exit 0
fi

"$PY" - "$WORK" "$OUT" <<'EOF'
import json, sys
from pathlib import Path

work, out = Path(sys.argv[1]), Path(sys.argv[2])
report = {"steps": {}}
for line in (work / "steps.tsv").read_text().splitlines():
    name, rc, seconds = line.split("\t")
    log = (work / f"{name}.log").read_text(errors="replace").splitlines()
    entry = {"rc": int(rc), "timed_out": rc == "124", "seconds": int(seconds), "log_tail": log[-15:]}
    bench = work / f"{name}.json"
    if bench.exists():
        entry["bench"] = json.loads(bench.read_text())
    report["steps"][name] = entry
report["passed"] = all(s["rc"] == 0 for s in report["steps"].values())
out.write_text(json.dumps(report, indent=1))
print(f"{out}: " + ", ".join(f"{n} rc={s['rc']} {s['seconds']}s" for n, s in report["steps"].items()))
sys.exit(0 if report["passed"] else 1)
EOF
