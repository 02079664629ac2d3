"""The official Anthropic Python SDK, its own retries off (max_retries=0), sending 40
requests (half streamed, half not) through `backchat proxy` to a mock with the demo's tight
limits and random 529s. Prints the number of exceptions, which the goal wants at 0.

Usage: python3 scripts/proxy_sdk_demo.py PROXY_URL [REQUESTS] [CONCURRENCY]
(scripts/proxy_sdk_demo.sh starts the mock and the proxy and calls this.)
"""

import sys
import time
from concurrent.futures import ThreadPoolExecutor

import anthropic

PROXY_URL = sys.argv[1]
REQUESTS = int(sys.argv[2]) if len(sys.argv) > 2 else 40
CONCURRENCY = int(sys.argv[3]) if len(sys.argv) > 3 else 4
client = anthropic.Anthropic(
    api_key="sk-ant-demo-key", base_url=PROXY_URL, max_retries=0, timeout=600
)


def one(i):
    started = time.monotonic()
    messages = [{"role": "user", "content": f"Request {i}: explain token buckets briefly."}]
    try:
        if i % 2 == 0:
            with client.messages.stream(
                model="claude-sonnet-4-6", max_tokens=150, messages=messages
            ) as stream:
                text = "".join(stream.text_stream)
                stream.get_final_message()
            attempts = stream.response.headers.get("x-backchat-attempts")
        else:
            raw = client.messages.with_raw_response.create(
                model="claude-sonnet-4-6", max_tokens=150, messages=messages
            )
            text = raw.parse().content[0].text
            attempts = raw.headers.get("x-backchat-attempts")
        assert text
        return (None, int(attempts or 1), time.monotonic() - started)
    except Exception as e:  # noqa: BLE001 - every exception counts against the goal
        return (f"{type(e).__name__}: {e}", 0, time.monotonic() - started)


t0 = time.monotonic()
with ThreadPoolExecutor(CONCURRENCY) as pool:
    results = list(pool.map(one, range(REQUESTS)))
errors = [r[0] for r in results if r[0]]
for e in errors:
    print("exception:", e)
attempts = sum(r[1] for r in results)
print(
    f"requests={REQUESTS} streamed={(REQUESTS + 1) // 2} concurrency={CONCURRENCY} "
    f"exceptions={len(errors)} upstream_attempts={attempts} "
    f"retries_absorbed={attempts - (REQUESTS - len(errors))} "
    f"wall={time.monotonic() - t0:.1f}s max_latency={max(r[2] for r in results):.1f}s"
)
sys.exit(1 if errors else 0)
