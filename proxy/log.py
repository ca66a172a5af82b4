"""
The log sink and structlog's configuration: JSON lines, rendered with orjson, written by
a thread so that a slow disk or an unread pipe never stalls the relay.

`LogSink` is a bounded buffer of rendered lines with one writer thread. When it is full,
records are dropped and counted (`on_full: drop`, the default) or the producer waits
(`on_full: block`, for audit deployments). Once the writer catches up after drops, it
writes one `log.dropped` record with the count. `configure()` is called once, by the
entry point; nothing here configures structlog at import.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
import select
import stat
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import Any, Final

import orjson
import structlog
from structlog.typing import FilteringBoundLogger

_FLUSH_INTERVAL: Final = 0.02  # seconds between writes when the buffer is not filling up
Logger = FilteringBoundLogger
"""What every part of earshot logs through: a structlog bound logger, its context bound."""


class _Clock:
    """RFC 3339 UTC timestamps with microseconds; the date part is formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        t = time.time()
        second = int(t)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((t - second) * 1_000_000):06d}Z"


_CLOCK: Final = _Clock()


def rfc3339(t: float) -> str:
    """A Unix time as the records write it: RFC 3339, UTC, microseconds."""
    second = int(t)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{stamp}.{int((t - second) * 1_000_000):06d}Z"


def render(_logger: object, method: str, event_dict: MutableMapping[str, Any]) -> bytes:
    """The one renderer: `ts`, `level`, `event` first, then the record's fields."""
    record = {
        "ts": _CLOCK.now(),
        "level": method,
        "event": event_dict.pop("event", ""),
        **event_dict,
    }
    try:
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        # A client's bytes that are not UTF-8 (a header decoded with surrogateescape) must
        # not lose the record: encode them and try again.
        try:
            line = orjson.dumps(_encodable(record), option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:
            # A value orjson cannot encode (an integer past 64 bits, nesting past its
            # limit, a type it does not know) must not lose the record: each such value
            # is replaced, the paths are named in `render_error`, the rest is written.
            errors: list[str] = []
            salvaged = _salvage(record, "", errors, 0)
            salvaged["render_error"] = errors[:16]
            try:
                line = orjson.dumps(salvaged, option=orjson.OPT_APPEND_NEWLINE)
            except TypeError:  # not reached: every value was checked; still never raise
                safe = {
                    "ts": record["ts"],
                    "level": method,
                    "event": "log.render_failed",
                    "for": str(record["event"])[:64],
                }
                return orjson.dumps(safe, option=orjson.OPT_APPEND_NEWLINE)
    # Valid JSON, but line breaks to readers that split on Unicode ones (Python's
    # splitlines, some log viewers). In UTF-8 these bytes only occur as these characters,
    # and in JSON only inside strings: replacing them is exact.
    if b"\xe2\x80\xa8" in line or b"\xe2\x80\xa9" in line or b"\xc2\x85" in line:
        for raw, escaped in _LINE_BREAKS:
            line = line.replace(raw, escaped)
    return line


_LINE_BREAKS: Final = (
    (b"\xe2\x80\xa8", b"\\u2028"),
    (b"\xe2\x80\xa9", b"\\u2029"),
    (b"\xc2\x85", b"\\u0085"),
)


_MAX_INT: Final = 2**63 - 1
_MAX_NESTING: Final = 200  # orjson's own limit is 254


def _salvage(value: Any, path: str, errors: list[str], depth: int) -> Any:
    """`value` with whatever orjson cannot encode replaced by None (its path and why
    appended to `errors`): the record is written, not lost."""
    if isinstance(value, str):
        return _utf8(value)
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        if -_MAX_INT - 1 <= value <= _MAX_INT:
            return value
        errors.append(f"{path or '.'}: integer past 64 bits")
        return None
    if isinstance(value, dict | list | tuple):
        if depth >= _MAX_NESTING:
            errors.append(f"{path or '.'}: nested too deep")
            return None
        if isinstance(value, dict):
            return {
                _utf8(str(k)): _salvage(v, f"{path}.{_utf8(str(k))[:40]}", errors, depth + 1)
                for k, v in value.items()
            }
        return [_salvage(v, f"{path}[{i}]", errors, depth + 1) for i, v in enumerate(value)]
    errors.append(f"{path or '.'}: {type(value).__name__} cannot be rendered")
    return None


def _encodable(value: Any) -> Any:
    """`value` with every string valid UTF-8: bytes a peer sent that are not (kept by
    aiohttp as lone surrogates) become `\\xNN` escapes, other lone surrogates `\\uDXXX`."""
    if isinstance(value, str):
        return _utf8(value)
    if isinstance(value, dict):
        return {_utf8(str(k)): _encodable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encodable(v) for v in value]
    return value


def _utf8(text: str) -> str:
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            return text.encode("utf-8", "backslashreplace").decode("ascii")


def _open_own(path: str) -> int:
    """Open (or create) `path` for appending, as a reopen must: never through a symbolic
    link (`O_NOFOLLOW`), and only a file this process's user owns (one planted by another
    user, where the folder lets others write, is refused with `PermissionError`)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    info = os.fstat(fd)
    if info.st_uid != os.geteuid() or not (
        stat.S_ISREG(info.st_mode) or stat.S_ISFIFO(info.st_mode)
    ):
        os.close(fd)
        raise PermissionError(errno.EPERM, "owned by another user, or not a file")
    return fd


def _line_chunks(data: bytes, limit: int) -> list[bytes]:
    """`data` cut at line ends into pieces of at most `limit` bytes (longer lines alone)."""
    chunks, start = [], 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + limit) + 1
        if end <= start:  # one line longer than the limit
            end = data.find(b"\n", start) + 1 or len(data)
        chunks.append(data[start:end])
        start = end
    return chunks


class MemorySink:
    """Rendered lines kept in memory, the last `limit` of them (all when None): what the
    demo shows, and what tests and benchmarks log into."""

    def __init__(self, limit: int | None = None) -> None:
        self.lines: collections.deque[bytes] = collections.deque(maxlen=limit)

    def msg(self, line: bytes) -> None:
        """Keep one rendered line (structlog calls this for every level)."""
        self.lines.append(line)

    debug = info = warning = error = critical = exception = msg


class LogSink:
    """A bounded buffer of rendered lines and the thread that writes them."""

    def __init__(
        self,
        output: str = "stdout",
        *,
        capacity: int = 20_000,
        block: bool = False,
        on_written: Callable[[int], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
        fd: int | None = None,
    ) -> None:
        # `fd`: write to this descriptor instead (a worker's pipe to its parent, which
        # owns `output`); it is never reopened.
        self._given_fd = fd
        self._output = output
        self._capacity = capacity
        self._half = max(1, capacity // 2)
        self._block = block
        self._lines: collections.deque[bytes] = collections.deque()
        self._wake = threading.Event()
        self._space = threading.Condition()
        self._closing = False
        self._dropped = 0  # not yet reported in a log.dropped record
        self.dropped_total = 0
        self.written_total = 0
        self._on_written = on_written
        self._on_dropped = on_dropped
        self._fd = -1
        self._pipe = False
        self._reopen = False
        self._write_failed = False  # reported once on stderr, until writing works again
        self._open_output()  # a log that cannot be opened fails here, at start
        self._thread = threading.Thread(target=self._run, name="earshot-log-writer", daemon=True)
        self._thread.start()

    # structlog calls the logger's method named after the level with the rendered bytes.
    def msg(self, line: bytes) -> None:
        """Buffer one rendered line for the writer (structlog calls this for every level)."""
        if len(self._lines) >= self._capacity:
            if not self._block:
                self._dropped += 1
                self.dropped_total += 1
                if self._on_dropped:
                    self._on_dropped(1)
                return
            with self._space:
                while len(self._lines) >= self._capacity and not self._closing:
                    self._space.wait(0.1)
        self._lines.append(line)
        # The writer flushes on its own every few milliseconds; it is woken early only
        # when a burst has half-filled the buffer. Waking it for every record would
        # hand the GIL to it between every two frames.
        if len(self._lines) == self._half:
            self._wake.set()

    debug = info = warning = error = critical = exception = msg

    def _open_output(self) -> None:
        if self._given_fd is not None:
            self._fd = self._given_fd
        elif self._output == "stdout":
            self._fd = sys.stdout.fileno()
        elif self._output == "stderr":
            self._fd = sys.stderr.fileno()
        else:
            self._fd = os.open(self._output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._pipe = stat.S_ISFIFO(os.fstat(self._fd).st_mode)

    def flush_soon(self) -> None:
        """Have the writer write what is buffered now (SIGTERM: before the drain, so that a
        runtime that kills the process after the app's own drain loses nothing)."""
        self._wake.set()

    def reopen(self) -> None:
        """Reopen a log file (SIGHUP, after logrotate moved it): done by the writer between
        two writes, so no record is lost or split; `log.reopened` is the first record of
        the new file. Safe to call from a signal handler."""
        self._reopen = True
        self._wake.set()

    def _reopen_now(self) -> None:
        self._reopen = False
        if self._output in ("stdout", "stderr") or self._given_fd is not None:
            return
        try:
            fd = _open_own(self._output)
        except OSError as exc:
            # A symbolic link planted where the log was, or a file someone else made: not
            # followed, not appended to. The records go on to the old file.
            why = "a symbolic link" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
            with contextlib.suppress(OSError):
                os.write(
                    2,
                    f"earshot: cannot reopen the log ({why}); "
                    "still writing to the file open before\n".encode(errors="replace"),
                )
            return
        old = self._fd
        self._fd = fd
        self._pipe = stat.S_ISFIFO(os.fstat(fd).st_mode)
        if old > 2:
            os.close(old)
        self._write(render(None, "info", {"event": "log.reopened", "pid": os.getpid()}))

    def _write(self, data: bytes) -> None:
        if self._fd < 0:
            self._open_output()
        if self._pipe and len(data) > select.PIPE_BUF:
            # Workers share one pipe: writes up to PIPE_BUF are atomic, so write whole
            # lines in chunks no larger than that and no worker splits another's line.
            for chunk in _line_chunks(data, select.PIPE_BUF):
                self._write_all(chunk)
        else:
            self._write_all(data)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def _run(self) -> None:
        while True:
            self._wake.wait(_FLUSH_INTERVAL)
            self._wake.clear()
            if self._reopen:
                try:
                    self._reopen_now()
                except OSError as exc:
                    # Records go on into the file already open, wherever it was moved.
                    self._report_failure("cannot reopen the log", exc)
                    self._write_failed = False
            batch: list[bytes] = []
            while self._lines and len(batch) < 4096:
                batch.append(self._lines.popleft())
            if batch:
                with self._space:
                    self._space.notify_all()
                try:
                    self._write(b"".join(batch))
                except (OSError, ValueError) as exc:
                    # Disk full, read-only, closed pipe: the records are lost, counted,
                    # and reported once writing works again. Traffic is not affected.
                    self._report_failure("cannot write the log", exc)
                    self._dropped += len(batch)
                    self.dropped_total += len(batch)
                    if self._on_dropped:
                        self._on_dropped(len(batch))
                    time.sleep(0.05)
                    continue
                self._write_failed = False
                self.written_total += len(batch)
                if self._on_written:
                    self._on_written(len(batch))
                if self._lines:
                    self._wake.set()
            if self._dropped and not self._lines:
                self._report_dropped()
            if self._closing and not self._lines:
                return

    def _report_failure(self, what: str, exc: BaseException) -> None:
        """Once per failure, on stderr: records are being dropped (they are counted)."""
        if self._write_failed:
            return
        self._write_failed = True
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        with contextlib.suppress(OSError):
            os.write(2, f"earshot: {what} ({why}): records are dropped and counted\n".encode())

    def _report_dropped(self) -> None:
        count, self._dropped = self._dropped, 0
        line = render(None, "warning", {"event": "log.dropped", "count": count})
        try:
            self._write(line)
        except (OSError, ValueError):
            self._dropped += count

    def close(self, timeout: float = 5.0) -> None:
        """Write what is buffered (waiting at most `timeout`), then stop the writer."""
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)
        if self._fd > 2:
            os.close(self._fd)
            self._fd = -1
        self._pipe = False


def make_logger(sink: Any, level: str = "info") -> Logger:
    """A bound logger writing to `sink`, without touching structlog's global config."""
    # bind() once: the lazy proxy wrap_logger returns would build a new bound logger on
    # every call.
    logger: Logger = structlog.wrap_logger(
        sink,
        processors=[render],
        wrapper_class=structlog.make_filtering_bound_logger(level),
    ).bind()
    return logger


class _LibraryHandler(logging.Handler):
    """Takes the records of every library that uses stdlib logging (aiohttp's parser,
    asyncio) into earshot's log, as `library.log`: the logger's name, its level, the
    message *template* (scrubbed) and the exception's type. Never the template's
    arguments nor the exception's text: aiohttp puts the raw request line or header
    there, with whatever key the client sent."""

    def __init__(self, log: Logger, scrub: Callable[[str], str]) -> None:
        super().__init__(logging.WARNING)
        self._log = log
        self._scrub = scrub

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {
                "logger": self._scrub(record.name)[:64],
                "message": self._scrub(str(record.msg))[:200],
            }
            if record.exc_info and record.exc_info[0] is not None:
                fields["error"] = record.exc_info[0].__name__
            self._log.warning("library.log", **fields)
        except Exception:  # noqa: BLE001 (logging must never raise into the library)
            return


def route_library_logging(log: Logger, scrub: Callable[[str], str]) -> None:
    """Route stdlib logging (and warnings) through earshot's log: nothing a library logs
    reaches stdout or stderr unredacted. Called once, by the entry point."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_LibraryHandler(log, scrub))
    root.setLevel(logging.WARNING)
    logging.captureWarnings(True)


def configure(sink: LogSink, level: str = "info") -> None:
    """Configure structlog for earshot: called once, by the entry point."""
    structlog.configure(
        processors=[render],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_: sink,
        cache_logger_on_first_use=True,
    )
