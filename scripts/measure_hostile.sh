#!/usr/bin/env bash
# Headless wall time against curl on the same bytes, and peak RSS against the reply's size.
#
#   cargo build --release && scripts/measure_hostile.sh [target/release/backchat]
#
# For each body (100k events of 57 bytes ≈ 5.7 MB of text; 100k events of 500 bytes = 50 MB
# of text) it serves the SSE body from a local server, then reports curl's wall time,
# backchat's wall time (stdout to a file, so bytes pass unchanged), their ratio, and
# backchat's peak RSS from /usr/bin/time -v.
set -euo pipefail
BIN=${1:-target/release/backchat}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'kill ${SERVER:-0} 2>/dev/null || true; rm -rf "$WORK"' EXIT

now() { date +%s.%N; }

measure() {
  local events=$1 size=$2
  python3 "$HERE/make_sse_body.py" "$WORK/body" "$events" "$size"
  rm -f "$WORK/port"
  python3 "$HERE/sse_server.py" "$WORK/body" "$WORK/port" & SERVER=$!
  while [ ! -s "$WORK/port" ]; do sleep 0.05; done
  local url="http://127.0.0.1:$(cat "$WORK/port")"
  local body_mb text_mb
  body_mb=$(python3 -c "import os;print(round(os.path.getsize('$WORK/body')/1e6,1))")
  text_mb=$(python3 -c "print(round($events*$size/1e6,1))")
  # Warm up both (page cache, the server's first response).
  curl -s -X POST -d '{}' "$url/v1/messages" -o /dev/null
  local t0 t1 curl_s bc_s
  t0=$(now); curl -s -X POST -d '{}' "$url/v1/messages" -o "$WORK/curl.out"; t1=$(now)
  curl_s=$(echo "$t1 - $t0" | bc -l)
  export HOME="$WORK/home" XDG_DATA_HOME="$WORK/home/data" XDG_STATE_HOME="$WORK/home/state" \
    XDG_CONFIG_HOME="$WORK/home/config" ANTHROPIC_API_KEY=sk-ant-measure-0123456789
  t0=$(now)
  /usr/bin/time -v "$BIN" -p hi --no-pacing --max-tokens 3000000 --base-url "$url" \
    >"$WORK/bc.out" 2>"$WORK/bc.err"
  t1=$(now)
  bc_s=$(echo "$t1 - $t0" | bc -l)
  local rss_kb
  rss_kb=$(grep "Maximum resident set size" "$WORK/bc.err" | awk '{print $NF}')
  printf "body %6s MB, text %5s MB: curl %.3fs, backchat %.3fs (%.1fx), backchat peak RSS %.1f MB (%.2fx text), reply bytes %s\n" \
    "$body_mb" "$text_mb" "$curl_s" "$bc_s" "$(echo "$bc_s / $curl_s" | bc -l)" \
    "$(echo "$rss_kb / 1000" | bc -l)" "$(echo "$rss_kb * 1000 / ($text_mb * 1000000)" | bc -l)" \
    "$(wc -c <"$WORK/bc.out")"
  kill $SERVER; wait $SERVER 2>/dev/null || true
}

measure 1 10
measure 100000 57
measure 100000 500
