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
import time
from collections.abc import Callable
from typing import Any, Final

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web
from yarl import URL

from protocol import Direction, EventSet
from proxy.budget import RecordBudget
from proxy.closing import (
    CLOSE_TIMEOUT,
    Ending,
    close_both,
    close_code,
    close_payload,
    close_quietly,
    error_code,
    reason_bytes,
    release,
    sendable,
)
from proxy.context import APP, AppState, conn_id
from proxy.heartbeat import Heartbeat, Leg
from proxy.log import Logger, rfc3339
from proxy.records import Recorder
from proxy.settings import LimitsSection
from proxy.traces import SessionTrace
from proxy.turns import TurnTracker
from proxy.upstream import HANDSHAKE_BODY, HandshakeRedirect

BETA_SUBPROTOCOL: Final = "openai-beta.realtime-v1"
# Frames a leg forwards before it lets the event loop run others: `receive()` returns at
# once while its queue holds frames, so without this a flooding peer holds the loop, and
# every other session (and `/healthz`) waits until its queue is empty (SPEC §1.8).
_FAIR_SHARE: Final = 32


async def realtime(request: web.Request) -> web.StreamResponse:
    """Relay one Realtime WebSocket session."""
    state = request.app[APP]
    if state.draining:
        return web.Response(
            status=503, text="earshot is shutting down\n", headers={"Retry-After": "1"}
        )
    offered = [
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
    ]
    event_set = _event_set(request, offered)
    conn = conn_id()
    log = _session_log(request, state, conn)
    url = state.upstream.url(
        request.rel_url.raw_path, request.rel_url.raw_query_string, websocket=True
    )

    up = await _dial(request, state, url, offered, log)
    if isinstance(up, web.StreamResponse):
        return up

    ws = _client_socket(state, up)
    started = time.monotonic()
    recorder = Recorder(
        log,
        state.redactor,
        state.event_policy,
        event_set=event_set,
        summary_interval=state.settings.log.summary_interval,
        budget=_budget(state.settings.limits),
        on_error=lambda where, exc: state.metrics.internal_error(recorder.log, where, exc),
    )
    spans = _session_trace(request, state, conn, started)
    # Turns, latency and cost: not on the translation socket, which has no responses.
    turns = None if event_set == "translation" else _turn_tracker(request, state, recorder, spans)
    end = Ending()
    state.session_opened(ws, recorder)
    state.metrics.sessions_active.inc()
    state.metrics.sessions.labels(protocol=event_set).inc()
    pump: asyncio.Task[None] | None = None
    legs = _Legs()
    try:
        await ws.prepare(request)
        _log_open(request, state, recorder, event_set, up.protocol)
        pump = asyncio.create_task(
            _upstream_to_client(up, ws, recorder, state, end, turns, legs),
            name=f"earshot-pump-{conn}",
        )
        legs.watch(state, request, ws, up, recorder, end, pump)
        await _client_to_upstream(ws, up, recorder, state, end, pump, turns, legs)
    except (ConnectionResetError, aiohttp.ClientError, OSError):
        end.set("client" if ws.closed else "upstream", WSCloseCode.ABNORMAL_CLOSURE)
    except asyncio.CancelledError:
        # aiohttp cancels the handler when the client's connection is lost.
        end.set("client", WSCloseCode.ABNORMAL_CLOSURE)
        raise
    finally:
        legs.forget()
        await _finish(pump, end, up, ws, recorder.on_error)
        await legs.settled()
        state.session_closed(ws, recorder)
        state.metrics.session_ended(
            recorder.counts, recorder.budget.suppressed_total if recorder.budget else 0
        )
        state.metrics.sessions_active.dec()
        recorder.close()
        totals = turns.close(time.monotonic()) if turns is not None else {}
        _log_close(state, recorder, end, started, totals)
        if spans is not None:
            spans.close(
                {
                    "gen_ai.conversation.id": recorder.session_id,
                    "earshot.closed_by": end.by,
                    "earshot.close_code": end.code,
                    "earshot.turns": totals.get("turns"),
                    "earshot.cost_usd": totals.get("cost_usd"),
                },
                time.monotonic(),
            )
    return ws


def _session_trace(
    request: web.Request, state: AppState, conn: str, started: float
) -> SessionTrace | None:
    """The session's root span (SPEC §4b), when traces are on."""
    if state.tracing is None:
        return None
    model = request.query.get("model") or request.query.get("deployment")
    azure = request.path.startswith(("/openai/", f"{state.upstream.prefix}/openai/"))
    return state.tracing.session(
        {
            "gen_ai.provider.name": "azure.ai.openai" if azure else "openai",
            "gen_ai.operation.name": "realtime",
            "gen_ai.request.model": state.redactor.cut(model, 128) if model else None,
            "earshot.conn": conn,
        },
        started,
    )


def _session_log(request: web.Request, state: AppState, conn: str) -> Logger:
    """The connection's context, bound once: every record of the session carries it."""
    model = request.query.get("model") or request.query.get("deployment")
    if model:
        return state.log.bind(conn=conn, model=state.redactor.cut(model, 128))
    return state.log.bind(conn=conn)


def _client_socket(
    state: AppState, up: aiohttp.ClientWebSocketResponse[Any]
) -> web.WebSocketResponse[Any]:
    """The client's leg, matching what the upstream agreed to on the other."""
    settings = state.settings
    return web.WebSocketResponse(
        protocols=(up.protocol,) if up.protocol else (),
        # aiohttp refuses a message whose size *equals* max_msg_size; ours is inclusive.
        max_msg_size=settings.limits.max_frame_bytes + 1,
        heartbeat=None,  # the app's one clock pings (proxy.heartbeat)
        autoclose=False,
        autoping=False,  # the relay answers pings, and notes pongs for the clock
        decode_text=False,
        # permessage-deflate only where the upstream agreed to it too: the client gets
        # what it would get connecting directly, and the proxy does not compress every
        # frame for a browser (which always offers it) when the upstream does not.
        compress=bool(up.compress),
    )


def _log_open(
    request: web.Request,
    state: AppState,
    recorder: Recorder,
    event_set: EventSet,
    subprotocol: str | None,
) -> None:
    recorder.log.info(
        "ws.open",
        path=state.redactor.request_url(request.path_qs),
        **_model_or_call(request, state),
        protocol="beta" if event_set == "beta" else "ga",
        surface="translation" if event_set == "translation" else "realtime",
        # The chosen one too: an upstream may echo the browser's key element.
        subprotocol=state.redactor.subprotocols([subprotocol]) if subprotocol else None,
        headers=state.redactor.headers(request.headers.items()),
    )


async def _finish(
    pump: asyncio.Task[None] | None,
    end: Ending,
    up: aiohttp.ClientWebSocketResponse[Any],
    ws: web.WebSocketResponse[Any],
    report: Callable[[str, BaseException], None] | None,
) -> None:
    """Stop the pump and close what is still open: nothing outlives the session."""
    if pump is not None:
        # A pump passing on the upstream's close must finish: it answers the upstream's
        # Close once the client has answered ours.
        if not pump.done() and end.by != "upstream":
            pump.cancel()
        try:
            await asyncio.wait_for(pump, 2 * CLOSE_TIMEOUT)
        except (asyncio.CancelledError, TimeoutError):
            pass
        except Exception as exc:  # noqa: BLE001 (the session ends either way: reported)
            if report is not None:
                report("relay.pump", exc)
    # Nobody seen closing: an error inside the proxy. A side that ended the session
    # closed both legs itself (in a shielded task); what is still open goes away.
    end.set("proxy", WSCloseCode.GOING_AWAY)
    await close_quietly(up, WSCloseCode.GOING_AWAY)
    lost = end.by == "upstream" and end.code == WSCloseCode.ABNORMAL_CLOSURE
    await close_quietly(ws, WSCloseCode.INTERNAL_ERROR if lost else WSCloseCode.GOING_AWAY)


def _turn_tracker(
    request: web.Request, state: AppState, recorder: Recorder, spans: SessionTrace | None
) -> TurnTracker:
    """The session's turns, recorded through the recorder's (session-bound) logger, and
    made spans of when traces are on (per record, never per frame)."""

    def write(event: str, fields: dict[str, Any]) -> None:
        recorder.log.info(event, **fields)
        state.metrics.turn_record(event, fields, state.prices.key(tracker.model) or "other")
        if spans is not None:
            spans.record(event, fields, time.monotonic())

    tracker = TurnTracker(
        write,
        state.prices,
        model=request.query.get("model") or request.query.get("deployment"),
        rates=recorder,
        transcription=request.query.get("intent") == "transcription",
        clean=lambda value: state.redactor.cut(value, 128),
        wall=lambda mark: rfc3339(time.time() - (time.monotonic() - mark)),
        on_error=recorder.on_error,
    )
    return tracker


def _log_close(
    state: AppState, recorder: Recorder, end: Ending, started: float, totals: dict[str, Any]
) -> None:
    counts = recorder.counts
    recorder.log.info(
        "ws.close",
        closed_by=end.by,
        code=end.code,
        reason=state.redactor.reason(end.reason),
        duration_ms=round((time.monotonic() - started) * 1000, 1),
        client_frames=counts["client"].frames,
        client_bytes=counts["client"].bytes,
        server_frames=counts["server"].frames,
        server_bytes=counts["server"].bytes,
        undecodable=counts["client"].undecodable + counts["server"].undecodable,
        **totals,
    )


def _budget(limits: LimitsSection) -> RecordBudget | None:
    """A session's record budget, or None when `limits.session_records_per_second` is 0."""
    if limits.session_records_per_second <= 0:
        return None
    return RecordBudget(limits.session_records_per_second, limits.session_records_burst)


def _event_set(request: web.Request, offered: list[str]) -> EventSet:
    """The socket's event set, worked out once per session from its path and handshake."""
    if request.path.rstrip("/").endswith("/realtime/translations"):
        return "translation"
    if BETA_SUBPROTOCOL in offered or "realtime=v1" in request.headers.get("OpenAI-Beta", ""):
        return "beta"
    return "ga"


async def _dial(
    request: web.Request, state: AppState, url: URL, offered: list[str], log: Logger
) -> aiohttp.ClientWebSocketResponse[Any] | web.StreamResponse:
    """Connect upstream, or answer the client as the upstream answered us."""
    settings = state.settings
    HANDSHAKE_BODY.set(None)
    try:
        async with asyncio.timeout(settings.upstream.connect_timeout):
            return await _ws_connect(state, request, url, offered)
    except HandshakeRedirect as redirect:
        # Never followed (the client's credentials would go to another host): the client
        # gets the upstream's answer as it is, and decides.
        content_type, body = HANDSHAKE_BODY.get() or ("text/plain", b"")
        refused = _refuse(
            state, log, request, redirect.status, "handshake_redirect", body, content_type
        )
        if redirect.location is not None:
            refused.headers["Location"] = redirect.location
        return refused
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
    state: AppState, request: web.Request, url: URL, offered: list[str]
) -> aiohttp.ClientWebSocketResponse[Any]:
    settings = state.settings
    return await state.client.ws_connect(
        url,
        headers=state.upstream.headers(request.headers.items()),
        protocols=state.upstream.subprotocols(offered),
        max_msg_size=settings.limits.max_frame_bytes + 1,
        heartbeat=None,  # the app's one clock pings (proxy.heartbeat)
        autoclose=False,
        autoping=False,  # the relay answers pings, and notes pongs for the clock
        decode_text=False,
        timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT),
        # Offered upstream only if the client offered it (browsers always do).
        compress=15 if _offers_deflate(request) else 0,
        proxy=None,
    )


def _offers_deflate(request: web.Request) -> bool:
    return "permessage-deflate" in request.headers.get("Sec-WebSocket-Extensions", "").lower()


def _refuse(
    state: AppState,
    log: Logger,
    request: web.Request,
    status: int,
    kind: str,
    body: bytes,
    content_type: str = "text/plain",
) -> web.Response:
    state.metrics.upstream_failures.labels(kind=kind).inc()
    log.warning(
        "ws.rejected",
        path=state.redactor.request_url(request.path_qs),
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
            out[key.replace("-", "_")] = state.redactor.cut(value, 128)
    return out


async def _client_to_upstream(
    ws: web.WebSocketResponse[Any],
    up: aiohttp.ClientWebSocketResponse[Any],
    recorder: Recorder,
    state: AppState,
    end: Ending,
    pump: asyncio.Task[None],
    turns: TurnTracker | None,
    legs: _Legs,
) -> None:
    """Read the client until the session ends, forwarding to the upstream."""
    share = _FAIR_SHARE
    while True:
        msg = await ws.receive()
        if await _forward(msg, "client", up, recorder, end, turns):
            share -= 1
            if not share:
                share = _FAIR_SHARE
                await asyncio.sleep(0)
            continue
        if msg.type is WSMsgType.PING or msg.type is WSMsgType.PONG:
            await _control(msg, ws, legs.client)
            continue
        if end.by is not None or pump.done():
            return  # the upstream side ended the session, or the upstream is gone
        if msg.type is WSMsgType.CLOSE:
            code, reason = close_code(msg.data), reason_bytes(msg.extra)
            end.set("client", code, reason)
            await asyncio.shield(_pass_client_close(up, ws, pump, code, reason, recorder.on_error))
        elif msg.type is WSMsgType.ERROR and error_code(msg.data) == WSCloseCode.MESSAGE_TOO_BIG:
            # The proxy refused the client's frame (aiohttp closed the client with 1009).
            end.set("proxy", WSCloseCode.MESSAGE_TOO_BIG)
            await close_quietly(up, WSCloseCode.MESSAGE_TOO_BIG)
        elif state.draining:  # the drain closed the client with 1001
            end.set("proxy", WSCloseCode.GOING_AWAY)
            await close_quietly(up, WSCloseCode.GOING_AWAY)
        else:  # ERROR, CLOSING, CLOSED: the client vanished or broke the protocol
            end.set("client", WSCloseCode.ABNORMAL_CLOSURE)
            await close_quietly(up, WSCloseCode.GOING_AWAY)
        return


async def _upstream_to_client(
    up: aiohttp.ClientWebSocketResponse[Any],
    ws: web.WebSocketResponse[Any],
    recorder: Recorder,
    state: AppState,
    end: Ending,
    turns: TurnTracker | None,
    legs: _Legs,
) -> None:
    """Read the upstream until the session ends, forwarding to the client."""
    share = _FAIR_SHARE
    while True:
        msg = await up.receive()
        if await _forward(msg, "server", ws, recorder, end, turns):
            share -= 1
            if not share:
                share = _FAIR_SHARE
                await asyncio.sleep(0)
            continue
        if msg.type is WSMsgType.PING or msg.type is WSMsgType.PONG:
            await _control(msg, up, legs.upstream)
            continue
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
            state.metrics.upstream_failures.labels(kind="dropped").inc()
            await close_quietly(ws, WSCloseCode.INTERNAL_ERROR, b"upstream connection lost")
        return


async def _pass_client_close(
    up: aiohttp.ClientWebSocketResponse[Any],
    ws: web.WebSocketResponse[Any],
    pump: asyncio.Task[None],
    code: int,
    reason: bytes,
    report: Callable[[str, BaseException], None] | None,
) -> None:
    """The client's Close goes to the upstream as it came (a Close without a code stays
    without one), and the pump answers the client with the upstream's answer. An
    upstream that cannot take the Close, or does not answer within the close timeout, is
    dropped, and the client gets its own code back."""
    try:
        await up.send_frame(close_payload(code, reason), WSMsgType.CLOSE)
    except (ConnectionError, aiohttp.ClientError, OSError, RuntimeError):
        pass
    else:
        try:
            await asyncio.wait_for(asyncio.shield(pump), CLOSE_TIMEOUT)
        except TimeoutError:
            pass
        except Exception as exc:  # noqa: BLE001 (the close goes on either way: reported)
            if report is not None:
                report("relay.client_close", exc)
    if not pump.done():
        pump.cancel()
        release(up, WSCloseCode.ABNORMAL_CLOSURE)
    await close_quietly(ws, sendable(code), reason)  # nothing to do once the pump answered


async def _control(
    msg: aiohttp.WSMessage,
    sock: web.WebSocketResponse[Any] | aiohttp.ClientWebSocketResponse[Any],
    leg: Leg | None,
) -> None:
    """A ping is answered on its own leg (pings are per hop, not forwarded); a ping or
    pong tells the clock the leg is alive."""
    if leg is not None:
        leg.heard()
    if msg.type is WSMsgType.PING:
        with contextlib.suppress(ConnectionError, aiohttp.ClientError, OSError, RuntimeError):
            await sock.pong(msg.data)


class _Legs:
    """A session's two legs on the app's heartbeat clock, and what a dead one does.
    Slotted, with bound methods for callbacks: it lives as long as an idle session."""

    __slots__ = (
        "_beat",
        "_closing",
        "_end",
        "_pump",
        "_request",
        "_state",
        "_ws",
        "client",
        "upstream",
    )

    def __init__(self) -> None:
        self.client: Leg | None = None
        self.upstream: Leg | None = None
        self._beat: Heartbeat | None = None
        self._closing: asyncio.Task[None] | None = None

    def watch(
        self,
        state: AppState,
        request: web.Request,
        ws: web.WebSocketResponse[Any],
        up: aiohttp.ClientWebSocketResponse[Any],
        recorder: Recorder,
        end: Ending,
        pump: asyncio.Task[None],
    ) -> None:
        """Put both legs on the clock (unless `upstream.heartbeat` is 0)."""
        beat = self._beat = state.heartbeat
        if beat is None:
            return
        self._state, self._request, self._ws, self._end, self._pump = state, request, ws, end, pump
        self.client = beat.watch(ws, recorder.counts["client"], self._client_dead)
        self.upstream = beat.watch(up, recorder.counts["server"], self._upstream_dead)

    def _client_dead(self) -> None:
        # Gone without a Close (a phone out of range, a NAT that forgot the flow): drop
        # the connection; the relay loop then closes the upstream with 1001.
        self._end.set("client", WSCloseCode.ABNORMAL_CLOSURE)
        if self._request.transport is not None:
            self._request.transport.abort()

    def _upstream_dead(self) -> None:
        self._end.set("upstream", WSCloseCode.ABNORMAL_CLOSURE)
        self._state.metrics.upstream_failures.labels(kind="dropped").inc()
        self._pump.cancel()
        self._closing = asyncio.create_task(
            close_quietly(self._ws, WSCloseCode.INTERNAL_ERROR, b"upstream connection lost")
        )

    def forget(self) -> None:
        """Take both legs off the clock: the session has ended."""
        for leg in (self.client, self.upstream):
            if leg is not None and self._beat is not None:
                self._beat.forget(leg)

    async def settled(self) -> None:
        """Wait for a close a dead upstream started (bounded by its own timeout)."""
        if self._closing is not None:
            await asyncio.gather(self._closing, return_exceptions=True)


async def _forward(
    msg: aiohttp.WSMessage,
    direction: Direction,
    dst: web.WebSocketResponse[Any] | aiohttp.ClientWebSocketResponse[Any],
    recorder: Recorder,
    end: Ending,
    turns: TurnTracker | None = None,
) -> bool:
    """Record a data frame, forward its bytes (awaiting the send), then time it for the
    turns; False if `msg` is not a data frame, or `dst` is gone (the session has then
    ended)."""
    if msg.type is WSMsgType.TEXT:
        event = recorder.text(direction, msg.data)
    elif msg.type is WSMsgType.BINARY:
        recorder.binary(direction, msg.data)
        event = None
    else:
        return False
    try:
        await dst.send_frame(msg.data, msg.type)
    except (ConnectionError, aiohttp.ClientError, OSError):
        # The receiving side vanished (a client that stopped reading, then went away).
        end.set("upstream" if direction == "client" else "client", WSCloseCode.ABNORMAL_CLOSURE)
        return False
    if turns is not None and event is not None:
        turns.observe(direction, event, time.monotonic())
    return True
