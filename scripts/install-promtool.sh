#!/usr/bin/env bash
# Puts `promtool` (Prometheus 2.42, Debian 12's package) at .cache/bin/promtool for the alert
# tests: the .deb is downloaded with apt and only promtool is unpacked (no service installed,
# nothing started). Idempotent: does nothing when it is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.cache/bin/promtool
if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then
  exit 0
fi
mkdir -p .cache/bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
( cd "$work" && { apt-get download -qq prometheus 2>/dev/null || { apt-get update -qq && apt-get download -qq prometheus; }; } )
dpkg-deb -x "$work"/prometheus_*.deb "$work/x"
install -m 0755 "$work/x/usr/bin/promtool" "$BIN"
"$BIN" --version | head -n1
