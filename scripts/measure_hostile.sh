#!/usr/bin/env bash
# Headless wall time against curl on the same bytes, and peak RSS against the reply's size.
#
#   cargo build --release && scripts/measure_hostile.sh [target/release/backchat] [RUNS]
#
# For each body (one tiny event, for the fixed base; 100k events of 57 bytes ≈ 5.7 MB of
# text; 100k events of 500 bytes = 50 MB of text) it serves the SSE body from a local server,
# then runs curl and backchat RUNS times each (default 7), alternating, and reports:
#
# - the median wall time of each and their ratio (the goal is ≤ 5×), with the median CPU time
#   (user + system) of each beside it: on a shared machine wall time is noisy, CPU time less so;
# - backchat's peak RSS (the median of the runs' maxima from /usr/bin/time -v), and
#   (peak − base) / text, where the base is the tiny reply's peak (the goal is ≤ 2.5×).
#
# backchat runs as a user would: stdout to a file (bytes pass unchanged) and the turn saved
# to a session (written and fsync'd before it exits). The load average is printed first: the
# machine may be busy with other work, which inflates both wall times.
set -euo pipefail
BIN=${1:-target/release/backchat}
RUNS=${2:-7}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
SERVER=
trap '[ -z "$SERVER" ] || kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# Run "$@" under /usr/bin/time; append wall (from the shell's microsecond clock: time's own
# has 10 ms steps, coarse beside curl's tens of milliseconds), cpu (user+sys) and max RSS
# (kB) to $WORK/$TAG.
timed() {
  local tag=$1 out=$2 t0 t1
  shift 2
  t0=$EPOCHREALTIME
  /usr/bin/time -f "%U %S %M" -o "$WORK/t" "$@" >"$out" 2>"$WORK/err" || {
    cat "$WORK/err" >&2
    return 1
  }
  t1=$EPOCHREALTIME
  awk -v w="$(echo "$t1 - $t0" | bc -l)" '{printf "%.4f %.3f %s\n", w, $1 + $2, $3}' "$WORK/t" >>"$WORK/$tag"
}

BASE_KB=
measure() {
  local events=$1 size=$2
  python3 "$HERE/make_sse_body.py" "$WORK/body" "$events" "$size"
  rm -f "$WORK/port" "$WORK/curl" "$WORK/bc"
  python3 "$HERE/sse_server.py" "$WORK/body" "$WORK/port" & SERVER=$!
  while [ ! -s "$WORK/port" ]; do sleep 0.05; done
  local url="http://127.0.0.1:$(cat "$WORK/port")"
  local body_mb text_mb
  body_mb=$(python3 -c "import os;print(round(os.path.getsize('$WORK/body')/1e6,1))")
  text_mb=$(python3 -c "print(round($events*$size/1e6,1))")
  export HOME="$WORK/home" XDG_DATA_HOME="$WORK/home/data" XDG_STATE_HOME="$WORK/home/state" \
    XDG_CONFIG_HOME="$WORK/home/config" ANTHROPIC_API_KEY=sk-ant-measure-0123456789
  # Warm up both (page cache, the server's first response).
  curl -s -X POST -d '{}' "$url/v1/messages" -o /dev/null
  "$BIN" -p hi --no-pacing --no-session --max-tokens 3000000 --base-url "$url" >/dev/null 2>&1
  for _ in $(seq "$RUNS"); do
    timed curl "$WORK/curl.out" curl -s -X POST -d '{}' "$url/v1/messages"
    timed bc "$WORK/bc.out" "$BIN" -p hi --no-pacing --max-tokens 3000000 --base-url "$url"
    rm -rf "$WORK/home/data"
  done
  local cw cc bw bcpu rss
  cw=$(awk '{print $1}' "$WORK/curl" | median)
  cc=$(awk '{print $2}' "$WORK/curl" | median)
  bw=$(awk '{print $1}' "$WORK/bc" | median)
  bcpu=$(awk '{print $2}' "$WORK/bc" | median)
  rss=$(awk '{print $3}' "$WORK/bc" | median)
  [ -n "$BASE_KB" ] || BASE_KB=$rss
  printf "body %6s MB, text %5s MB: median of %s: curl %.3fs (cpu %.3fs), backchat %.3fs (cpu %.3fs): %.1fx curl's wall time; peak RSS %.1f MB = base %.1f + %.2fx text; reply bytes %s\n" \
    "$body_mb" "$text_mb" "$RUNS" "$cw" "$cc" "$bw" "$bcpu" "$(echo "$bw / $cw" | bc -l)" \
    "$(echo "$rss / 1000" | bc -l)" "$(echo "$BASE_KB / 1000" | bc -l)" \
    "$(echo "if ($text_mb > 0) ($rss - $BASE_KB) * 1000 / ($text_mb * 1000000) else 0" | bc -l)" \
    "$(wc -c <"$WORK/bc.out")"
  kill "$SERVER"
  wait "$SERVER" 2>/dev/null || true
  SERVER=
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
measure 1 10
measure 100000 57
measure 100000 500
