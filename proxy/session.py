"""
A session: one client socket, one upstream socket, and everything the proxy follows
between them. Read `forward` to follow a frame; it does what SPEC §1 says, in order:

    decode → follow (`SessionInfo`) → record (`Recorder`) → await the send → observe turns

`take` is the part before the send (synchronous, never raises: a failure becomes a
metadata record). Both readers (`client_to_upstream` in the handler's task,
`upstream_to_client` in the pump) share one loop, `_relay`, for what is the same both
ways: forward data frames, answer pings, yield to other sessions every few frames. What
each does with the message that ends its loop is written out twice, mirrored, because it
differs: the client's Close goes upstream and waits for the upstream's answer, the
upstream's ends both legs at once; a drain closes the client; a lost upstream is counted.
The session also owns how it ends (`Ending`) and its legs on the heartbeat clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, Final

import aiohttp
import attrs
from aiohttp import WSCloseCode, WSMsgType

import protocol
from protocol import Direction
from proxy import closing
from proxy.aiohttp_private import release
from proxy.closing import (
    Ending,
    close_both,
    close_code,
    close_payload,
    close_quietly,
    error_code,
    reason_bytes,
    sendable,
)
from proxy.heartbeat import Heartbeat, Leg
from proxy.records import Recorder
from proxy.session_info import SessionInfo
from proxy.turns import TurnTracker

# Frames a leg forwards before it lets the event loop run others: `receive()` returns at
# once while its queue holds frames, so without this a flooding peer holds the loop, and
# every other session (and `/healthz`) waits until its queue is empty (SPEC §1.8).
_FAIR_SHARE: Final = 32

# A decoder per direction for each event set: one table for every session that uses it.
_DECODERS: Final = {
    event_set: {
        direction: protocol.decoder(direction, event_set) for direction in ("client", "server")
    }
    for event_set in protocol.EVENT_SETS
}

Socket = Any  # an aiohttp WebSocket leg (server or client side), or a test's stand-in


def _nothing() -> None:
    return None


def _never() -> bool:
    return False


@attrs.define
class Counts:
    """Frames and bytes per direction, for `ws.close`, metrics and the heartbeat."""

    frames: int = 0
    bytes: int = 0
    undecodable: int = 0


class Session:
    """One Realtime WebSocket session between `client` and `upstream`. Slotted: it
    lives as long as an idle session."""

    __slots__ = (
        "_beat",
        "_client_leg",
        "_closing",
        "_decoders",
        "_draining",
        "_drop_client",
        "_pump",
        "_upstream_leg",
        "_upstream_lost",
        "client",
        "clock",
        "counts",
        "end",
        "info",
        "recorder",
        "turns",
        "upstream",
    )

    def __init__(
        self,
        recorder: Recorder,
        info: SessionInfo,
        *,
        client: Socket = None,
        upstream: Socket = None,
        turns: TurnTracker | None = None,
        clock: Callable[[], float] = time.monotonic,
        draining: Callable[[], bool] = _never,
        drop_client: Callable[[], None] = _nothing,
        upstream_lost: Callable[[], None] = _nothing,
    ) -> None:
        self.recorder = recorder
        self.info = info
        self.client = client
        self.upstream = upstream
        self.turns = turns
        self.clock = clock
        self.end = Ending()
        self.counts = {"client": Counts(), "server": Counts()}
        self._decoders = _DECODERS[info.event_set]
        # Told by the app: a drain began; drop the client's connection; an upstream
        # connection was lost (counted as `dropped`).
        self._draining = draining
        self._drop_client = drop_client
        self._upstream_lost = upstream_lost
        self._beat: Heartbeat | None = None
        self._client_leg: Leg | None = None
        self._upstream_leg: Leg | None = None
        self._pump: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None

    # --- one frame ---------------------------------------------------------------------

    async def forward(self, direction: Direction, msg: aiohttp.WSMessage, dst: Socket) -> bool:
        """Record a data frame, send its bytes on (awaiting the send), then time it for
        the turns; False if `msg` is not a data frame, or `dst` is gone (the session has
        then ended)."""
        kind = msg.type
        if kind is WSMsgType.TEXT:
            event = self.take(direction, msg.data)
        elif kind is WSMsgType.BINARY:
            self._count(direction, msg.data)
            self._undecodable(direction, msg.data, "binary frame")
            event = None
        else:
            return False
        try:
            await dst.send_frame(msg.data, kind)
        except (ConnectionError, aiohttp.ClientError, OSError):
            # The receiving side vanished (a client that stopped reading, then went away).
            self.end.set(
                "upstream" if direction == "client" else "client", WSCloseCode.ABNORMAL_CLOSURE
            )
            return False
        turns = self.turns
        if turns is not None and event is not None:
            turns.observe(direction, event, self.clock())
        return True

    def take(
        self, direction: Direction, data: bytes
    ) -> protocol.Event | protocol.UnknownEvent | None:
        """Decode, follow and record one text frame: all that happens before it is sent.
        The event, for the turns (None when it did not decode). Never raises."""
        counts = self.counts[direction]
        counts.frames += 1
        size = len(data)
        counts.bytes += size
        recorder = self.recorder
        try:
            decoded = self._decoders[direction](data)
            plan = recorder.plans.get(type(decoded)) or recorder.plan(decoded)
            if plan is None:
                self._undecodable(direction, data, getattr(decoded, "reason", "undecodable"))
                return None
            event: protocol.Event | protocol.UnknownEvent = decoded  # type: ignore[assignment]
            if plan[0].session and self.info.follow(direction, event):
                recorder.bind(session=self.info.session_id)
            recorder.record(direction, plan, event, size)
        except Exception as exc:  # noqa: BLE001 (fail closed for logs, open for traffic)
            self._undecodable(direction, data, f"internal error: {type(exc).__name__}")
            if recorder.on_error is not None:
                recorder.on_error("records.text", exc)
            return None
        return event

    def _count(self, direction: str, data: bytes) -> None:
        counts = self.counts[direction]
        counts.frames += 1
        counts.bytes += len(data)

    def _undecodable(self, direction: str, data: bytes, reason: str) -> None:
        self.counts[direction].undecodable += 1
        self.recorder.undecodable(direction, data, reason)

    # --- the two readers ---------------------------------------------------------------

    async def client_to_upstream(self) -> None:
        """Read the client until the session ends, forwarding to the upstream."""
        ws, up, end, pump = self.client, self.upstream, self.end, self._pump
        assert pump is not None, "start the pump first"
        msg = await self._relay(ws, "client", up)
        if end.by is not None or pump.done():
            return  # the upstream side ended the session, or the upstream is gone
        if msg.type is WSMsgType.CLOSE:
            code, reason = close_code(msg.data), reason_bytes(msg.extra)
            end.set("client", code, reason)
            await asyncio.shield(self._pass_client_close(code, reason))
        elif msg.type is WSMsgType.ERROR and error_code(msg.data) == WSCloseCode.MESSAGE_TOO_BIG:
            # The proxy refused the client's frame (aiohttp closed the client with 1009).
            end.set("proxy", WSCloseCode.MESSAGE_TOO_BIG)
            await close_quietly(up, WSCloseCode.MESSAGE_TOO_BIG)
        elif self._draining():  # the drain closed the client with 1001
            end.set("proxy", WSCloseCode.GOING_AWAY)
            await close_quietly(up, WSCloseCode.GOING_AWAY)
        else:  # ERROR, CLOSING, CLOSED: the client vanished or broke the protocol
            end.set("client", WSCloseCode.ABNORMAL_CLOSURE)
            await close_quietly(up, WSCloseCode.GOING_AWAY)

    async def upstream_to_client(self) -> None:
        """Read the upstream until the session ends, forwarding to the client."""
        ws, up, end = self.client, self.upstream, self.end
        msg = await self._relay(up, "server", ws)
        if end.by is not None:
            if end.by == "client" and msg.type is WSMsgType.CLOSE:
                # The upstream's answer to the client's Close: the client gets it, code
                # and reason, as its answer.
                code, reason = close_code(msg.data), reason_bytes(msg.extra)
                await close_quietly(ws, sendable(code), reason)
                release(up, code)
            return  # the client side is closing us
        if msg.type is WSMsgType.CLOSE:
            code, reason = close_code(msg.data), reason_bytes(msg.extra)
            end.set("upstream", code, reason)
            await asyncio.shield(close_both(ws, up, sendable(code), reason))
        elif msg.type is WSMsgType.ERROR and error_code(msg.data) == WSCloseCode.MESSAGE_TOO_BIG:
            end.set("proxy", WSCloseCode.MESSAGE_TOO_BIG)
            await close_quietly(ws, WSCloseCode.MESSAGE_TOO_BIG)
        else:  # ERROR, CLOSING, CLOSED: the upstream vanished or broke the protocol
            end.set("upstream", WSCloseCode.ABNORMAL_CLOSURE)
            self._upstream_lost()
            await close_quietly(ws, WSCloseCode.INTERNAL_ERROR, b"upstream connection lost")

    async def _relay(self, src: Socket, direction: Direction, dst: Socket) -> aiohttp.WSMessage:
        """Forward `src`'s data frames to `dst` and answer its pings, until a message that
        is neither (a Close, an error, the socket closing) or a send that failed: that
        message, for the reader to act on."""
        share = _FAIR_SHARE
        client = direction == "client"  # reading the client's leg
        while True:
            msg: aiohttp.WSMessage = await src.receive()
            if await self.forward(direction, msg, dst):
                share -= 1
                if not share:
                    share = _FAIR_SHARE
                    await asyncio.sleep(0)
                continue
            if msg.type is WSMsgType.PING or msg.type is WSMsgType.PONG:
                await _control(msg, src, self._client_leg if client else self._upstream_leg)
                continue
            return msg

    def start_pump(self, name: str) -> asyncio.Task[None]:
        """The upstream's reader, in its own named task."""
        self._pump = asyncio.create_task(self.upstream_to_client(), name=name)
        return self._pump

    async def _pass_client_close(self, code: int, reason: bytes) -> None:
        """The client's Close goes to the upstream as it came (a Close without a code
        stays without one), and the pump answers the client with the upstream's answer.
        An upstream that cannot take the Close, or does not answer within the close
        timeout, is dropped, and the client gets its own code back."""
        up, pump = self.upstream, self._pump
        assert pump is not None
        try:
            await up.send_frame(close_payload(code, reason), WSMsgType.CLOSE)
        except (ConnectionError, aiohttp.ClientError, OSError, RuntimeError):
            pass
        else:
            try:
                await asyncio.wait_for(asyncio.shield(pump), closing.CLOSE_TIMEOUT)
            except TimeoutError:
                pass
            except Exception as exc:  # noqa: BLE001 (the close goes on either way: reported)
                if self.recorder.on_error is not None:
                    self.recorder.on_error("relay.client_close", exc)
        if not pump.done():
            pump.cancel()
            release(up, WSCloseCode.ABNORMAL_CLOSURE)
        await close_quietly(self.client, sendable(code), reason)  # a no-op once answered

    async def finish(self) -> None:
        """Stop the pump and close what is still open: nothing outlives the session."""
        self.forget_legs()
        pump, end = self._pump, self.end
        if pump is not None:
            # A pump passing on the upstream's close must finish: it answers the
            # upstream's Close once the client has answered ours.
            if not pump.done() and end.by != "upstream":
                pump.cancel()
            try:
                await asyncio.wait_for(pump, 2 * closing.CLOSE_TIMEOUT)
            except (asyncio.CancelledError, TimeoutError):
                pass
            except Exception as exc:  # noqa: BLE001 (the session ends either way: reported)
                if self.recorder.on_error is not None:
                    self.recorder.on_error("relay.pump", exc)
        # Nobody seen closing: an error inside the proxy. A side that ended the session
        # closed both legs itself (in a shielded task); what is still open goes away.
        end.set("proxy", WSCloseCode.GOING_AWAY)
        await close_quietly(self.upstream, WSCloseCode.GOING_AWAY)
        lost = end.by == "upstream" and end.code == WSCloseCode.ABNORMAL_CLOSURE
        await close_quietly(
            self.client, WSCloseCode.INTERNAL_ERROR if lost else WSCloseCode.GOING_AWAY
        )
        if self._closing is not None:  # a close a dead upstream started (bounded)
            await asyncio.gather(self._closing, return_exceptions=True)

    # --- the legs on the heartbeat clock -----------------------------------------------

    def watch(self, beat: Heartbeat | None) -> None:
        """Put both legs on the app's clock (none when `upstream.heartbeat` is 0)."""
        self._beat = beat
        if beat is not None:
            self._client_leg = beat.watch(self.client, self.counts["client"], self._client_dead)
            self._upstream_leg = beat.watch(
                self.upstream, self.counts["server"], self._upstream_dead
            )

    def forget_legs(self) -> None:
        """Take both legs off the clock: the session has ended."""
        for leg in (self._client_leg, self._upstream_leg):
            if leg is not None and self._beat is not None:
                self._beat.forget(leg)
        self._client_leg = self._upstream_leg = None

    def _client_dead(self) -> None:
        # Gone without a Close (a phone out of range, a NAT that forgot the flow): drop
        # the connection; the client's reader then closes the upstream with 1001.
        self.end.set("client", WSCloseCode.ABNORMAL_CLOSURE)
        self._drop_client()

    def _upstream_dead(self) -> None:
        self.end.set("upstream", WSCloseCode.ABNORMAL_CLOSURE)
        self._upstream_lost()
        if self._pump is not None:
            self._pump.cancel()
        self._closing = asyncio.create_task(
            close_quietly(self.client, WSCloseCode.INTERNAL_ERROR, b"upstream connection lost")
        )


async def _control(msg: aiohttp.WSMessage, sock: Socket, leg: Leg | None) -> None:
    """A ping is answered on its own leg (pings are per hop, not forwarded); a ping or
    pong tells the clock the leg is alive."""
    if leg is not None:
        leg.heard()
    if msg.type is WSMsgType.PING:
        with contextlib.suppress(ConnectionError, aiohttp.ClientError, OSError, RuntimeError):
            await sock.pong(msg.data)
