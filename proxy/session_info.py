"""
What a session is, followed from its config events: its id, model, audio formats, turn
detection and input transcription. One `SessionInfo` per session, updated by the
`Session` before a config event is recorded, and read by the recorder (audio durations)
and the turn tracker (models, silence window, transcription). Every value kept came off
the wire, so strings are kept at most as long as they are logged.
"""

from __future__ import annotations

from typing import Any, Final

import attrs

import protocol
from protocol import beta as beta_events
from protocol import events as ga
from protocol.session import BetaSession, Session
from proxy.audio import PCM16_24K, bytes_per_ms

_MAX_ID: Final = 128  # characters of an id or a model name kept (as many as are logged)

_CLIENT_CONFIG: Final = (
    ga.SessionUpdate,
    beta_events.BetaSessionUpdate,
    beta_events.TranscriptionSessionUpdate,
)
_SESSIONS: Final = (Session, BetaSession)


def _str(value: object) -> str | None:
    if type(value) is not str or not value:
        return None
    return value if len(value) <= _MAX_ID else value[:_MAX_ID]


def _ms(value: object) -> int | None:
    """A duration in ms from a config: an integer from 0 to an hour, else unknown."""
    return value if type(value) is int and 0 <= value <= 3_600_000 else None


@attrs.define
class SessionInfo:
    """A session's facts as the peers have stated them so far."""

    event_set: protocol.EventSet = "ga"
    # The model the client asked for (query `model` or Azure's `deployment`), then the
    # one `session.created` names: prices and metrics go by the latter when known.
    model: str | None = None
    session_id: str | None = None
    input_bpms: float = PCM16_24K
    output_bpms: float = PCM16_24K
    # `turn_detection`'s windows: VAD's `audio_end_ms` includes the silence window, its
    # `audio_start_ms` the prefix padding (SPEC §4a `speech_ms`).
    silence_ms: int | None = None
    prefix_padding_ms: int | None = None
    # A transcription session's turns are its committed items (SPEC §4a).
    transcription: bool = False
    transcription_model: str | None = None

    def follow(self, direction: str, event: Any) -> bool:
        """Take what a config event states; True when it gave the session's id first."""
        if direction == "client":
            if isinstance(event, _CLIENT_CONFIG):
                self._config(event.session)
            return False
        session = getattr(event, "session", None)
        if not isinstance(session, _SESSIONS):
            return False
        learned = False
        if self.session_id is None and (session_id := _str(session.id)) is not None:
            self.session_id = session_id
            learned = True
        if type(event).TYPE == "session.created" and (model := _str(session.model)) is not None:
            self.model = model
        self._config(session)
        return learned

    def _config(self, session: Any) -> None:
        self._formats(session)
        audio_input = getattr(getattr(session, "audio", None), "input", None)
        detection = getattr(audio_input, "turn_detection", None)
        if detection is None:  # beta sessions keep it flat
            detection = getattr(session, "turn_detection", None)
        if isinstance(detection, dict):
            if (silence := _ms(detection.get("silence_duration_ms"))) is not None:
                self.silence_ms = silence
            if (padding := _ms(detection.get("prefix_padding_ms"))) is not None:
                self.prefix_padding_ms = padding
        if getattr(session, "type", None) == "transcription":
            self.transcription = True
        config = getattr(audio_input, "transcription", None)
        if config is None:  # beta sessions keep it flat
            config = getattr(session, "input_audio_transcription", None)
        if (model := _str(getattr(config, "model", None))) is not None:
            self.transcription_model = model

    def _formats(self, session: Any) -> None:
        if isinstance(session, BetaSession):
            if isinstance(session.input_audio_format, str):
                self.input_bpms = bytes_per_ms(session.input_audio_format)
            if isinstance(session.output_audio_format, str):
                self.output_bpms = bytes_per_ms(session.output_audio_format)
            return
        audio = getattr(session, "audio", None)
        if not isinstance(audio, protocol.Model):
            return
        for side in ("input", "output"):
            fmt = getattr(getattr(audio, side, None), "format", None)
            if isinstance(fmt, protocol.Model):
                bpms = bytes_per_ms(getattr(fmt, "type", None), getattr(fmt, "rate", None))
                setattr(self, f"{side}_bpms", bpms)

    def bpms(self, direction: str) -> float:
        """Bytes per millisecond of the audio one direction carries."""
        return self.input_bpms if direction == "client" else self.output_bpms
