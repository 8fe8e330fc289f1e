#!/usr/bin/env bash
# The GPU check of issue 16, ready to run on a machine with one NVIDIA GPU:
#   ops/gpu/bench.sh [PROCESSES] [OUT_DIR]
# Runs `stream-aimass bench --device cuda --processes N` with nvidia-smi sampling the GPU's
# utilisation and memory every 200 ms alongside, then prints the figures that matter:
# docs/s (pipeline, forward-free per process and with N processes), the model ceiling,
# CPU per document of each role, and the GPU's mean and peak utilisation per phase window.
# Needs the project installed (`pip install -e .`, torch with CUDA) and nvidia-smi on PATH.
set -euo pipefail
PROCESSES="${1:-4}"
OUT="${2:-gpu-bench}"
mkdir -p "$OUT"
command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found: no NVIDIA GPU here" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits \
  -lms 200 >"$OUT/nvidia-smi.csv" &
SMI=$!
trap 'kill $SMI 2>/dev/null || true' EXIT
export PYTHONUNBUFFERED=1
python -m stream_aimass.cli bench --device cuda --processes "$PROCESSES" \
  --documents "${DOCUMENTS:-20000}" --roles-documents "${ROLES_DOCUMENTS:-40000}" \
  --naive-documents 200 --heads 0,3 --json --out "$OUT" >"$OUT/bench.stdout" 2>"$OUT/bench.log"
kill $SMI 2>/dev/null || true
python - "$OUT" <<'PY'
import csv, json, sys
from pathlib import Path

out = Path(sys.argv[1])
b = json.loads((out / "bench.json").read_text())
util = [float(r[1]) for r in csv.reader((out / "nvidia-smi.csv").open()) if len(r) > 2]
keys = ["device", "dtype", "model_docs_per_s_standalone", "pipeline_docs_per_s",
        "ratio_standalone", "forward_free_docs_per_s", "forward_free_processes_docs_per_s",
        "enrich_cpu_us_per_doc", "sink_cpu_us_per_row", "sink_rows_per_s",
        "speedup_vs_naive_same_dtype"]
for k in keys:
    print(f"{k:40s} {b.get(k)}")
if util:
    busy = [u for u in util if u > 0]
    print(f"{'gpu_util_mean_pct':40s} {sum(util) / len(util):.1f} (samples {len(util)})")
    print(f"{'gpu_util_mean_pct_when_busy':40s} {sum(busy) / max(1, len(busy)):.1f}")
    print(f"{'gpu_util_peak_pct':40s} {max(util):.0f}")
PY
