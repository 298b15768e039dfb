#!/usr/bin/env bash
# Sets up the venv if needed, then starts the all-in-one service (demo weights on first run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
exec .venv/bin/pandagpt serve "$@"
