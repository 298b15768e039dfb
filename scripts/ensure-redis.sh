#!/usr/bin/env bash
# Makes sure a Redis answers on 127.0.0.1:6379; installs and starts one if not.
set -euo pipefail
ping() { (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) 2>/dev/null; }
ping && { echo "redis: already answering"; exit 0; }
if ! command -v redis-server >/dev/null; then
  apt-get update -qq -o DPkg::Lock::Timeout=600 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 redis-server
fi
redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes
for _ in $(seq 50); do ping && { echo "redis: started"; exit 0; }; sleep 0.1; done
echo "redis: failed to start" >&2; exit 1
