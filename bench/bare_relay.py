"""
The cheapest Python relay we can write with the same stack: aiohttp on both legs,
`decode_text=False`, forward every frame, nothing else (no decode, no log, no metrics).
The floor that earshot's own overhead is measured against.

    python bench/bare_relay.py --port 9101 --upstream http://127.0.0.1:9100
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

UPSTREAM: web.AppKey[str] = web.AppKey("upstream", str)
CLIENT: web.AppKey[aiohttp.ClientSession] = web.AppKey("client", aiohttp.ClientSession)


async def relay(request: web.Request) -> web.WebSocketResponse[Any]:
    up = await request.app[CLIENT].ws_connect(
        request.app[UPSTREAM] + request.path_qs, max_msg_size=0, decode_text=False
    )
    ws: web.WebSocketResponse[Any] = web.WebSocketResponse(max_msg_size=0, decode_text=False)
    await ws.prepare(request)

    async def pump() -> None:
        async for msg in up:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                await ws.send_frame(msg.data, msg.type)
        await ws.close()

    task = asyncio.create_task(pump())
    try:
        async for msg in ws:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                await up.send_frame(msg.data, msg.type)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await up.close()
    return ws


async def _client(app: web.Application) -> Any:
    app[CLIENT] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    yield
    await app[CLIENT].close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    app = web.Application()
    app[UPSTREAM] = args.upstream
    app.cleanup_ctx.append(_client)
    app.router.add_get("/{tail:.*}", relay)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
