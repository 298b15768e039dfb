#!/usr/bin/env bash
# The whole test suite, set-up included: venv, installs, Redis. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/ensure-redis.sh
. .venv/bin/activate
exec python -m pytest -q -ra "$@"
