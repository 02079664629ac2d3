#!/usr/bin/env bash
# Measure the shared limiter at scale against a private redis-server (never the system's):
# one `backchat loadtest --engine e2e` run per configuration, through Redis and beside the same
# run without it (--compare-unshared), with the processes split over 2 "machines"; Redis round
# trips per request from INFO commandstats; optionally a fault injected mid-run.
#
#   scripts/redis-scale.sh P K [FAULT]     FAULT: none (default) | restart | pause
#
# Environment: BACKCHAT (binary, default target/release/backchat, else target/debug/backchat;
# both rows of a comparison always run the same one), PORT (default 16400), SCALE
# (--time-scale, default 20), MAX_WAIT (the backchat policy's --max-wait in model time,
# default 600 seconds: K users sharing scenario A's input-token limit queue about K × 6 s, so 64 users
# wait about 6.4 min per request, and a team that size would raise the chat's default 2 min),
# AT (seconds of real time before the fault, default 20), EXTRA (more loadtest flags). Prints
# the machine's load before and after, then one `figures:` line per row.
# docs/shared-limiter.md, "At scale".
set -euo pipefail
P=${1:?processes}
K=${2:?users}
FAULT=${3:-none}
PORT=${PORT:-16400}
SCALE=${SCALE:-20}
AT=${AT:-20}
MAX_WAIT=${MAX_WAIT:-600}
BIN=${BACKCHAT:-}
if [[ -z "$BIN" ]]; then
  if [[ -x target/release/backchat ]]; then BIN=target/release/backchat; else BIN=target/debug/backchat; fi
fi
DIR=$(mktemp -d)
REDIS_PID=
cleanup() {
  [[ -n "$REDIS_PID" ]] && kill -CONT "$REDIS_PID" 2>/dev/null && kill "$REDIS_PID" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
start_redis() {
  redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR" \
    >"$DIR/redis.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && return; sleep 0.05; done
  echo "redis-server did not start" >&2; exit 1
}
stat() { redis-cli -p "$PORT" info "$1" | tr -d '\r'; }
start_redis
redis-cli -p "$PORT" config resetstat >/dev/null
echo "binary: $BIN; load before: $(uptime)"
URL="redis://127.0.0.1:$PORT/0"
COMPARE=--compare-unshared
[[ "$FAULT" != none ]] && COMPARE=
# shellcheck disable=SC2086
"$BIN" loadtest --engine e2e --processes "$P" --machines 2 -k "$K" --scenario A \
  --policy backchat --shared-limiter "$URL" $COMPARE --time-scale "$SCALE" \
  --max-wait "$MAX_WAIT" --json ${EXTRA:-} >"$DIR/report.json" &
RUN=$!
if [[ "$FAULT" != none ]]; then
  sleep "$AT"
  before=$(stat stats | sed -n 's/^total_connections_received://p')
  case "$FAULT" in
    restart)
      kill "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true
      t0=$(date +%s.%N); start_redis ;;
    pause)
      kill -STOP "$REDIS_PID"; sleep 10; kill -CONT "$REDIS_PID"; t0=$(date +%s.%N) ;;
  esac
  # Rejoined: every process has opened a fresh connection since the fault.
  [[ "$FAULT" == restart ]] && before=0
  while kill -0 "$RUN" 2>/dev/null; do
    now=$(stat stats | sed -n 's/^total_connections_received://p')
    if (( now - before >= P )); then
      echo "rejoin: all $P processes reconnected $(echo "$(date +%s.%N) - $t0" | bc) s after the fault ended"
      break
    fi
    sleep 0.1
  done
fi
wait "$RUN"
echo "load after: $(uptime)"
calls=$(stat commandstats | awk -F'[=,:]' '/^cmdstat_(evalsha|eval|script)/ {s += $3} END {print s+0}')
python3 - "$DIR/report.json" "$calls" "$P" "$K" "$FAULT" "$MAX_WAIT" <<'PY'
import json, sys
report = json.load(open(sys.argv[1])); calls = int(sys.argv[2])
for p in report["policies"]:
    m = p["mean"]
    attempts = m["successes"] * m["attempts_per_success"]
    line = (f"figures: P={sys.argv[3]} K={sys.argv[4]} fault={sys.argv[5]} max_wait={sys.argv[6]} "
            f"row={p['policy']}"
            f"{'+shared' if p['shared_limiter'] else ''} ratio={m['ratio']:.3f} "
            f"429/ok={m['rate_limited_per_success']:.3f} jain={m['jain']:.3f} "
            f"give_ups={m['give_ups']:.0f} successes={m['successes']:.0f} "
            f"degraded={m['shared_limiter_degraded']:.0f}/{m['shared_limiter_processes']:.0f}")
    if p["shared_limiter"]:
        line += f" redis_calls={calls} attempts={attempts:.0f} round_trips_per_request={calls / max(attempts, 1):.2f}"
    print(line)
    for n in p.get("notes", []):
        print("  note:", n)
PY
