"""
Sensitivity types and the absent-field sentinel shared by every protocol model.

A field's type says what it carries: `Secret`, `Audio`, `Image`, one of the text
classes, or opaque `Json`. Redaction is an unstructure pass with one hook per type, so
this module is the single place where sensitivity is named; the models only use the
names. `UNSET` marks a key that was absent on the wire, so that an explicit `null`
stays distinct from a missing key and unstructuring gives back exactly what arrived.
"""

from __future__ import annotations

import enum
from typing import Any, Final, NewType, TypeAlias, TypeVar


class Unset(enum.Enum):
    """The type of `UNSET`: a key that was not present in the JSON object."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = Unset.UNSET

T = TypeVar("T")
Opt: TypeAlias = T | Unset | None
"""An optional field: absent from the wire object (`UNSET`) or `null` (`None`), kept apart.

Real peers send `null` where the spec types a value as non-null (OpenAI's own
`transcription.prompt`, LiveKit's `response.instructions`), so every optional field
accepts it; only a required field that is `null` makes an event undecodable."""

Secret = NewType("Secret", str)
"""A credential: API keys, MCP authorization and header values, client secrets."""

Audio = NewType("Audio", str)
"""Base64-encoded audio in the session's negotiated format."""

Image = NewType("Image", str)
"""An image or file reference: a data URL, an http(s) URL or base64 file data."""

Url = NewType("Url", str)
"""A URL that may embed credentials (userinfo, query tokens): scrubbed before logging."""

Text = NewType("Text", str)
"""User or assistant message text, text deltas."""

Transcript = NewType("Transcript", str)
"""Audio transcripts and transcript deltas, both directions."""

ToolText = NewType("ToolText", str)
"""Function and MCP call arguments and outputs, approval reasons."""

Fragment = NewType("Fragment", str)
"""A piece of streamed structured content (function-call and MCP argument deltas): never
logged piece by piece, only its length; the whole is logged at `.done`."""

Instructions = NewType("Instructions", str)
"""System instructions and transcription prompts."""

Detail = NewType("Detail", str)
"""Other user-influenced text: error messages, DTMF digits, SIP URIs, tool descriptions."""

Extras = NewType("Extras", dict)  # type: ignore[type-arg]
"""The undeclared keys of an object: kept for losslessness, scrubbed before logging."""

Json = NewType("Json", object)
"""Opaque JSON we do not model field by field; the scrubber decides what of it is logged."""

TEXT_CLASSES: Final[dict[Any, str]] = {
    Text: "text",
    Transcript: "transcript",
    ToolText: "tool",
    Instructions: "instructions",
    Detail: "detail",
}
"""Each text type and the policy key that renders it."""
