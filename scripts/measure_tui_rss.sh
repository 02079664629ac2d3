#!/usr/bin/env bash
# Peak RSS of the TUI with a 10 MB transcript resumed.
#
#   cargo build --release && scripts/measure_tui_rss.sh [target/release/backchat]
#
# Makes a session holding one 10 MB reply with headless mode, opens it in the TUI inside a
# detached tmux session, waits for the first frames, and reads VmHWM from /proc.
set -euo pipefail
BIN=$(realpath "${1:-target/release/backchat}")
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'tmux kill-session -t bc-rss 2>/dev/null || true; kill ${SERVER:-0} 2>/dev/null || true; rm -rf "$WORK"' EXIT
python3 "$HERE/make_sse_body.py" "$WORK/body" 20000 500
python3 "$HERE/sse_server.py" "$WORK/body" "$WORK/port" & SERVER=$!
while [ ! -s "$WORK/port" ]; do sleep 0.05; done
URL="http://127.0.0.1:$(cat "$WORK/port")"
export HOME="$WORK/home" XDG_DATA_HOME="$WORK/home/data" XDG_STATE_HOME="$WORK/home/state" \
  XDG_CONFIG_HOME="$WORK/home/config" ANTHROPIC_API_KEY=sk-ant-measure-0123456789
"$BIN" -p hi --no-pacing --max-tokens 3000000 --session big --base-url "$URL" >/dev/null
ls -l "$XDG_DATA_HOME"/backchat/sessions/
tmux new -d -s bc-rss -x 120 -y 40 "env HOME=$HOME XDG_DATA_HOME=$XDG_DATA_HOME XDG_STATE_HOME=$XDG_STATE_HOME XDG_CONFIG_HOME=$XDG_CONFIG_HOME ANTHROPIC_API_KEY=$ANTHROPIC_API_KEY $BIN --session big --base-url $URL"
sleep 4
PID=$(pgrep -n -f -- "$BIN --session big" || true)
tmux send-keys -t bc-rss PageUp; sleep 1; tmux send-keys -t bc-rss Home; sleep 1
grep -E "VmHWM|VmRSS" /proc/"$PID"/status
tmux capture-pane -p -t bc-rss | tail -3
