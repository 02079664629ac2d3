#!/usr/bin/env bash
# Peak RSS of the TUI with a 10 MB transcript resumed, against the same TUI with a tiny one.
#
#   cargo build --release && scripts/measure_tui_rss.sh [target/release/backchat]
#
# For each size it makes a session holding one reply with headless mode, opens it in the TUI
# inside a detached tmux session, waits for the first frames, scrolls to the top (every row
# is drawn on the way), and reads VmHWM (the peak RSS) from /proc. The tiny session gives the
# fixed base; the goal is (peak − base) ≤ 2.5× the text.
set -euo pipefail
BIN=$(realpath "${1:-target/release/backchat}")
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
SERVER=
trap 'tmux kill-session -t bc-rss 2>/dev/null || true; [ -z "$SERVER" ] || kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
export HOME="$WORK/home" XDG_DATA_HOME="$WORK/home/data" XDG_STATE_HOME="$WORK/home/state" \
  XDG_CONFIG_HOME="$WORK/home/config" ANTHROPIC_API_KEY=sk-ant-measure-0123456789

# The TUI's peak RSS in kB with a resumed session of EVENTS deltas of SIZE bytes, into $WORK/OUT.
peak_kb() {
  local events=$1 size=$2 out=$3 name="s$1x$2"
  python3 "$HERE/make_sse_body.py" "$WORK/body" "$events" "$size"
  rm -f "$WORK/port"
  python3 "$HERE/sse_server.py" "$WORK/body" "$WORK/port" & SERVER=$!
  while [ ! -s "$WORK/port" ]; do sleep 0.05; done
  local url="http://127.0.0.1:$(cat "$WORK/port")"
  "$BIN" -p hi --no-pacing --max-tokens 3000000 --session "$name" --base-url "$url" >/dev/null
  tmux new -d -s bc-rss -x 120 -y 40 "env HOME=$HOME XDG_DATA_HOME=$XDG_DATA_HOME XDG_STATE_HOME=$XDG_STATE_HOME XDG_CONFIG_HOME=$XDG_CONFIG_HOME ANTHROPIC_API_KEY=$ANTHROPIC_API_KEY $BIN --session $name --base-url $url"
  sleep 4
  local pid
  pid=$(pgrep -n -f -- "$BIN --session $name" || true)
  tmux send-keys -t bc-rss PageUp
  sleep 1
  tmux send-keys -t bc-rss Home
  sleep 1
  tmux capture-pane -p -t bc-rss | tail -3
  awk '/VmHWM/ {print $2}' /proc/"$pid"/status >"$WORK/$out"
  tmux kill-session -t bc-rss
  kill "$SERVER"
  wait "$SERVER" 2>/dev/null || true
  SERVER=
}

peak_kb 1 10 base
peak_kb 20000 500 big
base=$(cat "$WORK/base")
big=$(cat "$WORK/big")
ls -l "$XDG_DATA_HOME"/backchat/sessions/
printf "TUI peak RSS: base %.1f MB (a one-line session), with a 10.0 MB reply resumed %.1f MB = base + %.2fx text\n" \
  "$(echo "$base / 1000" | bc -l)" "$(echo "$big / 1000" | bc -l)" \
  "$(echo "($big - $base) * 1000 / 10000000" | bc -l)"
