"""
The heartbeat clock on its own, with a hand-turned clock: when a quiet leg is pinged,
when a silent one is declared dead, and what keeps a leg alive.
"""

from __future__ import annotations

import asyncio
from typing import Any

from proxy.heartbeat import Heartbeat


class _Sock:
    def __init__(self) -> None:
        self.pings = 0

    async def ping(self) -> None:
        self.pings += 1


class _Count:
    frames = 0


async def _turn(beat: Heartbeat, now: float) -> None:
    beat.tick(now)
    await asyncio.sleep(0)  # let a ping task run


async def test_a_quiet_leg_is_pinged_after_the_interval_and_dead_half_an_interval_later() -> None:
    """
    Interval 20 s: pinged once at 20 s of silence (not at 19), dead at 10 s after the
    ping with nothing heard, and `dead` called exactly once.
    """
    beat = Heartbeat(20.0)
    sock, deaths = _Sock(), []
    beat.watch(sock, _Count(), lambda: deaths.append(1))  # type: ignore[arg-type]

    for now, pings, dead in ((0, 0, 0), (19, 0, 0), (20, 1, 0), (29, 1, 0), (30, 1, 1), (60, 1, 1)):
        await _turn(beat, now)
        assert (pings, dead) == (sock.pings, len(deaths)), now


async def test_frames_pongs_and_pings_each_keep_a_leg_alive() -> None:
    """
    A frame counted by the recorder, or a ping or pong the relay heard, after the ping
    clears it: the leg is not dead, and its next ping waits for a new interval of quiet.
    """
    beat = Heartbeat(20.0)
    count: Any = _Count()
    sock, deaths = _Sock(), []
    leg = beat.watch(sock, count, lambda: deaths.append(1))  # type: ignore[arg-type]

    await _turn(beat, 0)
    await _turn(beat, 20)  # ping 1
    count.frames += 1
    await _turn(beat, 25)  # a frame: alive, quiet since 25
    await _turn(beat, 44)
    assert (1, []) == (sock.pings, deaths)
    await _turn(beat, 45)  # ping 2
    leg.heard()
    await _turn(beat, 50)  # a pong: alive, quiet since 50
    await _turn(beat, 69)
    assert (2, []) == (sock.pings, deaths)
    await _turn(beat, 70)  # ping 3, then nothing
    await _turn(beat, 80)
    assert (3, [1]) == (sock.pings, deaths)


async def test_a_forgotten_leg_is_never_pinged() -> None:
    """A session that ended is off the clock."""
    beat = Heartbeat(1.0)
    sock = _Sock()
    leg = beat.watch(sock, _Count(), lambda: None)  # type: ignore[arg-type]
    beat.forget(leg)

    for now in range(10):
        await _turn(beat, now)

    assert 0 == sock.pings
