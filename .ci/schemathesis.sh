#!/usr/bin/env bash
# Property-based API testing: schemathesis (from PyPI) generates requests from openapi.yaml,
# 200 examples per operation with every check, against the running demo (real SDP and host
# emulators behind it). Any failure, including any 5xx, fails CI.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/schemathesis-venv
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==4.32.5"
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
sdp_port=$(free_port)
token="schemathesis-$(date +%s)"

cargo build --locked --quiet
FLEX_ADMIN_TOKEN="$token" FLEX_LOG=warn target/debug/flex demo \
  --listen "127.0.0.1:$port" --sdp-listen "127.0.0.1:$sdp_port" > target/schemathesis-demo.log 2>&1 &
demo=$!
trap 'kill "$demo" 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
  curl -sf "http://127.0.0.1:$port/readyz" > /dev/null && break
  sleep 0.25
done

"$venv/bin/st" run openapi.yaml \
  --url "http://127.0.0.1:$port" \
  -H "Authorization: Bearer $token" \
  --checks all \
  --max-examples 200 \
  --workers 2 \
  --seed 20261125
