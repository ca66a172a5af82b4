"""
Real recorded sessions of OpenAI's Realtime API (tests/data/recordings), replayed through
the running proxy: every frame and body arrives byte for byte, and every event is logged
typed — none undecodable, none unknown that the `openai` SDK defines.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.conftest import MemorySink, ProxyFactory
from tests.fake_upstream import FakeUpstream
from tests.helpers import lockstep, recorded_exchanges, recorded_sessions, sdk_event_types

SESSIONS = recorded_sessions()
EXCHANGES = recorded_exchanges()


@pytest.mark.parametrize(("name", "frames"), SESSIONS, ids=[name for name, _ in SESSIONS])
async def test_a_recorded_session_replays_exactly_and_decodes_typed(
    make_proxy: ProxyFactory,
    fake: FakeUpstream,
    sink: MemorySink,
    name: str,
    frames: list[tuple[str, bytes]],
) -> None:
    """
    Client and upstream play the recording in lockstep through the proxy: each frame
    arrives unchanged, and each is one typed `realtime.event` record.
    """
    fake.greet = fake.scripted = False
    proxy = await make_proxy(log={"events": {"default": "full"}})
    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime")

    arrived = await lockstep(ws, fake, frames)
    await ws.close()

    assert [frame for _, frame in frames] == arrived

    records = sink.records("realtime.event")
    assert [] == sink.records("realtime.undecodable")
    assert [] == [r["type"] for r in records if r.get("unknown") and r["type"] in sdk_event_types()]
    assert [orjson.loads(f)["type"] for _, f in frames] == [r["type"] for r in records]


def _body(message: dict[str, Any]) -> bytes:
    if "parsed_body" in message:
        return orjson.dumps(message["parsed_body"])
    body = message.get("body")
    text = body.get("string", "") if isinstance(body, dict) else body or ""
    return text.encode()


def _headers(message: dict[str, Any], skip: frozenset[str]) -> list[tuple[str, str]]:
    return [
        (name, value)
        for name, values in message["headers"].items()
        if name not in skip
        for value in values
    ]


_NOT_REPLAYED = frozenset({"content-length", "transfer-encoding", "connection", "host"})


@pytest.mark.parametrize(("name", "exchange"), EXCHANGES, ids=[name for name, _ in EXCHANGES])
async def test_a_recorded_rest_exchange_replays_exactly_and_both_bodies_decode(
    make_proxy: ProxyFactory,
    fake: FakeUpstream,
    sink: MemorySink,
    name: str,
    exchange: dict[str, Any],
) -> None:
    """
    The recorded request reaches the upstream with its body unchanged, the recorded answer
    reaches the client unchanged, and both bodies are logged decoded.
    """
    request, response = exchange["request"], exchange["response"]
    answer = _body(response)
    fake.answers.append(
        (
            response["status"]["code"],
            _headers(response, _NOT_REPLAYED | {"content-encoding"}),
            answer,
        )
    )
    proxy = await make_proxy()
    path = request["uri"].split("://", 1)[1].split("/", 1)[1]

    got = await proxy.request(
        request["method"],
        "/" + path,
        data=_body(request),
        headers=_headers(request, _NOT_REPLAYED | {"accept-encoding"}),
    )

    assert (response["status"]["code"], answer) == (got.status, await got.read())
    assert _body(request) == fake.requests[-1]["body"]
    (logged,) = sink.records("http.exchange")
    for side in (logged["request"]["body"], logged["response"]["body"]):
        assert side is not None
        assert "undecodable" not in orjson.dumps(side).decode()
        assert "content_type" not in side, side  # decoded, not summarised as metadata
