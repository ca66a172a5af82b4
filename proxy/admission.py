"""
Admission: connections still sending their request, bounded in time and number.

aiohttp has no limit on how long a client may take to send its request headers, so a
few hundred clients trickling a header a minute hold as many file descriptors for as
long as they like (slowloris). Every accepted connection is given `limits.header_timeout`
seconds to finish its request headers, and at most `limits.max_pending_connections`
connections may be at that stage at once: past either, the connection is closed before
aiohttp sees a request. (Request bodies have their own timeout, in the REST exchange.)
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from aiohttp import web

_END_OF_HEADERS: Final = b"\r\n\r\n"


class _Pending:
    """The connections still sending their first request's headers."""

    def __init__(self, header_timeout: float, cap: int) -> None:
        self.header_timeout = header_timeout
        self.cap = cap
        self.count = 0
        self.refused = 0
        self.timed_out = 0


class _Admitted(asyncio.Protocol):
    """aiohttp's protocol for one connection, watched until its headers are in."""

    def __init__(self, inner: asyncio.Protocol, pending: _Pending) -> None:
        self._inner = inner
        self._pending = pending
        self._waiting = False
        self._tail = b""
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not `asyncio.Transport` instances: only `close` is used.)
        self._transport = transport
        self._inner.connection_made(transport)
        if self._pending.count >= self._pending.cap:
            self._pending.refused += 1
            transport.close()
            return
        self._pending.count += 1
        self._waiting = True
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._pending.header_timeout, self._too_slow)

    def _too_slow(self) -> None:
        if self._waiting and self._transport is not None:
            self._pending.timed_out += 1
            self._admitted()
            self._transport.close()

    def _admitted(self) -> None:
        if self._waiting:
            self._waiting = False
            self._pending.count -= 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        if self._waiting:
            # The end of the headers may straddle two reads: keep the last three bytes.
            if _END_OF_HEADERS in self._tail + data[:3] or _END_OF_HEADERS in data:
                self._admitted()
                # Admitted: from now on the transport talks to aiohttp's protocol
                # directly, so a session's frames pay nothing for this watch.
                set_protocol = getattr(self._transport, "set_protocol", None)
                if set_protocol is not None:  # every asyncio and uvloop transport has it
                    set_protocol(self._inner)
            else:
                self._tail = (self._tail + data)[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._admitted()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class _AdmittingServer:
    """aiohttp's `Server` (the protocol factory), each protocol it makes watched."""

    def __init__(self, server: web.Server, pending: _Pending) -> None:
        self._server = server
        self.pending = pending

    def __call__(self) -> asyncio.Protocol:
        return _Admitted(self._server(), self.pending)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class AdmittingRunner(web.AppRunner):
    """An `AppRunner` whose sites admit connections as this module says."""

    def __init__(
        self, app: web.Application, *, header_timeout: float, max_pending: int, **kwargs: Any
    ) -> None:
        super().__init__(app, **kwargs)
        self.pending = _Pending(header_timeout, max_pending)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return _AdmittingServer(server, self.pending)  # type: ignore[return-value]
