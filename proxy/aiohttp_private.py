"""
The two places earshot reaches into aiohttp's private parts, kept here and nowhere else.

- `release`: ending an upstream leg whose closing handshake the relay conducted itself.
  aiohttp's public `close()` (and `receive()` after a Close) always writes a Close of its
  own, with a code; the relay must pass on a client's Close as it came (one without a
  code stays without one), so it sends that frame itself and then needs the state
  `close()` leaves behind without the frame.
- `ServerWrappingRunner`: an `AppRunner` whose `Server` (the protocol factory) can be
  wrapped, for admission (`proxy.admission`): aiohttp has no public hook for a
  connection's protocol.

The trade-off: a public path would need aiohttp changes (a `close(code=None)` that sends
a code-less Close, a protocol-factory hook on runners). Until then `pyproject.toml` pins
aiohttp to the releases `tests/test_aiohttp_private.py` passes on; that test reads what
the installed aiohttp's `close()` and `setup()` touch, and fails on a release where it
differs from what this module mirrors, so an upgrade is a deliberate step.
"""

from __future__ import annotations

from typing import Any, Final

import aiohttp
from aiohttp import web

# What `ClientWebSocketResponse.close()` sets on the way out, once the peer's Close has
# been read (aiohttp 3.14.4 and 3.14.5; 3.14.0 did not release `_parser`):
# `release` mirrors it.
CLOSE_SETS: Final = frozenset({"_set_closed", "_close_code", "_response", "_parser"})


def release(up: aiohttp.ClientWebSocketResponse[Any], code: int) -> None:
    """End the upstream leg after a closing handshake the relay conducted itself (its
    Close sent with `send_frame`, the upstream's answer read by the pump), or after the
    upstream failed to answer one: drop the connection without another Close frame,
    leaving the socket as `close()` leaves it."""
    up._set_closed()
    up._close_code = code
    up._response.close()
    up._parser = None  # what close() releases last: the response can no longer be drained


class ServerWrappingRunner(web.AppRunner):
    """An `AppRunner` that passes the `Server` it builds through `wrap_server`."""

    def wrap_server(self, server: web.Server) -> Any:
        """The protocol factory the runner's sites use; `server` itself by default."""
        return server

    async def _make_server(self) -> web.Server:
        # The one place an `AppRunner` builds its `Server` (called once, by `setup`).
        server = await super()._make_server()
        wrapped: web.Server = self.wrap_server(server)
        return wrapped
