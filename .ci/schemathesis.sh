#!/usr/bin/env bash
# Property-based API testing: schemathesis (from PyPI) generates requests from openapi.yaml,
# 200 examples per operation with every check, against the running demo (real SDP and host
# emulators behind it). Any failure, including any 5xx, fails CI.
set -euo pipefail
cd "$(dirname "$0")/.."

# CPython before 3.12.1 can fail inside Hypothesis with "SystemError: AST constructor
# recursion depth mismatch" (python/cpython#106905) when it runs with several workers: use a
# newer interpreter where the machine has one (pyenv's, here), else python3.
python=python3
for candidate in python3.13 python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[3-9]*/bin/python3; do
  if command -v "$candidate" > /dev/null 2>&1 \
    && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12, 1))' 2> /dev/null; then
    python=$candidate
    break
  fi
done
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
venv=target/schemathesis-venv-$version
if [ ! -x "$venv/bin/st" ]; then
  "$python" -m venv "$venv"
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

# The event stream never ends by itself (that is its job), so schemathesis, which reads a
# whole response, would wait on it forever; tests/it/events.rs exercises it instead.
"$venv/bin/st" run openapi.yaml \
  --url "http://127.0.0.1:$port" \
  --exclude-path /api/echo/v1/events \
  -H "Authorization: Bearer $token" \
  --checks all \
  --max-examples 200 \
  --workers 2 \
  --seed 20261125
