#!/usr/bin/env bash
# On a GPU host with CUDA PyTorch and transformers but no package index, from this repo's root:
#   ops/gpu/offline/run.sh [DIR] [OUT]
# installs what pack.sh put in DIR beside the image's packages, unpacks the model, and runs
# the device bench (python -m stream_aimass.tools.bench.device): the forward pass alone, the
# model ceiling, then enrich processes with the real forward pass and forward-free, with
# nvidia-smi sampled. PROCS, FREE_PROCS, DOCS and BENCH_TIMEOUT set its size.
set -uo pipefail
DIR="${1:-.gpu}"
OUT="${2:-${OUT:-device-bench}}"
mkdir -p "$OUT"
t0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/aimass-site "$DIR"/whl/*.whl >"$OUT/pip.log" 2>&1 || { tail -20 "$OUT/pip.log"; exit 3; }
export PYTHONPATH="/tmp/aimass-site:$PWD" PYTHONUNBUFFERED=1
MODEL=/tmp/all-MiniLM-L6-v2-int8
python3 "$(dirname "$0")/model_pack.py" unpack "$DIR/model" "$MODEL" || exit 4
export AIMASS_MODEL_DIR="$MODEL" AIMASS_DEVICE="${AIMASS_DEVICE:-cuda}"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
lscpu | grep -E "Model name|^CPU\(s\)" | head -2
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
echo "setup $(( $(date +%s) - t0 )) s"
timeout "${BENCH_TIMEOUT:-480}" python3 -m stream_aimass.tools.bench.device \
  --documents "${DOCS:-40000}" --processes "${PROCS:-1,4,8}" --forward "${FORWARD:-real,free}" \
  --free-processes "${FREE_PROCS:-1,8}" --out "$OUT" 2>&1 | tee "$OUT/device.log" | cut -c1-900
echo "rc=$? total $(( $(date +%s) - t0 )) s"
