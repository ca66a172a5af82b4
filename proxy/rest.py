"""
REST exchanges: decoded and logged (`http.request`), forwarded with their exact bytes,
and logged again with the response (`http.exchange`).

The request body is read once (capped by `limits.max_body_bytes`), forwarded as read,
and a copy is decoded for the log by route: JSON bodies through `protocol.decode_rest`
and the redactor, SDP through the SDP redactor, multipart `calls` bodies part by part.
The response comes back with its status, headers (including `Location`) and body bytes
untouched; compressed bodies are forwarded compressed and decompressed only for the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import zlib
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, Final

import aiohttp
import orjson
from aiohttp import web

import protocol
from proxy.context import APP, AppState, conn_id
from proxy.log import Logger
from proxy.redact import Redactor
from proxy.upstream import response_headers

_ROUTE: Final = re.compile(
    r"^(?:/openai)?(?:/v1)?/realtime/"
    r"(client_secrets|sessions|transcription_sessions|translations/client_secrets|calls)"
    r"(?:/[^/]+/(accept|hangup|refer|reject))?/?$"
)
_MAX_LOGGED_BODY: Final = 1024 * 1024


def route_key(path: str) -> str | None:
    """The `protocol.rest.REST_BODIES` key for a path, or None for a generic exchange."""
    m = _ROUTE.match(path)
    if m is None:
        return None
    if m.group(2):
        return f"calls/{m.group(2)}" if m.group(1) == "calls" else None
    return m.group(1)


def render_body(
    redactor: Redactor, route: str | None, body: bytes, content_type: str, *, response: bool
) -> Any:
    """A body as it may be logged: decoded and redacted, or metadata only."""
    if not body:
        return None
    if len(body) > _MAX_LOGGED_BODY:
        return {"bytes": len(body), "content_type": content_type, "note": "too large to decode"}
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or (not media and body[:1] == b"{"):
        if route is not None:
            decoded = protocol.decode_rest(route, body, response=response)
            if not isinstance(decoded, protocol.Undecodable):
                return redactor.model(decoded)
            if not response:
                return {"bytes": len(body), "undecodable": decoded.reason}
        try:
            return redactor.scrub(orjson.loads(body))
        except orjson.JSONDecodeError:
            return {"bytes": len(body), "undecodable": "invalid JSON"}
    # OpenAI answers a `calls` offer with its SDP as `text/plain`: recognised by its first line.
    if media == "application/sdp" or body[:4] == b"v=0\r" or body[:4] == b"v=0\n":
        return {"sdp": redactor.sdp(body.decode("utf-8", "replace"))}
    if media == "multipart/form-data":
        return _render_multipart(redactor, body, content_type, response=response)
    return {"bytes": len(body), "content_type": redactor.cut(media, 80)}


def _render_multipart(redactor: Redactor, body: bytes, content_type: str, *, response: bool) -> Any:
    header = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    message = BytesParser(policy=HTTP).parsebytes(header + body)
    if not message.is_multipart():
        return {"bytes": len(body), "undecodable": "multipart without parts"}
    parts: dict[str, Any] = {}
    for part in message.iter_parts():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition") or "part"
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        key = redactor.cut(str(name), 64)
        if key == "sdp":
            parts[key] = redactor.sdp(data.decode("utf-8", "replace"))
        elif key == "session":
            parts[key] = render_body(redactor, "calls", data, "application/json", response=response)
        else:
            parts[key] = {"bytes": len(data)}
    return {"multipart": parts}


_REALTIME: Final = re.compile(r"/(?:v1/realtime|openai/realtime|openai/v1/realtime)(?:/|$)")
_STREAM_TAIL: Final = 64 * 1024  # bytes of a stream's end kept to find its usage


def _decompressed(body: bytes, encoding: str) -> bytes | None:
    """A copy of a compressed body for the log (gzip/deflate), bounded; None if not."""
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        return None
    try:
        d = zlib.decompressobj(wbits=47)  # gzip or zlib, auto-detected
        return d.decompress(body, _MAX_LOGGED_BODY)
    except zlib.error:
        return None


async def exchange(request: web.Request) -> web.StreamResponse:
    """Log one REST request (`http.request`), forward it, and log the whole exchange."""
    state: AppState = request.app[APP]
    redactor = state.redactor
    started = time.monotonic()
    path = state.upstream.unprefixed(request.path)
    route = route_key(path)
    # Outside Realtime (the app's chat, models, audio ... calls): summaries, not bodies.
    generic = not _REALTIME.match(path)
    try:
        async with asyncio.timeout(state.settings.limits.body_timeout):
            body = await request.read()
    except TimeoutError:
        # A client trickling its body holds a connection: cut off, and said.
        state.log.bind(conn=conn_id("h")).warning(
            "http.request_timeout",
            method=request.method,
            path=redactor.request_url(request.path_qs),
            waited_s=state.settings.limits.body_timeout,
        )
        raise web.HTTPRequestTimeout(text="earshot: request body too slow\n") from None
    record: dict[str, Any] = {
        "method": request.method,
        "path": redactor.request_url(request.path_qs),
        "route": route or "generic",
        "request": {
            "headers": redactor.headers(request.headers.items()),
            "body": _body(
                redactor,
                route,
                body,
                request.headers.get("Content-Type", ""),
                response=False,
                generic=generic,
            ),
        },
    }
    log = state.log.bind(conn=conn_id("h"))
    # Logged, then forwarded (SPEC §2): the request's record is in the sink before the
    # upstream sees a byte; `http.exchange` repeats it beside the response.
    log.info("http.request", **record)
    url = state.upstream.url(
        request.rel_url.raw_path, request.rel_url.raw_query_string, websocket=False
    )
    try:
        async with state.client.request(
            request.method,
            url,
            headers=state.upstream.headers(request.headers.items()),
            data=body if body else None,
            allow_redirects=False,
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=state.settings.upstream.connect_timeout
            ),
            proxy=None,
        ) as upstream_response:
            status = upstream_response.status
            headers = response_headers(upstream_response.headers.items())
            encoding = upstream_response.headers.get("Content-Encoding", "").lower()
            content_type = upstream_response.headers.get("Content-Type", "")
            if content_type.lower().startswith("text/event-stream"):
                # Server-sent events (a streamed completion): passed on as they arrive.
                return await _stream(request, upstream_response, state, log, record, started)
            response_body = await upstream_response.read()
    except TimeoutError:
        return _failed(state, log, record, started, 504, "connect_timeout")
    except (aiohttp.ClientError, OSError):
        return _failed(state, log, record, started, 502, "connect_error")

    plain = _decompressed(response_body, encoding)
    record["status"] = status
    record["response"] = {
        "headers": redactor.headers(upstream_response.headers.items()),
        "body": _body(redactor, route, plain, content_type, response=True, generic=generic)
        if plain is not None
        else {"bytes": len(response_body), "content_encoding": redactor.cut(encoding, 32)},
    }
    record["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
    log.info("http.exchange", **record)
    state.metrics.rest_requests.labels(route=route or "generic", status=f"{status // 100}xx").inc()
    return web.Response(status=status, headers=headers, body=response_body)


async def _stream(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    state: AppState,
    log: Logger,
    record: dict[str, Any],
    started: float,
) -> web.StreamResponse:
    """Pass an event stream on chunk by chunk (never buffered whole), then log it: its
    size, its events, and the model and usage its last events name."""
    response = web.StreamResponse(
        status=upstream.status, headers=response_headers(upstream.headers.items())
    )
    await response.prepare(request)
    size = events = 0
    tail = b""
    try:
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
            size += len(chunk)
            events += chunk.count(b"\n\ndata:") + chunk.startswith(b"data:")
            tail = (tail + chunk)[-_STREAM_TAIL:]
    except (aiohttp.ClientError, ConnectionError, OSError):
        record["error"] = "stream_broken"
    summary = _stream_summary(tail)
    record["status"] = upstream.status
    record["response"] = {
        "headers": state.redactor.headers(upstream.headers.items()),
        "body": {"bytes": size, "content_type": "text/event-stream", "events": events, **summary},
    }
    record["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
    log.info("http.exchange", **record)
    state.metrics.rest_requests.labels(
        route=record["route"], status=f"{upstream.status // 100}xx"
    ).inc()
    with contextlib.suppress(ConnectionError, RuntimeError):
        await response.write_eof()
    return response


def _stream_summary(tail: bytes) -> dict[str, Any]:
    """The model and usage named by the last JSON events of a stream (OpenAI sends usage
    in the last chunk when asked), counts only."""
    out: dict[str, Any] = {}
    for line in reversed(tail.split(b"\n")):
        if not line.startswith(b"data:"):
            continue
        try:
            event = orjson.loads(line[5:])
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict):
            for key, value in summarise(event).items():
                out.setdefault(key, value)
        if "usage" in out and "model" in out:
            break
    return out


def summarise(body: object) -> dict[str, Any]:
    """What a JSON body outside Realtime is logged as: its model, object, status and
    usage (counts only). Never the prompt or the answer: those are the user's."""
    if not isinstance(body, dict):
        return {}
    out: dict[str, Any] = {}
    for key in ("model", "object", "status"):
        value = body.get(key)
        if isinstance(value, str) and len(value) <= 64 and value.isprintable():
            out[key] = value
    usage = body.get("usage")
    if isinstance(usage, dict):
        out["usage"] = {k: v for k, v in _counts(usage).items() if len(k) <= 40}
    if isinstance(body.get("stream"), bool):
        out["stream"] = body["stream"]
    return out


def _counts(usage: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in usage.items():
        if type(value) is int and 0 <= value <= 2**53:
            out[str(key)] = value
        elif isinstance(value, dict) and depth < 2:
            out[str(key)] = _counts(value, depth + 1)
    return out


def _body(
    redactor: Redactor,
    route: str | None,
    body: bytes,
    content_type: str,
    *,
    response: bool,
    generic: bool,
) -> Any:
    """A body as logged: a Realtime body decoded and redacted (`render_body`); any other
    summarised — size, content type and, for JSON, model, status and usage."""
    if not generic:
        return render_body(redactor, route, body, content_type, response=response)
    if not body:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    out: dict[str, Any] = {"bytes": len(body), "content_type": redactor.cut(media, 80)}
    if media == "application/json" and len(body) <= _MAX_LOGGED_BODY:
        with contextlib.suppress(orjson.JSONDecodeError):
            out.update(summarise(orjson.loads(body)))
    return out


def _failed(
    state: AppState, log: Logger, record: dict[str, Any], started: float, status: int, kind: str
) -> web.Response:
    state.metrics.upstream_failures.labels(kind=kind).inc()
    state.metrics.rest_requests.labels(route=record["route"], status=f"{status // 100}xx").inc()
    record["status"] = status
    record["error"] = kind
    record["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
    log.warning("http.exchange", **record)
    return web.Response(status=status, text=f"earshot: upstream {kind.replace('_', ' ')}\n")
