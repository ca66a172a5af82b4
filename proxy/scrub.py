"""
The scrubber: one walk for every value that the schema does not vouch for.

Untrusted text is parsed before it is judged (SPEC §1.4, §3). A string that holds JSON or
a Python literal is parsed and its parts judged as JSON, to any depth; percent-encoding
is undone until it no longer changes and the decoded text judged; base64 runs long enough
to hold a key are decoded and the decoded text judged. Then the detectors run on what is
left: key patterns, `name=value` and `name: value` pairs whose name is a credential's
(`proxy.credentials.is_secret_name`), `Scheme credentials` (`Basic …`, `Token …`), URL
userinfo and queries, SDP bodies, long base64 runs (data, not words), and — in untrusted
places only — high-entropy tokens. Kept text (transcripts, messages) goes through the
same walk without the entropy detector, after a cheap pre-check that rules out the common
case: text with no marker, no `%`, `=`, `\\`, URL, credential word or long run.

What a detector finds becomes a marker with a keyed fingerprint (`[redacted:secret:fp]`,
`[redacted:token:fp]`); nothing of the value is kept. Every entry point is total: a
string too long to scan, or past the event's scan budget, is logged as its length.
"""

from __future__ import annotations

import ast
import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import orjson
import regex

from proxy.audio import base64_length
from proxy.credentials import (
    NAME_HINT,
    RUN_MIN,
    SECRET_PATTERNS,
    TOKEN_RUN,
    has_key_marker,
    is_high_entropy,
    is_secret_name,
    unquote_fully,
    worth_a_look,
)

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
BLOB_MIN: Final = 64  # base64 characters in a run (or its pieces) that count as data
B64_PIECE: Final = re.compile(r"[A-Za-z0-9+/_\-]{16,}={0,2}")
_B64_CHARS = re.compile(r"[A-Za-z0-9+/_\-=]")
# A run short of a blob but long enough to hold a key once decoded (`ek_` + 8 characters
# is 11 bytes, 16 base64 characters); decoded and judged.
_B64_SHORT = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{16,63}={0,2}(?![A-Za-z0-9+/_\-=])")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]{1,15}://[^\s\"'<>\\]+")
_SDP_LINE = re.compile(
    r"(?im)^[ \t]*(?:v=0|a=(?:ice-|candidate|crypto|rtcp|remote-candidates)|c=in\s|k=)"
)
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_MARKS = re.compile(r"\[redacted:[a-z]+:[0-9a-f]{8}\]")
# `name=value` and `name: value` in free text (query strings, forms, SIP parameters, log
# lines, YAML): the name is judged by the credential rule, the value taken to the next
# separator. A quoted value is taken to its closing quote.
_PAIR = re.compile(
    r"""(?P<name>[A-Za-z_][A-Za-z0-9_.\-]{0,63})["']?[ \t]*(?P<sep>=|:(?!//))[ \t]*"""
    r"""(?=(?:"(?P<dq>[^"\n]{1,512})"|'(?P<sq>[^'\n]{1,512})'|(?P<bare>[^\s"'&;,<>)\]}\\]{1,512})))"""
)
# `Scheme credentials` (RFC 9110 §11.4) written in text; the credentials must look like a
# token (two character classes), so "basic understanding" stays as it is.
_SCHEME = re.compile(
    r"(?i)\b(?P<scheme>basic|bearer|token|digest|negotiate|apikey|sharedaccesssignature|"
    r"hmac|aws4-hmac-sha256|ntlm)\s+(?P<cred>[A-Za-z0-9._~+/=\-]{8,})"
)
MAX_SCAN: Final = 256 * 1024  # characters: a longer string is logged as its length only
FRAME_BUDGET: Final = 1 << 20  # characters scanned per rendered event; past it, lengths only
_MAX_PARSE: Final = 64 * 1024  # characters of a JSON or Python literal parsed inside a string
_MAX_DEPTH: Final = 24  # nesting of parsed values, containers and decodings together
_PARTIAL_MIN: Final = 8  # a key's prefix this long at the end of a value counts as a key
_MEMO_CHARS: Final = 128  # strings this short (ids, names, enums) are judged once ...
_MEMO_MAX: Final = 4096  # ... and remembered, this many at most (then forgotten at once)


class Scrubber:
    """Finds credentials in text and JSON and replaces them with keyed fingerprints."""

    def __init__(self, key: bytes, patterns: tuple[str, ...] = ()) -> None:
        self._key = key
        self._patterns = patterns
        secret_re = "|".join((*SECRET_PATTERNS, *patterns))
        self._secret = re.compile(secret_re)
        # `regex` for what `re` cannot do: a match that the end of a value cuts short. (A
        # configured pattern that `re` takes and `regex` does not keeps its full matches.)
        try:
            self._partial = regex.compile(secret_re)
        except regex.error:
            self._partial = regex.compile("|".join(SECRET_PATTERNS))
        self._scrub_re = re.compile(f"(?P<s>{secret_re})|(?P<b>{_BLOB})")
        # Characters the scrubber may still scan for the event being rendered.
        self._budget: float = float("inf")
        self._memo: dict[tuple[str, bool], str] = {}
        # Applied to every string of untrusted JSON once judged: personal-data masking
        # (`Redactor` sets it), for REST bodies and unmodelled fields as for kept text.
        self.after: Callable[[str], str] | None = None

    # --- fingerprints ------------------------------------------------------------------

    def fingerprint(self, value: str | bytes) -> str:
        """A keyed 8-hex fingerprint: correlates equal values, reveals nothing of them."""
        data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()[:8]

    def secret(self, value: object) -> dict[str, str]:
        """A secret as its keyed fingerprint."""
        text = value if isinstance(value, str) else repr(value)
        return {"redacted": "secret", "fp": self.fingerprint(text)}

    def mark(self, value: str, kind: str = "secret") -> str:
        """The in-text marker for a value found inside text."""
        return f"[redacted:{kind}:{self.fingerprint(value)}]"

    # --- text --------------------------------------------------------------------------

    def scrub_text(self, value: str, *, untrusted: bool = False) -> str:
        """`value` with every credential a detector finds replaced by its marker, after
        undoing what it may be wrapped in (JSON, a Python literal, percent-encoding,
        base64). `untrusted` adds the high-entropy detector (for values the schema does
        not vouch for)."""
        return self._judge(value, untrusted, 0)

    def _judge(self, value: str, untrusted: bool, depth: int) -> str:
        short = len(value) <= _MEMO_CHARS
        if short:
            # Ids, names and enums repeat on every event of a session: judged once.
            done = self._memo.get((value, untrusted))
            if done is not None:
                return done
        if not self._patterns and not worth_a_look(value, untrusted):
            judged = value
        elif len(value) > MAX_SCAN or len(value) > self._budget:
            # The work per frame is bounded: what is too long to scan is not logged.
            return f"[redacted:unscanned:{len(value)} chars]"
        else:
            self._budget -= len(value)
            judged = self._text(value, untrusted, depth)
        if short:
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            self._memo[(value, untrusted)] = judged
        return judged

    def line(self, value: str) -> str:
        """One line of a structured body (SDP) that the caller has already parsed."""
        if len(value) > MAX_SCAN:
            return f"[redacted:unscanned:{len(value)} chars]"
        return self._text(value, True, 1, body=False)

    def _text(self, value: str, untrusted: bool, depth: int, *, body: bool = True) -> str:
        if depth >= _MAX_DEPTH:
            return self.mark(value, "deep")
        parsed = self._parsed(value, depth)
        if parsed is not None:
            return parsed
        if "%" in value and _PERCENT.search(value):
            decoded = unquote_fully(value)
            judged = self._text(decoded, untrusted, depth + 1)
            if judged != decoded:
                # Logged as decoded: the encoding was only ever a disguise here.
                return judged
        if "://" in value:
            value = _URL.sub(lambda m: self.url(m.group(0)), value)
        if body and "=" in value and _SDP_LINE.search(value):
            return self.sdp(value)
        return self._flat(value, untrusted, depth)

    def _parsed(self, value: str, depth: int) -> str | None:
        """`value` judged as the JSON or Python literal it holds, or None if it holds
        neither (or judging changed nothing: then the text is logged as it came)."""
        stripped = value.strip()
        if len(stripped) < 2 or len(stripped) > _MAX_PARSE or stripped[0] not in "{[\"'(":
            return None
        if stripped[-1] not in "}]\"')":
            return None
        try:
            data: Any = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            try:
                data = ast.literal_eval(stripped)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                return None
        if not isinstance(data, dict | list | tuple | str):
            return None
        judged = self.scrub(data, depth + 1, untrusted=True)
        if judged == data:
            return None
        try:
            return orjson.dumps(judged).decode()
        except TypeError:  # a Python literal with values JSON has no form for
            return orjson.dumps(repr(judged)).decode()

    def _flat(self, value: str, untrusted: bool, depth: int) -> str:
        """The detectors on text that holds no further encoding."""
        value = _SCHEME.sub(self._scheme, value)
        if "=" in value or ":" in value:
            value = self._pairs(value)
        value = self._plain(value)
        if len(value) >= 16:
            value = _B64_SHORT.sub(lambda m: self._b64(m, untrusted, depth), value)
        if untrusted and len(value) >= RUN_MIN:
            value = TOKEN_RUN.sub(self._run, value)
        return value

    def _plain(self, value: str) -> str:
        """Secret patterns and base64 runs only (no URL or SDP structure)."""
        if self._scrub_re.search(value) is None:
            return value
        return self._scrub_re.sub(self._replace, value)

    def _pairs(self, value: str) -> str:
        """`name=value` and `name: value` pairs whose name is a credential's: the value
        replaced. The value is only looked at, not consumed, so a pair inside another
        pair's value (`note=client_secret=…`) is found too."""
        spans: list[tuple[int, int]] = []
        for m in _PAIR.finditer(value):
            name = m.group("name")
            if not NAME_HINT.search(name) and name.lower() not in ("code", "ticket", "pass"):
                continue
            if not is_secret_name(name, parameter=m.group("sep") == "="):
                continue
            group = "dq" if m.group("dq") else "sq" if m.group("sq") else "bare"
            if not m.group(group).startswith("[redacted:"):
                spans.append(m.span(group))
        if not spans:
            return value
        out, at = [], 0
        for start, end in sorted(spans):
            if end <= at:
                continue
            start = max(start, at)
            out += [value[at:start], self.mark(value[start:end])]
            at = end
        out.append(value[at:])
        return "".join(out)

    def _scheme(self, m: re.Match[str]) -> str:
        cred = m.group("cred")
        classes = (
            any(c.islower() for c in cred)
            + any(c.isupper() for c in cred)
            + any(c.isdigit() for c in cred)
            + any(not c.isalnum() for c in cred)
        )
        if classes < 2 or cred.startswith("[redacted"):
            return m.group(0)
        return f"{m.group('scheme')} {self.mark(cred)}"

    def _b64(self, m: re.Match[str], untrusted: bool, depth: int) -> str:
        """A short base64 run: decoded at each of the four alignments, and redacted
        when what it spells holds a credential."""
        run = m.group(0)
        body = run.rstrip("=").replace("-", "+").replace("_", "/")
        for shift in range(4):
            piece = body[shift:]
            piece = piece[: len(piece) - len(piece) % 4]
            try:
                raw = base64.b64decode(piece, validate=True)
            except (binascii.Error, ValueError):
                continue
            text = raw.decode("latin-1")
            if sum(c.isprintable() for c in text) < len(text) * 0.9:
                continue
            if self._text(text, untrusted, depth + 1) != text:
                return self.mark(run)
        return run

    def _run(self, m: re.Match[str]) -> str:
        run = m.group(0)
        return self.mark(run, "token") if is_high_entropy(run) else run

    def _replace(self, m: re.Match[str]) -> str:
        if m.group("s") is not None:
            return self.mark(m.group(0))
        found = m.group(0)
        chars = len(found) if len(found) < BLOB_MIN else len(_B64_CHARS.findall(found))
        if chars < BLOB_MIN:
            # A few long words, not data; a key inside them is still a key.
            return self._secret.sub(lambda k: self.mark(k.group(0)), found)
        return f"[redacted:blob:{chars * 3 // 4}]"

    # --- cut values and streams --------------------------------------------------------

    def cut(self, value: str, limit: int, *, untrusted: bool = True) -> str:
        """`value` scrubbed, then cut to `limit` characters: a key across the cut is
        redacted whole, and one cut short at the end of the value still counts."""
        out = self.scrub_text(value, untrusted=untrusted)[:limit]
        if self._patterns or has_key_marker(out[-256:].lower()):
            return self.scrub_end(out)
        return out

    def scrub_end(self, text: str) -> str:
        """`text` with a key's beginning at its very end redacted (a value cut short, or
        the first half of a key split across two deltas)."""
        start = self._partial_start(text)
        if start is None:
            return text
        return text[:start] + self.mark(text[start:])

    def _partial_start(self, text: str) -> int | None:
        """Where a key that `text`'s end cuts short begins, if it is long enough to count."""
        offset = max(0, len(text) - 256)
        if not self._patterns and not has_key_marker(text[offset:].lower()):
            return None  # every built-in pattern has one of the markers
        for m in self._partial.finditer(text, pos=offset, partial=True):
            if m.partial and len(m.group(0)) >= _PARTIAL_MIN:
                return m.start()
        return None

    def scrub_stream(self, carry: str, text: str) -> str:
        """One delta of a text stream, judged with the stream's last characters before
        it (`carry`): a key that began in an earlier delta is redacted where it goes on,
        one that this delta's end cuts short is redacted too, and a credential that only
        the two together spell (`password=` then its value) takes the whole delta."""
        joined, n = carry + text, len(carry)
        head = 0
        if self._patterns or has_key_marker(joined.lower()):
            for m in self._secret.finditer(joined):
                if m.start() < n < m.end():
                    head = m.end() - n
        tail = len(text)
        start = self._partial_start(joined)
        if start is not None:
            tail = max(head, start - n)
        out = [self.mark(text[:head])] if head else []
        out.append(self.scrub_text(text[head:tail]))
        if tail < len(text):
            out.append(self.mark(text[tail:]))
        rendered = "".join(out)
        if not carry or not (
            worth_a_look(joined[max(0, n - 64) : n + 64], False)
            or worth_a_look(carry, False)
            or rendered != text
        ):
            return rendered  # nothing that the two could spell together
        together = _MARKS.sub("\0", self.scrub_text(joined))
        if not together.endswith(_MARKS.sub("\0", rendered)):
            # The two together spell what neither does alone (`client_secret=` and its
            # value, a percent-encoded key): the carry was logged with its own delta, so
            # this one is withheld whole.
            return self.mark(text)
        return rendered

    # --- JSON --------------------------------------------------------------------------

    def scrub(self, value: Any, depth: int = 0, *, untrusted: bool = True) -> Any:
        """Undeclared JSON: a value under a credential's name is a secret at any depth;
        every string is judged as untrusted text (and parsed if it holds JSON)."""
        if isinstance(value, str):
            if len(value) >= 64 and value.startswith("data:"):
                return self.image(value)
            judged = self._judge(value, untrusted, depth)
            return judged if self.after is None else self.after(judged)
        if depth >= _MAX_DEPTH and isinstance(value, dict | list | tuple):
            return {"redacted": "deep"}
        if isinstance(value, dict):
            return {
                self._key_text(k, depth): self.secret(v)
                if v is not None and isinstance(k, str) and is_secret_name(k)
                else self.scrub(v, depth + 1, untrusted=untrusted)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return self._scrub_pieces(
                [self.scrub(v, depth + 1, untrusted=untrusted) for v in value], list(value)
            )
        if isinstance(value, bytes | set | frozenset | complex):  # from a Python literal
            return self.scrub(repr(value), depth + 1, untrusted=untrusted)
        return value

    def _key_text(self, key: object, depth: int) -> str:
        # A name, not a value: the entropy detector would take long camel-case names.
        return self._judge(key if isinstance(key, str) else repr(key), False, depth)

    def _scrub_pieces(self, scrubbed: list[Any], raw: list[Any]) -> list[Any]:
        """Base64 cut into list items (chunks under 64 characters each): consecutive
        items that are each one base64 piece, 64 characters or more together, collapse."""
        out, i = scrubbed, 0
        while i < len(raw):
            j = i
            while j < len(raw) and isinstance(raw[j], str) and B64_PIECE.fullmatch(raw[j]):
                j += 1
            if j - i > 1 and sum(len(raw[k]) for k in range(i, j)) >= BLOB_MIN:
                if out is scrubbed:
                    out = list(scrubbed)
                for k in range(i, j):
                    out[k] = f"[redacted:blob:{base64_length(raw[k])}]"
            i = j + 1
        return out

    # --- URLs --------------------------------------------------------------------------

    def url(self, value: str) -> str:
        """A URL with userinfo removed, its path judged, and its query judged by name."""
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
                    self.scrub_text(netloc, untrusted=True),
                    self.scrub_text(parts.path, untrusted=True),
                    f"?{self.query(parts.query)}" if parts.query else "",
                )
            )
        except ValueError:
            return self.mark(value, "url")

    def query(self, query: str) -> str:
        """A query string: values of credential-named parameters fingerprinted, the rest
        judged as untrusted text (the allow-list is applied where a request's own query
        is logged, `Redactor.request_query`)."""
        pairs = []
        for k, v in parse_qsl(query, keep_blank_values=True):
            if is_secret_name(k, parameter=True):
                v = self.mark(v)
            else:
                v = self.scrub_text(v, untrusted=True)
            pairs.append(f"{self.scrub_text(k, untrusted=True)}={v}")
        return "&".join(pairs)

    # --- images and SDP (found inside text too) -----------------------------------------

    def image(self, value: str) -> dict[str, Any]:
        """An image or file; `Redactor` renders it per its policy."""
        raise NotImplementedError

    def sdp(self, sdp: str) -> str:
        """An SDP body; `Redactor` renders it."""
        raise NotImplementedError
