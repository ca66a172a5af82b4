"""
Events of the beta protocol (`OpenAI-Beta: realtime=v1`) that differ from GA.

Beta carries flat sessions and older wire names for the output events
(`response.text.delta`, `response.audio.delta`, `response.audio_transcript.delta`);
their shapes are GA's, so each beta class derives from its GA twin and changes only the
tag, or the session class. Everything else is shared with GA (`events.py`).
"""

from __future__ import annotations

from typing import ClassVar

from attrs import define

from protocol import events as ga
from protocol.base import Event
from protocol.session import BetaSession


@define(kw_only=True)
class _BetaSessionClientEvent(Event):
    """A client event carrying a beta session: realtime or transcription."""

    session: BetaSession


@define(kw_only=True)
class BetaSessionUpdate(_BetaSessionClientEvent):
    """Client updates a beta session."""

    TYPE: ClassVar[str] = "session.update"


@define(kw_only=True)
class TranscriptionSessionUpdate(_BetaSessionClientEvent):
    """Client updates a beta transcription session."""

    TYPE: ClassVar[str] = "transcription_session.update"


@define(kw_only=True)
class _BetaSessionEvent(Event):
    """A server event carrying a beta session: created, updated, transcription."""

    session: BetaSession


@define(kw_only=True)
class BetaSessionCreated(_BetaSessionEvent):
    """A beta session exists."""

    TYPE: ClassVar[str] = "session.created"


@define(kw_only=True)
class BetaSessionUpdated(_BetaSessionEvent):
    """A beta session changed."""

    TYPE: ClassVar[str] = "session.updated"


@define(kw_only=True)
class TranscriptionSessionCreated(_BetaSessionEvent):
    """A beta transcription session exists."""

    TYPE: ClassVar[str] = "transcription_session.created"


@define(kw_only=True)
class TranscriptionSessionUpdated(_BetaSessionEvent):
    """A beta transcription session changed."""

    TYPE: ClassVar[str] = "transcription_session.updated"


@define(kw_only=True)
class ResponseTextDelta(ga._TextDelta):
    """Beta name of `response.output_text.delta`."""

    TYPE: ClassVar[str] = "response.text.delta"


@define(kw_only=True)
class ResponseTextDone(ga._TextDone):
    """Beta name of `response.output_text.done`."""

    TYPE: ClassVar[str] = "response.text.done"


@define(kw_only=True)
class ResponseAudioDelta(ga._AudioDelta):
    """Beta name of `response.output_audio.delta`."""

    TYPE: ClassVar[str] = "response.audio.delta"


@define(kw_only=True)
class ResponseAudioDone(ga._AudioDone):
    """Beta name of `response.output_audio.done`."""

    TYPE: ClassVar[str] = "response.audio.done"


@define(kw_only=True)
class ResponseAudioTranscriptDelta(ga._AudioTranscriptDelta):
    """Beta name of `response.output_audio_transcript.delta`."""

    TYPE: ClassVar[str] = "response.audio_transcript.delta"


@define(kw_only=True)
class ResponseAudioTranscriptDone(ga._AudioTranscriptDone):
    """Beta name of `response.output_audio_transcript.done`."""

    TYPE: ClassVar[str] = "response.audio_transcript.done"


def _replace(
    events: tuple[type[Event], ...], beta: tuple[type[Event], ...]
) -> tuple[type[Event], ...]:
    tags = {cls.TYPE for cls in beta}
    return tuple(cls for cls in events if cls.TYPE not in tags) + beta


BETA_CLIENT_EVENTS = _replace(ga.CLIENT_EVENTS, (BetaSessionUpdate, TranscriptionSessionUpdate))
# Beta servers use the beta names for output events; GA-only names stay decodable too
# because several Realtime-compatible servers mix them.
BETA_SERVER_EVENTS = _replace(
    ga.SERVER_EVENTS,
    (
        BetaSessionCreated,
        BetaSessionUpdated,
        TranscriptionSessionCreated,
        TranscriptionSessionUpdated,
        ResponseTextDelta,
        ResponseTextDone,
        ResponseAudioDelta,
        ResponseAudioDone,
        ResponseAudioTranscriptDelta,
        ResponseAudioTranscriptDone,
    ),
)
