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
import struct
import sys
from collections.abc import Sequence
from typing import Any, Final

import aiohttp
import orjson
from aiohttp import WSMsgType, web

from proxy.app import make_app
from proxy.demo_upstream import AUDIO_CHUNK, EPHEMERAL_KEY, ev, serve_upstream, upstream_app
from proxy.log import MemorySink, make_logger
from proxy.settings import load, parse

DEMO_API_KEY: Final = "sk-proj-DEMOonlyNOTaREALkey0123456789abcdef"
DEMO_MCP_TOKEN: Final = "Bearer mcp-tok-3f9a8b7c6d5e4f3a2b1c"
_TONE: Final = b"".join(
    struct.pack("<h", int(6000 * math.sin(2 * math.pi * 330 * i / 24000))) for i in range(2400)
)
_PHOTO: Final = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40).decode()


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


async def _paced_client(ws: aiohttp.ClientWebSocketResponse[Any]) -> None:
    """The user speaks for 2.5 s (in real time); the app answers the tool call after
    600 ms; the user cuts the answer off 1.1 s into it."""
    for _ in range(25):
        await ws.send_str(ev("input_audio_buffer.append", audio=AUDIO_CHUNK))
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
            await ws.send_str(ev("conversation.item.create", item=output))
            await ws.send_str(ev("response.create"))
        elif kind == "response.done" and '"resp_2"' in msg.data:
            await asyncio.sleep(0.7)  # the user listens, then talks over the answer
            await ws.send_str(
                ev(
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
    upstream_runner = web.AppRunner(upstream_app(paced=paced), access_log=None)
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
