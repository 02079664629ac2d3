"""The official Anthropic Python SDK through `backchat proxy`, with its own retries off.

Usage: python3 proxy_sdk_check.py PROXY_URL MOCK_URL

The mock behind the proxy runs with its admin endpoint on; this script queues scripted 429s
and 529s there (POST /_mock/script) and counts what reached the mock (GET /_mock/stats).
The proxy runs with --max-retries 2. Each check prints one line; the first failure raises.
"""

import sys

import anthropic

import mock_admin

PROXY_URL = sys.argv[1].rstrip("/")
MOCK_URL = sys.argv[2].rstrip("/")
MODEL = "claude-sonnet-4-6"
KEY = "sk-ant-proxy-sdk-check"


def script(*steps):
    mock_admin.script(MOCK_URL, *steps)


def reached_mock():
    return mock_admin.messages_requests(MOCK_URL)


def rate_limited(after="1"):
    return {"type": "error", "status": 429, "retry_after": after}


def overloaded():
    return {"type": "error", "status": 529, "retry_after": "1"}


def client(**kw):
    kw.setdefault("max_retries", 0)
    return anthropic.Anthropic(api_key=KEY, base_url=PROXY_URL, **kw)


def check_create_absorbs_429s():
    script(rate_limited(), rate_limited())
    before = reached_mock()
    raw = client().messages.with_raw_response.create(
        model=MODEL, max_tokens=256, messages=[{"role": "user", "content": "hi"}]
    )
    msg = raw.parse()
    assert msg.content and msg.content[0].text, msg
    assert raw.headers["x-backchat-attempts"] == "3", dict(raw.headers)
    assert int(raw.headers["x-backchat-waited-ms"]) >= 2000, dict(raw.headers)
    assert reached_mock() - before == 3
    print("create: two 429s absorbed, no SDK retry, 3 attempts upstream")


def check_stream_absorbs_429_and_529():
    script(rate_limited(), overloaded())
    with client().messages.stream(
        model=MODEL, max_tokens=512, messages=[{"role": "user", "content": "Tell me a story."}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text
    assert final.stop_reason == "end_turn", final.stop_reason
    print("stream: a 429 and a 529 absorbed, the stream intact")


def check_give_up_is_not_retried_by_the_sdk():
    # The SDK's default policy (2 retries) is on: x-should-retry: false must stop it.
    # The third 429 asks for a wait longer than the proxy's --max-wait, so it gives up there.
    script(rate_limited(), rate_limited(), rate_limited("30"))
    before = reached_mock()
    try:
        client(max_retries=2).messages.create(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )
    except anthropic.RateLimitError as e:
        assert e.response.headers["x-should-retry"] == "false"
        assert e.response.headers["retry-after"] == "30"
        assert e.response.headers["x-backchat-attempts"] == "3"
        assert "anthropic-ratelimit-requests-remaining" in e.response.headers
    else:
        raise AssertionError("expected the proxy to give up")
    sent = reached_mock() - before
    assert sent == 3, f"the SDK retried the proxy's give-up: {sent} requests reached the mock"
    print("give-up: the SDK got the 429 verbatim and did not retry (3 attempts, all the proxy's)")


def check_count_tokens_and_models():
    n = client().messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "count me"}]
    )
    assert n.input_tokens > 0
    page = client().models.list(limit=2)
    assert len(page.data) == 2
    print("count_tokens and models.list go through")


check_create_absorbs_429s()
check_stream_absorbs_429_and_529()
check_give_up_is_not_retried_by_the_sdk()
check_count_tokens_and_models()
print("all proxy SDK checks passed")
