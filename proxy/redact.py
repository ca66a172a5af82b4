"""
Redaction: turns decoded traffic into values that may be logged.

The protocol models declare sensitivity by type; this module gives each type its
rendering, as unstructure hooks on a converter of its own, chosen by the YAML policy:
secrets become keyed fingerprints, audio becomes byte counts and durations (computed from
the base64 length, never by decoding, whatever the field holds), images become media type
and size, streamed argument fragments become their length, text is kept, hashed, measured
or dropped per text class, and whatever is kept is judged by the scrubber. Data the
models do not declare (`extra`, `Json`, unknown events) is untrusted: the scrubber
(`proxy.scrub`) parses it before it judges it.

Outside the bodies it redacts headers and query parameters (values in clear only for
names on the allow-lists), subprotocols, SDP and close reasons. Nothing here raises on
hostile input: every entry point is total.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlsplit

import attrs
from attrs import frozen

import protocol
from protocol import types as pt
from proxy.audio import PCM16_24K, base64_length
from proxy.credentials import is_secret_name
from proxy.personal import Personal
from proxy.scrub import FRAME_BUDGET, Scrubber

TextMode = Literal["keep", "hash", "length", "drop"]

_MEDIA_TYPE = re.compile(r"[\w.+\-]{1,40}/[\w.+\-]{1,60}")
_MAX_REASON: Final = 123

# The query parameters and headers whose values are logged in clear (after the scrubber):
# those of the surfaces earshot serves (SPEC §2) and the standard HTTP headers that carry
# no credential. Every other value is a fingerprint. A `*` globs a family of headers.
ALLOW_QUERY: Final = (
    "model", "call_id", "intent", "api-version", "deployment", "after", "before", "limit",
    "order",
)  # fmt: skip
ALLOW_HEADERS: Final = (
    "accept", "accept-encoding", "accept-language", "access-control-*", "age", "alt-svc",
    "cache-control", "connection", "content-encoding", "content-language", "content-length",
    "content-type", "date", "etag", "expires", "host", "keep-alive", "last-modified",
    "location", "origin", "pragma", "referer", "retry-after", "server", "sec-websocket-accept",
    "sec-websocket-extensions", "sec-websocket-protocol", "sec-websocket-version",
    "strict-transport-security", "traceparent", "tracestate", "transfer-encoding", "upgrade",
    "user-agent", "vary", "via", "x-content-type-options", "x-request-id",
    "x-client-request-id", "openai-beta", "openai-organization", "openai-project",
    "openai-processing-ms", "openai-version", "openai-model", "x-ratelimit-*", "x-stainless-*",
    "x-envoy-upstream-service-time", "cf-ray", "cf-cache-status", "apim-request-id",
    "x-ms-region", "x-ms-client-request-id", "x-ms-request-id", "azureml-model-session",
    "x-forwarded-proto", "timing-allow-origin", "azureml-served-by-cluster",
)  # fmt: skip
_URL_HEADERS: Final = frozenset({"location", "origin", "referer", "content-location"})
# The well-known subprotocols a browser offers; any other is judged by its prefix.
_SUBPROTOCOLS: Final = frozenset({"realtime", "openai-beta.realtime-v1"})


@frozen(kw_only=True)
class Policy:
    """How each class of data is rendered; built from the `redaction` config section."""

    text: Mapping[str, TextMode] = attrs.field(factory=dict)
    image_host: bool = False
    audio_hash: bool = False
    patterns: tuple[str, ...] = ()
    allow_query: tuple[str, ...] = ALLOW_QUERY
    allow_headers: tuple[str, ...] = ALLOW_HEADERS
    pii: Mapping[str, str] = attrs.field(factory=dict)  # kind -> mask | keep | last4
    pii_regions: tuple[str, ...] = ("US",)
    fingerprint_key: bytes = attrs.field(factory=lambda: os.urandom(32), repr=False)

    def text_mode(self, text_class: str) -> TextMode:
        """The mode for one text class, or the policy's default."""
        return self.text.get(text_class, self.text.get("default", "keep"))


class Redactor(Scrubber):
    """Renders decoded models and raw metadata as log-safe values, per one policy."""

    def __init__(self, policy: Policy) -> None:
        super().__init__(policy.fingerprint_key, policy.patterns)
        self.policy = policy
        self._allow_query = frozenset(n.lower() for n in policy.allow_query)
        self._allow_headers = frozenset(n.lower() for n in policy.allow_headers if "*" not in n)
        self._header_globs = tuple(n.lower() for n in policy.allow_headers if "*" in n)
        self.personal = Personal(self.fingerprint, policy.pii, policy.pii_regions)
        self.after = self.personal.mask if self.personal.active else None
        self._conv = protocol.make_converter()
        self._register_hooks()
        # The audio format of the event being rendered, given to `model` with it.
        self._bytes_per_ms = PCM16_24K

    # --- per-type renderings -----------------------------------------------------------

    def audio(self, value: str) -> dict[str, Any]:
        """Base64 audio as its decoded length and duration in the current format: the
        schema says audio, so nothing of it is logged, whatever it holds."""
        n = base64_length(value)
        out: dict[str, Any] = {
            "redacted": "audio",
            "bytes": n,
            "ms": round(n / self._bytes_per_ms, 1),
        }
        if self.policy.audio_hash:
            out["fp"] = self.fingerprint(value)
        return out

    def image(self, value: str) -> dict[str, Any]:
        """An image or file: media type and size for data, a marker (and host) for a URL."""
        if value.startswith("data:"):
            header, _, data = value.partition(",")
            media = header[5:].split(";", 1)[0]
            clean = _MEDIA_TYPE.fullmatch(media) and self.scrub_text(media, untrusted=True) == media
            return {
                "redacted": "image",
                # The media type is the client's text too: a key can hide in it.
                "media_type": media if clean else "unknown",
                "bytes": base64_length(data) if ";base64" in header else len(data),
            }
        if value.startswith(("http://", "https://")):
            out: dict[str, Any] = {"redacted": "image", "url": True}
            if self.policy.image_host:
                host = urlsplit(value).hostname or ""
                out["host"] = self.cut(host, 253)
            return out
        return {"redacted": "file", "bytes": base64_length(value)}

    def fragment(self, value: str) -> dict[str, Any]:
        """A piece of streamed structured content (function-call and MCP argument
        deltas): its length only, whatever the policy. The whole arguments are logged,
        judged as JSON, at `.done`."""
        return {"redacted": "fragment", "chars": len(value)}

    def text(self, value: str, mode: TextMode) -> Any:
        """Text per its mode: kept (judged by the scrubber), hashed, measured or dropped."""
        if mode == "keep":
            return self.kept(value)
        if mode == "hash":
            return {"redacted": "text", "fp": self.fingerprint(value), "chars": len(value)}
        if mode == "length":
            return {"redacted": "text", "chars": len(value)}
        return {"redacted": "text"}

    # --- models ------------------------------------------------------------------------

    def _register_hooks(self) -> None:
        conv = self._conv
        conv.register_unstructure_hook(pt.Secret, self.secret)
        conv.register_unstructure_hook(pt.Audio, self.audio)
        conv.register_unstructure_hook(pt.Image, self.image)
        conv.register_unstructure_hook(pt.Url, self.url)
        conv.register_unstructure_hook(pt.Fragment, self.fragment)
        conv.register_unstructure_hook(pt.Json, self.scrub)
        conv.register_unstructure_hook(pt.Extras, self.scrub)
        # Declared plain strings (ids, names, enums) are the client's to choose too: a
        # key or a blob put in an id is found like anywhere else.
        conv.register_unstructure_hook(str, self.scrub_text)
        for text_type, text_class in pt.TEXT_CLASSES.items():
            conv.register_unstructure_hook(text_type, self._text_hook(text_class))

    def _text_hook(self, text_class: str) -> Callable[[str], Any]:
        mode = self.policy.text_mode(text_class)
        if mode == "keep":
            return self.kept
        return lambda value: self.text(value, mode)

    def kept(self, value: str) -> str:
        """Kept text: credentials judged by the scrubber, then personal data masked."""
        return self.personal.mask(self.scrub_text(value))

    def model(
        self, model: protocol.Model, *, audio_bytes_per_ms: float = PCM16_24K
    ) -> dict[str, Any]:
        """A decoded event, item or body, rendered for the log; its audio measured at
        `audio_bytes_per_ms` (the session's format for the event's direction)."""
        # Held for this call only: the hooks, called from inside cattrs, read them. This
        # is per-call state on an app-wide object, and deliberately so: a render is one
        # synchronous call (no await between set and reset), so no other session's
        # render can run inside it. One converter per audio rate instead would cost
        # ~18 ms to build per new rate, and a client that cycles its session's rate
        # could make every config event pay it.
        self._bytes_per_ms = audio_bytes_per_ms
        self._budget = FRAME_BUDGET
        try:
            if isinstance(model, protocol.UnknownEvent):
                return {
                    "type": self.scrub_text(model.type, untrusted=True),
                    **self.scrub(model.extra),
                }
            out: dict[str, Any] = self._conv.unstructure(model, model.__class__)
            return out
        finally:
            self._budget = float("inf")

    # --- outside the bodies ------------------------------------------------------------

    def headers(self, headers: Iterable[tuple[str, str]]) -> dict[str, Any]:
        """Request or response headers: a credential's name gives a secret; a name on
        the allow-list gives its value, judged; any other name gives a fingerprint."""
        out: dict[str, Any] = {}
        for name, value in headers:
            lname = name.lower()
            rendered: Any
            if is_secret_name(lname):
                rendered = self.secret(value)
            elif lname == "sec-websocket-protocol":
                rendered = self.subprotocols(value.split(","))
            elif not self._header_allowed(lname):
                rendered = {"redacted": "value", "fp": self.fingerprint(value)}
            elif lname in _URL_HEADERS:
                rendered = self.url(value)[:1024]
            else:
                rendered = self.cut(value, 1024)
            out[self.cut(lname, 128)] = rendered
        return out

    def _header_allowed(self, lname: str) -> bool:
        return lname in self._allow_headers or any(
            fnmatch.fnmatchcase(lname, g) for g in self._header_globs
        )

    def request_url(self, path_qs: str) -> str:
        """A request's path and query as logged: the path judged, and the query's values
        in clear only for parameters on the allow-list."""
        path, sep, query = path_qs.partition("?")
        out = self.scrub_text(path, untrusted=True)
        if not sep:
            return out[:512]
        pairs = []
        for k, v in parse_qsl(query, keep_blank_values=True):
            name = self.scrub_text(k, untrusted=True)
            if is_secret_name(k, parameter=True) or k.lower() not in self._allow_query:
                pairs.append(f"{name}={self.mark(v, 'value')}")
            else:
                pairs.append(f"{name}={self.scrub_text(v, untrusted=True)}")
        return f"{out}?{'&'.join(pairs)}"[:512]

    def subprotocols(self, protocols: Iterable[str]) -> str:
        """Subprotocols: a well-known one as it is; one whose prefix names a credential
        (`openai-insecure-api-key.<key>`, in any case) as the prefix and a fingerprint;
        any other judged as untrusted text."""
        out = []
        for p in protocols:
            p = p.strip()
            prefix, dot, rest = p.partition(".")
            if p.lower() in _SUBPROTOCOLS:
                out.append(p)
            elif dot and is_secret_name(prefix):
                out.append(f"{self.cut(prefix, 64)}.{self.mark(rest)}")
            else:
                out.append(self.cut(p, 256))
        return ", ".join(out)

    def sdp(self, sdp: str) -> str:
        """SDP with ICE credentials, crypto keys and every address removed.

        Each line is parsed (`type=value`, attribute name up to `:` or a space, in any
        case, after any white space), so spellings that dodge an exact-text rule
        (`A=ice-pwd:`, a leading space, no colon) are redacted the same way.
        """
        return "\n".join(self._sdp_line(line) for line in sdp.splitlines()[:512])

    def _sdp_line(self, line: str) -> str:
        kind, eq, value = line.strip().partition("=")
        kind = kind.strip().lower()
        if not eq or len(kind) != 1 or not kind.isalpha():  # not an SDP line
            return self.line(line)
        if kind in ("c", "o"):  # connection / origin: the address is the last field
            fields = value.split()
            return f"{kind}={' '.join([*fields[:-1], '[redacted:addr]'])}"
        if kind == "k":  # an encryption key line
            return f"k=[redacted:secret:{self.fingerprint(value)}]"
        if kind != "a":
            return self.line(f"{kind}={value}")
        name, sep, rest = value.strip().partition(":")
        if not sep and " " in name:  # `a=ice-pwd xyz`: no colon
            name, _, rest = name.partition(" ")
            sep = ":"
        attr = name.strip().lower()
        fields = rest.split()
        if attr in ("ice-pwd", "ice-ufrag"):
            rest = f"[redacted:secret:{self.fingerprint(rest.strip())}]"
        elif attr == "crypto":  # `tag suite inline:<key>[|lifetime][|mki]`
            rest = " ".join(
                f"inline:[redacted:secret:{self.fingerprint(f)}]" if f.lower().startswith("inline:")
                else f
                for f in fields
            )  # fmt: skip
        elif attr == "candidate":  # foundation component transport priority ADDRESS port ...
            rest = " ".join(
                "[redacted:addr]"
                if i == 4 or (i > 0 and fields[i - 1].lower() in ("raddr", "rport"))
                else f
                for i, f in enumerate(fields)
            )
        elif attr == "rtcp":  # port [nettype addrtype ADDRESS]
            rest = " ".join([*fields[:3], *(["[redacted:addr]"] if len(fields) > 3 else [])])
        elif attr == "remote-candidates":  # (component ADDRESS port)+
            rest = " ".join("[redacted:addr]" if i % 3 == 1 else f for i, f in enumerate(fields))
        else:
            return self.line(f"a={value.strip()}")
        return f"a={attr}{sep}{rest}"

    def reason(self, reason: str | bytes | None) -> str:
        """A close reason or error message: judged as untrusted text and bounded."""
        if reason is None:
            return ""
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        return self.cut(reason, _MAX_REASON)
