"""
Observe-only validation: the spec's constraints that decoding does not enforce.

`validate` returns a list of problems (path and rule, never a value) and never raises,
so that the proxy can log violations while forwarding the frame unchanged.
"""

from __future__ import annotations

from typing import Final

from protocol.base import Model
from protocol.events import ConversationItemCreate, ResponseCreate
from protocol.items import MessageItem
from protocol.session import ResponseParams
from protocol.types import UNSET

ALLOWED_PARTS: Final[dict[str, frozenset[str]]] = {
    "system": frozenset({"input_text"}),
    "user": frozenset({"input_text", "input_audio", "input_image"}),
    "assistant": frozenset({"output_text", "output_audio"}),
}
"""GA content part types each message role may carry."""


def _message_problems(item: MessageItem, path: str) -> list[str]:
    if item.role is UNSET or item.role is None:
        return [f"{path}.role: required for a message"]
    allowed = ALLOWED_PARTS.get(item.role)
    if allowed is None:
        return [f"{path}.role: not one of system, user, assistant"]
    problems = []
    for i, part in enumerate(item.content if isinstance(item.content, list) else ()):
        if part.type not in allowed:
            problems.append(
                f"{path}.content[{i}].type: not allowed for role {item.role}"
                f" (allowed: {', '.join(sorted(allowed))})"
            )
    return problems


def validate(model: Model) -> list[str]:
    """The spec constraints `model` breaks, as `path: rule` strings. Never raises."""
    try:
        if isinstance(model, ConversationItemCreate) and isinstance(model.item, MessageItem):
            return _message_problems(model.item, "$.item")
        if isinstance(model, ResponseCreate) and isinstance(model.response, ResponseParams):
            problems: list[str] = []
            items = model.response.input
            for i, item in enumerate(items if isinstance(items, list) else ()):
                if isinstance(item, MessageItem):
                    problems += _message_problems(item, f"$.response.input[{i}]")
            return problems
    except Exception:  # noqa: BLE001 (observe-only)
        return ["$: validation failed"]
    return []
