#!/usr/bin/env bash
# On a machine with this project installed and a package index: everything the device bench
# needs that a CUDA image with PyTorch and transformers lacks, in one folder to carry over.
#   ops/gpu/offline/pack.sh [DIR] [PYTHON_VERSION]     (default .gpu, 3.12)
# Then, on the GPU host, from a checkout of this repo: ops/gpu/offline/run.sh DIR
set -euo pipefail
DIR="${1:-.gpu}"
PY="${2:-3.12}"
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$DIR/whl"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
# The project's dependencies a CUDA PyTorch image does not hold, and theirs (no deps
# resolved: a second copy of a package the image has would shadow it).
python -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" \
  --implementation cp "${platforms[@]}" -d "$DIR/whl" \
  faust-streaming mode-streaming aiokafka aiohttp-cors async-timeout cramjam confluent-kafka \
  orjson clickhouse-connect lz4 backports.zstd rocksdict pydantic pydantic-core \
  pydantic-settings python-dotenv annotated-types typing-inspection typing-extensions \
  jsonschema jsonschema-specifications referencing rpds-py venusian croniter intervaltree \
  terminaltables colorlog typer rich
MODEL="$(python -c 'from stream_aimass.settings import default_model_dir; print(default_model_dir())')"
python "$HERE/model_pack.py" pack "$MODEL" "$DIR/model"
du -sh "$DIR/whl" "$DIR/model"
