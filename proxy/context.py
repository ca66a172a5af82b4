"""
The application's shared state, behind one typed `web.AppKey`: settings, the upstream
client session, the redactor, the logger, metrics, and the set of open sessions that a
drain closes.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import aiohttp
import attrs
from aiohttp import web

from proxy.heartbeat import Heartbeat
from proxy.log import Logger
from proxy.metrics import Metrics
from proxy.pricing import PriceTable
from proxy.records import EventPolicy
from proxy.redact import Redactor
from proxy.session import Session
from proxy.settings import Settings
from proxy.traces import Tracing
from proxy.upstream import Upstream
from proxy.workers import Siblings


@attrs.define(eq=False)
class AppState:
    """What every request handler of one app shares."""

    settings: Settings
    log: Logger
    redactor: Redactor
    event_policy: EventPolicy
    upstream: Upstream
    metrics: Metrics
    prices: PriceTable
    # Made when the app starts (its cleanup context), closed when it stops.
    http: aiohttp.ClientSession | None = None
    draining: bool = False
    forward_prefixes: tuple[str, ...] = ()
    # With several workers: where the others' metrics are, so a scrape adds them up.
    siblings: Siblings | None = None
    # The one clock that pings every session's quiet legs (None: `upstream.heartbeat: 0`).
    heartbeat: Heartbeat | None = None
    # OpenTelemetry traces (None: `otel.endpoint` unset).
    tracing: Tracing | None = None
    sessions: set[web.WebSocketResponse[Any]] = attrs.field(factory=set)
    live: set[Session] = attrs.field(factory=set)  # open sessions: counted at scrape time
    # Set while no session is open: what a drain waits for.
    idle: asyncio.Event = attrs.field(factory=asyncio.Event)

    def __attrs_post_init__(self) -> None:
        self.idle.set()

    def session_opened(self, ws: web.WebSocketResponse[Any], session: Session) -> None:
        """A session is open: it is drained and its frames are counted at scrape time."""
        self.sessions.add(ws)
        self.live.add(session)
        self.idle.clear()

    def session_closed(self, ws: web.WebSocketResponse[Any], session: Session) -> None:
        """A session has ended."""
        self.sessions.discard(ws)
        self.live.discard(session)
        if not self.sessions:
            self.idle.set()

    @property
    def client(self) -> aiohttp.ClientSession:
        """The upstream client session; only while the app runs."""
        if self.http is None:
            raise RuntimeError("the app is not running: no upstream client session")
        return self.http


APP: web.AppKey[AppState] = web.AppKey("earshot", AppState)


def conn_id(prefix: str = "c") -> str:
    """A connection id (`c_…` for WebSocket sessions, `h_…` for REST exchanges), unique
    across restarts and workers: it correlates one connection's records."""
    return f"{prefix}_{secrets.token_hex(6)}"
