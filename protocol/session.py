"""
Session configurations, response parameters and response objects.

GA nests its session (`audio.input.format`, ...) and tags it with its own `type`
(`realtime`, `transcription`, `translation`); one `Session` class covers all three,
with `type` an ordinary field, so a config with a `type` inside an event with a `type`
decodes. Beta sessions are flat (`input_audio_format`, `input_audio_transcription`) and
have their own class. Both may carry a `client_secret`, whose `value` is a secret at
any depth because `ClientSecret` declares it so.
"""

from __future__ import annotations

from attrs import define, field

from protocol.base import Model
from protocol.items import Item, Prompt, Tool
from protocol.types import UNSET, Detail, Instructions, Json, Opt, Secret


@define(kw_only=True)
class ClientSecret(Model):
    """An ephemeral key (`ek_...`) and when it expires."""

    value: Opt[Secret] = field(default=UNSET, repr=False)
    # An int in responses; beta requests send `{anchor, seconds}` under the same name.
    expires_at: Opt[Json] = UNSET
    expires_after: Opt[Json] = UNSET


@define(kw_only=True)
class AudioFormat(Model):
    """GA audio format: `audio/pcm` at a rate, or G.711 `audio/pcmu` / `audio/pcma`."""

    type: Opt[str] = UNSET
    rate: Opt[int] = UNSET


@define(kw_only=True)
class TranscriptionConfig(Model):
    """Which model transcribes input audio, and with what hints."""

    model: Opt[str] = UNSET
    language: Opt[str] = UNSET
    languages: Opt[list[str]] = UNSET
    prompt: Opt[Instructions] = UNSET
    keywords: Opt[list[Detail]] = UNSET
    delay: Opt[Json] = UNSET


@define(kw_only=True)
class AudioInput(Model):
    """GA input audio settings."""

    format: Opt[AudioFormat] = UNSET
    noise_reduction: Opt[Json] = UNSET
    transcription: Opt[TranscriptionConfig] = UNSET
    turn_detection: Opt[Json] = UNSET


@define(kw_only=True)
class AudioOutput(Model):
    """GA output audio settings (and the translation socket's target language)."""

    format: Opt[AudioFormat] = UNSET
    voice: Opt[Json] = UNSET
    speed: Opt[float] = UNSET
    language: Opt[str] = UNSET


@define(kw_only=True)
class AudioConfig(Model):
    """GA `audio`: input and output settings."""

    input: Opt[AudioInput] = UNSET
    output: Opt[AudioOutput] = UNSET


@define(kw_only=True)
class Session(Model):
    """A GA session: realtime, transcription or translation, by its `type` field."""

    type: Opt[str] = UNSET
    id: Opt[str] = UNSET
    object: Opt[str] = UNSET
    model: Opt[str] = UNSET
    expires_at: Opt[int] = UNSET
    instructions: Opt[Instructions] = UNSET
    output_modalities: Opt[list[str]] = UNSET
    audio: Opt[AudioConfig] = UNSET
    include: Opt[list[str]] = UNSET
    tools: Opt[list[Tool]] = UNSET
    tool_choice: Opt[Json] = UNSET
    parallel_tool_calls: Opt[bool] = UNSET
    max_output_tokens: Opt[Json] = UNSET
    tracing: Opt[Json] = UNSET
    truncation: Opt[Json] = UNSET
    prompt: Opt[Prompt] = UNSET
    reasoning: Opt[Json] = UNSET
    client_secret: Opt[ClientSecret] = UNSET


@define(kw_only=True)
class BetaSession(Model):
    """A beta session (`OpenAI-Beta: realtime=v1`), realtime or transcription: flat fields."""

    id: Opt[str] = UNSET
    object: Opt[str] = UNSET
    type: Opt[str] = UNSET
    model: Opt[str] = UNSET
    expires_at: Opt[int] = UNSET
    modalities: Opt[list[str]] = UNSET
    instructions: Opt[Instructions] = UNSET
    voice: Opt[Json] = UNSET
    input_audio_format: Opt[str] = UNSET
    output_audio_format: Opt[str] = UNSET
    input_audio_transcription: Opt[TranscriptionConfig] = UNSET
    turn_detection: Opt[Json] = UNSET
    input_audio_noise_reduction: Opt[Json] = UNSET
    speed: Opt[float] = UNSET
    tracing: Opt[Json] = UNSET
    tools: Opt[list[Tool]] = UNSET
    tool_choice: Opt[Json] = UNSET
    temperature: Opt[float] = UNSET
    max_response_output_tokens: Opt[Json] = UNSET
    include: Opt[list[str]] = UNSET
    prompt: Opt[Prompt] = UNSET
    client_secret: Opt[ClientSecret] = UNSET


@define(kw_only=True)
class ResponseParams(Model):
    """`response.create` parameters, GA and beta."""

    conversation: Opt[str] = UNSET
    metadata: Opt[Json] = UNSET
    prompt: Opt[Prompt] = UNSET
    instructions: Opt[Instructions] = UNSET
    input: Opt[list[Item]] = UNSET
    output_modalities: Opt[list[str]] = UNSET
    modalities: Opt[list[str]] = UNSET
    audio: Opt[AudioConfig] = UNSET
    voice: Opt[Json] = UNSET
    output_audio_format: Opt[str] = UNSET
    tools: Opt[list[Tool]] = UNSET
    tool_choice: Opt[Json] = UNSET
    temperature: Opt[float] = UNSET
    max_output_tokens: Opt[Json] = UNSET
    max_response_output_tokens: Opt[Json] = UNSET
    parallel_tool_calls: Opt[bool] = UNSET
    reasoning: Opt[Json] = UNSET


@define(kw_only=True)
class Response(Model):
    """A response object, as in `response.created` and `response.done`."""

    id: Opt[str] = UNSET
    object: Opt[str] = UNSET
    status: Opt[str] = UNSET
    status_details: Opt[Json] = UNSET
    output: Opt[list[Item]] = UNSET
    metadata: Opt[Json] = UNSET
    usage: Opt[Json] = UNSET
    conversation_id: Opt[str] = UNSET
    output_modalities: Opt[list[str]] = UNSET
    modalities: Opt[list[str]] = UNSET
    audio: Opt[AudioConfig] = UNSET
    voice: Opt[Json] = UNSET
    output_audio_format: Opt[str] = UNSET
    temperature: Opt[float] = UNSET
    max_output_tokens: Opt[Json] = UNSET


@define(kw_only=True)
class ErrorInfo(Model):
    """An error's details; `message` may quote user input, so it is text."""

    type: Opt[str] = UNSET
    code: Opt[str] = UNSET
    message: Opt[Detail] = UNSET
    param: Opt[str] = UNSET
    event_id: Opt[str] = UNSET
