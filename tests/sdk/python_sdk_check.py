"""Talk to backchat's mock API with the official Anthropic Python SDK.

Usage: python3 python_sdk_check.py BASE_URL

The mock must run with its admin endpoint on (POST /_mock/script, GET /_mock/stats), which
this script uses to queue scripted responses. Each check prints one line; the first failure
raises, so the exit status is non-zero and the Rust test fails with the traceback.
"""

import json
import math
import os
import sys
import time

import anthropic

import mock_admin

BASE_URL = sys.argv[1].rstrip("/")
MODEL = "claude-sonnet-4-6"
KEY = "sk-ant-sdk-check"


def script(*steps):
    mock_admin.script(BASE_URL, *steps)


def tokens(text):
    """The mock's counting rule: about four characters per token, rounded up."""
    return math.ceil(len(text) / 4)


def client(**kw):
    return anthropic.Anthropic(api_key=KEY, base_url=BASE_URL, **kw)


def check_stream():
    prompt = "Tell me about token buckets."
    with client().messages.stream(
        model=MODEL,
        max_tokens=2048,
        system="Be concise.",
        messages=[{"role": "user", "content": prompt}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text, "no text streamed"
    assert final.content[0].type == "text" and final.content[0].text == text
    assert final.stop_reason == "end_turn", final.stop_reason
    expected_in = 3 + tokens("Be concise.") + 4 + tokens(prompt)
    assert final.usage.input_tokens == expected_in, (final.usage.input_tokens, expected_in)
    assert final.usage.output_tokens == tokens(text), (final.usage.output_tokens, tokens(text))
    print(f"ok stream: {len(text)} chars, usage in={final.usage.input_tokens} out={final.usage.output_tokens}")


def check_429_is_retried():
    before = mock_admin.messages_requests(BASE_URL)
    script({"type": "error", "status": 429, "retry_after": "1"}, {"type": "ok"})
    t0 = time.monotonic()
    msg = client().messages.create(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    waited = time.monotonic() - t0
    assert msg.content[0].text, "empty reply after the retry"
    seen = mock_admin.messages_requests(BASE_URL) - before
    assert seen == 2, f"expected one 429 and one retry, the mock saw {seen} requests"
    assert waited >= 0.9, f"the SDK did not honour retry-after: 1 (retried after {waited:.2f} s)"
    print(f"ok 429 retried after {waited:.2f} s")


def check_529_without_retries():
    script({"type": "error", "status": 529})
    try:
        client(max_retries=0).messages.create(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
    except (anthropic.OverloadedError, anthropic.InternalServerError) as e:
        assert e.status_code == 529, e.status_code
        assert e.body["error"]["type"] == "overloaded_error", e.body
        print(f"ok 529 -> {type(e).__name__}")
    else:
        raise AssertionError("a 529 with max_retries=0 did not raise")


def check_midstream_error():
    script({"type": "mid_stream_error", "after_tokens": 8, "error_type": "overloaded_error"})
    got = ""
    try:
        with client().messages.stream(
            model=MODEL, max_tokens=2048, messages=[{"role": "user", "content": "stream then fail"}]
        ) as stream:
            for piece in stream.text_stream:
                got += piece
    except (anthropic.APIStatusError, anthropic.APIError) as e:
        kind = getattr(e, "type", None)
        if kind is None and isinstance(getattr(e, "body", None), dict):
            kind = (e.body.get("error") or {}).get("type")
        assert kind == "overloaded_error" or "overloaded_error" in str(e), (kind, str(e))
        assert got, "no text before the error"
        print(f"ok mid-stream error -> {type(e).__name__} ({kind}) after {len(got)} chars")
    else:
        raise AssertionError("a mid-stream error frame did not raise")


def check_count_tokens_and_models():
    n = client().messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "abcdefgh"}])
    assert n.input_tokens == 3 + 4 + 2, n.input_tokens
    ids = [m.id for m in client().models.list(limit=3)]
    for want in ("claude-sonnet-4-6", "claude-opus-4-8", "claude-haiku-4-5", "claude-opus-5"):
        assert want in ids, (want, ids)
    one = client().models.retrieve("claude-sonnet-5")
    assert one.id == "claude-sonnet-5"
    print(f"ok count_tokens and {len(ids)} models over pages of 3")


def expand(v):
    """The fixture's shorthand: "@repeat:N:TEXT" stands for TEXT repeated N times."""
    if isinstance(v, str) and v.startswith("@repeat:"):
        n, text = v[len("@repeat:"):].split(":", 1)
        return text * int(n)
    if isinstance(v, list):
        return [expand(x) for x in v]
    if isinstance(v, dict):
        return {k: expand(x) for k, x in v.items()}
    return v


def usage_row(u):
    cc = u.cache_creation
    return [
        u.input_tokens,
        u.cache_creation_input_tokens,
        u.cache_read_input_tokens,
        cc.ephemeral_5m_input_tokens if cc else None,
        cc.ephemeral_1h_input_tokens if cc else None,
    ]


def check_prompt_caching():
    """Replay tests/sdk/cache_case.json: the SDK sends cache_control (top-level and on
    blocks) and must read the usage that tests/all/cache.rs expects from the same requests."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cache_case.json")
    with open(path) as f:
        fx = expand(json.load(f))
    for r in fx["requests"]:
        c = anthropic.Anthropic(api_key=r["key"] + "-sdk", base_url=BASE_URL)
        params = dict(r["body"], model=fx["model"], max_tokens=64)
        if r["stream"]:
            with c.messages.stream(**params) as stream:
                start_usage = None
                for event in stream:
                    if event.type == "message_start":
                        start_usage = usage_row(event.message.usage)
                final = stream.get_final_message()
            assert start_usage == r["expect"], (r["name"], "message_start", start_usage, r["expect"])
        else:
            final = c.messages.create(**params)
        got = usage_row(final.usage)
        assert got == r["expect"], (r["name"], got, r["expect"])
        print(f"ok cache: {r['name']}: {got}")


def main():
    print(f"anthropic {anthropic.__version__} against {BASE_URL}")
    check_stream()
    check_429_is_retried()
    check_529_without_retries()
    check_midstream_error()
    check_count_tokens_and_models()
    check_prompt_caching()
    print("all SDK checks passed")


if __name__ == "__main__":
    main()
