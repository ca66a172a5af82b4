"""
The aiohttp internals `proxy.aiohttp_private` relies on, read from the installed aiohttp:
these fail on a release where what `close()` and `setup()` do differs from what the module
mirrors, which is why `pyproject.toml` pins aiohttp to the releases they pass on.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import textwrap
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from proxy.aiohttp_private import CLOSE_SETS, ServerWrappingRunner, release


def _self_uses(function: Any, name: str = "self") -> set[str]:
    """The attributes of `name` (`self`) a function assigns or calls (first level:
    `self.X = …`, `self.X(…)`, `self.X.y(…)`)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    used = set()
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.Call):
            targets = [node.func]
        for target in targets:
            while isinstance(target, ast.Attribute):
                if isinstance(target.value, ast.Name) and target.value.id == name:
                    used.add(target.attr)
                    break
                target = target.value  # type: ignore[assignment]
    return used


def test_close_does_on_the_way_out_what_release_mirrors() -> None:
    """
    What the installed aiohttp's `ClientWebSocketResponse.close()` sets and calls is what
    it did when `release` was written (3.14.5): the part after the peer's Close has been
    read is `CLOSE_SETS`, and the rest is its own handshake (sending our Close, breaking
    a waiting `receive()`, reading the answer), which the relay does itself.
    """
    handshake = {
        "_waiting",
        "_closing",
        "_close_wait",
        "_set_closing",
        "_reader",
        "_writer",
        "_exception",
        "_timeout",
        "_loop",
        "_closed",
    }

    assert CLOSE_SETS | handshake >= _self_uses(aiohttp.ClientWebSocketResponse.close)
    assert CLOSE_SETS <= _self_uses(aiohttp.ClientWebSocketResponse.close)
    assert CLOSE_SETS == _self_uses(release, "up")


def test_runner_setup_builds_its_server_with_make_server() -> None:
    """
    `BaseRunner.setup()` builds the runner's `Server` by calling `_make_server()`: the one
    place `ServerWrappingRunner` wraps it.
    """
    assert "_make_server" in _self_uses(web.BaseRunner.setup)


async def test_release_ends_the_leg_without_a_close_frame() -> None:
    """
    After `release(up, 4000)` the client leg is closed with code 4000, and the peer sees
    its connection end with no Close frame sent by `release`.
    """
    seen: list[Any] = []
    ended = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoclose=False)
        await ws.prepare(request)
        msg = await ws.receive()
        seen.append(msg.type)
        ended.set()
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with aiohttp.ClientSession() as client:
            up = await client.ws_connect(f"http://127.0.0.1:{runner.addresses[0][1]}/")
            release(up, 4000)
            await asyncio.wait_for(ended.wait(), 5)
    finally:
        await runner.cleanup()

    assert (True, 4000) == (up.closed, up.close_code)
    assert WSMsgType.CLOSE not in seen  # the peer saw its connection end, and no Close


async def test_a_wrapping_runner_serves_through_the_wrapped_factory() -> None:
    """
    A `ServerWrappingRunner` hands its `Server` to `wrap_server` once, at setup, and its
    sites make their connections' protocols with what `wrap_server` returned.
    """
    made: list[str] = []

    class Counting:
        def __init__(self, server: web.Server) -> None:
            self._server = server

        def __call__(self) -> Any:
            made.append("protocol")
            return self._server()

        def __getattr__(self, name: str) -> Any:
            return getattr(self._server, name)

    class Runner(ServerWrappingRunner):
        def wrap_server(self, server: web.Server) -> Any:
            made.append("wrapped")
            return Counting(server)

    app = web.Application()

    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/", ok)
    runner = Runner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as client, client.get(f"http://127.0.0.1:{port}/") as r:
            assert "ok" == await r.text()
    finally:
        await runner.cleanup()

    assert ["wrapped", "protocol"] == made
