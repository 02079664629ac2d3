#!/usr/bin/env bash
# The issue-11 goal "the official Python SDK with max_retries=0, through the proxy to
# demo-like limits: 40 requests, streaming and not, 0 exceptions": starts a mock with the
# demo's limits (6 RPM, 4,000 ITPM, 3,000 OTPM, 40 tokens/s, one 529 in 12, a first 429),
# `backchat proxy` in front of it, runs scripts/proxy_sdk_demo.py, and prints the proxy's
# /metrics counters. Usage: scripts/proxy_sdk_demo.sh [BINARY] [REQUESTS] [CONCURRENCY]
set -euo pipefail
BIN=${1:-target/debug/backchat}
MOCK_PORT=${MOCK_PORT:-18787}
PROXY_PORT=${PROXY_PORT:-18788}
"$BIN" mock --addr 127.0.0.1:$MOCK_PORT --rpm 6 --itpm 4000 --otpm 3000 --token-rate 40 \
    --fault-overloaded 0.0833 2>/dev/null &
MOCK=$!
"$BIN" proxy --listen 127.0.0.1:$PROXY_PORT --upstream http://127.0.0.1:$MOCK_PORT \
    --headless 2>"${TMPDIR:-/tmp}/proxy_sdk_demo.log" &
PROXY=$!
trap 'kill $MOCK $PROXY 2>/dev/null || true' EXIT
sleep 1
python3 "$(dirname "$0")/proxy_sdk_demo.py" "http://127.0.0.1:$PROXY_PORT" "${2:-40}" "${3:-4}"
curl -s "http://127.0.0.1:$PROXY_PORT/metrics" | grep -E '^backchat_proxy_(requests|attempts|upstream|give_ups|waits)'
