#!/usr/bin/env bash
# One-call GPU check (about 8 minutes at most, downloads nothing): tiny dvc repro on CUDA, training, attack and
# evaluate throughput (GPU_CHECK_TIMEOUT: seconds, default 480); writes bench/results/gpu_check/gpu_check.{json,md}. Flags: --dry, --cpu, --tiny, --out DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
exec timeout "${GPU_CHECK_TIMEOUT:-480}" env PYTHONPATH="$PWD/src" "$PY" bench/gpu_check.py "$@"
