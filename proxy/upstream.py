"""
The upstream: where requests go and what they carry there.

Every URL the proxy dials is built here from the configured upstream's scheme, host and
port plus the request's path and query, so no request can choose the host. Hop-by-hop
headers stay behind; end-to-end headers pass; a key the proxy holds (from an
environment variable named in the config) replaces the client's credentials.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterable, Mapping
from types import SimpleNamespace
from typing import Final

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from proxy.settings import Settings

HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-accept",
        "sec-websocket-protocol",
    }
)
CLIENT_CREDENTIALS: Final = frozenset({"authorization", "api-key"})
INSECURE_KEY_PREFIX: Final = "openai-insecure-api-key."
_MAX_ERROR_BODY: Final = 64 * 1024

# The body of a failed WebSocket handshake, captured by the trace hook below so that the
# client gets the upstream's own status *and* body (aiohttp's handshake error has none).
HANDSHAKE_BODY: contextvars.ContextVar[tuple[str, bytes] | None] = contextvars.ContextVar(
    "earshot_handshake_body", default=None
)


async def _capture_error_body(
    _session: aiohttp.ClientSession, _ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
) -> None:
    resp = params.response
    # Only a WebSocket handshake: a REST response's body is the REST exchange's to read
    # (and forward), and reading it here would leave the client an empty body.
    if params.headers.get("Upgrade", "").lower() != "websocket":
        return
    if resp.status != 101 and resp.status >= 300:
        await _keep_body(resp)


async def _keep_body(resp: aiohttp.ClientResponse) -> None:
    """Keep a refused handshake's body (bounded) for the answer to the client."""
    try:
        length = int(resp.headers.get("Content-Length", "0") or 0)
        body = await resp.content.read(min(length, _MAX_ERROR_BODY)) if length else b""
    except (aiohttp.ClientError, ValueError, OSError):
        body = b""
    HANDSHAKE_BODY.set((resp.headers.get("Content-Type", "application/json"), body))


class HandshakeRedirect(Exception):
    """The upstream answered a WebSocket handshake with a redirect: never followed."""

    def __init__(self, status: int, location: str | None) -> None:
        super().__init__(status)
        self.status = status
        self.location = location


async def _refuse_redirect(
    _session: aiohttp.ClientSession,
    _ctx: SimpleNamespace,
    params: aiohttp.TraceRequestRedirectParams,
) -> None:
    # aiohttp's ws_connect follows redirects and takes no allow_redirects: stop it here,
    # before it dials the `Location` host with the client's credentials. (REST requests
    # are sent with allow_redirects=False and never get here.)
    await _keep_body(params.response)
    raise HandshakeRedirect(params.response.status, params.response.headers.get("Location"))


def trace_config() -> aiohttp.TraceConfig:
    """The client session's hooks: keep a refused handshake's body, refuse redirects."""
    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(_capture_error_body)
    trace.on_request_redirect.append(_refuse_redirect)
    return trace


class Upstream:
    """The configured upstream and the rules for what is sent to it."""

    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.base = URL(settings.upstream.url)
        self.prefix = settings.listen.path_prefix
        key_env = settings.upstream.api_key_env
        self.api_key = env.get(key_env) if key_env else None

    def unprefixed(self, path: str) -> str:
        """A request path without `listen.path_prefix` (the dispatcher checked it is there)."""
        return path[len(self.prefix) :] if self.prefix else path

    def url(self, raw_path: str, raw_query: str, *, websocket: bool) -> URL:
        """The upstream URL for a request's raw path: always the configured host."""
        scheme = self.base.scheme
        if websocket:
            scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
        else:
            scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
        base_path = self.base.raw_path.rstrip("/")
        return URL.build(
            scheme=scheme,
            host=self.base.raw_host or "",
            port=self.base.explicit_port,
            path=base_path + self.unprefixed(raw_path),
            query_string=raw_query,
            encoded=True,
        )

    def headers(self, headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> CIMultiDict[str]:
        """End-to-end request headers, with the proxy's key if it holds one."""
        items = headers.items() if isinstance(headers, Mapping) else headers
        pairs = list(items)
        named_in_connection = {
            token.strip().lower()
            for name, value in pairs
            if name.lower() == "connection"
            for token in value.split(",")
        }
        out: CIMultiDict[str] = CIMultiDict()
        for name, value in pairs:
            lname = name.lower()
            if lname in HOP_BY_HOP or lname in named_in_connection:
                continue
            if self.api_key and lname in CLIENT_CREDENTIALS:
                continue
            out.add(name, value)
        if self.api_key:
            out["Authorization"] = f"Bearer {self.api_key}"
        return out

    def subprotocols(self, offered: list[str]) -> list[str]:
        """Subprotocols to offer upstream; the browser key is dropped if we hold one."""
        if self.api_key:
            return [p for p in offered if not p.startswith(INSECURE_KEY_PREFIX)]
        return offered


def response_headers(headers: Iterable[tuple[str, str]]) -> CIMultiDict[str]:
    """End-to-end response headers to return to the client."""
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers:
        if name.lower() not in HOP_BY_HOP:
            out.add(name, value)
    return out
