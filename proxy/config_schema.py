"""
The configuration's schema: its sections and keys with their types and defaults, and the
rules a value must follow that its type cannot say (ranges, combinations, URLs). How a
file becomes a `Settings` — YAML, environment overrides, problems — is `proxy.settings`.
"""

from __future__ import annotations

import os
import re
import typing
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

import attrs
import phonenumbers
from attrs import field, frozen
from yarl import URL

from protocol.types import TEXT_CLASSES
from proxy.personal import KINDS as PII_KINDS
from proxy.pricing import Prices
from proxy.redact import ALLOW_HEADERS, ALLOW_QUERY

TEXT_MODES: Final = ("keep", "hash", "length", "drop")
EventMode = Literal["full", "summary", "off"]
EVENT_MODES: Final[tuple[EventMode, ...]] = typing.get_args(EventMode)
LogLevel = Literal["debug", "info", "warning", "error"]
OnFull = Literal["drop", "block"]
TEXT_POLICY_KEYS: Final = ("default", *TEXT_CLASSES.values())
MiB: Final = 1024 * 1024


@frozen(kw_only=True)
class ListenSection:
    """`listen`: where earshot accepts connections."""

    host: str = "127.0.0.1"
    port: int = 8080
    path_prefix: str = ""
    workers: int = 1
    # `/healthz`, `/readyz` and `/metrics` on a listener of their own (same host), outside
    # traffic admission: probes answer while traffic is refused. 0: none.
    admin_port: int = 0


@frozen(kw_only=True)
class UpstreamSection:
    """`upstream`: the one host earshot dials, and how."""

    url: str = "https://api.openai.com"
    api_key_env: str | None = None
    connect_timeout: float = 10.0
    heartbeat: float = 20.0
    # The upstream's whole API (a sidecar that takes over the app's base URL carries its
    # chat, models, audio ... calls too); Realtime paths are decoded, the rest summarised.
    forward_prefixes: list[str] = field(factory=lambda: ["/v1", "/openai"])


@frozen(kw_only=True)
class LimitsSection:
    """`limits`: frame and body sizes, and how long a request may take to arrive."""

    max_frame_bytes: int = 32 * MiB
    max_body_bytes: int = 4 * MiB
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_pending_connections: int = 256
    # Idle keep-alive connections are closed after this long: above the 60 s idle timeout
    # of the common load balancers (which must close first), nginx's default.
    keepalive_timeout: float = 75.0
    max_pending_per_peer: int = 64
    # A session's record budget (a token bucket): past it, records are folded into
    # `realtime.suppressed` counts. 0: no budget (every record written).
    session_records_per_second: float = 200.0
    session_records_burst: int = 2000


@frozen(kw_only=True)
class LogSection:
    """`log`: where records go, which events are logged whole, and the buffer."""

    output: str = "stdout"
    level: LogLevel = "info"
    events: dict[str, EventMode] = field(
        factory=lambda: {
            "default": "full",
            "input_audio_buffer.append": "summary",
            "session.input_audio_buffer.append": "summary",
            "*.delta": "summary",
        }
    )
    summary_interval: float = 5.0
    buffer_records: int = 20_000
    on_full: OnFull = "drop"


@frozen(kw_only=True)
class RedactionSection:
    """`redaction`: how text, images and audio are rendered; extra secret patterns."""

    text: str | dict[str, str] = "keep"
    image_host: bool = False
    audio_hash: bool = False
    patterns: list[str] = field(factory=list)
    fingerprint_key_env: str = "EARSHOT_FINGERPRINT_KEY"
    # Names whose values are logged in clear; any other value is a fingerprint.
    allow_query: list[str] = field(factory=lambda: list(ALLOW_QUERY))
    allow_headers: list[str] = field(factory=lambda: list(ALLOW_HEADERS))
    # Personal data in kept text: per kind (card, iban, email, phone, ssn) mask or keep,
    # cards also last4; the regions whose national phone format is recognised.
    pii: dict[str, str] = field(factory=dict)
    pii_regions: list[str] = field(factory=lambda: ["US"])


@frozen(kw_only=True)
class OtelSection:
    """`otel`: OpenTelemetry traces of sessions and turns (off while `endpoint` is unset)."""

    endpoint: str | None = None  # the collector's base URL: spans go to /v1/traces under it
    headers_env: str | None = None  # a variable holding `k=v,k=v` headers (an API key)
    service_name: str = "earshot"
    include_text: bool = False


@frozen(kw_only=True)
class ShutdownSection:
    """`shutdown`: how long open sessions may finish after SIGTERM."""

    grace_period: float = 10.0


@frozen(kw_only=True)
class Settings:
    """The whole configuration, validated: every section with its defaults."""

    listen: ListenSection = field(factory=ListenSection)
    upstream: UpstreamSection = field(factory=UpstreamSection)
    limits: LimitsSection = field(factory=LimitsSection)
    log: LogSection = field(factory=LogSection)
    redaction: RedactionSection = field(factory=RedactionSection)
    shutdown: ShutdownSection = field(factory=ShutdownSection)
    otel: OtelSection = field(factory=OtelSection)
    # Models added to or replacing the shipped price table (`null`: not priced by token).
    pricing: dict[str, Prices | None] = field(factory=dict)

    def text_policy(self) -> dict[str, str]:
        """`redaction.text` as a mapping of text class to mode."""
        text = self.redaction.text
        return {"default": text} if isinstance(text, str) else dict(text)


for _cls in (
    ListenSection,
    UpstreamSection,
    LimitsSection,
    LogSection,
    RedactionSection,
    ShutdownSection,
    OtelSection,
    Settings,
):
    attrs.resolve_types(_cls)


def check(s: Settings) -> list[str]:
    """What is wrong with settings whose every value has the right type."""
    problems = []
    problems += _check_url(s.upstream.url)
    if not 0 <= s.listen.port <= 65535:
        problems.append("config.listen.port: must be between 0 and 65535")
    if not 1 <= s.listen.workers <= 64:
        problems.append("config.listen.workers: must be between 1 and 64")
    if s.listen.path_prefix and not re.fullmatch(r"(/[\w.\-~]+)+", s.listen.path_prefix):
        problems.append("config.listen.path_prefix: must look like /segment[/segment...]")
    for i, prefix in enumerate(s.upstream.forward_prefixes):
        if not re.fullmatch(r"(/[\w.\-~]+)+/?", prefix):
            problems.append(f"config.upstream.forward_prefixes[{i}]: must look like /segment[/...]")
    for name, value in (
        ("upstream.connect_timeout", s.upstream.connect_timeout),
        ("log.summary_interval", s.log.summary_interval),
        ("limits.header_timeout", s.limits.header_timeout),
        ("limits.body_timeout", s.limits.body_timeout),
        ("limits.keepalive_timeout", s.limits.keepalive_timeout),
    ):
        if value <= 0:
            problems.append(f"config.{name}: must be positive")
    for name, value in (
        ("upstream.heartbeat", s.upstream.heartbeat),  # 0: no pings
        ("shutdown.grace_period", s.shutdown.grace_period),
    ):
        if value < 0:
            problems.append(f"config.{name}: must be 0 or more")
    for name, value in (
        ("max_frame_bytes", s.limits.max_frame_bytes),
        ("max_body_bytes", s.limits.max_body_bytes),
    ):
        if not 1024 <= value <= 1024 * MiB:
            problems.append(f"config.limits.{name}: must be between 1024 and 1073741824")
    if s.limits.max_pending_connections < 1:
        problems.append("config.limits.max_pending_connections: must be at least 1")
    if s.limits.max_pending_per_peer < 1:
        problems.append("config.limits.max_pending_per_peer: must be at least 1")
    if s.limits.session_records_per_second < 0:
        problems.append("config.limits.session_records_per_second: must be 0 or more")
    if s.limits.session_records_burst < 1:
        problems.append("config.limits.session_records_burst: must be at least 1")
    if not 0 <= s.listen.admin_port <= 65535:
        problems.append("config.listen.admin_port: must be between 0 and 65535")
    elif s.listen.admin_port and s.listen.admin_port == s.listen.port:
        problems.append("config.listen.admin_port: must differ from listen.port")
    if s.log.buffer_records < 1:
        problems.append("config.log.buffer_records: must be at least 1")
    if "default" not in s.log.events:
        problems.append("config.log.events.default: required (full, summary or off)")
    for key, mode in s.text_policy().items():
        where = "config.redaction.text" + ("" if isinstance(s.redaction.text, str) else f".{key}")
        if key not in TEXT_POLICY_KEYS:
            problems.append(f"{where}: unknown text class (one of {', '.join(TEXT_POLICY_KEYS)})")
        elif mode not in TEXT_MODES:
            problems.append(f"{where}: must be keep, hash, length or drop")
    problems += _check_output(s.log.output)
    if s.otel.endpoint is not None:
        scheme = urlsplit(s.otel.endpoint).scheme
        if scheme not in ("http", "https") or not urlsplit(s.otel.endpoint).hostname:
            problems.append("config.otel.endpoint: must be an http(s) URL (the collector's base)")
    for model, prices in s.pricing.items():
        for kind, value in attrs.asdict(prices).items() if prices is not None else ():
            if value < 0:
                problems.append(f"config.pricing.{model}.{kind}: must be 0 or more")
    for kind, mode in s.redaction.pii.items():
        if kind not in PII_KINDS:
            problems.append(
                f"config.redaction.pii.{kind}: unknown kind (one of {', '.join(PII_KINDS)})"
            )
        elif mode not in ("mask", "keep") and not (kind == "card" and mode == "last4"):
            choices = "mask, keep or last4" if kind == "card" else "mask or keep"
            problems.append(f"config.redaction.pii.{kind}: must be {choices}")
    for i, region in enumerate(s.redaction.pii_regions):
        if region not in phonenumbers.SUPPORTED_REGIONS:
            problems.append(
                f"config.redaction.pii_regions[{i}]: not a region code (such as US, GB, DE)"
            )
    for key in ("allow_query", "allow_headers"):
        for i, name in enumerate(getattr(s.redaction, key)):
            if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~\-]+", name):
                problems.append(f"config.redaction.{key}[{i}]: not a header or parameter name")
    for i, pattern in enumerate(s.redaction.patterns):
        try:
            re.compile(pattern)
        except re.error:
            problems.append(f"config.redaction.patterns[{i}]: not a valid regular expression")
    return problems


def _check_url(value: str) -> list[str]:
    try:
        url = urlsplit(value)
        url.port  # noqa: B018 (raises ValueError for a port that is not a number in range)
        URL(value)
    except ValueError:
        return ["config.upstream.url: not a valid URL (its port must be a number 0-65535)"]
    if url.scheme not in ("http", "https", "ws", "wss") or not url.hostname:
        return ["config.upstream.url: must be an http(s) or ws(s) URL"]
    if url.query or url.fragment or url.username or url.password:
        return ["config.upstream.url: must not carry a query, fragment or credentials"]
    return []


def _check_output(output: str) -> list[str]:
    """A log file that cannot be opened is a configuration error, not records lost."""
    if output in ("stdout", "stderr"):
        return []
    path = Path(output)
    target = path if path.exists() else path.parent
    if not target.exists():
        return [f"config.log.output: cannot open {output}: no such directory {target}"]
    if path.is_dir():
        return [f"config.log.output: cannot open {output}: it is a directory"]
    if not os.access(target, os.W_OK):
        return [f"config.log.output: cannot open {output}: permission denied"]
    return []
