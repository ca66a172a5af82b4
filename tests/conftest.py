"""
Fixtures: the fake upstream (served with `aiohttp_server`), the proxy in front of it
(served with `aiohttp_client`), and an in-memory log sink whose records tests read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from proxy import log
from proxy.app import make_app
from proxy.log import make_logger
from proxy.settings import parse
from tests import helpers
from tests.fake_upstream import FakeUpstream


class MemorySink(log.MemorySink):
    """The log's in-memory sink, with the records parsed back for assertions."""

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        out = [orjson.loads(line) for line in self.lines]
        return [r for r in out if event is None or r["event"] == event]

    def text(self) -> str:
        return b"".join(self.lines).decode()


@pytest.fixture(autouse=True)
def _offline_sessions() -> Iterator[None]:
    """The socket-less sessions a test made (`tests.helpers.session_of`) go with it."""
    yield
    helpers.OFFLINE.clear()


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
async def upstream(aiohttp_server: Any) -> tuple[FakeUpstream, TestServer]:
    fake = FakeUpstream()
    server = await aiohttp_server(fake.app())
    return fake, server


ProxyFactory = Callable[..., Any]


@pytest.fixture
def make_proxy(
    aiohttp_client: Any, upstream: tuple[FakeUpstream, TestServer], sink: MemorySink
) -> ProxyFactory:
    """Start a proxy in front of the fake upstream, with config overrides."""

    async def start(**overrides: Any) -> TestClient[Any, Any]:
        _, server = upstream
        raw: dict[str, Any] = {"upstream": {"url": str(server.make_url("/")).rstrip("/")}}
        for section, values in overrides.items():
            raw.setdefault(section, {}).update(values)
        settings = parse(raw, environ={})
        app = make_app(settings, make_logger(sink, "debug"))
        return await aiohttp_client(app)  # type: ignore[no-any-return]

    return start


@pytest.fixture
async def proxy(make_proxy: ProxyFactory) -> TestClient[Any, Any]:
    return await make_proxy()  # type: ignore[no-any-return]


@pytest.fixture
def fake(upstream: tuple[FakeUpstream, TestServer]) -> FakeUpstream:
    return upstream[0]


__all__ = ["MemorySink", "web"]
