"""The mock's admin endpoint, shared by the SDK check scripts.

`backchat mock --admin-endpoint` takes scripted responses at POST /_mock/script and reports
what reached it at GET /_mock/stats.
"""

import json
import urllib.request


def admin(base_url, path, payload=None):
    """GET `path` on the mock, or POST `payload` as JSON; the decoded JSON answer."""
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(
        base_url + path,
        data=data,
        method="POST" if data is not None else "GET",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def script(base_url, *steps):
    """Queue scripted responses: the next requests get these, in order."""
    admin(base_url, "/_mock/script", list(steps))


def messages_requests(base_url):
    """How many `POST /v1/messages` reached the mock so far."""
    return admin(base_url, "/_mock/stats")["messages_requests"]
