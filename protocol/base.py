"""
The base classes every protocol model derives from, and the two non-event outcomes.

`Model` carries `extra`: the keys of the wire object that the model does not declare.
They are kept, never dropped, so that unstructuring is lossless and the redactor's
scrubber decides what of them may be logged. `Event` adds the wire tag `TYPE` (a class
constant, not a field) and the optional client- or server-assigned `event_id`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from attrs import define, field

from protocol.types import UNSET, Extras, Opt

Direction = Literal["client", "server"]


@define(kw_only=True)
class Model:
    """A decoded JSON object: declared fields plus whatever else arrived."""

    extra: Extras = field(factory=lambda: Extras({}), repr=False)


@define(kw_only=True)
class Event(Model):
    """A Realtime event, tagged on `type`."""

    TYPE: ClassVar[str] = ""
    event_id: Opt[str] = UNSET


@define(kw_only=True)
class UnknownEvent(Model):
    """An event whose `type` we do not model: the type is kept, every field is in `extra`."""

    type: str


@define(kw_only=True)
class Undecodable:
    """A frame or body that is not a decodable event: only metadata, never content."""

    reason: str
    size: int
