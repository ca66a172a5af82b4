"""
The scripted Realtime upstream of `earshot demo` (and of the test suite's fake upstream):
a session's greeting, the replies to a client's events, a voice turn at the real API's
pace (`--timeline`), and the ephemeral-key endpoint; `serve_upstream` runs it alone on a
loopback port (`earshot demo --upstream-only`).
"""

from __future__ import annotations

import asyncio
import base64
import signal
from typing import Any, Final

import orjson
from aiohttp import WSMsgType, web

AUDIO_CHUNK: Final = base64.b64encode(bytes(4800)).decode()  # 100 ms of 24 kHz PCM16 silence
EPHEMERAL_KEY: Final = "ek_68af2b7c1d3e4f5a6b7c8d9eUPSTREAM"


def session_created(beta: bool, translation: bool) -> bytes:
    """The scripted upstream's greeting for a GA, beta or translation socket."""
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
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": 500,
                    },
                    "transcription": {"model": "gpt-4o-mini-transcribe"},
                },
                "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"},
            },
        }
    return orjson.dumps({"type": "session.created", "event_id": "event_1", "session": session})


def replies(data: bytes, beta: bool) -> list[bytes]:
    """The scripted upstream's answers to one client frame."""
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(event, dict):
        return []
    kind = event.get("type")
    if kind == "session.update":
        session = event["session"] if isinstance(event.get("session"), dict) else {}
        return [
            orjson.dumps(
                {
                    "type": "session.updated",
                    "event_id": "event_2",
                    "session": {"id": "sess_FAKE1", **session},
                }
            )
        ]
    if kind == "input_audio_buffer.commit":
        return [
            orjson.dumps(
                {
                    "type": "input_audio_buffer.committed",
                    "event_id": "event_3",
                    "item_id": "item_U1",
                    "previous_item_id": None,
                }
            )
        ]
    if kind == "response.create":
        return response_events(beta)
    return []


def response_events(beta: bool) -> list[bytes]:
    """A spoken answer: a response with audio, its transcript and its usage."""
    audio_delta = "response.audio.delta" if beta else "response.output_audio.delta"
    transcript = "response.audio_transcript" if beta else "response.output_audio_transcript"
    ids = {"response_id": "resp_1", "item_id": "item_A1", "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {
            "type": "response.created",
            "response": {
                "id": "resp_1",
                "object": "realtime.response",
                "status": "in_progress",
                "output": [],
            },
        },
        {
            "type": "response.output_item.added",
            "response_id": "resp_1",
            "output_index": 0,
            "item": {"id": "item_A1", "type": "message", "role": "assistant", "content": []},
        },
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
                "output": [
                    {
                        "id": "item_A1",
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "output_audio", "transcript": "Hello there."}],
                    }
                ],
                "usage": {"total_tokens": 42, "input_tokens": 30, "output_tokens": 12},
            },
        },
    ]
    return [orjson.dumps({"event_id": f"event_r{i}", **e}) for i, e in enumerate(events)]


async def _upstream_socket(request: web.Request) -> web.WebSocketResponse[Any]:
    ws: web.WebSocketResponse[Any] = web.WebSocketResponse(
        protocols=("realtime",), decode_text=False
    )
    await ws.prepare(request)
    beta = "realtime=v1" in request.headers.get("OpenAI-Beta", "")
    await ws.send_frame(session_created(beta, False), WSMsgType.TEXT)
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            for reply in replies(msg.data, beta):
                await ws.send_frame(reply, WSMsgType.TEXT)
    return ws


async def _upstream_rest(_request: web.Request) -> web.Response:
    payload = {
        "value": EPHEMERAL_KEY,
        "expires_at": 1756310470,
        "session": {"type": "realtime", "id": "sess_rest1"},
    }
    return web.Response(body=orjson.dumps(payload), content_type="application/json")


def ev(kind: str, **fields: Any) -> str:
    """One event's JSON text."""
    return orjson.dumps({"type": kind, **fields}).decode()


async def _paced_upstream(request: web.Request) -> web.WebSocketResponse[Any]:
    """A voice turn as the real API paces it: the user speaks from 0.6 s to 1.8 s; VAD
    reports the start with its 300 ms prefix padding (`audio_start_ms` 300) and the end
    once its 500 ms silence window has passed (`audio_end_ms` 2300, the window inside
    it, as OpenAI's server VAD does); the model calls a tool, then answers in audio."""
    ws: web.WebSocketResponse[Any] = web.WebSocketResponse(protocols=("realtime",))
    await ws.prepare(request)
    await ws.send_str(session_created(False, False).decode())
    appends = 0
    async for msg in ws:
        kind = orjson.loads(msg.data).get("type") if msg.type is WSMsgType.TEXT else None
        if kind == "input_audio_buffer.append":
            appends += 1
            if appends == 7:  # the speech began at 0.6 s: VAD says so a moment later
                await ws.send_str(
                    ev("input_audio_buffer.speech_started", audio_start_ms=300, item_id="item_u1")
                )
            if appends == 23:  # 2.3 s in: speech ended at 1.8 s, plus the silence window
                await ws.send_str(
                    ev("input_audio_buffer.speech_stopped", audio_end_ms=2300, item_id="item_u1")
                )
                await ws.send_str(ev("input_audio_buffer.committed", item_id="item_u1"))
                await ws.send_str(ev("response.created", response={"id": "resp_1"}))
                await ws.send_str(
                    ev(
                        "conversation.item.input_audio_transcription.completed",
                        item_id="item_u1",
                        content_index=0,
                        transcript="What's the balance on my checking account?",
                        usage={
                            "type": "tokens",
                            "input_tokens": 24,
                            "output_tokens": 11,
                            "total_tokens": 35,
                            "input_token_details": {"audio_tokens": 24, "text_tokens": 0},
                        },
                    )
                )
                await asyncio.sleep(0.35)
                for piece in ('{"account":', ' "checking"}'):
                    await ws.send_str(
                        ev(
                            "response.function_call_arguments.delta",
                            response_id="resp_1",
                            call_id="call_1",
                            delta=piece,
                        )
                    )
                await ws.send_str(
                    ev(
                        "response.function_call_arguments.done",
                        response_id="resp_1",
                        call_id="call_1",
                        name="get_balance",
                        arguments='{"account": "checking"}',
                    )
                )
                usage = {
                    "input_tokens": 412,
                    "output_tokens": 18,
                    "total_tokens": 430,
                    "input_token_details": {
                        "text_tokens": 380,
                        "audio_tokens": 32,
                        "cached_tokens_details": {"text_tokens": 256},
                    },
                    "output_token_details": {"text_tokens": 18},
                }
                await ws.send_str(
                    ev(
                        "response.done",
                        response={"id": "resp_1", "status": "completed", "usage": usage},
                    )
                )
        elif kind == "response.create":
            await ws.send_str(ev("response.created", response={"id": "resp_2"}))
            await asyncio.sleep(0.42)
            await ws.send_str(
                ev(
                    "response.output_audio_transcript.delta",
                    response_id="resp_2",
                    item_id="item_2",
                    delta="Your checking balance is",
                )
            )
            for _ in range(24):  # 2.4 s of audio, sent faster than it plays
                await ws.send_str(
                    ev(
                        "response.output_audio.delta",
                        response_id="resp_2",
                        item_id="item_2",
                        delta=AUDIO_CHUNK,
                    )
                )
                await asyncio.sleep(0.05)
            await ws.send_str(
                ev(
                    "response.output_audio_transcript.done",
                    response_id="resp_2",
                    item_id="item_2",
                    transcript="Your checking balance is 1,240 dollars and 17 cents.",
                )
            )
            usage = {
                "input_tokens": 470,
                "output_tokens": 152,
                "total_tokens": 622,
                "input_token_details": {
                    "text_tokens": 438,
                    "audio_tokens": 32,
                    "cached_tokens_details": {"text_tokens": 384, "audio_tokens": 32},
                },
                "output_token_details": {"text_tokens": 32, "audio_tokens": 120},
            }
            await ws.send_str(
                ev(
                    "response.done",
                    response={"id": "resp_2", "status": "completed", "usage": usage},
                )
            )
    return ws


def upstream_app(*, paced: bool) -> web.Application:
    """The scripted upstream: a Realtime socket and the ephemeral-key endpoint."""
    app = web.Application()
    app.router.add_get("/v1/realtime", _paced_upstream if paced else _upstream_socket)
    app.router.add_post("/v1/realtime/client_secrets", _upstream_rest)
    return app


async def serve_upstream(port: int, note: Any, *, paced: bool = False) -> int:
    """`earshot demo --upstream-only`: the scripted upstream on a loopback port until
    Ctrl-C or SIGTERM, for a client of your own through an earshot pointed at it."""
    runner = web.AppRunner(upstream_app(paced=paced), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    bound = runner.addresses[0][1]
    note.write(
        f"scripted Realtime upstream on http://127.0.0.1:{bound}\n"
        f"  earshot:  EARSHOT_UPSTREAM_URL=http://127.0.0.1:{bound}"
        " earshot --config config/default.yaml\n"
        "  client:   point it at ws://127.0.0.1:8080/v1/realtime?model=gpt-realtime\n"
    )
    note.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0
