"""
Credentials: what a key looks like as a value, and what a credential is called.

Tokens: a random-looking run of letters and digits (high entropy for its length) is a
token, in places the schema does not vouch for. The pre-check `worth_a_look` says, at
C speed, whether any detector could find anything in a string at all.

Values: the secret patterns (OpenAI keys, ephemeral keys, JWTs, bearer tokens, AWS access
keys) and the markers every one of them starts with, for a cheap first look. Names: a
JSON key, header or query parameter is a credential's when, normalised (camel case, `-`,
`_`, case), one of its parts is a credential word (`secret`, `token`, `pwd`, `auth`, ...)
or `key` with a qualifier (`api`, `access`, `session`, ...), or when the words run
together (`accesstoken`); an allow-list keeps token counts and ids readable.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from typing import Final
from urllib.parse import unquote

SECRET_PATTERNS: Final = (
    r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}",
    r"\bek_[A-Za-z0-9_\-]{8,}",
    r"\beyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]*",
    r"(?i:\bbearer\s+)[A-Za-z0-9._~+/=\-]{8,}",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
)


# Credential names are judged by rule, not by list: the name is normalised (case,
# separators, camel case, plurals) into words, and it is a credential's when a word is a
# credential word, runs one together with others (`clientsecret`, `dbpass`,
# `openaiapikey`), or is `key` after any other word (`x-functions-key`, `ephemeral_key`).
# An allow-list keeps the names that only look like credentials readable.
_WORDS: Final = frozenset(
    {
        "secret", "token", "password", "passwd", "pwd", "pass", "passphrase", "passcode",
        "auth", "authorization", "authentication", "oauth", "credential", "cookie",
        "signature", "sig", "apikey", "jwt", "bearer", "otp", "cvv", "cvc", "sas", "headers",
    }
)  # fmt: skip
# Words that hold a credential word anywhere inside them (`mysecretvalue`, `dbpassword`).
_INSIDE: Final = (
    "password", "passwd", "passphrase", "passcode", "apikey", "secret", "credential",
    "privatekey", "accesskey", "accesstoken", "refreshtoken", "authtoken", "bearertoken",
    "sessiontoken", "idtoken",
)  # fmt: skip
# Words that end with a credential word (`dbpass`, `xauth`, `sessionjwt`).
_ENDINGS: Final = ("token", "auth", "pwd", "pass", "jwt", "cookie", "sessionkey", "secretkey")
# Words that contain or end with one and are not credentials.
_NOT_WORDS: Final = frozenset(
    {
        "secretary", "secretaries", "bypass", "compass", "encompass", "overpass", "underpass",
        "surpass", "trespass", "tokens", "detokenize",
    }
)  # fmt: skip
# Words that are credentials only as a query, form or URI parameter (an OAuth `code`, a
# one-time `ticket`): as a JSON key, `code` is an error code.
_PARAMETER_WORDS: Final = frozenset({"code", "ticket", "nonce", "state", "otc"})
# `tokens` is a count (`input_tokens`) unless a credential word qualifies it
# (`access_tokens`); `token` followed by one of these is a count or a setting too.
_TOKEN_QUALIFIERS: Final = frozenset(
    {"access", "refresh", "id", "auth", "bearer", "api", "session", "csrf", "xsrf", "oauth"}
)
_COUNT_WORDS: Final = frozenset(
    {"details", "detail", "count", "counts", "usage", "limit", "limits", "type", "budget"}
)
# `key` after one of these is not a credential (`prompt_cache_key`, `idempotency_key`).
_NOT_KEY_QUALIFIERS: Final = frozenset(
    {
        "cache", "idempotency", "sort", "partition", "primary", "foreign", "row", "dedup",
        "dedupe", "routing", "lookup", "map", "group", "hot", "public", "shortcut", "music",
    }
)  # fmt: skip
_HARMLESS_NAMES: Final = frozenset(
    {
        "auth_type", "authorization_url", "author", "keyword", "keywords", "key_points",
        "token_type", "signature_version", "auth_required", "requires_auth", "secret_name",
    }
)  # fmt: skip
# A word every credential name has one of: JSON text without one needs no parse.
NAME_HINT: Final = re.compile(
    r"(?i)secret|token|pass|pwd|auth|credential|key|cookie|sig|jwt|bearer|otp|cvv|cvc|sas"
)


def has_key_marker(low: str) -> bool:
    """Whether lower-cased text holds a marker every built-in secret pattern starts with."""
    return (
        "sk-" in low
        or "ek_" in low
        or "eyj" in low
        or "bearer" in low
        or "akia" in low
        or "asia" in low
    )


_CAMEL: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|[^A-Za-z0-9]+")


def _singular(word: str) -> str:
    # `secrets`, `passwords`, `cookies` (not `passes`: `pass` is a word of its own).
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _is_credential_word(word: str, before: str | None, after: str | None) -> bool:
    if word in _NOT_WORDS:
        return word == "tokens" and before in _TOKEN_QUALIFIERS
    one = _singular(word)
    if one in ("token", "auth") and after in _COUNT_WORDS:
        return False
    if one in _WORDS or word in _WORDS:
        return True
    if one == "key":
        return before is None or before not in _NOT_KEY_QUALIFIERS
    if any(w in one for w in _INSIDE) and one not in _NOT_WORDS:
        return True
    return one.endswith(_ENDINGS) and one not in _NOT_WORDS


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str, *, parameter: bool = False) -> bool:
    """Whether a JSON key, header, form field or query/URI parameter name (`parameter`) is
    a credential's: normalised (case, separators, camel case, plurals) into words, then
    judged word by word (see `_is_credential_word`), with an allow-list of harmless names.
    Percent-encoding in the name is undone first."""
    if "%" in name:
        name = unquote_fully(name)
    words = [p.lower() for p in _CAMEL.split(name.strip()) if p]
    if not words or "_".join(words) in _HARMLESS_NAMES:
        return False
    if parameter and any(w in _PARAMETER_WORDS for w in words):
        return True
    return any(
        _is_credential_word(
            w, words[i - 1] if i > 0 else None, words[i + 1] if i + 1 < len(words) else None
        )
        for i, w in enumerate(words)
    )


def unquote_fully(text: str, rounds: int = 4) -> str:
    """`text` with percent-encoding undone until it no longer changes (at most `rounds`
    times: a value encoded twice or three times is judged as what it spells)."""
    for _ in range(rounds):
        decoded = unquote(text, errors="surrogateescape")
        if decoded == text:
            break
        text = decoded
    return text


# High-entropy tokens: a run of 20 letters and digits or more, mixing classes, whose
# Shannon entropy is above a threshold that grows with its length: 1.09·ln(n) bits per
# character, about the 0.001% quantile of random tokens of that length (so a random key
# of 24 characters or more is found all but always). Below 24 characters the threshold is
# log2(n), which no run can exceed: OpenAI's 21-character id suffixes (`item_CkD8…`) sit
# there and look exactly as random as a key would (tests/test_scrub.py measures both).
TOKEN_RUN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{20,}(?![A-Za-z0-9])")
RUN_MIN: Final = 24
# The cheap pre-check: text that passes none of these tests holds nothing a detector
# could find. Every key pattern starts with a marker; every encoding needs `%`, `\`, `=`
# or a run of 16 base64 characters; a `name: value` pair needs a `:` and a credential
# word; `Scheme credentials` need a scheme's name and a space. Substring tests run at C
# speed; the two regular expressions run only where a separator or the length allows.
_MARKERS: Final = ("sk-", "ek_", "eyj", "bearer", "akia", "asia")
_SCHEMES: Final = (
    "basic ", "token ", "digest ", "negotiate ", "ntlm ", "hmac", "apikey ", "sharedaccess",
)  # fmt: skip
_WORD = re.compile(r"secret|token|pass|pwd|auth|credential|key|cookie|sig|jwt|otp|cvv|sas")
_RUN16 = re.compile(r"[A-Za-z0-9+/_\-]{16}")


def worth_a_look(value: str, untrusted: bool) -> bool:
    """Whether a detector could find anything in `value` (see above)."""
    if "%" in value or "\\" in value or "=" in value or "://" in value:
        return True
    low = value.lower()
    for marker in _MARKERS:
        if marker in low:
            return True
    if ":" in value and _WORD.search(low) is not None:
        return True
    if " " in value:
        for scheme in _SCHEMES:
            if scheme in low:
                return True
    if len(value) < 16:
        return False
    if _RUN16.search(value) is not None:
        return True
    return untrusted and len(value) >= RUN_MIN and TOKEN_RUN.search(value) is not None


def entropy(run: str) -> float:
    """Shannon entropy of `run`, in bits per character."""
    n = len(run)
    return -sum(c / n * math.log2(c / n) for c in Counter(run).values())


def entropy_threshold(n: int) -> float:
    """The entropy (bits per character) above which a run of `n` is a token."""
    return math.log2(n) + 0.01 if n < RUN_MIN else 1.09 * math.log(n)


def is_high_entropy(run: str) -> bool:
    """Whether a run of letters and digits looks like a random token (see `TOKEN_RUN`)."""
    if len(run) < RUN_MIN:
        return False
    classes = (
        any(c.islower() for c in run)
        + any(c.isupper() for c in run)
        + any(c.isdigit() for c in run)
    )
    return classes >= 2 and entropy(run) >= entropy_threshold(len(run))
