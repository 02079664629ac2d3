#!/usr/bin/env python3
"""Write a Messages SSE body: EVENTS text deltas of DELTA_BYTES bytes each.

Usage: make_sse_body.py OUT EVENTS DELTA_BYTES
"""
import json
import sys

out, events, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
word = ("lorem ipsum dolor sit amet " * (size // 27 + 1))[:size]
with open(out, "w") as f:
    start = {"type": "message_start", "message": {"id": "msg_1", "type": "message",
             "role": "assistant", "model": "claude-test", "content": [], "stop_reason": None,
             "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 1}}}
    f.write(f"event: message_start\ndata: {json.dumps(start)}\n\n")
    f.write('event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n')
    d = json.dumps({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": word}})
    line = f"event: content_block_delta\ndata: {d}\n\n"
    for _ in range(events):
        f.write(line)
    f.write('event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n')
    f.write('event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":9}}\n\n')
    f.write('event: message_stop\ndata: {"type":"message_stop"}\n\n')
