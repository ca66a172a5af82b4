"""
Realtime events of the GA protocol, both directions.

One class per wire `type`. Shared field groups are small private mixins (`_InItem`,
`_InContent`) so that a class reads as its wire shape. Sensitive fields are declared by
type: the same field name (`delta`) is `Audio` in audio-delta events and text
elsewhere, which is the point of declaring it on the model.
"""

from __future__ import annotations

from typing import ClassVar

from attrs import define, field

from protocol.base import Event
from protocol.items import ContentPart, Item
from protocol.session import ErrorInfo, Response, ResponseParams, Session
from protocol.types import (
    UNSET,
    Audio,
    Detail,
    Fragment,
    Json,
    Opt,
    Text,
    ToolText,
    Transcript,
)

# --- client events ---------------------------------------------------------------------


@define(kw_only=True)
class SessionUpdate(Event):
    """Client updates the session configuration."""

    TYPE: ClassVar[str] = "session.update"
    session: Session


@define(kw_only=True)
class InputAudioBufferAppend(Event):
    """Client appends base64 audio to the input buffer."""

    TYPE: ClassVar[str] = "input_audio_buffer.append"
    audio: Audio = field(repr=False)


@define(kw_only=True)
class InputAudioBufferCommit(Event):
    """Client commits the input buffer as a user message."""

    TYPE: ClassVar[str] = "input_audio_buffer.commit"


@define(kw_only=True)
class InputAudioBufferClear(Event):
    """Client discards the input buffer."""

    TYPE: ClassVar[str] = "input_audio_buffer.clear"


@define(kw_only=True)
class OutputAudioBufferClear(Event):
    """Client (WebRTC/SIP) cuts off the audio being played."""

    TYPE: ClassVar[str] = "output_audio_buffer.clear"


@define(kw_only=True)
class ConversationItemCreate(Event):
    """Client adds an item to the conversation."""

    TYPE: ClassVar[str] = "conversation.item.create"
    previous_item_id: Opt[str] = UNSET
    item: Item


@define(kw_only=True)
class ConversationItemRetrieve(Event):
    """Client asks for an item by id."""

    TYPE: ClassVar[str] = "conversation.item.retrieve"
    item_id: str


@define(kw_only=True)
class ConversationItemTruncate(Event):
    """Client truncates an assistant audio item at a point in time."""

    TYPE: ClassVar[str] = "conversation.item.truncate"
    item_id: str
    content_index: Opt[int] = UNSET
    audio_end_ms: Opt[int] = UNSET


@define(kw_only=True)
class ConversationItemDelete(Event):
    """Client removes an item."""

    TYPE: ClassVar[str] = "conversation.item.delete"
    item_id: str


@define(kw_only=True)
class ResponseCreate(Event):
    """Client asks for a response."""

    TYPE: ClassVar[str] = "response.create"
    response: Opt[ResponseParams] = UNSET


@define(kw_only=True)
class ResponseCancel(Event):
    """Client cancels a response in progress."""

    TYPE: ClassVar[str] = "response.cancel"
    response_id: Opt[str] = UNSET


CLIENT_EVENTS: tuple[type[Event], ...] = (
    SessionUpdate,
    InputAudioBufferAppend,
    InputAudioBufferCommit,
    InputAudioBufferClear,
    OutputAudioBufferClear,
    ConversationItemCreate,
    ConversationItemRetrieve,
    ConversationItemTruncate,
    ConversationItemDelete,
    ResponseCreate,
    ResponseCancel,
)

# --- server events ---------------------------------------------------------------------


@define(kw_only=True)
class _SessionEvent(Event):
    """A server event carrying the whole session: created, updated."""

    session: Session


@define(kw_only=True)
class SessionCreated(_SessionEvent):
    """The session exists; its id is the `session` of every later record."""

    TYPE: ClassVar[str] = "session.created"


@define(kw_only=True)
class SessionUpdated(_SessionEvent):
    """The session configuration changed."""

    TYPE: ClassVar[str] = "session.updated"


@define(kw_only=True)
class ConversationCreated(Event):
    """A conversation was created (beta only, still sent by some servers)."""

    TYPE: ClassVar[str] = "conversation.created"
    conversation: Opt[Json] = UNSET


@define(kw_only=True)
class _ItemEvent(Event):
    """An event carrying a whole conversation item: created, added, done."""

    previous_item_id: Opt[str] = UNSET
    item: Item


@define(kw_only=True)
class ConversationItemCreated(_ItemEvent):
    """An item was added to the conversation."""

    TYPE: ClassVar[str] = "conversation.item.created"


@define(kw_only=True)
class ConversationItemAdded(_ItemEvent):
    """An item was added (GA)."""

    TYPE: ClassVar[str] = "conversation.item.added"


@define(kw_only=True)
class ConversationItemDone(_ItemEvent):
    """An item is final (GA)."""

    TYPE: ClassVar[str] = "conversation.item.done"


@define(kw_only=True)
class ConversationItemRetrieved(Event):
    """The item a client asked for."""

    TYPE: ClassVar[str] = "conversation.item.retrieved"
    item: Item


@define(kw_only=True)
class ConversationItemDeleted(Event):
    """An item was removed."""

    TYPE: ClassVar[str] = "conversation.item.deleted"
    item_id: Opt[str] = UNSET


@define(kw_only=True)
class ConversationItemTruncated(Event):
    """An assistant audio item was truncated."""

    TYPE: ClassVar[str] = "conversation.item.truncated"
    item_id: Opt[str] = UNSET
    content_index: Opt[int] = UNSET
    audio_end_ms: Opt[int] = UNSET


@define(kw_only=True)
class _InItem(Event):
    item_id: Opt[str] = UNSET
    content_index: Opt[int] = UNSET


@define(kw_only=True)
class InputAudioTranscriptionCompleted(_InItem):
    """The transcript of a user audio item."""

    TYPE: ClassVar[str] = "conversation.item.input_audio_transcription.completed"
    transcript: Opt[Transcript] = UNSET
    logprobs: Opt[Json] = UNSET
    usage: Opt[Json] = UNSET
    languages: Opt[Json] = UNSET


@define(kw_only=True)
class InputAudioTranscriptionDelta(_InItem):
    """A piece of a user audio item's transcript."""

    TYPE: ClassVar[str] = "conversation.item.input_audio_transcription.delta"
    delta: Opt[Transcript] = UNSET
    logprobs: Opt[Json] = UNSET
    obfuscation: Opt[str] = UNSET


@define(kw_only=True)
class InputAudioTranscriptionFailed(_InItem):
    """Transcribing a user audio item failed."""

    TYPE: ClassVar[str] = "conversation.item.input_audio_transcription.failed"
    error: Opt[ErrorInfo] = UNSET


@define(kw_only=True)
class InputAudioTranscriptionSegment(_InItem):
    """A diarized segment of a user audio item's transcript."""

    TYPE: ClassVar[str] = "conversation.item.input_audio_transcription.segment"
    id: Opt[str] = UNSET
    text: Opt[Transcript] = UNSET
    speaker: Opt[str] = UNSET
    start: Opt[float] = UNSET
    end: Opt[float] = UNSET


@define(kw_only=True)
class InputAudioBufferCommitted(Event):
    """The input buffer became a user item."""

    TYPE: ClassVar[str] = "input_audio_buffer.committed"
    previous_item_id: Opt[str] = UNSET
    item_id: Opt[str] = UNSET


@define(kw_only=True)
class InputAudioBufferCleared(Event):
    """The input buffer was cleared."""

    TYPE: ClassVar[str] = "input_audio_buffer.cleared"


@define(kw_only=True)
class InputAudioBufferSpeechStarted(Event):
    """Voice activity detection heard speech begin."""

    TYPE: ClassVar[str] = "input_audio_buffer.speech_started"
    audio_start_ms: Opt[int] = UNSET
    item_id: Opt[str] = UNSET


@define(kw_only=True)
class InputAudioBufferSpeechStopped(Event):
    """Voice activity detection heard speech end."""

    TYPE: ClassVar[str] = "input_audio_buffer.speech_stopped"
    audio_end_ms: Opt[int] = UNSET
    item_id: Opt[str] = UNSET


@define(kw_only=True)
class InputAudioBufferTimeoutTriggered(Event):
    """The idle timeout fired with no speech."""

    TYPE: ClassVar[str] = "input_audio_buffer.timeout_triggered"
    audio_start_ms: Opt[int] = UNSET
    audio_end_ms: Opt[int] = UNSET
    item_id: Opt[str] = UNSET


@define(kw_only=True)
class InputAudioBufferDtmfEventReceived(Event):
    """A SIP caller pressed a key; the digit is user input."""

    TYPE: ClassVar[str] = "input_audio_buffer.dtmf_event_received"
    event: Opt[Detail] = UNSET
    received_at: Opt[int] = UNSET


@define(kw_only=True)
class _OutputAudioBufferEvent(Event):
    """A WebRTC/SIP output audio buffer event: started, stopped, cleared."""

    response_id: Opt[str] = UNSET


@define(kw_only=True)
class OutputAudioBufferStarted(_OutputAudioBufferEvent):
    """WebRTC/SIP output audio started playing."""

    TYPE: ClassVar[str] = "output_audio_buffer.started"


@define(kw_only=True)
class OutputAudioBufferStopped(_OutputAudioBufferEvent):
    """WebRTC/SIP output audio finished playing."""

    TYPE: ClassVar[str] = "output_audio_buffer.stopped"


@define(kw_only=True)
class OutputAudioBufferCleared(_OutputAudioBufferEvent):
    """WebRTC/SIP output audio was cut off."""

    TYPE: ClassVar[str] = "output_audio_buffer.cleared"


@define(kw_only=True)
class _ResponseEvent(Event):
    """An event carrying the whole response: created, done."""

    response: Response


@define(kw_only=True)
class ResponseCreated(_ResponseEvent):
    """A response began."""

    TYPE: ClassVar[str] = "response.created"


@define(kw_only=True)
class ResponseDone(_ResponseEvent):
    """A response ended, with its output and usage."""

    TYPE: ClassVar[str] = "response.done"


@define(kw_only=True)
class _InResponse(Event):
    response_id: Opt[str] = UNSET
    item_id: Opt[str] = UNSET
    output_index: Opt[int] = UNSET


@define(kw_only=True)
class _OutputItemEvent(Event):
    """An event carrying one output item of a response: added, done."""

    response_id: Opt[str] = UNSET
    output_index: Opt[int] = UNSET
    item: Item


@define(kw_only=True)
class ResponseOutputItemAdded(_OutputItemEvent):
    """A response produced a new item."""

    TYPE: ClassVar[str] = "response.output_item.added"


@define(kw_only=True)
class ResponseOutputItemDone(_OutputItemEvent):
    """A response's item is final."""

    TYPE: ClassVar[str] = "response.output_item.done"


@define(kw_only=True)
class _InContent(_InResponse):
    content_index: Opt[int] = UNSET


@define(kw_only=True)
class _ContentPartEvent(_InContent):
    """An event carrying one content part of an output item: added, done."""

    part: Opt[ContentPart] = UNSET


@define(kw_only=True)
class ResponseContentPartAdded(_ContentPartEvent):
    """A response item gained a content part."""

    TYPE: ClassVar[str] = "response.content_part.added"


@define(kw_only=True)
class ResponseContentPartDone(_ContentPartEvent):
    """A content part is final."""

    TYPE: ClassVar[str] = "response.content_part.done"


@define(kw_only=True)
class _TextDelta(_InContent):
    """A piece of output text (GA and beta names)."""

    delta: Text
    obfuscation: Opt[str] = UNSET


@define(kw_only=True)
class ResponseOutputTextDelta(_TextDelta):
    """A piece of output text."""

    TYPE: ClassVar[str] = "response.output_text.delta"


@define(kw_only=True)
class _TextDone(_InContent):
    """Output text complete (GA and beta names)."""

    text: Opt[Text] = UNSET


@define(kw_only=True)
class ResponseOutputTextDone(_TextDone):
    """The whole output text."""

    TYPE: ClassVar[str] = "response.output_text.done"


@define(kw_only=True)
class _AudioDelta(_InContent):
    """A piece of output audio (GA and beta names)."""

    delta: Audio = field(repr=False)
    obfuscation: Opt[str] = UNSET


@define(kw_only=True)
class ResponseOutputAudioDelta(_AudioDelta):
    """A chunk of output audio."""

    TYPE: ClassVar[str] = "response.output_audio.delta"


@define(kw_only=True)
class _AudioDone(_InContent):
    """Output audio complete (GA and beta names)."""


@define(kw_only=True)
class ResponseOutputAudioDone(_AudioDone):
    """Output audio for a content part is complete."""

    TYPE: ClassVar[str] = "response.output_audio.done"


@define(kw_only=True)
class _AudioTranscriptDelta(_InContent):
    """A piece of the output audio's transcript (GA and beta names)."""

    delta: Transcript
    obfuscation: Opt[str] = UNSET


@define(kw_only=True)
class ResponseOutputAudioTranscriptDelta(_AudioTranscriptDelta):
    """A piece of the transcript of output audio."""

    TYPE: ClassVar[str] = "response.output_audio_transcript.delta"


@define(kw_only=True)
class _AudioTranscriptDone(_InContent):
    """The output audio's transcript complete (GA and beta names)."""

    transcript: Opt[Transcript] = UNSET


@define(kw_only=True)
class ResponseOutputAudioTranscriptDone(_AudioTranscriptDone):
    """The whole transcript of output audio."""

    TYPE: ClassVar[str] = "response.output_audio_transcript.done"


@define(kw_only=True)
class ResponseFunctionCallArgumentsDelta(_InResponse):
    """A piece of a function call's arguments."""

    TYPE: ClassVar[str] = "response.function_call_arguments.delta"
    call_id: Opt[str] = UNSET
    delta: Fragment
    obfuscation: Opt[str] = UNSET


@define(kw_only=True)
class ResponseFunctionCallArgumentsDone(_InResponse):
    """A function call's complete arguments."""

    TYPE: ClassVar[str] = "response.function_call_arguments.done"
    call_id: Opt[str] = UNSET
    name: Opt[str] = UNSET
    arguments: Opt[ToolText] = UNSET


@define(kw_only=True)
class ResponseMcpCallArgumentsDelta(_InResponse):
    """A piece of an MCP call's arguments."""

    TYPE: ClassVar[str] = "response.mcp_call_arguments.delta"
    delta: Fragment
    obfuscation: Opt[str] = UNSET


@define(kw_only=True)
class ResponseMcpCallArgumentsDone(_InResponse):
    """An MCP call's complete arguments."""

    TYPE: ClassVar[str] = "response.mcp_call_arguments.done"
    arguments: Opt[ToolText] = UNSET


@define(kw_only=True)
class _McpCallEvent(Event):
    """An MCP call's progress: in progress, completed, failed."""

    output_index: Opt[int] = UNSET
    item_id: Opt[str] = UNSET


@define(kw_only=True)
class ResponseMcpCallInProgress(_McpCallEvent):
    """An MCP call started."""

    TYPE: ClassVar[str] = "response.mcp_call.in_progress"


@define(kw_only=True)
class ResponseMcpCallCompleted(_McpCallEvent):
    """An MCP call succeeded."""

    TYPE: ClassVar[str] = "response.mcp_call.completed"


@define(kw_only=True)
class ResponseMcpCallFailed(_McpCallEvent):
    """An MCP call failed."""

    TYPE: ClassVar[str] = "response.mcp_call.failed"


@define(kw_only=True)
class _McpListToolsEvent(Event):
    """Listing an MCP server's tools: in progress, completed, failed."""

    item_id: Opt[str] = UNSET


@define(kw_only=True)
class McpListToolsInProgress(_McpListToolsEvent):
    """The server is listing an MCP server's tools."""

    TYPE: ClassVar[str] = "mcp_list_tools.in_progress"


@define(kw_only=True)
class McpListToolsCompleted(_McpListToolsEvent):
    """Listing an MCP server's tools succeeded."""

    TYPE: ClassVar[str] = "mcp_list_tools.completed"


@define(kw_only=True)
class McpListToolsFailed(_McpListToolsEvent):
    """Listing an MCP server's tools failed."""

    TYPE: ClassVar[str] = "mcp_list_tools.failed"


@define(kw_only=True)
class RateLimitsUpdated(Event):
    """Current rate limits."""

    TYPE: ClassVar[str] = "rate_limits.updated"
    rate_limits: Opt[list[Json]] = UNSET


@define(kw_only=True)
class Error(Event):
    """An error the server reports; the connection stays open."""

    TYPE: ClassVar[str] = "error"
    error: ErrorInfo


SERVER_EVENTS: tuple[type[Event], ...] = (
    SessionCreated,
    SessionUpdated,
    ConversationCreated,
    ConversationItemCreated,
    ConversationItemAdded,
    ConversationItemDone,
    ConversationItemRetrieved,
    ConversationItemDeleted,
    ConversationItemTruncated,
    InputAudioTranscriptionCompleted,
    InputAudioTranscriptionDelta,
    InputAudioTranscriptionFailed,
    InputAudioTranscriptionSegment,
    InputAudioBufferCommitted,
    InputAudioBufferCleared,
    InputAudioBufferSpeechStarted,
    InputAudioBufferSpeechStopped,
    InputAudioBufferTimeoutTriggered,
    InputAudioBufferDtmfEventReceived,
    OutputAudioBufferStarted,
    OutputAudioBufferStopped,
    OutputAudioBufferCleared,
    ResponseCreated,
    ResponseDone,
    ResponseOutputItemAdded,
    ResponseOutputItemDone,
    ResponseContentPartAdded,
    ResponseContentPartDone,
    ResponseOutputTextDelta,
    ResponseOutputTextDone,
    ResponseOutputAudioDelta,
    ResponseOutputAudioDone,
    ResponseOutputAudioTranscriptDelta,
    ResponseOutputAudioTranscriptDone,
    ResponseFunctionCallArgumentsDelta,
    ResponseFunctionCallArgumentsDone,
    ResponseMcpCallArgumentsDelta,
    ResponseMcpCallArgumentsDone,
    ResponseMcpCallInProgress,
    ResponseMcpCallCompleted,
    ResponseMcpCallFailed,
    McpListToolsInProgress,
    McpListToolsCompleted,
    McpListToolsFailed,
    RateLimitsUpdated,
    Error,
)
