"""
The cheapest Python relay we can write with the same stack: aiohttp on both legs,
`decode_text=False`, forward every frame, nothing else (no decode, no log, no metrics).
With `--parse`, the same relay also parses every frame with one `orjson.loads` before
forwarding it: the floor of any relay that reads each event first, which earshot's own
overhead is measured against.

    python bench/bare_relay.py --port 9101 --upstream http://127.0.0.1:9100 [--parse]
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import aiohttp
import orjson
from aiohttp import WSMsgType, web

UPSTREAM: web.AppKey[str] = web.AppKey("upstream", str)
CLIENT: web.AppKey[aiohttp.ClientSession] = web.AppKey("client", aiohttp.ClientSession)
PARSE: web.AppKey[bool] = web.AppKey("parse", bool)


async def relay(request: web.Request) -> web.WebSocketResponse[Any]:
    parse = request.app[PARSE]
    up = await request.app[CLIENT].ws_connect(
        request.app[UPSTREAM] + request.path_qs, max_msg_size=0, decode_text=False
    )
    ws: web.WebSocketResponse[Any] = web.WebSocketResponse(max_msg_size=0, decode_text=False)
    await ws.prepare(request)

    async def pump() -> None:
        async for msg in up:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                if parse:
                    orjson.loads(msg.data)
                await ws.send_frame(msg.data, msg.type)
        await ws.close()

    task = asyncio.create_task(pump())
    try:
        async for msg in ws:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                if parse:
                    orjson.loads(msg.data)
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
    parser.add_argument("--parse", action="store_true", help="orjson.loads every frame")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    app = web.Application()
    app[UPSTREAM] = args.upstream
    app[PARSE] = args.parse
    app.cleanup_ctx.append(_client)
    app.router.add_get("/{tail:.*}", relay)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
