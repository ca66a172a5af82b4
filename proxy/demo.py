"""
`earshot demo`: the first five minutes, offline. It starts a scripted Realtime upstream
and the proxy (default config) on loopback ports, runs a scripted voice session through
the proxy — a session with an MCP tool and its credentials, 2 s of microphone audio, a
photo, a spoken answer — plus a REST call for an ephemeral key, and prints the records
earshot wrote. It then checks that none of the secrets, audio or image it sent appear in
them. The scripted upstream's replies are also what the test suite's fake upstream says.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import math
import signal
import struct
import sys
from collections.abc import Sequence
from typing import Any, Final

import aiohttp
import orjson
from aiohttp import WSMsgType, web

from proxy.app import make_app
from proxy.log import MemorySink, make_logger
from proxy.settings import load, parse

AUDIO_CHUNK: Final = base64.b64encode(bytes(4800)).decode()  # 100 ms of 24 kHz PCM16 silence
EPHEMERAL_KEY: Final = "ek_68af2b7c1d3e4f5a6b7c8d9eUPSTREAM"
DEMO_API_KEY: Final = "sk-proj-DEMOonlyNOTaREALkey0123456789abcdef"
DEMO_MCP_TOKEN: Final = "Bearer mcp-tok-3f9a8b7c6d5e4f3a2b1c"
_TONE: Final = b"".join(
    struct.pack("<h", int(6000 * math.sin(2 * math.pi * 330 * i / 24000))) for i in range(2400)
)
_PHOTO: Final = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40).decode()


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
                "input": {"format": {"type": "audio/pcm", "rate": 24000}},
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


def conversation() -> list[dict[str, Any]]:
    """The scripted client's events: a session with an MCP tool, audio, a photo, a reply."""
    chunk = base64.b64encode(_TONE).decode()
    return [
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "instructions": "You are Acme Bank's voice assistant. Be brief.",
                "tools": [
                    {
                        "type": "mcp",
                        "server_label": "crm",
                        "server_url": "https://crm.example.com/mcp",
                        "authorization": DEMO_MCP_TOKEN,
                        "headers": {"X-Api-Key": "crm-key-77aa88bb99cc"},
                    }
                ],
            },
        },
        *({"type": "input_audio_buffer.append", "audio": chunk} for _ in range(20)),
        {"type": "input_audio_buffer.commit"},
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Here is my card, is it still valid?"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{_PHOTO}"},
                ],
            },
        },
        {"type": "response.create"},
    ]


def _ev(kind: str, **fields: Any) -> str:
    return orjson.dumps({"type": kind, **fields}).decode()


async def _paced_upstream(request: web.Request) -> web.WebSocketResponse[Any]:
    """A voice turn as the real API paces it: VAD hears 1.8 s of speech and waits out
    its 500 ms silence window; the model calls a tool, then answers in audio."""
    ws: web.WebSocketResponse[Any] = web.WebSocketResponse(protocols=("realtime",))
    await ws.prepare(request)
    await ws.send_str(session_created(False, False).decode())
    appends = 0
    async for msg in ws:
        kind = orjson.loads(msg.data).get("type") if msg.type is WSMsgType.TEXT else None
        if kind == "input_audio_buffer.append":
            appends += 1
            if appends == 3:
                await ws.send_str(_ev("input_audio_buffer.speech_started", audio_start_ms=300))
            if appends == 23:  # 2.3 s in: speech ended at 1.8 s, plus the silence window
                await ws.send_str(_ev("input_audio_buffer.speech_stopped", audio_end_ms=1800))
                await ws.send_str(_ev("response.created", response={"id": "resp_1"}))
                await asyncio.sleep(0.35)
                for piece in ('{"account":', ' "checking"}'):
                    await ws.send_str(
                        _ev(
                            "response.function_call_arguments.delta",
                            response_id="resp_1",
                            call_id="call_1",
                            delta=piece,
                        )
                    )
                await ws.send_str(
                    _ev(
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
                    _ev(
                        "response.done",
                        response={"id": "resp_1", "status": "completed", "usage": usage},
                    )
                )
        elif kind == "response.create":
            await ws.send_str(_ev("response.created", response={"id": "resp_2"}))
            await asyncio.sleep(0.42)
            await ws.send_str(
                _ev(
                    "response.output_audio_transcript.delta",
                    response_id="resp_2",
                    item_id="item_2",
                    delta="Your checking balance is",
                )
            )
            for _ in range(24):  # 2.4 s of audio, sent faster than it plays
                await ws.send_str(
                    _ev(
                        "response.output_audio.delta",
                        response_id="resp_2",
                        item_id="item_2",
                        delta=AUDIO_CHUNK,
                    )
                )
                await asyncio.sleep(0.05)
            await ws.send_str(
                _ev(
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
                _ev(
                    "response.done",
                    response={"id": "resp_2", "status": "completed", "usage": usage},
                )
            )
    return ws


async def _paced_client(ws: aiohttp.ClientWebSocketResponse[Any]) -> None:
    """The user speaks for 2.5 s (in real time); the app answers the tool call after
    600 ms; the user cuts the answer off 1.1 s into it."""
    for _ in range(25):
        await ws.send_str(_ev("input_audio_buffer.append", audio=AUDIO_CHUNK))
        await asyncio.sleep(0.1)
    async for msg in ws:
        kind = orjson.loads(msg.data).get("type")
        if kind == "response.function_call_arguments.done":
            await asyncio.sleep(0.6)  # the app's tool
            output = {
                "type": "function_call_output",
                "call_id": "call_1",
                "output": '{"balance": 1240.17}',
            }
            await ws.send_str(_ev("conversation.item.create", item=output))
            await ws.send_str(_ev("response.create"))
        elif kind == "response.done" and '"resp_2"' in msg.data:
            await asyncio.sleep(0.7)  # the user listens, then talks over the answer
            await ws.send_str(
                _ev(
                    "conversation.item.truncate",
                    item_id="item_2",
                    content_index=0,
                    audio_end_ms=1100,
                )
            )
            await asyncio.sleep(0.2)
            return


async def run_demo(config_path: str | None, out: Any, note: Any, *, paced: bool = False) -> int:
    """Run the scripted session: records to `out`, the closing summary to `note`. Paced:
    a voice turn at the pace of the real API, for a timeline to look at."""
    upstream_runner = web.AppRunner(_upstream_app(paced=paced), access_log=None)
    await upstream_runner.setup()
    upstream_site = web.TCPSite(upstream_runner, "127.0.0.1", 0)
    await upstream_site.start()
    upstream_port = upstream_runner.addresses[0][1]

    class _Shown(MemorySink):
        def msg(self, line: bytes) -> None:
            super().msg(line)
            out.write(line.decode())

        debug = info = warning = error = critical = exception = msg

    sink = _Shown()
    lines = sink.lines

    settings = load(config_path) if config_path else parse({})
    import attrs

    settings = attrs.evolve(
        settings,
        upstream=attrs.evolve(
            settings.upstream, url=f"http://127.0.0.1:{upstream_port}", api_key_env=None
        ),
    )
    proxy_runner = web.AppRunner(make_app(settings, make_logger(sink, "info")), access_log=None)
    await proxy_runner.setup()
    proxy_site = web.TCPSite(proxy_runner, "127.0.0.1", 0)
    await proxy_site.start()
    base = f"http://127.0.0.1:{proxy_runner.addresses[0][1]}"
    headers = {"Authorization": f"Bearer {DEMO_API_KEY}"}
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{base}/v1/realtime/client_secrets",
                json={"session": {"type": "realtime", "model": "gpt-realtime"}},
                headers=headers,
            ) as resp:
                await resp.read()
            async with session.ws_connect(
                f"{base}/v1/realtime?model=gpt-realtime", headers=headers
            ) as ws:
                if paced:
                    await _paced_client(ws)
                else:
                    for event in conversation():
                        await ws.send_str(orjson.dumps(event).decode())
                    async for msg in ws:
                        if msg.type is WSMsgType.TEXT and '"response.done"' in msg.data:
                            break
                await ws.close()
        await asyncio.sleep(0.05)
    finally:
        await proxy_runner.cleanup()
        await upstream_runner.cleanup()
    text = b"".join(lines).decode()
    planted = {
        "API key": DEMO_API_KEY,
        "MCP token": DEMO_MCP_TOKEN.split()[1],
        "MCP header": "crm-key-77aa88bb99cc",
        "ephemeral key": EPHEMERAL_KEY,
        "audio": base64.b64encode(_TONE).decode()[:32],
        "image": _PHOTO[:32],
    }
    if paced:
        del planted["MCP token"], planted["MCP header"], planted["image"]
    leaked = [name for name, value in planted.items() if value in text]
    note.write(
        f"\n# {len(lines)} records. Sent through the proxy: an API key, MCP credentials,"
        " 2 s of audio,\n# a photo, and an ephemeral key in a REST response.\n"
    )
    if leaked:
        note.write(f"# LEAKED into the log: {', '.join(leaked)}\n")
        return 1
    note.write(
        "# None of them appears in the records above: only fingerprints, sizes and durations.\n"
    )
    return 0


def main(argv: Sequence[str] = ()) -> int:
    """`earshot demo`: run the scripted session, records on stdout, the report on stderr."""
    parser = argparse.ArgumentParser(
        prog="earshot demo", description="Run a scripted session offline."
    )
    parser.add_argument("--config", default=None, help="config to use (its upstream is replaced)")
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="a voice turn at the real API's pace (7 s), to draw with `earshot report --html`",
    )
    parser.add_argument(
        "--upstream-only",
        action="store_true",
        help="serve only the scripted upstream, for trying your own client through earshot",
    )
    parser.add_argument("--port", type=int, default=0, help="its port with --upstream-only")
    args = parser.parse_args(argv)
    if args.upstream_only:
        return asyncio.run(serve_upstream(args.port, sys.stderr, paced=args.timeline))
    # Records on stdout (so `earshot demo | jq` works), the summary on stderr.
    return asyncio.run(run_demo(args.config, sys.stdout, sys.stderr, paced=args.timeline))


def _upstream_app(*, paced: bool) -> web.Application:
    """The scripted upstream: a Realtime socket and the ephemeral-key endpoint."""
    app = web.Application()
    app.router.add_get("/v1/realtime", _paced_upstream if paced else _upstream_socket)
    app.router.add_post("/v1/realtime/client_secrets", _upstream_rest)
    return app


async def serve_upstream(port: int, note: Any, *, paced: bool = False) -> int:
    """`earshot demo --upstream-only`: the scripted upstream on a loopback port until
    Ctrl-C or SIGTERM, for a client of your own through an earshot pointed at it."""
    runner = web.AppRunner(_upstream_app(paced=paced), access_log=None)
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
