"""
The WebSocket relay: one client socket, one upstream socket, frames both ways.

Read this top to bottom to follow a frame: the handler dials the upstream first (so a
refused handshake is answered with the upstream's own status before the client is
upgraded), upgrades the client with the subprotocol the upstream chose, then reads the
client in its own task while one named pump task reads the upstream. Each frame is
recorded (decode → redact → log) and then forwarded as the bytes that arrived, awaiting
every send. Close codes and reasons propagate both ways; the pump is cancelled and
awaited in `finally`, so nothing outlives the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import Any, Final

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

from protocol import Direction, EventSet
from proxy.context import APP, AppState
from proxy.records import Recorder
from proxy.upstream import HANDSHAKE_BODY

BETA_SUBPROTOCOL: Final = "openai-beta.realtime-v1"
_UNSENDABLE: Final = frozenset({1005, 1006, 1015})
_CLOSE_TIMEOUT: Final = 5.0


def conn_id(prefix: str = "c") -> str:
    """A connection id, unique across restarts and workers: correlates one session's records."""
    return f"{prefix}_{secrets.token_hex(6)}"


class _Leg:
    """How one side of the session ended."""

    def __init__(self) -> None:
        self.code: int | None = None
        self.reason: bytes = b""
        # Set by the side that starts closing, so the other side's reader, which then
        # sees its socket closing, knows it is not a failure.
        self.ending = False


async def realtime(request: web.Request) -> web.StreamResponse:
    """Relay one Realtime WebSocket session."""
    state = request.app[APP]
    if state.draining:
        return web.Response(
            status=503, text="earshot is shutting down\n", headers={"Retry-After": "1"}
        )
    settings = state.settings
    offered = [
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
    ]
    event_set = _event_set(request, offered)
    conn = conn_id()
    # The connection's context, bound once: every record of the session carries it.
    model = request.query.get("model") or request.query.get("deployment")
    log = (
        state.log.bind(conn=conn, model=state.redactor.scrub_text(model[:128]))
        if model
        else state.log.bind(conn=conn)
    )
    url = state.upstream.url(
        request.rel_url.raw_path, request.rel_url.raw_query_string, websocket=True
    )

    up = await _dial(request, state, url, offered, log)
    if isinstance(up, web.StreamResponse):
        return up

    ws: web.WebSocketResponse[Any] = web.WebSocketResponse(
        protocols=(up.protocol,) if up.protocol else (),
        # aiohttp refuses a message whose size *equals* max_msg_size; ours is inclusive.
        max_msg_size=settings.limits.max_frame_bytes + 1,
        heartbeat=settings.upstream.heartbeat or None,  # 0: no pings
        autoclose=False,
        autoping=True,
        decode_text=False,
        # permessage-deflate only where the upstream agreed to it too: the client gets
        # what it would get connecting directly, and the proxy does not compress every
        # frame for a browser (which always offers it) when the upstream does not.
        compress=bool(up.compress),
    )
    started = time.monotonic()
    recorder = Recorder(
        log,
        state.redactor,
        state.event_policy,
        event_set=event_set,
        summary_interval=settings.log.summary_interval,
    )
    client_leg, upstream_leg = _Leg(), _Leg()
    closed_by = "proxy"
    state.sessions.add(ws)
    state.recorders.add(recorder)
    state.metrics.sessions_active.inc()
    state.metrics.sessions.labels(protocol=event_set).inc()
    pump: asyncio.Task[str] | None = None
    try:
        await ws.prepare(request)
        recorder.log.info(
            "ws.open",
            path=state.redactor.url(request.path_qs)[:512],
            **_model_or_call(request, state),
            protocol="beta" if event_set == "beta" else "ga",
            surface="translation" if event_set == "translation" else "realtime",
            subprotocol=up.protocol,
            headers=state.redactor.headers(request.headers.items()),
        )
        pump = asyncio.create_task(
            _pump(up, ws, recorder, state, upstream_leg, client_leg), name=f"earshot-pump-{conn}"
        )
        closed_by = await _client_to_upstream(
            ws, up, recorder, state, client_leg, upstream_leg, pump
        )
    except (ConnectionResetError, aiohttp.ClientError, OSError):
        closed_by = "client" if ws.closed else "upstream"
    except asyncio.CancelledError:
        # aiohttp cancels the handler when the client's connection is lost.
        transport = request.transport
        if upstream_leg.ending:
            closed_by = "upstream"
        elif client_leg.ending or transport is None or transport.is_closing():
            closed_by = "client"
            if client_leg.code is None:
                client_leg.code = WSCloseCode.ABNORMAL_CLOSURE
        raise
    finally:
        if pump is not None:
            # A pump propagating the upstream's close must finish: it answers the
            # upstream's Close with the same code once the client has answered ours.
            if not pump.done() and not upstream_leg.ending:
                pump.cancel()
            try:
                pump_result = await asyncio.wait_for(pump, 2 * _CLOSE_TIMEOUT)
                if not closed_by:
                    closed_by = pump_result or "proxy"
            except (asyncio.CancelledError, TimeoutError, Exception):  # noqa: BLE001
                closed_by = closed_by or "upstream"
        if not (client_leg.ending or upstream_leg.ending):
            # Nobody closed: an error or a cancellation. (A side that is ending closes
            # both legs itself, in a shielded task, with the code it received.)
            await _close_quietly(up, WSCloseCode.GOING_AWAY)
            await _close_quietly(ws, WSCloseCode.GOING_AWAY)
        state.sessions.discard(ws)
        state.recorders.discard(recorder)
        state.metrics.session_ended(recorder.counts)
        state.metrics.sessions_active.dec()
        recorder.close()
        leg = client_leg if closed_by == "client" else upstream_leg
        recorder.log.info(
            "ws.close",
            closed_by=closed_by,
            code=leg.code if leg.code is not None else ws.close_code,
            reason=state.redactor.reason(leg.reason),
            duration_ms=round((time.monotonic() - started) * 1000, 1),
            client_frames=recorder.counts["client"].frames,
            client_bytes=recorder.counts["client"].bytes,
            server_frames=recorder.counts["server"].frames,
            server_bytes=recorder.counts["server"].bytes,
            undecodable=recorder.counts["client"].undecodable
            + recorder.counts["server"].undecodable,
        )
    return ws


def _event_set(request: web.Request, offered: list[str]) -> EventSet:
    """The socket's event set, worked out once per session from its path and handshake."""
    if request.path.rstrip("/").endswith("/realtime/translations"):
        return "translation"
    if BETA_SUBPROTOCOL in offered or "realtime=v1" in request.headers.get("OpenAI-Beta", ""):
        return "beta"
    return "ga"


async def _dial(
    request: web.Request, state: AppState, url: Any, offered: list[str], log: Any
) -> aiohttp.ClientWebSocketResponse[Any] | web.StreamResponse:
    """Connect upstream, or answer the client as the upstream answered us."""
    settings = state.settings
    HANDSHAKE_BODY.set(None)
    try:
        async with asyncio.timeout(settings.upstream.connect_timeout):
            return await _ws_connect(state, request, url, offered)
    except aiohttp.WSServerHandshakeError as exc:
        content_type, body = HANDSHAKE_BODY.get() or ("text/plain", b"")
        status = exc.status if 400 <= exc.status <= 599 else 502
        kind = f"handshake_{status}" if status in (401, 403, 404, 429) else "handshake_other"
        return _refuse(state, log, request, status, kind, body, content_type)
    except TimeoutError:
        return _refuse(state, log, request, 504, "connect_timeout", b"upstream connect timeout\n")
    except (aiohttp.ClientError, OSError):
        return _refuse(state, log, request, 502, "connect_error", b"upstream unreachable\n")


async def _ws_connect(
    state: AppState, request: web.Request, url: Any, offered: list[str]
) -> aiohttp.ClientWebSocketResponse[Any]:
    settings = state.settings
    return await state.client.ws_connect(
        url,
        headers=state.upstream.headers(request.headers.items()),
        protocols=state.upstream.subprotocols(offered),
        max_msg_size=settings.limits.max_frame_bytes + 1,
        heartbeat=settings.upstream.heartbeat or None,  # 0: no pings
        autoclose=False,
        autoping=True,
        decode_text=False,
        timeout=aiohttp.ClientWSTimeout(ws_close=_CLOSE_TIMEOUT),
        # Offered upstream only if the client offered it (browsers always do).
        compress=15 if _offers_deflate(request) else 0,
        proxy=None,
    )


def _offers_deflate(request: web.Request) -> bool:
    return "permessage-deflate" in request.headers.get("Sec-WebSocket-Extensions", "").lower()


def _refuse(
    state: AppState,
    log: Any,
    request: web.Request,
    status: int,
    kind: str,
    body: bytes,
    content_type: str = "text/plain",
) -> web.Response:
    state.metrics.upstream_failures.labels(kind=kind).inc()
    log.warning(
        "ws.rejected",
        path=state.redactor.url(request.path_qs)[:512],
        status=status,
        kind=kind,
        headers=state.redactor.headers(request.headers.items()),
    )
    return web.Response(status=status, body=body, content_type=content_type.split(";")[0])


def _model_or_call(request: web.Request, state: AppState) -> dict[str, str]:
    out = {}
    # `model` is in the logger's bound context already.
    for key in ("call_id", "intent", "deployment", "api-version"):
        value = request.query.get(key)
        if value is not None:
            out[key.replace("-", "_")] = state.redactor.scrub_text(value[:128])
    return out


async def _client_to_upstream(
    ws: web.WebSocketResponse[Any],
    up: aiohttp.ClientWebSocketResponse[Any],
    recorder: Recorder,
    state: AppState,
    leg: _Leg,
    other: _Leg,
    pump: asyncio.Task[str],
) -> str:
    """Read the client until it closes; returns who ended the session."""
    while True:
        msg = await ws.receive()
        if await _forward(msg, "client", up, recorder):
            continue
        if msg.type is WSMsgType.CLOSE:
            await _pass_close(msg, leg, up, ws)
            return "client"
        if pump.done() or other.ending:
            return ""  # the upstream side ended the session; the pump knows how
        elif msg.type is WSMsgType.ERROR:
            leg.ending = True
            leg.code = ws.close_code
            await _close_quietly(up, _error_code(msg.data))
            return "proxy" if leg.code == WSCloseCode.MESSAGE_TOO_BIG else "client"
        elif state.draining:  # the drain closed the client with 1001
            leg.ending = True
            leg.code = WSCloseCode.GOING_AWAY
            await _close_quietly(up, WSCloseCode.GOING_AWAY)
            return "proxy"
        else:  # CLOSING / CLOSED: the client vanished
            leg.ending = True
            leg.code = WSCloseCode.ABNORMAL_CLOSURE
            await _close_quietly(up, WSCloseCode.GOING_AWAY)
            return "client"


async def _pump(
    up: aiohttp.ClientWebSocketResponse[Any],
    ws: web.WebSocketResponse[Any],
    recorder: Recorder,
    state: AppState,
    leg: _Leg,
    other: _Leg,
) -> str:
    """Read the upstream until it closes, forwarding to the client."""
    while True:
        msg = await up.receive()
        if await _forward(msg, "server", ws, recorder):
            continue
        if msg.type is WSMsgType.CLOSE:
            await _pass_close(msg, leg, ws, up)
            return "upstream"
        if other.ending:
            return ""  # the client side is closing us
        else:  # ERROR, CLOSING, CLOSED: the upstream vanished or broke the protocol
            leg.ending = True
            leg.code = up.close_code
            state.metrics.upstream_failures.labels(kind="dropped").inc()
            code = (
                _error_code(msg.data) if msg.type is WSMsgType.ERROR else WSCloseCode.INTERNAL_ERROR
            )
            await _close_quietly(ws, code, b"upstream connection lost")
            return "upstream"


def _reason_bytes(extra: object) -> bytes:
    if isinstance(extra, bytes):
        return extra[:123]
    if isinstance(extra, str):
        return extra.encode("utf-8", "replace")[:123]
    return b""


def _sendable(code: object, default: int) -> int:
    """A close code that may go on the wire (1005/1006/1015 are reserved for reporting)."""
    if isinstance(code, int) and (1000 <= code <= 4999) and code not in _UNSENDABLE:
        return code
    return default if code != WSCloseCode.ABNORMAL_CLOSURE else WSCloseCode.GOING_AWAY


def _error_code(exc: object) -> int:
    code = getattr(exc, "code", None)
    if code == WSCloseCode.MESSAGE_TOO_BIG:
        return WSCloseCode.MESSAGE_TOO_BIG
    return WSCloseCode.INTERNAL_ERROR


async def _forward(
    msg: aiohttp.WSMessage,
    direction: Direction,
    dst: web.WebSocketResponse[Any] | aiohttp.ClientWebSocketResponse[Any],
    recorder: Recorder,
) -> bool:
    """Record a data frame, then forward its bytes (awaiting the send); False if `msg`
    is not a data frame."""
    if msg.type is WSMsgType.TEXT:
        recorder.text(direction, msg.data)
    elif msg.type is WSMsgType.BINARY:
        recorder.binary(direction, msg.data)
    else:
        return False
    await dst.send_frame(msg.data, msg.type)
    return True


async def _pass_close(
    msg: aiohttp.WSMessage,
    leg: _Leg,
    first: web.WebSocketResponse[Any] | aiohttp.ClientWebSocketResponse[Any],
    second: web.WebSocketResponse[Any] | aiohttp.ClientWebSocketResponse[Any],
) -> None:
    """A Close arrived on `second`'s leg: pass it to `first`, then answer `second`."""
    leg.ending = True
    leg.code, leg.reason = msg.data, _reason_bytes(msg.extra)
    code = _sendable(msg.data, WSCloseCode.OK)
    await asyncio.shield(_close_both(first, second, code, leg.reason))


async def _close_both(
    first: web.WebSocketResponse[Any] | aiohttp.ClientWebSocketResponse[Any],
    second: web.WebSocketResponse[Any] | aiohttp.ClientWebSocketResponse[Any],
    code: int,
    reason: bytes,
) -> None:
    """Pass a Close on, then answer the side that sent it with the same code.

    For a Close from the client, `first` is the upstream: it learns of the close first
    and the client gets its answer after. For a Close from the upstream, the other way.
    """
    await _close_quietly(first, code, reason)
    await _close_quietly(second, code, reason)


async def _close_quietly(
    sock: web.WebSocketResponse[Any] | aiohttp.ClientWebSocketResponse[Any],
    code: int,
    reason: bytes = b"",
) -> None:
    if sock.closed:
        return
    # Shielded: if the handler is cancelled (its client gone) mid-close, the close
    # handshake on the other leg still completes, bounded by the timeout.
    with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError, RuntimeError):
        await asyncio.shield(
            asyncio.wait_for(sock.close(code=code, message=reason), _CLOSE_TIMEOUT)
        )
