"""
A fake Realtime upstream for tests: an aiohttp server that speaks enough of the Realtime
protocol for the `openai` SDK (session, audio in, a response with audio and transcript
out), records every frame and request it receives byte for byte, and can be told to
refuse handshakes, drop connections or stall.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import orjson
from aiohttp import WSMsgType, web

AUDIO_CHUNK = base64.b64encode(bytes(4800)).decode()  # 100 ms of 24 kHz PCM16 silence
EPHEMERAL_KEY = "ek_68af2b7c1d3e4f5a6b7c8d9eUPSTREAM"


class FakeUpstream:
    """The fake upstream's state; `app()` builds its aiohttp application."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[tuple[WSMsgType, bytes]] = asyncio.Queue()
        self.requests: list[dict[str, Any]] = []
        self.handshakes: list[dict[str, Any]] = []
        self.sockets: list[web.WebSocketResponse[Any]] = []
        self.refuse: tuple[int, bytes] | None = None
        self.greet = True
        self.scripted = True
        self.close_codes: list[int | None] = []
        self.closed = asyncio.Event()
        self.stall = False

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/realtime", self.websocket)
        app.router.add_get("/v1/realtime/translations", self.websocket)
        app.router.add_get("/openai/realtime", self.websocket)
        app.router.add_get("/openai/v1/realtime", self.websocket)
        app.router.add_route("*", "/{tail:.*}", self.rest)
        return app

    async def next_frame(self, timeout: float = 5.0) -> bytes:
        _, data = await asyncio.wait_for(self.frames.get(), timeout)
        return data

    async def next_message(self, timeout: float = 5.0) -> tuple[WSMsgType, bytes]:
        return await asyncio.wait_for(self.frames.get(), timeout)

    async def send(self, data: bytes, kind: WSMsgType = WSMsgType.TEXT) -> None:
        await self.sockets[-1].send_frame(data, kind)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        self.handshakes.append(
            {"path": request.path_qs, "headers": dict(request.headers), "host": request.host}
        )
        if self.refuse is not None:
            status, body = self.refuse
            return web.Response(status=status, body=body, content_type="application/json")
        ws: web.WebSocketResponse[Any] = web.WebSocketResponse(
            protocols=("realtime", "openai-beta.realtime-v1"),
            max_msg_size=64 * 1024 * 1024,
            decode_text=False,
            autoclose=True,
        )
        await ws.prepare(request)
        self.sockets.append(ws)
        beta = "realtime=v1" in request.headers.get("OpenAI-Beta", "")
        translation = request.path.endswith("/translations")
        if self.greet:
            await ws.send_frame(_session_created(beta, translation), WSMsgType.TEXT)
        async for msg in ws:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                await self.frames.put((msg.type, msg.data))
                if self.stall:
                    await asyncio.sleep(3600)
                if self.scripted and msg.type is WSMsgType.TEXT:
                    for reply in _replies(msg.data, beta):
                        await ws.send_frame(reply, WSMsgType.TEXT)
        self.close_codes.append(ws.close_code)
        self.closed.set()
        return ws

    async def rest(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            {
                "method": request.method,
                "path": request.path_qs,
                "headers": dict(request.headers),
                "body": body,
            }
        )
        path = request.path
        if path.endswith("/realtime/calls"):
            return web.Response(
                status=201,
                headers={"Location": "/v1/realtime/calls/rtc_abc123"},
                body=b"v=0\r\no=- 1 2 IN IP4 203.0.113.9\r\ns=-\r\na=ice-ufrag:Up1x\r\n"
                b"a=ice-pwd:UPSTREAMSECRETPWD0123456789\r\n"
                b"a=candidate:1 1 udp 2130706431 203.0.113.9 3478 typ host\r\n",
                content_type="application/sdp",
            )
        if path.endswith(("/client_secrets", "/sessions", "/transcription_sessions")):
            if path.endswith("/client_secrets"):
                payload: dict[str, Any] = {
                    "value": EPHEMERAL_KEY,
                    "expires_at": 1756310470,
                    "session": {"type": "realtime", "object": "realtime.session", "id": "sess_rest1"},
                }
            else:
                payload = {
                    "id": "sess_rest2",
                    "object": "realtime.session",
                    "model": "gpt-4o-realtime-preview",
                    "client_secret": {"value": EPHEMERAL_KEY, "expires_at": 1756310470},
                }
            return web.Response(body=orjson.dumps(payload), content_type="application/json")
        if "/realtime/calls/" in path:
            return web.Response(status=200)
        return web.json_response({"error": {"message": "not found", "type": "invalid_request_error"}}, status=404)


def _session_created(beta: bool, translation: bool) -> bytes:
    if beta:
        session: dict[str, Any] = {
            "id": "sess_FAKE1",
            "object": "realtime.session",
            "model": "gpt-4o-realtime-preview",
            "modalities": ["text", "audio"],
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
        }
    elif translation:
        session = {"id": "sess_FAKE1", "type": "translation", "model": "gpt-realtime-translate"}
    else:
        session = {
            "type": "realtime",
            "object": "realtime.session",
            "id": "sess_FAKE1",
            "model": "gpt-realtime",
            "output_modalities": ["audio"],
            "audio": {
                "input": {"format": {"type": "audio/pcm", "rate": 24000}},
                "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"},
            },
        }
    return orjson.dumps({"type": "session.created", "event_id": "event_1", "session": session})


def _replies(data: bytes, beta: bool) -> list[bytes]:
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(event, dict):
        return []
    kind = event.get("type")
    if kind == "session.update":
        session = event.get("session") if isinstance(event.get("session"), dict) else {}
        return [orjson.dumps({"type": "session.updated", "event_id": "event_2", "session": {"id": "sess_FAKE1", **session}})]
    if kind == "input_audio_buffer.commit":
        return [orjson.dumps({"type": "input_audio_buffer.committed", "event_id": "event_3", "item_id": "item_U1", "previous_item_id": None})]
    if kind == "response.create":
        return _response(beta)
    return []


def _response(beta: bool) -> list[bytes]:
    audio_delta = "response.audio.delta" if beta else "response.output_audio.delta"
    transcript = "response.audio_transcript" if beta else "response.output_audio_transcript"
    ids = {"response_id": "resp_1", "item_id": "item_A1", "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {"id": "resp_1", "object": "realtime.response", "status": "in_progress", "output": []}},
        {"type": "response.output_item.added", "response_id": "resp_1", "output_index": 0, "item": {"id": "item_A1", "type": "message", "role": "assistant", "content": []}},
        *({"type": audio_delta, **ids, "delta": AUDIO_CHUNK} for _ in range(3)),
        *({"type": f"{transcript}.delta", **ids, "delta": word} for word in ("Hello ", "there.")),
        {"type": audio_delta.replace(".delta", ".done"), **ids},
        {"type": f"{transcript}.done", **ids, "transcript": "Hello there."},
        {
            "type": "response.done",
            "response": {
                "id": "resp_1",
                "object": "realtime.response",
                "status": "completed",
                "output": [{"id": "item_A1", "type": "message", "role": "assistant", "content": [{"type": "output_audio", "transcript": "Hello there."}]}],
                "usage": {"total_tokens": 42, "input_tokens": 30, "output_tokens": 12},
            },
        },
    ]
    return [orjson.dumps({"event_id": f"event_r{i}", **e}) for i, e in enumerate(events)]
