#!/usr/bin/env bash
# How long Esc takes to cancel a reply that streams one huge paragraph (no blank line, no line
# break), from the key to the screen showing the turn cancelled.
#
#   cargo build --release && scripts/measure_tui_cancel.sh [target/release/backchat] [MB] [ROUNDS]
#
# A local server streams MB megabytes (8 by default) of words as fast as they are read, then a
# short delta every 20 ms for as long as the client stays (so the reply is still arriving, and
# the screen still redrawing, when Esc is pressed). The TUI runs in a detached tmux session of
# 100×30; once its status bar counts MB×10⁶/4 tokens, Esc is sent and the pane is polled until
# "■ cancelled" shows. Each round is a fresh TUI. The goal is 100 ms at most.
set -euo pipefail
BIN=$(realpath "${1:-target/release/backchat}")
MB=${2:-8}
ROUNDS=${3:-3}
WORK=$(mktemp -d)
SERVER=
trap 'tmux kill-session -t bc-cancel 2>/dev/null || true; [ -z "$SERVER" ] || kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
export HOME="$WORK/home" XDG_DATA_HOME="$WORK/home/data" XDG_STATE_HOME="$WORK/home/state" \
  XDG_CONFIG_HOME="$WORK/home/config" ANTHROPIC_API_KEY=sk-ant-measure-0123456789

python3 - "$WORK/port" "$MB" <<'EOF' &
import json, socket, sys, threading, time

port_file, mb = sys.argv[1], float(sys.argv[2])

def event(name, data):
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

def delta(text):
    return event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                         "delta": {"type": "text_delta", "text": text}})

def serve(conn):
    try:
        head = b""
        while b"\r\n\r\n" not in head:
            got = conn.recv(65536)
            if not got:
                return
            head += got
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = head.split(b"\r\n\r\n", 1)[1]
        while len(body) < length:
            body += conn.recv(65536)
        out = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
               b"request-id: req_cancel\r\nconnection: close\r\n\r\n")
        out += event("message_start", {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 1}}})
        out += event("content_block_start", {"type": "content_block_start", "index": 0,
                                             "content_block": {"type": "text", "text": ""}})
        conn.sendall(out)
        words = ("lorem ipsum dolor sit amet " * 160)[:4096]
        burst = delta(words) * 16
        for _ in range(int(mb * 1_000_000 / (4096 * 16)) + 1):
            conn.sendall(burst)
        trickle = delta("and more words ")
        while True:
            conn.sendall(trickle)
            time.sleep(0.02)
    except OSError:
        pass
    finally:
        conn.close()

srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(8)
with open(port_file, "w") as f:
    f.write(str(srv.getsockname()[1]))
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
SERVER=$!
while [ ! -s "$WORK/port" ]; do sleep 0.05; done
URL="http://127.0.0.1:$(cat "$WORK/port")"
want=$(python3 -c "print(int($MB * 1_000_000 / 4))")

for round in $(seq "$ROUNDS"); do
  tmux new -d -s bc-cancel -x 100 -y 30 "env HOME=$HOME XDG_DATA_HOME=$XDG_DATA_HOME XDG_STATE_HOME=$XDG_STATE_HOME XDG_CONFIG_HOME=$XDG_CONFIG_HOME ANTHROPIC_API_KEY=$ANTHROPIC_API_KEY $BIN --no-pacing --max-tokens 30000000 --base-url $URL"
  until tmux capture-pane -p -t bc-cancel | grep -q "Type a message"; do sleep 0.05; done
  tmux send-keys -t bc-cancel "one huge paragraph please" Enter
  start=$(date +%s.%N)
  while :; do
    tok=$(tmux capture-pane -p -t bc-cancel | grep -o 'streaming [0-9]* tok' | grep -o '[0-9]*' | head -1 || true)
    [ -n "$tok" ] && [ "$tok" -ge "$want" ] && break
    sleep 0.05
  done
  streamed=$(echo "$(date +%s.%N) - $start" | bc -l)
  sleep 0.5
  t0=$(date +%s%N)
  tmux send-keys -t bc-cancel Escape
  until tmux capture-pane -p -t bc-cancel | grep -q "■ cancelled"; do :; done
  t1=$(date +%s%N)
  printf "round %d: %s MB streamed in %.1f s; Esc to \"cancelled\" on screen: %d ms\n" \
    "$round" "$MB" "$streamed" $(((t1 - t0) / 1000000))
  tmux kill-session -t bc-cancel
done
