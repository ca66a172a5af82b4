"""
End to end with the real `openai` SDK as the client: GA, beta, Azure, transcription and
translation sockets, and the REST endpoints, through earshot to the fake upstream. Each
test checks what the client saw, what the upstream got, and what earshot logged.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import WSMsgType
from openai import AsyncAzureOpenAI, AsyncOpenAI

from tests.conftest import MemorySink
from tests.fake_upstream import EPHEMERAL_KEY, FakeUpstream
from tests.helpers import sessions_ended

API_KEY = "sk-proj-E2EtestKEY0123456789abcdefghij"
PCM = bytes(range(256)) * 19  # 4864 bytes: ~101 ms of 24 kHz PCM16
AUDIO = base64.b64encode(PCM).decode()


@pytest.fixture
async def client(proxy: Any) -> AsyncIterator[AsyncOpenAI]:
    port = proxy.server.port
    async with AsyncOpenAI(
        api_key=API_KEY,
        base_url=f"http://127.0.0.1:{port}/v1",
        websocket_base_url=f"ws://127.0.0.1:{port}/v1",
        max_retries=0,
    ) as sdk:
        yield sdk


def _assert_no_leak(sink: MemorySink, *values: str) -> None:
    text = sink.text()
    for value in (API_KEY, AUDIO[:32], *values):
        assert value not in text


async def test_ga_conversation_through_the_sdk(
    client: AsyncOpenAI, proxy: Any, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    A GA voice turn with the SDK: the client gets its response, the upstream gets the
    SDK's frames byte for byte, and the log has the session's records with no key or audio.
    """
    seen = []
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(session={"type": "realtime", "instructions": "Be brief."})
        await conn.input_audio_buffer.append(audio=AUDIO)
        await conn.input_audio_buffer.commit()
        await conn.response.create()
        async for event in conn:
            seen.append(event.type)
            if event.type == "response.done":
                break
    received = [orjson.loads(await fake.next_frame()) for _ in range(4)]

    assert [
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "response.create",
    ] == [e["type"] for e in received]
    assert "response.output_audio.delta" in seen
    assert "response.done" == seen[-1]
    assert "gpt-realtime" == sink.records("ws.open")[0]["model"]
    assert "ga" == sink.records("ws.open")[0]["protocol"]
    summaries = {(r["direction"], r["type"]): r for r in sink.records("realtime.summary")}
    assert 4864 == summaries[("client", "input_audio_buffer.append")]["bytes"]
    assert 300.0 == summaries[("server", "response.output_audio.delta")]["ms"]
    assert all(r.get("session") == "sess_FAKE1" for r in sink.records("realtime.event"))
    assert f"Bearer {API_KEY}" == fake.handshakes[0]["headers"]["Authorization"]
    _assert_no_leak(sink)


async def test_beta_conversation_through_the_sdk(
    client: AsyncOpenAI, proxy: Any, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    The SDK's beta client is detected as beta and its beta event names are decoded.
    """
    async with client.beta.realtime.connect(model="gpt-4o-realtime-preview") as conn:
        await conn.session.update(
            session={"modalities": ["text", "audio"], "input_audio_format": "g711_ulaw"}
        )
        await conn.input_audio_buffer.append(audio=AUDIO)
        await conn.response.create()
        async for event in conn:
            if event.type == "response.done":
                break
    await sessions_ended(proxy)

    assert "realtime=v1" == fake.handshakes[0]["headers"]["OpenAI-Beta"]
    assert "beta" == sink.records("ws.open")[0]["protocol"]
    types = {r["type"] for r in sink.records("realtime.event")}
    assert {"session.created", "session.update", "response.audio.done", "response.done"} <= types
    summaries = {(r["direction"], r["type"]): r for r in sink.records("realtime.summary")}
    # g711_ulaw is 8 bytes per millisecond: 4864 bytes are 608 ms.
    assert 608.0 == summaries[("client", "input_audio_buffer.append")]["ms"]
    assert not sink.records("realtime.undecodable")
    _assert_no_leak(sink)


async def test_azure_client_through_the_proxy(
    proxy: Any, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    The Azure client reaches `/openai/realtime` with its api-key header and query intact.
    """
    port = proxy.server.port
    azure_key = "azure0123456789abcdef0123456789ab"
    async with (
        AsyncAzureOpenAI(
            api_key=azure_key,
            api_version="2025-04-01-preview",
            azure_endpoint=f"http://127.0.0.1:{port}",
            websocket_base_url=f"ws://127.0.0.1:{port}/openai",
        ) as client,
        client.realtime.connect(model="my-deployment") as conn,
    ):
        await conn.response.create()
        async for event in conn:
            if event.type == "response.done":
                break

    handshake = fake.handshakes[0]
    assert handshake["path"].startswith("/openai/realtime?")
    assert (
        "deployment=my-deployment" in handshake["path"]
        or "model=my-deployment" in handshake["path"]
    )
    assert azure_key == handshake["headers"]["api-key"]
    assert {
        "redacted": "secret",
        "fp": sink.records("ws.open")[0]["headers"]["api-key"]["fp"],
    } == sink.records("ws.open")[0]["headers"]["api-key"]
    _assert_no_leak(sink, azure_key)


async def test_transcription_socket(
    client: AsyncOpenAI, proxy: Any, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    `intent=transcription` passes through in the query and is logged.
    """
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        await conn.session.update(session={"type": "transcription"})
        await conn.input_audio_buffer.append(audio=AUDIO)
        await fake.next_frame()
        await fake.next_frame()

    assert "intent=transcription" in fake.handshakes[0]["path"]
    assert "transcription" == sink.records("ws.open")[0]["intent"]
    _assert_no_leak(sink)


async def test_translation_socket(
    client: AsyncOpenAI, proxy: Any, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    The translation socket's events decode with the translation event set.
    """
    async with client.realtime.translations.connect(model="gpt-realtime-translate") as conn:
        await conn.send({"type": "session.input_audio_buffer.append", "audio": AUDIO})
        await fake.next_frame()
        await fake.send(
            orjson.dumps(
                {
                    "type": "session.output_audio.delta",
                    "delta": AUDIO,
                    "sample_rate": 16000,
                    "channels": 1,
                }
            )
        )
        await fake.send(
            orjson.dumps({"type": "session.output_transcript.delta", "delta": "Bonjour"})
        )
        async for event in conn:
            if event.type == "session.output_transcript.delta":
                break
    await sessions_ended(proxy)

    assert "/v1/realtime/translations?model=gpt-realtime-translate" == fake.handshakes[0]["path"]
    assert "translation" == sink.records("ws.open")[0]["surface"]
    assert not sink.records("realtime.undecodable")
    summaries = {r["type"]: r for r in sink.records("realtime.summary")}
    # 16 kHz mono PCM16 is 32 bytes per millisecond.
    assert 152.0 == summaries["session.output_audio.delta"]["ms"]
    _assert_no_leak(sink)


async def test_browser_subprotocols(proxy: Any, fake: FakeUpstream, sink: MemorySink) -> None:
    """
    A browser offering `realtime` and its key as subprotocols gets exactly `realtime`
    back, the upstream gets the key, and the log only its fingerprint.
    """
    key = "ek_browserKEY0123456789abcdef"
    ws = await proxy.ws_connect(
        "/v1/realtime?model=gpt-realtime", protocols=("realtime", f"openai-insecure-api-key.{key}")
    )
    await ws.receive(timeout=5)

    assert "realtime" == ws.protocol
    assert (
        f"openai-insecure-api-key.{key}" in fake.handshakes[0]["headers"]["Sec-WebSocket-Protocol"]
    )
    await ws.close()
    _assert_no_leak(sink, key)
    assert (
        "openai-insecure-api-key.[redacted:secret:"
        in sink.records("ws.open")[0]["headers"]["sec-websocket-protocol"]
    )


async def test_rest_client_secret_through_the_sdk(
    client: AsyncOpenAI, proxy: Any, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    `client_secrets.create` returns the upstream's ephemeral key; the log fingerprints it.
    """

    secret = await client.realtime.client_secrets.create(
        session={"type": "realtime", "model": "gpt-realtime"}
    )

    assert EPHEMERAL_KEY == secret.value
    (record,) = sink.records("http.exchange")
    assert ("POST", 200, "client_secrets") == (record["method"], record["status"], record["route"])
    assert "secret" == record["response"]["body"]["value"]["redacted"]
    assert {"type": "realtime", "model": "gpt-realtime"} == record["request"]["body"]["session"]
    _assert_no_leak(sink, EPHEMERAL_KEY)


async def test_rest_beta_session_through_the_sdk(
    client: AsyncOpenAI, proxy: Any, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    The beta `sessions.create` response's `client_secret.value` is a secret in the log.
    """

    session = await client.beta.realtime.sessions.create(model="gpt-4o-realtime-preview")

    assert EPHEMERAL_KEY == session.client_secret.value
    (record,) = sink.records("http.exchange")
    assert "secret" == record["response"]["body"]["client_secret"]["value"]["redacted"]
    _assert_no_leak(sink, EPHEMERAL_KEY)


OFFER = (
    "v=0\r\no=- 4611731400430051336 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n"
    "a=ice-ufrag:CLIENTUFRAG\r\na=ice-pwd:CLIENTICEPASSWORD0123456789\r\n"
    "a=candidate:842163049 1 udp 1677729535 198.51.100.7 46154 typ srflx raddr 10.0.0.5 rport 46154\r\n"
)


async def test_rest_call_with_multipart_through_the_sdk(
    client: AsyncOpenAI, proxy: Any, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    `calls.create` (multipart SDP + session) is forwarded byte for byte; its answer and
    Location come back; the log has the SDP without ICE credentials or addresses.
    """

    answer = await client.realtime.calls.with_raw_response.create(
        sdp=OFFER, session={"type": "realtime", "model": "gpt-realtime"}
    )

    assert 201 == answer.status_code
    assert "/v1/realtime/calls/rtc_abc123" == answer.headers["location"]
    assert b"UPSTREAMSECRETPWD" in answer.content
    assert OFFER.encode() in fake.requests[0]["body"]
    (record,) = sink.records("http.exchange")
    parts = record["request"]["body"]["multipart"]
    assert "gpt-realtime" == parts["session"]["model"]
    assert "a=ice-pwd:[redacted:secret:" in parts["sdp"]
    _assert_no_leak(
        sink,
        "CLIENTICEPASSWORD",
        "CLIENTUFRAG",
        "198.51.100.7",
        "10.0.0.5",
        "UPSTREAMSECRETPWD",
        "203.0.113.9",
    )


async def test_rest_call_with_raw_sdp(proxy: Any, fake: FakeUpstream, sink: MemorySink) -> None:
    """
    A raw `application/sdp` offer is forwarded exactly and logged redacted.
    """
    resp = await proxy.post(
        "/v1/realtime/calls?model=gpt-realtime",
        data=OFFER.encode(),
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {API_KEY}"},
    )

    assert 201 == resp.status
    assert OFFER.encode() == fake.requests[0]["body"]
    assert "application/sdp" == fake.requests[0]["headers"]["Content-Type"]
    (record,) = sink.records("http.exchange")
    assert "a=ice-ufrag:[redacted:secret:" in record["request"]["body"]["sdp"]
    _assert_no_leak(sink, "CLIENTICEPASSWORD", "CLIENTUFRAG", "198.51.100.7", "UPSTREAMSECRETPWD")


@pytest.mark.parametrize("verb", ["accept", "hangup", "refer", "reject"])
async def test_rest_call_control_through_the_sdk(
    client: AsyncOpenAI, proxy: Any, fake: FakeUpstream, sink: MemorySink, verb: str
) -> None:
    """
    Call control requests reach the upstream at their path and are logged by route.
    """
    calls = client.realtime.calls
    if verb == "accept":
        await calls.accept(
            "rtc_abc123", type="realtime", model="gpt-realtime", instructions="Greet the caller."
        )
    elif verb == "hangup":
        await calls.hangup("rtc_abc123")
    elif verb == "refer":
        await calls.refer("rtc_abc123", target_uri="tel:+14155550123")
    else:
        await calls.reject("rtc_abc123", status_code=486)

    assert f"/v1/realtime/calls/rtc_abc123/{verb}" == fake.requests[0]["path"]
    (record,) = sink.records("http.exchange")
    assert f"calls/{verb}" == record["route"]
    assert 200 == record["status"]


async def test_binary_and_bad_frames_keep_the_session(
    proxy: Any, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    Binary frames and undecodable text frames are forwarded; the session carries on.
    """
    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime")
    await ws.receive(timeout=5)
    frames = [
        (WSMsgType.BINARY, b"\x00\x01raw"),
        (WSMsgType.TEXT, b"{oops"),
        (WSMsgType.TEXT, b'{"type":"response.create"}'),
    ]

    for kind, data in frames:
        await ws.send_frame(data, kind)
    received = [await fake.next_message() for _ in frames]

    assert frames == received
    reply = await ws.receive(timeout=5)
    assert "response.created" in reply.data
    assert ["binary frame", "invalid JSON: "] == [
        r["reason"][:14] for r in sink.records("realtime.undecodable")
    ]
    await ws.close()


async def test_the_apps_other_calls_go_through_the_same_base_url(
    client: AsyncOpenAI, proxy: Any, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    A sidecar that takes over the app's base URL carries the rest of the API: a chat
    completion, whole and streamed, and a Realtime session, all through one base URL.
    The stream reaches the client chunk by chunk (its second chunk is only sent once the
    client has the first); the log summarises each exchange (model, usage) and holds no
    prompt or answer.
    """
    whole = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "my secret plan is X"}]
    )
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "my secret plan is X"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    words = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            words.append(chunk.choices[0].delta.content)
            fake.stream_gate.set()  # the first chunk is here: let the rest go
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.response.create()
        async for event in conn:
            if event.type == "response.done":
                break
    await sessions_ended(proxy)

    assert "Bonjour chat" == whole.choices[0].message.content
    assert ["Bonjour", " chat"] == words
    exchanges = [r for r in sink.records("http.exchange") if r["path"] == "/v1/chat/completions"]
    assert [200, 200] == [r["status"] for r in exchanges]
    assert [
        {"bytes": exchanges[0]["response"]["body"]["bytes"], "content_type": "application/json",
         "model": "gpt-4o-mini", "object": "chat.completion",
         "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}},
        {"bytes": exchanges[1]["response"]["body"]["bytes"], "content_type": "text/event-stream",
         "events": 4, "model": "gpt-4o-mini", "object": "chat.completion.chunk",
         "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}},
    ] == [r["response"]["body"] for r in exchanges]  # fmt: skip
    assert [True] == [r["request"]["body"].get("stream") for r in exchanges][1:]
    assert 1 == len(sink.records("ws.close"))
    _assert_no_leak(sink, "secret plan", "Bonjour")
