"""
The aiohttp application: routes, shared state, and the operations endpoints.

Realtime WebSocket upgrades go to the relay; other requests under the Realtime paths go
to the REST exchange; `/healthz`, `/readyz` and `/metrics` answer for operators. Nothing
outside the Realtime paths is forwarded, so earshot is not a general-purpose proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator
from typing import Any, Final
from urllib.parse import quote, unquote

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from proxy import relay, rest
from proxy.context import APP, AppState
from proxy.heartbeat import Heartbeat
from proxy.log import Logger
from proxy.metrics import Metrics
from proxy.pricing import shipped_table
from proxy.records import EventPolicy
from proxy.redact import Policy, Redactor
from proxy.settings import Settings
from proxy.traces import Tracing
from proxy.upstream import Upstream, trace_config
from proxy.workers import Siblings

# Characters a path segment may hold as they are (RFC 3986 `pchar` without `;`, which
# some servers read as path parameters: `..;/`). Every other byte must be
# percent-encoded, and only those: a path is forwarded only in its canonical encoding.
_PCHAR_SAFE: Final = "/:@!$&'()*+,=-._~"
_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _checked_path(raw_path: str) -> str | None:
    """A raw request path that may be forwarded, decoded; None for any other.

    The path must be its own canonical form (SPEC §1.6): ASCII, every `%` a valid escape
    (no `%u002e`), no byte encoded that need not be (`%65`, `%2e`, `%2f`) and every byte
    encoded that must be, decoding to printable ASCII (no overlong UTF-8 such as
    `%c0%ae`, no fullwidth dots, no NUL), with no `;`, `\\` or `%` (a double encoding),
    and no empty, `.` or `..` segment. So the raw and decoded forms agree byte for byte
    on every segment: the path that is checked is the path that is forwarded."""
    if not raw_path.isascii() or _ESCAPE.search(raw_path):
        return None
    try:
        decoded = unquote(raw_path, errors="strict")
    except UnicodeDecodeError:
        return None
    if not decoded.isascii() or not decoded.isprintable() or any(c in decoded for c in ";\\%"):
        return None  # `%`: a double encoding (`%252e`), for an upstream that decodes twice
    if quote(decoded, safe=_PCHAR_SAFE) != raw_path:
        return None
    segments = decoded.split("/")[1:]
    if any(s in ("", ".", "..") for s in segments[:-1]) or segments[-1] in (".", ".."):
        return None
    return decoded


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def redaction_policy(settings: Settings, environ: dict[str, str] | None = None) -> Policy:
    """The redaction policy the `redaction` section and the fingerprint key variable give."""
    env = os.environ if environ is None else environ
    key = env.get(settings.redaction.fingerprint_key_env, "")
    kwargs: dict[str, Any] = {}
    if key:
        kwargs["fingerprint_key"] = key.encode()
    return Policy(
        text=settings.text_policy(),  # type: ignore[arg-type]
        image_host=settings.redaction.image_host,
        audio_hash=settings.redaction.audio_hash,
        patterns=tuple(settings.redaction.patterns),
        allow_query=tuple(settings.redaction.allow_query),
        allow_headers=tuple(settings.redaction.allow_headers),
        pii=dict(settings.redaction.pii),
        pii_regions=tuple(settings.redaction.pii_regions),
        **kwargs,
    )


def make_app(
    settings: Settings,
    log: Logger,
    *,
    metrics: Metrics | None = None,
    siblings: Siblings | None = None,
) -> web.Application:
    """The earshot application, logging through `log` (a structlog bound logger); a
    worker's `/metrics` adds up its `siblings`' too."""
    app = web.Application(client_max_size=settings.limits.max_body_bytes)
    state = app[APP] = AppState(
        settings=settings,
        log=log,
        redactor=Redactor(redaction_policy(settings)),
        event_policy=EventPolicy(settings.log.events),
        upstream=Upstream(settings),
        metrics=metrics or Metrics(),
        prices=shipped_table().with_overrides(settings.pricing),
        forward_prefixes=tuple(settings.upstream.forward_prefixes),
        siblings=siblings,
        heartbeat=Heartbeat(settings.upstream.heartbeat) if settings.upstream.heartbeat else None,
    )
    state.metrics.watch(lambda: state.live)
    state.redactor.personal.found = lambda kind: state.metrics.pii.labels(kind=kind).inc()
    if state.heartbeat is not None:
        state.heartbeat.on_error = lambda where, exc: state.metrics.internal_error(log, where, exc)
    app.cleanup_ctx.append(_client_session)
    app.cleanup_ctx.append(_tracing)
    app.cleanup_ctx.append(_summary_clock)
    if state.heartbeat is not None:
        app.cleanup_ctx.append(state.heartbeat.running)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    state = app[APP]
    connector = aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True)
    state.http = aiohttp.ClientSession(
        connector=connector,
        # No state crosses sessions (SPEC §1.8): a cookie the upstream sets in answer to
        # one client must never ride along with another client's request.
        cookie_jar=aiohttp.DummyCookieJar(),
        trace_configs=[trace_config()],
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=state.settings.upstream.connect_timeout
        ),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
        trust_env=False,
    )
    yield
    await state.client.close()
    state.http = None


async def _tracing(app: web.Application) -> AsyncIterator[None]:
    """OpenTelemetry, when `otel.endpoint` is set: made at start, flushed at the end
    (bounded by the export timeout, off the event loop)."""
    state = app[APP]
    metrics = state.metrics
    state.tracing = Tracing.from_settings(
        state.settings.otel,
        dropped=lambda n: metrics.otel_dropped.inc(n),
        log_failure=lambda n: state.log.warning("otel.export_failed", count=n),
    )
    yield
    if state.tracing is not None:
        await asyncio.to_thread(state.tracing.shutdown)
        state.tracing = None


async def _summary_clock(app: web.Application) -> AsyncIterator[None]:
    """Every second, write the summaries that have waited `log.summary_interval`: a
    stream that stops without a boundary is still summarised on time."""
    state = app[APP]

    async def tick() -> None:
        while True:
            await asyncio.sleep(min(1.0, state.settings.log.summary_interval))
            for session in list(state.live):
                recorder = session.recorder
                try:
                    recorder.flush_stale()
                    if session.turns is not None:
                        session.turns.tick(time.monotonic())
                except Exception as exc:  # noqa: BLE001 (one session's must not stop the clock)
                    state.metrics.internal_error(recorder.log, "summary_clock", exc)

    task = asyncio.create_task(tick(), name="earshot-summary-clock")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Route a request by its path: a Realtime upgrade, a REST call, or nothing."""
    state = request.app[APP]
    raw = request.rel_url.raw_path
    if request.method == "CONNECT" or not raw.startswith("/"):
        raise web.HTTPBadRequest(text="earshot: request target not accepted\n")
    # The prefix and the forward prefixes are compared with the checked path, which is
    # the raw one (canonical: they agree), and the raw one is what `Upstream.url` slices.
    checked = _checked_path(raw)
    if checked is None or (state.upstream.prefix and not _under(checked, (state.upstream.prefix,))):
        raise web.HTTPNotFound()
    if not _under(state.upstream.unprefixed(checked), state.forward_prefixes):
        raise web.HTTPNotFound()
    if request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket":
        return await relay.realtime(request)
    return await rest.exchange(request)


async def healthz(_request: web.Request) -> web.Response:
    """`GET /healthz`: the process is alive."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """`GET /readyz`: ready for new sessions (503 while draining)."""
    state = request.app[APP]
    if state.draining:
        return web.json_response({"status": "draining"}, status=503)
    return web.json_response({"status": "ready", "sessions": len(state.sessions)})


async def metrics_endpoint(request: web.Request) -> web.Response:
    """`GET /metrics`: Prometheus text format, for every worker at once."""
    state = request.app[APP]
    body = generate_latest(state.metrics.registry)
    if state.siblings is not None:
        body = await state.siblings.whole(body)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
