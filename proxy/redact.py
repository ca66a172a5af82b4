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

import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlsplit

import attrs
import orjson
import regex
from attrs import frozen

import protocol
from protocol import types as pt
from proxy.audio import PCM16_24K, base64_length
from proxy.credentials import NAME_HINT, SECRET_PATTERNS, has_key_marker, is_secret_name

TextMode = Literal["keep", "hash", "length", "drop"]

# Base64 (audio, images, files) is collapsed where it runs to 64 characters or more, also
# when it is cut into pieces of 16 or more joined by a few separators (wrapped lines,
# dotted chunks). A run starts only where no base64 character precedes it and is taken
# whole (possessive): the run and separator classes are disjoint, so the scan is linear.
_B64 = r"[A-Za-z0-9+/_\-]"
_B64_RUN = rf"(?<!{_B64}){_B64}{{16,}}+={{0,2}}"
_BLOB = (
    rf"{_B64_RUN}(?:[\s.,;:|]{{1,3}}+{_B64}{{16,}}+={{0,2}})+"  # pieces, two or more
    rf"|(?<!{_B64}){_B64}{{64,}}+={{0,2}}"  # one run
)
_BLOB_MIN: Final = 64  # base64 characters in a run (or its pieces) that count as data
_B64_PIECE = re.compile(r"[A-Za-z0-9+/_\-]{16,}={0,2}")
_B64_CHARS = re.compile(r"[A-Za-z0-9+/_\-=]")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]{1,15}://[^\s\"'<>\\]+")
_SDP_LINE = re.compile(
    r"(?im)^[ \t]*(?:v=0|a=(?:ice-|candidate|crypto|rtcp|remote-candidates)|c=in\s|k=)"
)
_MAX_SCAN: Final = 256 * 1024  # characters: a longer string is logged as its length only
_FRAME_BUDGET: Final = 1 << 20  # characters scanned per rendered event; past it, lengths only
_PARTIAL_MIN: Final = 8  # a key's prefix this long at the end of a value counts as a key

_INSECURE_KEY_PREFIX: Final = "openai-insecure-api-key."
_MEDIA_TYPE = re.compile(r"[\w.+\-]{1,40}/[\w.+\-]{1,60}")
_MAX_DEPTH: Final = 24
_MAX_REASON: Final = 123


@frozen(kw_only=True)
class Policy:
    """How each class of data is rendered; built from the `redaction` config section."""

    text: Mapping[str, TextMode] = attrs.field(factory=dict)
    image_host: bool = False
    audio_hash: bool = False
    patterns: tuple[str, ...] = ()
    fingerprint_key: bytes = attrs.field(factory=lambda: os.urandom(32), repr=False)

    def text_mode(self, text_class: str) -> TextMode:
        """The mode for one text class, or the policy's default."""
        return self.text.get(text_class, self.text.get("default", "keep"))


class Redactor:
    """Renders decoded models and raw metadata as log-safe values, per one policy."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._key = policy.fingerprint_key
        secret_re = "|".join((*SECRET_PATTERNS, *policy.patterns))
        self._secret = re.compile(secret_re)
        # `regex` for what `re` cannot do: a match that the end of a value cuts short. (A
        # configured pattern that `re` takes and `regex` does not keeps its full matches.)
        try:
            self._partial = regex.compile(secret_re)
        except regex.error:
            self._partial = regex.compile("|".join(SECRET_PATTERNS))
        self._scrub_re = re.compile(f"(?P<s>{secret_re})|(?P<b>{_BLOB})")
        self._conv = protocol.make_converter()
        self._register_hooks()
        # The audio format of the event being rendered, given to `model` with it.
        self._bytes_per_ms = PCM16_24K
        # Characters the scrubber may still scan for the event being rendered.
        self._budget: float = float("inf")

    # --- fingerprints ------------------------------------------------------------------

    def fingerprint(self, value: str | bytes) -> str:
        """A keyed 8-hex fingerprint: correlates equal values, reveals nothing of them."""
        data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()[:8]

    def secret(self, value: object) -> dict[str, str]:
        """A secret as its keyed fingerprint."""
        text = value if isinstance(value, str) else repr(value)
        return {"redacted": "secret", "fp": self.fingerprint(text)}

    # --- per-type renderings -----------------------------------------------------------

    def audio(self, value: str) -> dict[str, Any]:
        """Base64 audio as its decoded length and duration in the current format."""
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
                out["host"] = self.cut(host, 253)
            return out
        return {"redacted": "file", "bytes": base64_length(value)}

    def text(self, value: str, mode: TextMode) -> Any:
        """Text per its mode: kept (scrubbed), hashed, measured or dropped."""
        if mode == "keep":
            return self.scrub_text(value)
        if mode == "hash":
            return {"redacted": "text", "fp": self.fingerprint(value), "chars": len(value)}
        if mode == "length":
            return {"redacted": "text", "chars": len(value)}
        return {"redacted": "text"}

    def scrub_text(self, value: str) -> str:
        """Text with secrets replaced by fingerprints, long base64 runs (whole or in
        pieces) collapsed, and URLs and SDP bodies redacted as their typed fields are."""
        # Most strings are short ids and words: a few substring tests rule them out far
        # faster than the combined regex can (every built-in pattern has one of these
        # markers; a blob needs 64 characters). Configured patterns disable the shortcut.
        if len(value) < 64 and not self.policy.patterns:
            low = value.lower()
            if not (has_key_marker(low) or "://" in low or "=" in low):  # (`=`: an SDP line)
                return value
            if "://" not in low and "=" not in low:
                # Too short for a blob: the secret patterns alone.
                return self._secret.sub(self._secret_match, value)
        if len(value) > _MAX_SCAN or len(value) > self._budget:
            # The work per frame is bounded: what is too long to scan is not logged.
            return f"[redacted:unscanned:{len(value)} chars]"
        self._budget -= len(value)
        if "://" in value:
            value = _URL.sub(lambda m: self.url(m.group(0)), value)
        if "=" in value and _SDP_LINE.search(value):
            return self.sdp(value)
        return self._scrub_plain(value)

    def _scrub_plain(self, value: str) -> str:
        """Secret patterns and base64 runs only (no URL or SDP structure)."""
        if self._scrub_re.search(value) is None:
            return value
        return self._scrub_re.sub(self._replace, value)

    def cut(self, value: str, limit: int) -> str:
        """`value` scrubbed, then cut to `limit` characters: a key across the cut is
        redacted whole, and one cut short at the end of the value still counts."""
        out = self.scrub_text(value)[:limit]
        if self.policy.patterns or has_key_marker(out[-256:].lower()):
            return self.scrub_end(out)
        return out

    def scrub_end(self, text: str) -> str:
        """`text` with a key's beginning at its very end redacted (a value cut short, or
        the first half of a key split across two deltas)."""
        start = self._partial_start(text)
        if start is None:
            return text
        return text[:start] + self._secret_mark(text[start:])

    def _partial_start(self, text: str) -> int | None:
        """Where a key that `text`'s end cuts short begins, if it is long enough to count."""
        offset = max(0, len(text) - 256)
        if not self.policy.patterns and not has_key_marker(text[offset:].lower()):
            return None  # every built-in pattern has one of the markers
        for m in self._partial.finditer(text, pos=offset, partial=True):
            if m.partial and len(m.group(0)) >= _PARTIAL_MIN:
                return m.start()
        return None

    def _secret_match(self, m: re.Match[str]) -> str:
        return self._secret_mark(m.group(0))

    def _secret_mark(self, value: str) -> str:
        return f"[redacted:secret:{self.fingerprint(value)}]"

    def scrub_stream(self, carry: str, text: str) -> str:
        """One delta of a stream, scrubbed with the stream's last characters before it
        (`carry`): a key that began in an earlier delta is redacted where it goes on, and
        one that this delta's end cuts short is redacted too. Neither half of a key split
        across deltas reaches the log."""
        joined, n = carry + text, len(carry)
        head = 0
        for m in self._secret.finditer(joined):
            if m.start() < n < m.end():
                head = m.end() - n
        tail = len(text)
        start = self._partial_start(joined)
        if start is not None:
            tail = max(head, start - n)
        out = [self._secret_mark(text[:head])] if head else []
        out.append(self.scrub_text(text[head:tail]))
        if tail < len(text):
            out.append(self._secret_mark(text[tail:]))
        return "".join(out)

    def _replace(self, m: re.Match[str]) -> str:
        if m.group("s") is not None:
            return f"[redacted:secret:{self.fingerprint(m.group(0))}]"
        found = m.group(0)
        chars = len(found) if len(found) < _BLOB_MIN else len(_B64_CHARS.findall(found))
        if chars < _BLOB_MIN:
            # A few long words, not data; a key inside them is still a key.
            return self._secret.sub(self._secret_match, found)
        return f"[redacted:blob:{chars * 3 // 4}]"

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
            if is_secret_name(k):
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
                if v is not None and is_secret_name(k)
                else self.scrub(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return self._scrub_pieces([self.scrub(v, depth + 1) for v in value], value)
        return value

    def _scrub_pieces(self, scrubbed: list[Any], raw: list[Any]) -> list[Any]:
        """Base64 cut into list items (chunks under 64 characters each): consecutive
        items that are each one base64 piece, 64 characters or more together, collapse."""
        out, i = scrubbed, 0
        while i < len(raw):
            j = i
            while j < len(raw) and isinstance(raw[j], str) and _B64_PIECE.fullmatch(raw[j]):
                j += 1
            if j - i > 1 and sum(len(raw[k]) for k in range(i, j)) >= _BLOB_MIN:
                if out is scrubbed:
                    out = list(scrubbed)
                for k in range(i, j):
                    out[k] = f"[redacted:blob:{base64_length(raw[k])}]"
            i = j + 1
        return out

    def json_text(self, value: str) -> str:
        """Text that may be JSON (function-call arguments and outputs, MCP arguments):
        parsed and scrubbed like any undeclared JSON, credential names included."""
        stripped = value.lstrip()
        if stripped[:1] in ("{", "[") and NAME_HINT.search(value):
            try:
                parsed = orjson.loads(value)
            except orjson.JSONDecodeError:
                return self.scrub_text(value)
            scrubbed = self.scrub(parsed)
            if scrubbed != parsed:
                return orjson.dumps(scrubbed).decode()
        return self.scrub_text(value)

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
            return self.json_text if text_class == "tool" else self.scrub_text
        return lambda value: self.text(value, mode)

    def model(
        self, model: protocol.Model, *, audio_bytes_per_ms: float = PCM16_24K
    ) -> dict[str, Any]:
        """A decoded event, item or body, rendered for the log; its audio measured at
        `audio_bytes_per_ms` (the session's format for the event's direction)."""
        # Held for this call only: the hooks, called from inside cattrs, read them.
        self._bytes_per_ms = audio_bytes_per_ms
        self._budget = _FRAME_BUDGET
        try:
            if isinstance(model, protocol.UnknownEvent):
                return {"type": self.scrub_text(model.type), **self.scrub(model.extra)}
            out: dict[str, Any] = self._conv.unstructure(model, model.__class__)
            return out
        finally:
            self._budget = float("inf")

    # --- outside the bodies ------------------------------------------------------------

    def headers(self, headers: Iterable[tuple[str, str]]) -> dict[str, Any]:
        """Request or response headers, credentials fingerprinted."""
        out: dict[str, Any] = {}
        for name, value in headers:
            lname = name.lower()
            if is_secret_name(lname):
                rendered: Any = self.secret(value)
            elif lname == "sec-websocket-protocol":
                rendered = self.subprotocols(value.split(","))
            else:
                rendered = self.cut(value, 1024)
            out[self.cut(lname, 128)] = rendered
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
            return self._scrub_plain(line)
        if kind in ("c", "o"):  # connection / origin: the address is the last field
            fields = value.split()
            return f"{kind}={' '.join([*fields[:-1], '[redacted:addr]'])}"
        if kind == "k":  # an encryption key line
            return f"k=[redacted:secret:{self.fingerprint(value)}]"
        if kind != "a":
            return self._scrub_plain(f"{kind}={value}")
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
            return self._scrub_plain(f"a={value.strip()}")
        return f"a={attr}{sep}{rest}"

    def reason(self, reason: str | bytes | None) -> str:
        """A close reason or error message: scrubbed and bounded."""
        if reason is None:
            return ""
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        return self.cut(reason, _MAX_REASON)
