#!/usr/bin/env bash
# Peak RSS of the TUI with a ~10 MB transcript resumed, against the same TUI with a tiny one.
#
#   cargo build --release && scripts/measure_tui_rss.sh [target/release/backchat] [CASE...]
#
# CASE is one or more of (all three when none is named):
#   plain   one reply of 10 MB: a single paragraph of words, made with headless mode against
#           scripts/sse_server.py (as a real stream would write it)
#   prose   ~5,700 turns of prose markdown, ~1.7 KB each (headings, paragraphs with bold and
#           code, a list, a quote, a highlighted code block every tenth turn)
#   styled  one reply of 10 MB made of short, densely styled markdown lines (headings, lists,
#           **bold**, `code`, links, quotes, a highlighted code block now and then)
# The prose and styled sessions are written directly in the session file format.
#
# For each case it opens the session in the TUI inside a detached tmux session, waits for the
# first frame, scrolls up page by page, to the top, down page by page and back to the bottom
# (so that rows all over the transcript are drawn), and reads VmHWM (the peak RSS) from /proc.
# The tiny session gives the fixed base; the goal is (peak − base) ≤ 2.5× the text. A second
# base, a tiny session with a highlighted code block, also holds the syntax highlighting's
# definitions (loaded on first use, a few MB whatever the transcript): the ratio above it is
# printed too, for the cases whose text has code.
set -euo pipefail
BIN=$(realpath "${1:-target/release/backchat}")
shift || true
CASES=("$@")
[ ${#CASES[@]} -gt 0 ] || CASES=(plain prose styled)
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
SERVER=
trap 'tmux kill-session -t bc-rss 2>/dev/null || true; [ -z "$SERVER" ] || kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
export HOME="$WORK/home" XDG_DATA_HOME="$WORK/home/data" XDG_STATE_HOME="$WORK/home/state" \
  XDG_CONFIG_HOME="$WORK/home/config" ANTHROPIC_API_KEY=sk-ant-measure-0123456789
SESSIONS="$XDG_DATA_HOME/backchat/sessions"
mkdir -p "$SESSIONS"

# Write session NAME in the session file format: KIND is tiny, prose or styled. Prints the
# bytes of reply text.
write_session() {
  python3 - "$SESSIONS/$1.jsonl" "$2" <<'EOF'
import json, sys

path, kind = sys.argv[1], sys.argv[2]
TS = "2026-01-01T00:00:00Z"
MODEL = "claude-sonnet-4-6"
TARGET = 10_000_000

def prose():
    para = ("Rate limits are measured per minute in three buckets: requests, input tokens "
            "and output tokens. When one runs dry the server answers **429** with a "
            "`retry-after` header, and a polite client waits that long plus a little "
            "*jitter* before it tries again.")
    total, i = 0, 0
    while total < TARGET:
        r = f"## Answer {i}\n\n"
        for p in range(6):
            r += f"{para} (part {p} of turn {i})\n\n"
        r += "- first point\n- second point with `code`\n  1. nested detail\n\n"
        if i % 10 == 0:
            r += ("```rust\nfn backoff(attempt: u32) -> u64 {\n    let base = 500u64 << "
                  "attempt.min(6);\n    base / 2 + fastrand(base / 2)\n}\n```\n\n")
        r += "> That is all.\n"
        total += len(r)
        yield f"Question number {i}: how do rate limits work?", r
        i += 1

def styled():
    out, total, i = [], 0, 0
    while total < TARGET:
        b = (f"### Step {i}\n\n"
             f"- **pace** with `sleep({i})`\n"
             f"- *jitter* and **backoff**\n"
             f"  - nested `x{i % 97}` item\n"
             f"- see [docs](https://example.com/{i})\n\n"
             f"1. read `retry-after`\n"
             f"2. wait **{i % 60}s**\n\n"
             f"> **note** {i}: `429` means *slow down*\n\n")
        if i % 16 == 0:
            b += f"```python\ntime.sleep({i % 7})\nretry()\n```\n\n"
        out.append(b)
        total += len(b)
        i += 1
    yield "Write the runbook as short styled lines.", "".join(out)

turns = {
    "tiny": lambda: iter([("hi", "Hello!")]),
    "tinycode": lambda: iter([("hi", "Some code:\n\n```rust\nfn main() {}\n```\n")]),
    "prose": prose,
    "styled": styled,
}[kind]()
total = 0
with open(path, "w") as f:
    f.write(json.dumps({"type": "header", "v": 1, "app": "backchat", "created": TS,
                        "name": path.rsplit("/", 1)[-1][:-6], "model": MODEL}) + "\n")
    for n, (user, reply) in enumerate(turns, 1):
        total += len(reply.encode())
        f.write(json.dumps({"type": "turn", "v": 1, "n": n, "ts": TS, "user": user,
                            "reply": reply, "end": "complete", "stop_reason": "end_turn",
                            "model": MODEL}) + "\n")
print(total)
EOF
}

# Make session NAME holding one reply of EVENTS deltas of SIZE bytes with headless mode.
# Prints the bytes of reply text.
headless_session() {
  local name=$1 events=$2 size=$3
  python3 "$HERE/make_sse_body.py" "$WORK/body" "$events" "$size"
  rm -f "$WORK/port"
  python3 "$HERE/sse_server.py" "$WORK/body" "$WORK/port" & SERVER=$!
  while [ ! -s "$WORK/port" ]; do sleep 0.05; done
  "$BIN" -p hi --no-pacing --max-tokens 3000000 --session "$name" \
    --base-url "http://127.0.0.1:$(cat "$WORK/port")" >/dev/null
  kill "$SERVER"
  wait "$SERVER" 2>/dev/null || true
  SERVER=
  echo $((events * size))
}

# The TUI's peak RSS in kB with session NAME resumed.
peak_kb() {
  local name=$1 pid i
  tmux new -d -s bc-rss -x 120 -y 40 "env HOME=$HOME XDG_DATA_HOME=$XDG_DATA_HOME XDG_STATE_HOME=$XDG_STATE_HOME XDG_CONFIG_HOME=$XDG_CONFIG_HOME ANTHROPIC_API_KEY=$ANTHROPIC_API_KEY $BIN --session $name --base-url http://127.0.0.1:9"
  # The first frame is drawn once the whole transcript is laid out.
  for i in $(seq 600); do
    tmux capture-pane -p -t bc-rss | grep -q "resumed session" && break
    sleep 0.1
  done
  pid=$(pgrep -n -f -- "$BIN --session $name")
  for i in $(seq 30); do tmux send-keys -t bc-rss PageUp; sleep 0.02; done
  tmux send-keys -t bc-rss Home
  sleep 0.5
  for i in $(seq 30); do tmux send-keys -t bc-rss PageDown; sleep 0.02; done
  tmux send-keys -t bc-rss End
  sleep 1
  tmux capture-pane -p -t bc-rss | tail -3 >&2
  awk '/VmHWM/ {print $2}' /proc/"$pid"/status
  tmux kill-session -t bc-rss
}

mb() { echo "$1 / 1000" | bc -l; }
write_session base tiny >/dev/null
base=$(peak_kb base)
write_session basecode tinycode >/dev/null
basecode=$(peak_kb basecode)
printf "base: peak RSS %.1f MB (a one-turn session); %.1f MB with a highlighted code block\n" \
  "$(mb "$base")" "$(mb "$basecode")"
for case in "${CASES[@]}"; do
  case $case in
    plain) text=$(headless_session plain 20000 500) ;;
    prose | styled) text=$(write_session "$case" "$case") ;;
    *) echo "unknown case $case" >&2; exit 2 ;;
  esac
  peak=$(peak_kb "$case")
  printf "%-6s %5.1f MB of reply text: peak RSS %6.1f MB = base + %.2fx text" "$case" \
    "$(echo "$text / 1000000" | bc -l)" "$(mb "$peak")" \
    "$(echo "($peak - $base) * 1000 / $text" | bc -l)"
  if [ "$case" != plain ]; then
    printf " (base with code + %.2fx)" "$(echo "($peak - $basecode) * 1000 / $text" | bc -l)"
  fi
  printf "\n"
done
