"""
Closing: how a session ends, and who ended it.

`Ending` records the first side seen ending the session — the client or the upstream
(a Close, or a lost connection), or the proxy (a drain, a frame over the limit) — with the
code that side sent; `ws.close` reports it literally. The helpers pass a Close on to the
other side and answer the side that sent it, shielded and bounded in time, so a
cancelled handler still completes the handshake on the other leg.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Any, Final, Literal

import aiohttp
from aiohttp import WSCloseCode, web

_UNSENDABLE: Final = frozenset({1005, 1006, 1015})
CLOSE_TIMEOUT = 5.0  # seconds; read at each use (not `Final`: a test shortens it)
NO_STATUS: Final = 1005  # a Close without a code: reported, never sent


Closer = Literal["client", "upstream", "proxy"]


class Ending:
    """How the session ended, decided once: by the first side seen ending it.

    `code` is the code that side sent (1005 for a Close without one, 1006 for a lost
    connection). Once it is set, the other side's reader, which then sees its socket
    closing, knows that is not a failure of its own.
    """

    def __init__(self) -> None:
        self.by: Closer | None = None
        self.code: int = WSCloseCode.ABNORMAL_CLOSURE
        self.reason = b""

    def set(self, by: Closer, code: int, reason: bytes = b"") -> None:
        """`by` ended the session with `code`, unless a side was seen ending it already."""
        if self.by is None:
            self.by, self.code, self.reason = by, code, reason


def close_code(code: object) -> int:
    """The code a Close frame carried: 1005 (no status) for one without a code."""
    return code if isinstance(code, int) and code else NO_STATUS


def reason_bytes(extra: object) -> bytes:
    """A Close frame's reason as bytes that fit a Close frame (123 at most)."""
    if isinstance(extra, bytes):
        return extra[:123]
    if isinstance(extra, str):
        return extra.encode("utf-8", "replace")[:123]
    return b""


def sendable(code: int) -> int:
    """A close code that may go on the wire (1005/1006/1015 are reserved for reporting)."""
    if 1000 <= code <= 4999 and code not in _UNSENDABLE:
        return code
    return WSCloseCode.OK if code == NO_STATUS else WSCloseCode.GOING_AWAY


def error_code(exc: object) -> int:
    """The code to close with after a read error: 1009 for a frame too big, else 1011."""
    code = getattr(exc, "code", None)
    if code == WSCloseCode.MESSAGE_TOO_BIG:
        return WSCloseCode.MESSAGE_TOO_BIG
    return WSCloseCode.INTERNAL_ERROR


async def close_both(
    other: web.WebSocketResponse[Any] | aiohttp.ClientWebSocketResponse[Any],
    sender: web.WebSocketResponse[Any] | aiohttp.ClientWebSocketResponse[Any],
    code: int,
    reason: bytes,
) -> None:
    """A Close came from `sender`: pass it on to the `other` side first, then answer
    `sender` with the same code once the other side has answered."""
    await close_quietly(other, code, reason)
    await close_quietly(sender, code, reason)


async def close_quietly(
    sock: web.WebSocketResponse[Any] | aiohttp.ClientWebSocketResponse[Any],
    code: int,
    reason: bytes = b"",
) -> None:
    """Close one leg (if still open) with `code`, never raising, at most 5 s."""
    if sock.closed:
        return
    # Shielded: if the handler is cancelled (its client gone) mid-close, the close
    # handshake on the other leg still completes, bounded by the timeout.
    with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError, RuntimeError):
        await asyncio.shield(asyncio.wait_for(sock.close(code=code, message=reason), CLOSE_TIMEOUT))


def close_payload(code: int, reason: bytes) -> bytes:
    """A Close frame's payload as it came: empty for a Close that had no code (1005)."""
    return b"" if code == NO_STATUS else struct.pack("!H", code) + reason
