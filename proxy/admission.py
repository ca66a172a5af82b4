"""
Admission: connections that are not yet a request or a session, bounded in time and number.

aiohttp bounds neither how long a client may take to send a request's headers nor how
many connections may sit idle, so a few hundred clients trickling a header a minute, or
idling between keep-alive requests, hold as many file descriptors for as long as they
like (slowloris), and one peer can take every slot. Admission follows aiohttp's parser,
not a byte pattern: a connection is *waiting* from its first byte (or its accept) until
aiohttp hands the app a parsed request — the middleware below marks that moment — and
must get there within `limits.header_timeout`; after the response it is *idle* until its
next byte, and is closed after `limits.keepalive_timeout` (also aiohttp's own keep-alive
setting). A WebSocket session is one long request: not counted, no timer; a frame pays
one call through the watch. (Handing an upgraded connection to aiohttp's protocol alone
would save that call, but would need to know which requests aiohttp upgrades: a
`Connection` header parsed differently here would let a connection leave admission.)
Waiting and idle connections count against `limits.max_pending_connections` and, per
peer address, `limits.max_pending_per_peer`: past either, a new connection is closed at
once. (Request bodies have their own timeout, in the REST exchange.)
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from proxy.aiohttp_private import ServerWrappingRunner


class _Stage(enum.Enum):
    WAITING = "waiting"  # sending a request's headers: counted, header timer
    IN_REQUEST = "in request"  # handed to the app: not counted
    IDLE = "idle"  # between keep-alive requests: counted, keep-alive timer
    GONE = "gone"  # closed


class Admission:
    """The connections admission watches, and what it has refused or closed."""

    def __init__(
        self, *, header_timeout: float, keepalive_timeout: float, cap: int, per_peer: int
    ) -> None:
        self.header_timeout = header_timeout
        self.keepalive_timeout = keepalive_timeout
        self.cap = cap
        self.per_peer = per_peer
        self.count = 0  # waiting and idle connections
        self.by_peer: dict[str, int] = {}
        self.refused = 0
        self.timed_out = 0
        self.idled_out = 0
        self._watches: dict[Any, _Watch] = {}

    def admit(self, peer: str) -> bool:
        """Whether a new connection from `peer` may be watched (else it is closed)."""
        if self.count >= self.cap or self.by_peer.get(peer, 0) >= self.per_peer:
            self.refused += 1
            return False
        return True

    def counted(self, peer: str, delta: int) -> None:
        """One more (or one fewer) waiting or idle connection from `peer`."""
        self.count += delta
        n = self.by_peer.get(peer, 0) + delta
        if n > 0:
            self.by_peer[peer] = n
        else:
            self.by_peer.pop(peer, None)

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Marks a parsed request's start and end on its connection's watch. A WebSocket
        session is one request from the watch's view, however long it lasts: whether a
        request is an upgrade is aiohttp's to decide, and nothing here second-guesses it."""
        watch = self._watches.get(request.transport)
        if watch is not None:
            watch.request_started()
        try:
            return await handler(request)
        finally:
            if watch is not None:
                watch.request_done()


class _Watch(asyncio.Protocol):
    """aiohttp's protocol for one connection, with its admission stage."""

    def __init__(self, inner: asyncio.Protocol, admission: Admission) -> None:
        self._inner = inner
        self._admission = admission
        self._stage = _Stage.GONE
        self._peer = ""
        self._timer: asyncio.TimerHandle | None = None
        self._transport: Any = None

    # --- stages ------------------------------------------------------------------------

    def _enter(self, stage: _Stage) -> None:
        was_counted = self._stage in (_Stage.WAITING, _Stage.IDLE)
        counted = stage in (_Stage.WAITING, _Stage.IDLE)
        if counted != was_counted:
            self._admission.counted(self._peer, 1 if counted else -1)
        self._stage = stage
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if stage is _Stage.WAITING:
            self._arm(self._admission.header_timeout, "timed_out")
        elif stage is _Stage.IDLE:
            self._arm(self._admission.keepalive_timeout, "idled_out")

    def _arm(self, seconds: float, counter: str) -> None:
        def expire() -> None:
            self._timer = None
            setattr(self._admission, counter, getattr(self._admission, counter) + 1)
            self._close()

        self._timer = asyncio.get_running_loop().call_later(seconds, expire)

    def _close(self) -> None:
        self._enter(_Stage.GONE)
        if self._transport is not None:
            self._transport.close()

    def request_started(self) -> None:
        """aiohttp handed the app a parsed request on this connection."""
        if self._stage is not _Stage.GONE:
            self._enter(_Stage.IN_REQUEST)

    def request_done(self) -> None:
        """The app answered; the connection waits for the next request."""
        if self._stage is _Stage.IN_REQUEST:
            self._enter(_Stage.IDLE)

    # --- the protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not `asyncio.Transport` instances: only `close`,
        # and `get_extra_info` are used.)
        self._transport = transport
        self._inner.connection_made(transport)
        peer = transport.get_extra_info("peername")
        self._peer = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if not self._admission.admit(self._peer):
            transport.close()
            return
        self._admission._watches[transport] = self
        self._enter(_Stage.WAITING)

    def data_received(self, data: bytes) -> None:
        if self._stage is _Stage.IDLE:
            self._enter(_Stage.WAITING)  # the next request's first byte: its headers' clock
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._enter(_Stage.GONE)
        self._admission._watches.pop(self._transport, None)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class _WatchingServer:
    """aiohttp's `Server` (the protocol factory), each protocol it makes watched."""

    def __init__(self, server: web.Server, admission: Admission) -> None:
        self._server = server
        self.admission = admission

    def __call__(self) -> asyncio.Protocol:
        return _Watch(self._server(), self.admission)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class AdmittingRunner(ServerWrappingRunner):
    """An `AppRunner` whose sites admit connections as this module says (each protocol
    its `Server` makes is watched: `proxy.aiohttp_private` says how)."""

    def __init__(
        self,
        app: web.Application,
        *,
        header_timeout: float,
        max_pending: int,
        max_pending_per_peer: int | None = None,
        keepalive_timeout: float = 75.0,
        **kwargs: Any,
    ) -> None:
        self.pending = Admission(
            header_timeout=header_timeout,
            keepalive_timeout=keepalive_timeout,
            cap=max_pending,
            per_peer=max_pending if max_pending_per_peer is None else max_pending_per_peer,
        )
        app.middlewares.append(self.pending.middleware)
        super().__init__(app, keepalive_timeout=keepalive_timeout, **kwargs)

    @classmethod
    def for_settings(cls, app: web.Application, limits: Any, **kwargs: Any) -> AdmittingRunner:
        """A runner with the `limits` section's admission settings."""
        return cls(
            app,
            header_timeout=limits.header_timeout,
            max_pending=limits.max_pending_connections,
            max_pending_per_peer=limits.max_pending_per_peer,
            keepalive_timeout=limits.keepalive_timeout,
            **kwargs,
        )

    def wrap_server(self, server: web.Server) -> Any:
        """Each protocol the server makes, watched."""
        return _WatchingServer(server, self.pending)
