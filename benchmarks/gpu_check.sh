#!/usr/bin/env bash
# GPU check at paper scale on random-weight stand-ins of SD v1.4 + CLIP (no downloads, no dataset needed).
# Measures reconstruct s/image at 512 px fp16 (κ 3e5 and κ 0, 5 repeats), peak GPU memory, train steps/s of the
# H = 4096 c model, extract images/s; writes benchmarks/results/gpu_check.json. Budget: <= 8 min on one H100.
#   bash benchmarks/gpu_check.sh                 # on the first CUDA device
#   bash benchmarks/gpu_check.sh --device cpu --tiny   # smoke test of the script (seconds)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
export NEURALDIFFUSER_PROGRESS="${NEURALDIFFUSER_PROGRESS:-0}"
if [ -d src/neuraldiffuser ]; then export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"; fi
exec timeout "${GPU_CHECK_TIMEOUT:-570}" "$PY" benchmarks/gpu_check.py "$@"
