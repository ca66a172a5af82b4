"""
Redaction: turns decoded traffic into values that may be logged.

The protocol models declare sensitivity by type; this module gives each type its
rendering, as unstructure hooks on a converter of its own, chosen by the YAML policy:
secrets become keyed fingerprints, audio becomes byte counts and durations (computed from
the base64 length, never by decoding), images become media type and size, text is kept,
hashed, measured or dropped per text class, with secret patterns scrubbed from whatever
is kept. Data the models do not declare (`extra`, `Json`, unknown events) goes through
the scrubber: key-name rules, secret patterns, long base64 runs collapsed.

Outside the bodies it redacts headers, URL queries, subprotocols, SDP and close reasons.
Nothing here raises on hostile input: every entry point is total.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlsplit

import attrs
from attrs import frozen

import protocol
from protocol import types as pt

TextMode = Literal["keep", "hash", "length", "drop"]

_SECRET_PATTERNS: Final = (
    r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}",
    r"\bek_[A-Za-z0-9_\-]{8,}",
    r"\beyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]*",
    r"(?i:\bbearer\s+)[A-Za-z0-9._~+/=\-]{8,}",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
)
_BLOB = r"[A-Za-z0-9+/_\-]{64,}={0,2}"
_SECRET_KEY = re.compile(
    r"(?i)(?:^|[_\-])(?:token|secret|password|passwd|authorization|api[_\-]?key|apikey|cookie"
    r"|credentials?|private[_\-]?key|signature|sig)$|^(?:headers|key|set-cookie|x-api-key)$"
)
_SECRET_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie", "set-cookie"}
)
_SECRET_QUERY: Final = frozenset({"api-key", "api_key", "authorization", "token", "key", "sig"})
_INSECURE_KEY_PREFIX: Final = "openai-insecure-api-key."
_MEDIA_TYPE = re.compile(r"[\w.+\-]{1,40}/[\w.+\-]{1,60}")
_MAX_DEPTH: Final = 24
_MAX_REASON: Final = 123

# Bytes of audio per millisecond, for the direction being redacted. The relay sets it
# before each frame from the session's negotiated format; the audio hook reads it.
AUDIO_BYTES_PER_MS: contextvars.ContextVar[float] = contextvars.ContextVar(
    "earshot_audio_bytes_per_ms", default=48.0
)

PCM16_24K: Final = 48.0


def bytes_per_ms(fmt: object, rate: object = None) -> float:
    """Bytes per millisecond for a GA format type or a beta format name."""
    if fmt in ("audio/pcmu", "audio/pcma", "g711_ulaw", "g711_alaw"):
        return 8.0
    if isinstance(rate, int) and not isinstance(rate, bool) and 1000 <= rate <= 384_000:
        return rate * 2 / 1000
    return PCM16_24K


def base64_length(value: str) -> int:
    """Decoded length of a base64 string, from its length alone."""
    n = len(value)
    padding = 2 if value.endswith("==") else 1 if value.endswith("=") else 0
    return max(0, n * 3 // 4 - padding)


@frozen(kw_only=True)
class Policy:
    """How each class of data is rendered; built from the `redaction` config section."""

    text: Mapping[str, TextMode] = attrs.field(factory=dict)
    image_host: bool = False
    audio_hash: bool = False
    patterns: tuple[str, ...] = ()
    fingerprint_key: bytes = attrs.field(factory=lambda: os.urandom(32), repr=False)

    def text_mode(self, text_class: str) -> TextMode:
        return self.text.get(text_class, self.text.get("default", "keep"))


class Redactor:
    """Renders decoded models and raw metadata as log-safe values, per one policy."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._key = policy.fingerprint_key
        secret_re = "|".join((*_SECRET_PATTERNS, *policy.patterns))
        self._secret = re.compile(secret_re)
        self._scrub_re = re.compile(f"(?P<s>{secret_re})|(?P<b>{_BLOB})")
        self._conv = protocol.make_converter()
        self._register_hooks()

    # --- fingerprints ------------------------------------------------------------------

    def fingerprint(self, value: str | bytes) -> str:
        """A keyed 8-hex fingerprint: correlates equal values, reveals nothing of them."""
        data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()[:8]

    def secret(self, value: object) -> dict[str, str]:
        text = value if isinstance(value, str) else repr(value)
        return {"redacted": "secret", "fp": self.fingerprint(text)}

    # --- per-type renderings -----------------------------------------------------------

    def audio(self, value: str) -> dict[str, Any]:
        n = base64_length(value)
        out: dict[str, Any] = {
            "redacted": "audio",
            "bytes": n,
            "ms": round(n / AUDIO_BYTES_PER_MS.get(), 1),
        }
        if self.policy.audio_hash:
            out["fp"] = self.fingerprint(value)
        return out

    def image(self, value: str) -> dict[str, Any]:
        if value.startswith("data:"):
            header, _, data = value.partition(",")
            media = header[5:].split(";", 1)[0]
            return {
                "redacted": "image",
                # The media type is the client's text too: a key can hide in it.
                "media_type": self.scrub_text(media) if _MEDIA_TYPE.fullmatch(media) else "unknown",
                "bytes": base64_length(data) if ";base64" in header else len(data),
            }
        if value.startswith(("http://", "https://")):
            out: dict[str, Any] = {"redacted": "image", "url": True}
            if self.policy.image_host:
                host = urlsplit(value).hostname or ""
                out["host"] = self.scrub_text(host[:253])
            return out
        return {"redacted": "file", "bytes": base64_length(value)}

    def text(self, value: str, mode: TextMode) -> Any:
        if mode == "keep":
            return self.scrub_text(value)
        if mode == "hash":
            return {"redacted": "text", "fp": self.fingerprint(value), "chars": len(value)}
        if mode == "length":
            return {"redacted": "text", "chars": len(value)}
        return {"redacted": "text"}

    def scrub_text(self, value: str) -> str:
        """Text with secrets replaced by fingerprints and long base64 runs collapsed."""
        # Most strings are short ids and words: a few substring tests rule them out far
        # faster than the combined regex can (every built-in pattern has one of these
        # markers; a blob needs 64 characters). Configured patterns disable the shortcut.
        if len(value) < 64 and not self.policy.patterns:
            low = value.lower()
            if not (
                "sk-" in low
                or "ek_" in low
                or "eyj" in low
                or "bearer" in low
                or "akia" in low
                or "asia" in low
            ):
                return value
        if self._scrub_re.search(value) is None:
            return value
        return self._scrub_re.sub(self._replace, value)

    def _replace(self, m: re.Match[str]) -> str:
        if m.group("s") is not None:
            return f"[redacted:secret:{self.fingerprint(m.group(0))}]"
        return f"[redacted:blob:{base64_length(m.group(0))}]"

    def url(self, value: str) -> str:
        """A URL with userinfo removed and secret-named query values replaced."""
        try:
            parts = urlsplit(value)
            netloc = parts.hostname or ""
            if parts.port is not None:
                netloc = f"{netloc}:{parts.port}"
            if parts.username is not None or parts.password is not None:
                netloc = f"[redacted:{self.fingerprint(parts.netloc)}]@{netloc}"
            return "".join(
                (
                    f"{parts.scheme}://" if parts.scheme else "",
                    self.scrub_text(netloc),
                    self.scrub_text(parts.path),
                    f"?{self.query(parts.query)}" if parts.query else "",
                )
            )
        except ValueError:
            return f"[redacted:url:{self.fingerprint(value)}]"

    def query(self, query: str) -> str:
        """A query string with credentials (`api-key`, `token`, ...) replaced."""
        pairs = []
        for k, v in parse_qsl(query, keep_blank_values=True):
            if k.lower() in _SECRET_QUERY or _SECRET_KEY.search(k):
                v = f"[redacted:secret:{self.fingerprint(v)}]"
            else:
                v = self.scrub_text(v)
            pairs.append(f"{self.scrub_text(k)}={v}")
        return "&".join(pairs)

    def scrub(self, value: Any, depth: int = 0) -> Any:
        """Undeclared JSON: key-name rules, secret patterns and blob collapsing."""
        if isinstance(value, str):
            if len(value) >= 64 and value.startswith("data:"):
                return self.image(value)
            return self.scrub_text(value)
        if depth >= _MAX_DEPTH and isinstance(value, dict | list):
            return {"redacted": "deep"}
        if isinstance(value, dict):
            return {
                self.scrub_text(k): self.secret(v)
                if _SECRET_KEY.search(k) and v is not None
                else self.scrub(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.scrub(v, depth + 1) for v in value]
        return value

    # --- models ------------------------------------------------------------------------

    def _register_hooks(self) -> None:
        conv = self._conv
        conv.register_unstructure_hook(pt.Secret, self.secret)
        conv.register_unstructure_hook(pt.Audio, self.audio)
        conv.register_unstructure_hook(pt.Image, self.image)
        conv.register_unstructure_hook(pt.Url, self.url)
        conv.register_unstructure_hook(pt.Json, self.scrub)
        conv.register_unstructure_hook(pt.Extras, self.scrub)
        # Declared plain strings (ids, names, enums) are the client's to choose too: a
        # key or a blob put in an id is scrubbed like any other text.
        conv.register_unstructure_hook(str, self.scrub_text)
        for text_type, text_class in pt.TEXT_CLASSES.items():
            conv.register_unstructure_hook(text_type, self._text_hook(text_class))

    def _text_hook(self, text_class: str) -> Callable[[str], Any]:
        mode = self.policy.text_mode(text_class)
        if mode == "keep":
            return self.scrub_text
        return lambda value: self.text(value, mode)

    def model(self, model: protocol.Model) -> dict[str, Any]:
        """A decoded event, item or body, rendered for the log."""
        if isinstance(model, protocol.UnknownEvent):
            return {"type": self.scrub_text(model.type), **self.scrub(model.extra)}
        out: dict[str, Any] = self._conv.unstructure(model, model.__class__)
        return out

    # --- outside the bodies ------------------------------------------------------------

    def headers(self, headers: Iterable[tuple[str, str]]) -> dict[str, Any]:
        """Request or response headers, credentials fingerprinted."""
        out: dict[str, Any] = {}
        for name, value in headers:
            lname = name.lower()
            if lname in _SECRET_HEADERS or _SECRET_KEY.search(lname):
                rendered: Any = self.secret(value)
            elif lname == "sec-websocket-protocol":
                rendered = self.subprotocols(value.split(","))
            else:
                rendered = self.scrub_text(value[:1024])
            out[self.scrub_text(lname[:128])] = rendered
        return out

    def subprotocols(self, protocols: Iterable[str]) -> str:
        """Subprotocols with the browser key element fingerprinted."""
        out = []
        for p in protocols:
            p = p.strip()
            if p.startswith(_INSECURE_KEY_PREFIX):
                key = p[len(_INSECURE_KEY_PREFIX) :]
                p = f"{_INSECURE_KEY_PREFIX}[redacted:secret:{self.fingerprint(key)}]"
            out.append(self.scrub_text(p))
        return ", ".join(out)

    def sdp(self, sdp: str) -> str:
        """SDP with ICE credentials and candidate addresses removed."""
        lines = []
        for line in sdp.splitlines()[:512]:
            if line.startswith(("a=ice-pwd:", "a=ice-ufrag:")):
                attr, _, value = line.partition(":")
                line = f"{attr}:[redacted:secret:{self.fingerprint(value)}]"
            elif line.startswith("a=candidate:"):
                fields = line.split(" ")
                if len(fields) > 5:
                    fields[4] = "[redacted:addr]"
                for i, f in enumerate(fields[:-1]):
                    if f in ("raddr", "rport"):
                        fields[i + 1] = "[redacted]"
                line = " ".join(fields)
            elif line.startswith(("c=", "o=")):
                fields = line.split(" ")
                fields[-1] = "[redacted:addr]"
                line = " ".join(fields)
            lines.append(self.scrub_text(line))
        return "\n".join(lines)

    def reason(self, reason: str | bytes | None) -> str:
        """A close reason or error message: scrubbed and bounded."""
        if reason is None:
            return ""
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        return self.scrub_text(reason[:_MAX_REASON])
