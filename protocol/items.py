"""
Conversation items, content parts, tools and tool choice: the pieces that events and
session configs are built from.

Items are tagged on `type` (`message`, `function_call`, ...). A message is one class for
every role; which content parts a role may carry is a validation rule (`validate.py`),
not a decoding one, because the proxy must still log what arrived. Content parts are a
single flat class: every part kind (GA `input_text` ... `output_audio`, beta `text`,
`audio`, `item_reference`) is a subset of the same handful of fields.
"""

from __future__ import annotations

from typing import ClassVar

from attrs import define, field

from protocol.base import Model
from protocol.types import (
    UNSET,
    Audio,
    Detail,
    Image,
    Json,
    Opt,
    Secret,
    Text,
    ToolText,
    Transcript,
    Url,
)


@define(kw_only=True)
class ContentPart(Model):
    """One part of a message: text, audio (with its transcript), an image, or a reference."""

    type: Opt[str] = UNSET
    text: Opt[Text] = UNSET
    audio: Opt[Audio] = field(default=UNSET, repr=False)
    transcript: Opt[Transcript] = UNSET
    image_url: Opt[Image] = field(default=UNSET, repr=False)
    detail: Opt[str] = UNSET
    id: Opt[str] = UNSET
    format: Opt[Json] = UNSET


@define(kw_only=True)
class _Item(Model):
    TYPE: ClassVar[str] = ""
    id: Opt[str] = UNSET
    object: Opt[str] = UNSET
    status: Opt[str] = UNSET


@define(kw_only=True)
class MessageItem(_Item):
    """A system, user or assistant message."""

    TYPE: ClassVar[str] = "message"
    role: Opt[str] = UNSET
    content: Opt[list[ContentPart]] = UNSET


@define(kw_only=True)
class FunctionCallItem(_Item):
    """The model calling a function tool."""

    TYPE: ClassVar[str] = "function_call"
    call_id: Opt[str] = UNSET
    name: Opt[str] = UNSET
    arguments: Opt[ToolText] = UNSET


@define(kw_only=True)
class FunctionCallOutputItem(_Item):
    """The client's result for a function call."""

    TYPE: ClassVar[str] = "function_call_output"
    call_id: Opt[str] = UNSET
    output: Opt[ToolText] = UNSET


@define(kw_only=True)
class McpError(Model):
    """Why an MCP call failed (protocol, tool execution or HTTP error)."""

    type: Opt[str] = UNSET
    code: Opt[int] = UNSET
    message: Opt[Detail] = UNSET


@define(kw_only=True)
class McpCallItem(_Item):
    """A call to a tool on an MCP server."""

    TYPE: ClassVar[str] = "mcp_call"
    server_label: Opt[str] = UNSET
    name: Opt[str] = UNSET
    arguments: Opt[ToolText] = UNSET
    approval_request_id: Opt[str] = UNSET
    output: Opt[ToolText] = UNSET
    error: Opt[McpError] = UNSET


@define(kw_only=True)
class McpToolDescription(Model):
    """A tool an MCP server offers."""

    name: Opt[str] = UNSET
    description: Opt[Detail] = UNSET
    input_schema: Opt[Json] = UNSET
    annotations: Opt[Json] = UNSET


@define(kw_only=True)
class McpListToolsItem(_Item):
    """The tools an MCP server listed."""

    TYPE: ClassVar[str] = "mcp_list_tools"
    server_label: Opt[str] = UNSET
    tools: Opt[list[McpToolDescription]] = UNSET


@define(kw_only=True)
class McpApprovalRequestItem(_Item):
    """The model asking for approval of an MCP call."""

    TYPE: ClassVar[str] = "mcp_approval_request"
    server_label: Opt[str] = UNSET
    name: Opt[str] = UNSET
    arguments: Opt[ToolText] = UNSET


@define(kw_only=True)
class McpApprovalResponseItem(_Item):
    """The client's answer to an approval request."""

    TYPE: ClassVar[str] = "mcp_approval_response"
    approval_request_id: Opt[str] = UNSET
    approve: Opt[bool] = UNSET
    reason: Opt[ToolText] = UNSET


@define(kw_only=True)
class ItemReference(_Item):
    """A reference to an existing item by id."""

    TYPE: ClassVar[str] = "item_reference"


@define(kw_only=True)
class FlatItem(_Item):
    """An item with no known `type`: the beta flat item shape, every field optional.

    Untagged (beta) items and item types we do not model decode here, so the fields
    they share with known items keep their sensitivity; the rest stays in `extra`.
    """

    type: Opt[str] = UNSET
    role: Opt[str] = UNSET
    content: Opt[list[ContentPart]] = UNSET
    call_id: Opt[str] = UNSET
    name: Opt[str] = UNSET
    arguments: Opt[ToolText] = UNSET
    output: Opt[ToolText] = UNSET


Item = (
    MessageItem
    | FunctionCallItem
    | FunctionCallOutputItem
    | McpCallItem
    | McpListToolsItem
    | McpApprovalRequestItem
    | McpApprovalResponseItem
    | ItemReference
    | FlatItem
)


@define(kw_only=True)
class FunctionTool(Model):
    """A function the model may call."""

    TYPE: ClassVar[str] = "function"
    name: Opt[str] = UNSET
    description: Opt[Detail] = UNSET
    parameters: Opt[Json] = UNSET
    defer_loading: Opt[bool] = UNSET
    allowed_callers: Opt[Json] = UNSET


@define(kw_only=True)
class McpTool(Model):
    """An MCP server the model may use; its credentials are secrets."""

    TYPE: ClassVar[str] = "mcp"
    server_label: Opt[str] = UNSET
    server_url: Opt[Url] = UNSET
    connector_id: Opt[str] = UNSET
    authorization: Opt[Secret] = field(default=UNSET, repr=False)
    headers: Opt[dict[str, Secret]] = field(default=UNSET, repr=False)
    allowed_tools: Opt[Json] = UNSET
    require_approval: Opt[Json] = UNSET
    server_description: Opt[Detail] = UNSET
    defer_loading: Opt[bool] = UNSET
    tunnel_id: Opt[str] = UNSET
    allowed_callers: Opt[Json] = UNSET


@define(kw_only=True)
class FlatTool(Model):
    """A tool with no known `type` (beta function tools may omit it)."""

    type: Opt[str] = UNSET
    name: Opt[str] = UNSET
    description: Opt[Detail] = UNSET
    parameters: Opt[Json] = UNSET


Tool = FunctionTool | McpTool | FlatTool


@define(kw_only=True)
class PromptVariableInput(Model):
    """A prompt variable given as an input object rather than a string."""

    type: Opt[str] = UNSET
    text: Opt[Text] = UNSET
    image_url: Opt[Image] = field(default=UNSET, repr=False)
    file_id: Opt[str] = UNSET
    file_data: Opt[Image] = field(default=UNSET, repr=False)
    file_url: Opt[Image] = field(default=UNSET, repr=False)
    filename: Opt[str] = UNSET
    detail: Opt[str] = UNSET


@define(kw_only=True)
class Prompt(Model):
    """A reference to a stored prompt template and its variables."""

    id: Opt[str] = UNSET
    version: Opt[str] = UNSET
    variables: Opt[dict[str, Text | PromptVariableInput]] = UNSET
