#!/usr/bin/env bash
# One prepared run on a CUDA machine with torch, transformers and peft (vLLM not needed):
# encoder parity on CUDA, the fp16 prompt-embedding parity, and the encoder benchmark.
# Results land in ${OUT:-gpu-results}/.
set -uo pipefail
OUT=${OUT:-gpu-results}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)" | tee -a "$OUT/gpu.txt"
timeout 120 python3 -m pytest tests/parity/test_imagebind_model.py -q -m gpu -p no:cacheprovider -o addopts= 2>&1 | tail -15 | tee "$OUT/encoder_gpu_parity.log"
timeout 180 python3 -m bench gpu prompt-parity --size small --dtype float16 --json "$OUT/prompt_parity.json" 2>&1 | tail -12 | tee "$OUT/prompt_parity.log"
timeout 270 python3 -m bench encoder --dtype bf16 --compile --cuda-graphs --out "$OUT/bench_encoder.json" 2>&1 | tee "$OUT/bench_encoder.log"
