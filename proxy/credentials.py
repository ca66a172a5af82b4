"""
Credentials: what a key looks like as a value, and what a credential is called.

Values: the secret patterns (OpenAI keys, ephemeral keys, JWTs, bearer tokens, AWS access
keys) and the markers every one of them starts with, for a cheap first look. Names: a
JSON key, header or query parameter is a credential's when, normalised (camel case, `-`,
`_`, case), one of its parts is a credential word (`secret`, `token`, `pwd`, `auth`, ...)
or `key` with a qualifier (`api`, `access`, `session`, ...), or when the words run
together (`accesstoken`); an allow-list keeps token counts and ids readable.
"""

from __future__ import annotations

import functools
import re
from typing import Final

SECRET_PATTERNS: Final = (
    r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}",
    r"\bek_[A-Za-z0-9_\-]{8,}",
    r"\beyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]*",
    r"(?i:\bbearer\s+)[A-Za-z0-9._~+/=\-]{8,}",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
)


# Credential names, matched on their parts once normalised (case, `-`, `_`, camel case):
# `aws_secret_access_key`, `accessToken`, `Ocp-Apim-Subscription-Key`, `pwd`, ...
_SECRET_PARTS: Final = frozenset(
    {
        "secret", "token", "password", "passwd", "pwd", "passphrase", "auth", "authorization",
        "authentication", "oauth", "credential", "credentials", "cookie", "signature", "sig",
        "apikey", "secretkey", "accesskey", "privatekey", "sessionkey", "headers",
    }
)  # fmt: skip
# The same words run together without a separator (`accesstoken`, `clientsecret`, a
# header's lower-cased `openaiapikey`).
_SECRET_SUFFIXES: Final = (
    "token", "secret", "password", "passwd", "pwd", "auth", "credential", "credentials",
    "apikey", "accesskey", "secretkey", "privatekey", "sessionkey", "subscriptionkey",
)  # fmt: skip
_KEY_QUALIFIERS: Final = frozenset(
    {
        "api", "access", "secret", "private", "session", "subscription", "client", "auth",
        "encryption", "signing", "master", "account", "service", "shared", "app", "x", "ocp",
        "openai", "azure", "aws", "admin", "ice",
    }
)  # fmt: skip
_QUALIFIED_KEYS: Final = tuple(f"{q}key" for q in sorted(_KEY_QUALIFIERS))
_HARMLESS_NAMES: Final = frozenset(
    {
        "input_token_details", "output_token_details", "cached_tokens_details", "token_type",
        "max_output_tokens", "max_response_output_tokens", "input_tokens", "output_tokens",
        "auth_type", "authorization_url", "token_count", "author",
    }
)  # fmt: skip
# A word every credential name has one of: JSON text without one needs no parse.
NAME_HINT: Final = re.compile(r"(?i)secret|token|pass|pwd|auth|credential|key|cookie|sig")


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


_CAMEL: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|[^A-Za-z0-9]+")


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether a JSON key, header or query parameter name is a credential's: normalised
    (camel case, `-`, `_`, case), then matched on its parts (`secret`, `token`, `pwd`,
    `auth`, `key` with a qualifier, ...), with an allow-list of harmless names."""
    parts = [p for p in _CAMEL.split(name.strip()) if p]
    lowered = [p.lower() for p in parts]
    if "_".join(lowered) in _HARMLESS_NAMES:
        return False
    if lowered == ["key"]:
        return True
    for i, part in enumerate(lowered):
        if part in _SECRET_PARTS or part.endswith(_SECRET_SUFFIXES + _QUALIFIED_KEYS):
            return True
        if part in ("key", "keys") and i > 0 and lowered[i - 1] in _KEY_QUALIFIERS:
            return True
    return False
