"""
Heartbeat: one clock for every session's pings (`upstream.heartbeat`), instead of a timer
per WebSocket that every received frame resets.

aiohttp's own heartbeat schedules a callback for each frame a leg receives (coalesced per
loop tick) to push its ping timer back: a cost paid on the hot path, for an event that
happens once in 20 seconds. Here each leg only registers the frame count its recorder
keeps anyway. A single task wakes every second (every quarter interval when that is
shorter) and, for each leg whose count has not moved for `interval` seconds, sends a
ping; a leg that then receives nothing — no pong, no frame — for half an interval more is
dead, and its `dead` callback ends the session. So a quiet leg is pinged within one tick
after `interval` seconds of silence, and dropped within one tick after `interval / 2`
more, as aiohttp's heartbeat would (it uses the same two figures).
Work per tick is one comparison per open leg; nothing is done per frame.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import aiohttp
import attrs
from aiohttp import web

_MAX_TICK = 1.0


class _Received(Protocol):
    frames: int


@attrs.define(eq=False)
class Leg:
    """One WebSocket leg watched by the clock."""

    sock: web.WebSocketResponse[Any] | aiohttp.ClientWebSocketResponse[Any]
    received: _Received  # the recorder's count of frames received on this leg
    dead: Callable[[], None]
    controls: int = 0  # pings and pongs received (the relay counts them)
    seen: int = -1
    quiet_since: float = 0.0
    ping_at: float | None = None

    def heard(self) -> None:
        """A ping or pong arrived on this leg (data frames are counted by the recorder)."""
        self.controls += 1


class Heartbeat:
    """Pings quiet legs and reports dead ones, on one clock for all of them."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.tick_seconds = min(interval / 4, _MAX_TICK)
        self._legs: set[Leg] = set()
        self._pings: set[asyncio.Task[None]] = set()
        # Told of an exception a leg's `dead` callback raised (the app reports it).
        self.on_error: Callable[[str, BaseException], None] | None = None

    def watch(
        self,
        sock: web.WebSocketResponse[Any] | aiohttp.ClientWebSocketResponse[Any],
        received: _Received,
        dead: Callable[[], None],
    ) -> Leg:
        """Watch one leg until `forget`; `dead` is called at most once."""
        leg = Leg(sock, received, dead)
        self._legs.add(leg)
        return leg

    def forget(self, leg: Leg) -> None:
        """Stop watching a leg (its session has ended)."""
        self._legs.discard(leg)

    def tick(self, now: float) -> None:
        """One look at every leg, at monotonic time `now`."""
        for leg in list(self._legs):
            activity = leg.received.frames + leg.controls
            if activity != leg.seen:
                leg.seen, leg.quiet_since, leg.ping_at = activity, now, None
            elif leg.ping_at is None:
                if now - leg.quiet_since >= self.interval:
                    leg.ping_at = now
                    self._ping(leg)
            elif now - leg.ping_at >= self.interval / 2:
                self._legs.discard(leg)
                # One session's failing callback must not stop the clock for the others;
                # it is reported, not swallowed.
                try:
                    leg.dead()
                except Exception as exc:  # noqa: BLE001
                    if self.on_error is not None:
                        self.on_error("heartbeat.dead", exc)

    def _ping(self, leg: Leg) -> None:
        # A task per ping sent (at most one per leg at a time): a leg whose peer does not
        # read must not hold up the clock for the others.
        task = asyncio.create_task(_send_ping(leg.sock))
        self._pings.add(task)
        task.add_done_callback(self._pings.discard)

    async def run(self) -> None:
        """The clock: tick until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.tick_seconds)
            self.tick(loop.time())

    async def running(self, _app: web.Application) -> AsyncIterator[None]:
        """An app's cleanup context: the clock runs while the app does."""
        task = asyncio.create_task(self.run(), name="earshot-heartbeat")
        yield
        task.cancel()
        for ping in list(self._pings):
            ping.cancel()
        await asyncio.gather(task, *self._pings, return_exceptions=True)


async def _send_ping(
    sock: web.WebSocketResponse[Any] | aiohttp.ClientWebSocketResponse[Any],
) -> None:
    # A leg that is closing or gone fails here; the clock's next look settles it.
    with contextlib.suppress(ConnectionError, aiohttp.ClientError, OSError, RuntimeError):
        await sock.ping()
