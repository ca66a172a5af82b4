"""
Bodies of the Realtime REST endpoints, requests and responses.

Each endpoint is named by a route key (`client_secrets`, `sessions`, ...) that the
proxy's router maps paths onto; `REST_BODIES` says which class decodes the request and
which the response. SDP bodies are text, not JSON, and are handled by the proxy's
redactor; only the JSON `session` part of a multipart `calls` request is modeled here.
"""

from __future__ import annotations

from typing import Final

from attrs import define, field

from protocol.base import Model
from protocol.session import BetaSession, Session
from protocol.types import UNSET, Detail, Json, Opt, Secret


@define(kw_only=True)
class ClientSecretRequest(Model):
    """`POST /v1/realtime/client_secrets` (and the translation variant)."""

    expires_after: Opt[Json] = UNSET
    session: Opt[Session] = UNSET


@define(kw_only=True)
class ClientSecretResponse(Model):
    """An ephemeral key (`ek_...`) with the session it is bound to."""

    value: Opt[Secret] = field(default=UNSET, repr=False)
    expires_at: Opt[int] = UNSET
    session: Opt[Session] = UNSET


@define(kw_only=True)
class CallRefer(Model):
    """`POST /v1/realtime/calls/{id}/refer`: transfer a SIP call."""

    target_uri: Opt[Detail] = UNSET


@define(kw_only=True)
class CallReject(Model):
    """`POST /v1/realtime/calls/{id}/reject`."""

    status_code: Opt[int] = UNSET


@define(kw_only=True)
class Empty(Model):
    """A body that should be empty or `{}`; anything in it is kept in `extra`."""


REST_BODIES: Final[dict[str, tuple[type[Model], type[Model]]]] = {
    "client_secrets": (ClientSecretRequest, ClientSecretResponse),
    "translations/client_secrets": (ClientSecretRequest, ClientSecretResponse),
    "sessions": (BetaSession, BetaSession),
    "transcription_sessions": (BetaSession, BetaSession),
    "calls": (Session, Empty),
    "calls/accept": (Session, Empty),
    "calls/hangup": (Empty, Empty),
    "calls/refer": (CallRefer, Empty),
    "calls/reject": (CallReject, Empty),
}
"""Route key → (request body class, response body class)."""
