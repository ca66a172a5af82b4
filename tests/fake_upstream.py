"""
A fake Realtime upstream for tests: an aiohttp server that speaks enough of the Realtime
protocol for the `openai` SDK (session, audio in, a response with audio and transcript
out), records every frame and request it receives byte for byte, and can be told to
refuse handshakes, drop connections or stall.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from proxy.demo_upstream import AUDIO_CHUNK, EPHEMERAL_KEY, replies, session_created

__all__ = ["AUDIO_CHUNK", "EPHEMERAL_KEY", "FakeUpstream"]


class FakeUpstream:
    """The fake upstream's state; `app()` builds its aiohttp application."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[tuple[WSMsgType, bytes]] = asyncio.Queue()
        self.requests: list[dict[str, Any]] = []
        self.handshakes: list[dict[str, Any]] = []
        self.sockets: list[web.WebSocketResponse[Any]] = []
        self.refuse: tuple[int, bytes] | None = None
        self.refuse_headers: dict[str, str] = {}
        self.protocols: tuple[str, ...] = ("realtime", "openai-beta.realtime-v1")
        self.greet = True
        self.scripted = True
        self.close_codes: list[int | None] = []
        # Answer a Close with this code and reason instead of aiohttp's automatic 1000.
        self.close_answer: tuple[int, bytes] | None = None
        self.closed = asyncio.Event()
        self.stall = False
        self.on_request: Any = None  # called as each REST request arrives
        self.resume = asyncio.Event()
        self.compress = True  # accept permessage-deflate when offered
        self.autoping = True  # answer pings (when False, answer none); all are counted
        self.pings = 0
        # Canned REST answers, taken in order: (status, headers, body).
        self.answers: list[tuple[int, list[tuple[str, str]], bytes]] = []
        # A streamed chat completion sends its first chunk, then waits for this.
        self.stream_gate = asyncio.Event()

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
            response = web.Response(status=status, body=body, content_type="application/json")
            response.headers.update(self.refuse_headers)
            return response
        ws: web.WebSocketResponse[Any] = web.WebSocketResponse(
            protocols=self.protocols,
            max_msg_size=64 * 1024 * 1024,
            decode_text=False,
            autoclose=self.close_answer is None,
            compress=self.compress,
            autoping=False,  # every ping is counted, and answered when `autoping`
        )
        await ws.prepare(request)
        self.sockets.append(ws)
        beta = "realtime=v1" in request.headers.get("OpenAI-Beta", "")
        translation = request.path.endswith("/translations")
        if self.greet:
            await ws.send_frame(session_created(beta, translation), WSMsgType.TEXT)
        async for msg in ws:
            if msg.type is WSMsgType.PING:
                self.pings += 1
                if self.autoping:
                    await ws.pong(msg.data)
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                await self.frames.put((msg.type, msg.data))
                if self.stall:
                    await self.resume.wait()
                if msg.data.startswith(b'{"type":"test.close_me","code":'):
                    # Close from inside the handler, so close() waits for the answer
                    # and `close_code` is the code the other side answered with.
                    await ws.close(code=int(msg.data[31:35]))
                    break
                if self.scripted and msg.type is WSMsgType.TEXT:
                    for reply in replies(msg.data, beta):
                        await ws.send_frame(reply, WSMsgType.TEXT)
        if self.close_answer is not None and not ws.closed:
            code = ws.close_code  # the code the proxy's Close carried
            await ws.close(code=self.close_answer[0], message=self.close_answer[1])
            self.close_codes.append(code)
        else:
            self.close_codes.append(ws.close_code)
        self.closed.set()
        return ws

    async def _chat(self, request: web.Request, body: bytes) -> web.StreamResponse:
        """A chat completion, whole or as server-sent events (its usage in the last)."""
        asked = orjson.loads(body)
        usage = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
        base = {"id": "chatcmpl-1", "created": 1756310470, "model": asked["model"]}
        if not asked.get("stream"):
            message = {"role": "assistant", "content": "Bonjour chat"}
            return web.json_response(
                {**base, "object": "chat.completion", "usage": usage,
                 "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
            )  # fmt: skip
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = {**base, "object": "chat.completion.chunk"}
        for i, word in enumerate(["Bonjour", " chat"]):
            delta = {"index": 0, "delta": {"content": word}, "finish_reason": None}
            await response.write(b"data: " + orjson.dumps({**chunk, "choices": [delta]}) + b"\n\n")
            if i == 0:
                # The client must see the first chunk before the rest is sent: a proxy
                # that buffered the stream would wait here for ever.
                await asyncio.wait_for(self.stream_gate.wait(), 10)
        last = {**chunk, "choices": [], "usage": usage}
        await response.write(b"data: " + orjson.dumps(last) + b"\n\ndata: [DONE]\n\n")
        await response.write_eof()
        return response

    async def rest(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self.on_request is not None:
            self.on_request()
        self.requests.append(
            {
                "method": request.method,
                "path": request.path_qs,
                "headers": dict(request.headers),
                "body": body,
            }
        )
        if self.answers:
            status, headers, answer = self.answers.pop(0)
            response = web.Response(status=status, body=answer)
            for name, value in headers:
                response.headers.add(name, value)
            return response
        path = request.path
        if path == "/v1/chat/completions":
            return await self._chat(request, body)
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
                    "session": {
                        "type": "realtime",
                        "object": "realtime.session",
                        "id": "sess_rest1",
                    },
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
        return web.json_response(
            {"error": {"message": "not found", "type": "invalid_request_error"}}, status=404
        )
