"""
The WebSocket relay: the handler that opens a session, and the dial.

The handler dials the upstream first (so a refused handshake is answered with the
upstream's own status and body before the client is upgraded), upgrades the client with
the subprotocol the upstream chose, then hands both sockets to a `Session`
(`proxy.session`), which forwards frames both ways until one side ends it. What the
handler adds around it: the session's records of opening and closing (`ws.open`,
`ws.close`), its metrics, its trace, and its place in the app's set of live sessions.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

import aiohttp
from aiohttp import WSCloseCode, web
from yarl import URL

from protocol import EventSet
from proxy.budget import RecordBudget
from proxy.closing import CLOSE_TIMEOUT
from proxy.config_schema import LimitsSection
from proxy.context import APP, AppState, conn_id
from proxy.log import Logger, rfc3339
from proxy.records import Recorder
from proxy.session import Session
from proxy.session_info import SessionInfo
from proxy.traces import SessionTrace
from proxy.turn_records import Record
from proxy.turns import TurnTracker
from proxy.upstream import HANDSHAKE_BODY, HandshakeRedirect

BETA_SUBPROTOCOL: Final = "openai-beta.realtime-v1"


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
    requested = request.query.get("model") or request.query.get("deployment")
    info = SessionInfo(
        event_set=event_set,
        model=state.redactor.cut(requested, 128) if requested else None,
        transcription=request.query.get("intent") == "transcription",
    )
    recorder = Recorder(
        log,
        state.redactor,
        state.event_policy,
        info=info,
        summary_interval=state.settings.log.summary_interval,
        budget=_budget(state.settings.limits),
        on_error=lambda where, exc: state.metrics.internal_error(recorder.log, where, exc),
    )
    spans = _session_trace(request, state, conn, started)
    session = Session(
        recorder,
        info,
        client=ws,
        upstream=up,
        # Turns, latency and cost: not on the translation socket, which has no responses.
        turns=None if event_set == "translation" else _turn_tracker(state, recorder, spans),
        draining=lambda: state.draining,
        drop_client=lambda: request.transport.abort() if request.transport else None,
        upstream_lost=state.metrics.upstream_failures.labels(kind="dropped").inc,
    )
    state.session_opened(ws, session)
    state.metrics.sessions_active.inc()
    state.metrics.sessions.labels(protocol=event_set).inc()
    try:
        await ws.prepare(request)
        _log_open(request, state, recorder, event_set, up.protocol)
        session.start_pump(name=f"earshot-pump-{conn}")
        session.watch(state.heartbeat)
        await session.client_to_upstream()
    except (ConnectionResetError, aiohttp.ClientError, OSError):
        session.end.set("client" if ws.closed else "upstream", WSCloseCode.ABNORMAL_CLOSURE)
    except asyncio.CancelledError:
        # aiohttp cancels the handler when the client's connection is lost.
        session.end.set("client", WSCloseCode.ABNORMAL_CLOSURE)
        raise
    finally:
        await session.finish()
        state.session_closed(ws, session)
        state.metrics.session_ended(
            session.counts, recorder.budget.suppressed_total if recorder.budget else 0
        )
        state.metrics.sessions_active.dec()
        now = time.monotonic()
        totals = {}
        if session.turns is not None:  # before the summaries' flush: one order, always
            totals = session.turns.close(now, now - started)
            if session.turns.connection_cost_usd:
                state.metrics.session_cost(
                    session.turns.connection_cost_usd, state.prices.key(info.model) or "other"
                )
        recorder.close()
        _log_close(state, session, started, totals)
        if spans is not None:
            spans.close(
                {
                    "gen_ai.conversation.id": info.session_id,
                    "earshot.closed_by": session.end.by,
                    "earshot.close_code": session.end.code,
                    "earshot.turns": totals.get("turns"),
                    "earshot.cost_usd": totals.get("cost_usd"),
                },
                time.monotonic(),  # after the turns' spans the close just ended
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


def _turn_tracker(state: AppState, recorder: Recorder, spans: SessionTrace | None) -> TurnTracker:
    """The session's turns, recorded through the recorder's (session-bound) logger,
    counted by the metrics, and made spans of when traces are on (per record, never per
    frame)."""

    def write(record: Record) -> None:
        fields = record.fields()
        recorder.log.info(record.EVENT, **fields)
        state.metrics.turn_record(record, state.prices.key(recorder.info.model) or "other")
        if spans is not None:
            spans.record(record.EVENT, fields, time.monotonic())

    redactor = state.redactor
    transcript_mode = redactor.policy.text_mode("transcript")
    return TurnTracker(
        write,
        state.prices,
        info=recorder.info,
        clean=lambda value: redactor.cut(value, 128),
        transcript=lambda value: redactor.text(value, transcript_mode),
        wall=lambda mark: rfc3339(time.time() - (time.monotonic() - mark)),
        on_error=recorder.on_error,
    )


def _log_close(state: AppState, session: Session, started: float, totals: dict[str, Any]) -> None:
    counts, end = session.counts, session.end
    session.recorder.log.info(
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
    # A refused handshake's body comes back through a context variable: aiohttp's
    # `WSServerHandshakeError` carries no body, and its trace hook (`proxy.upstream`),
    # which can read it, runs inside this task's `ws_connect` call, in this task's
    # context. So the value read below is this handshake's own, never another
    # session's; it is reset first because a task may dial once only, but tests reuse one.
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
