#!/usr/bin/env bash
# One prepared run on a CUDA machine with torch and torchvision (vLLM not needed): the
# encoder's GPU paths (CUDA-graph replay, nvJPEG fast mode) against eager and CPU, then
# their benchmark. PyAV is needed too: where the machine cannot reach PyPI, put its
# wheel in .whl/ and it is installed from there.
# Results land in ${OUT:-gpu-results}/.
set -uo pipefail
OUT=${OUT:-gpu-results}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, torchvision, av; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'av', av.__version__, 'cpus', len(__import__('os').sched_getaffinity(0)))" | tee -a "$OUT/gpu.txt"
timeout 240 python3 -m pytest tests/parity/test_encoder_gpu.py tests/parity/test_imagebind_model.py -m gpu -q -p no:cacheprovider -o addopts= -rA 2>&1 | tail -40 | tee "$OUT/gpu_tests.log"
timeout 300 python3 -m bench gpu media --out "$OUT/gpu_media.json" 2>&1 | tee "$OUT/gpu_media.log"
