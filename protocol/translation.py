"""
Events of the translation socket (`/v1/realtime/translations`).

Its client sends audio under `session.input_audio_buffer.append`; its server returns
translated audio that states its own `sample_rate` and `channels`, plus transcripts of
both sides. The session is the GA `Session` with `type: translation`.
"""

from __future__ import annotations

from typing import ClassVar

from attrs import define, field

from protocol import events as ga
from protocol.base import Event
from protocol.types import UNSET, Audio, Opt, Transcript


@define(kw_only=True)
class TranslationAudioAppend(Event):
    """Client appends source audio."""

    TYPE: ClassVar[str] = "session.input_audio_buffer.append"
    audio: Audio = field(repr=False)


@define(kw_only=True)
class SessionClose(Event):
    """Client ends the translation session."""

    TYPE: ClassVar[str] = "session.close"


@define(kw_only=True)
class SessionClosed(Event):
    """Server confirms the session ended."""

    TYPE: ClassVar[str] = "session.closed"


@define(kw_only=True)
class _TranscriptDelta(Event):
    """A piece of a translation transcript, source or target language."""

    delta: Transcript
    elapsed_ms: Opt[int] = UNSET


@define(kw_only=True)
class InputTranscriptDelta(_TranscriptDelta):
    """A piece of the source-language transcript."""

    TYPE: ClassVar[str] = "session.input_transcript.delta"


@define(kw_only=True)
class OutputTranscriptDelta(_TranscriptDelta):
    """A piece of the target-language transcript."""

    TYPE: ClassVar[str] = "session.output_transcript.delta"


@define(kw_only=True)
class OutputAudioDelta(Event):
    """A chunk of translated audio, with its own format."""

    TYPE: ClassVar[str] = "session.output_audio.delta"
    delta: Audio = field(repr=False)
    elapsed_ms: Opt[int] = UNSET
    format: Opt[str] = UNSET
    sample_rate: Opt[int] = UNSET
    channels: Opt[int] = UNSET


TRANSLATION_CLIENT_EVENTS: tuple[type[Event], ...] = (
    ga.SessionUpdate,
    TranslationAudioAppend,
    SessionClose,
)
TRANSLATION_SERVER_EVENTS: tuple[type[Event], ...] = (
    ga.SessionCreated,
    ga.SessionUpdated,
    SessionClosed,
    InputTranscriptDelta,
    OutputTranscriptDelta,
    OutputAudioDelta,
    ga.Error,
)
