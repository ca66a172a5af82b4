"""
The REST exchange: every answer the upstream gives — errors included — comes back to the
client byte for byte, and is logged with its body decoded.
"""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import MemorySink, ProxyFactory
from tests.fake_upstream import FakeUpstream


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 429, 500, 503])
async def test_an_error_answer_comes_back_exactly_and_is_logged_decoded(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink, status: int
) -> None:
    """
    An upstream error with a JSON body reaches the client with its status, headers and
    body unchanged, and `http.exchange` logs the error body decoded.
    """
    body = orjson.dumps(
        {"error": {"message": f"status {status}", "type": "invalid_request_error", "code": None}}
    )
    headers = [("Content-Type", "application/json"), ("Retry-After", "7"), ("X-Request-Id", "r1")]
    fake.answers.append((status, headers, body))
    proxy = await make_proxy()

    got = await proxy.post("/v1/realtime/client_secrets", json={"session": {"type": "realtime"}})

    assert (status, body) == (got.status, await got.read())
    assert ("7", "r1") == (got.headers["Retry-After"], got.headers["X-Request-Id"])
    (logged,) = sink.records("http.exchange")
    assert status == logged["status"]
    assert orjson.loads(body) == logged["response"]["body"]
