"""
The log sink: JSON lines written off the event loop; when the writer cannot keep up,
records are dropped and counted (or the producer blocks, in audit mode); a full disk or
an unread pipe never raises into the relay.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.log import LogSink, make_logger, render


def _wait_for(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


def test_records_are_json_lines_with_ts_level_event(tmp_path: Path) -> None:
    """
    Each record is one JSON object per line, starting with ts, level and event.
    """
    path = tmp_path / "earshot.log"
    sink = LogSink(str(path))
    log = make_logger(sink)

    log.info("ws.open", conn="c1", path="/v1/realtime\nINJECTED")
    sink.close()

    (line,) = path.read_bytes().splitlines()
    record = orjson.loads(line)
    assert ["ts", "level", "event", "conn", "path"] == list(record)
    assert "info" == record["level"]
    assert record["ts"].endswith("Z")
    assert len(record["ts"]) == len("2026-11-21T02:30:19.123456Z")


def test_pipe_writes_are_whole_lines_within_pipe_buf() -> None:
    """
    Into a pipe (shared by workers), every write is whole lines of at most PIPE_BUF bytes.
    """
    import select

    from proxy.log import _line_chunks

    data = b"".join(b"x" * n + b"\n" for n in (10, 4000, 300, 5000, 20, 1))

    chunks = _line_chunks(data, select.PIPE_BUF)

    assert data == b"".join(chunks)
    assert all(c.endswith(b"\n") for c in chunks)
    assert all(len(c) <= select.PIPE_BUF or c.count(b"\n") == 1 for c in chunks)


def test_render_never_raises() -> None:
    """
    A value orjson cannot encode is replaced and named in `render_error`; the record is
    written with everything else, not an exception and not a bare `log.render_failed`.
    """
    line = render(None, "info", {"event": "realtime.event", "bad": {1, 2}, "good": 1})

    record = orjson.loads(line)
    assert ("realtime.event", None, 1) == (record["event"], record["bad"], record["good"])
    assert [".bad: set cannot be rendered"] == record["render_error"]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (2**64 - 1 + 2**64 - 1, "integer past 64 bits"),
        (-(2**70), "integer past 64 bits"),
        (10**300, "integer past 64 bits"),
    ],
)
def test_a_close_record_with_a_sum_past_64_bits_is_still_written(value: int, error: str) -> None:
    """
    Two `response.done` with `total_tokens` 2^64-1 overflow the sum: the `ws.close` record
    is written whole, the sum replaced and named, every other field kept.
    """
    line = render(
        None,
        "info",
        {
            "event": "ws.close",
            "conn": "c_1",
            "code": 1000,
            "usage": {"total_tokens": value, "input_tokens": 3},
        },
    )

    record = orjson.loads(line)
    assert ("ws.close", "c_1", 1000) == (record["event"], record["conn"], record["code"])
    assert {"total_tokens": None, "input_tokens": 3} == record["usage"]
    assert [f".usage.total_tokens: {error}"] == record["render_error"]


def test_a_record_nested_past_the_limit_is_still_written() -> None:
    """
    A payload nested 300 deep: the deep part is replaced, the record written.
    """
    deep: Any = "x"
    for _ in range(300):
        deep = {"a": deep}
    record = orjson.loads(
        render(None, "info", {"event": "realtime.event", "payload": deep, "size": 9})
    )

    assert 9 == record["size"]
    assert 1 == len(record["render_error"])
    assert record["render_error"][0].endswith("nested too deep")


def test_full_buffer_drops_counts_and_reports(tmp_path: Path) -> None:
    """
    With the writer stuck, records beyond capacity are dropped and counted; once it
    catches up, one `log.dropped` record says how many.
    """
    read_fd, write_fd = os.pipe()
    path = f"/dev/fd/{write_fd}"
    dropped: list[int] = []
    sink = LogSink(path, capacity=10, on_dropped=dropped.append)
    log = make_logger(sink)
    # Fill the pipe so the writer blocks, then overflow the buffer.
    os.set_blocking(write_fd, True)
    for i in range(20_000):
        log.info("realtime.event", n=i, pad="x" * 100)

    assert sink.dropped_total > 0
    assert sink.dropped_total == sum(dropped)
    drained: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(read_fd, drained), daemon=True)
    reader.start()
    sink.close()
    os.close(write_fd)
    reader.join(5)
    assert b'"event":"log.dropped"' in drained[0]


def _drain(fd: int, into: list[bytes]) -> None:
    data = b""
    while chunk := os.read(fd, 1 << 16):
        data += chunk
    into.append(data)
    os.close(fd)


def test_block_mode_waits_instead_of_dropping(tmp_path: Path) -> None:
    """
    With `on_full: block`, the producer waits for room and nothing is dropped.
    """
    path = tmp_path / "audit.log"
    sink = LogSink(str(path), capacity=2, block=True)
    log = make_logger(sink)

    for i in range(2000):
        log.info("realtime.event", n=i)
    sink.close()

    assert 0 == sink.dropped_total
    assert 2000 == len(path.read_bytes().splitlines())


def test_full_disk_drops_and_counts() -> None:
    """
    Writing to a full disk (/dev/full) loses records, counts them, and never raises.
    """
    sink = LogSink("/dev/full")
    log = make_logger(sink)

    for i in range(100):
        log.info("realtime.event", n=i)
    _wait_for(lambda: sink.dropped_total >= 100)
    sink.close()

    assert sink.dropped_total >= 100
    assert 0 == sink.written_total


def test_a_path_that_cannot_be_opened_fails_at_start(tmp_path: Path) -> None:
    """
    A log path that cannot be opened raises when the sink is made (the command line turns
    it into exit 2), instead of serving traffic and losing every record.
    """
    with pytest.raises(FileNotFoundError):
        LogSink(str(tmp_path / "no-such-dir" / "earshot.log"))


def test_a_reopen_that_fails_keeps_writing_to_the_old_file(tmp_path: Path, capfd: object) -> None:
    """
    The log's directory is gone when SIGHUP comes: stderr says the reopen failed, and
    records go on into the file already open (where logrotate moved it), none lost.
    """
    directory = tmp_path / "logs"
    directory.mkdir()
    sink = LogSink(str(directory / "earshot.log"))
    log = make_logger(sink)
    directory.rename(tmp_path / "logs.old")

    sink.reopen()
    log.info("realtime.event", n=1)
    sink.close()

    lines = (tmp_path / "logs.old" / "earshot.log").read_bytes().splitlines()
    assert [1] == [orjson.loads(line)["n"] for line in lines]
    assert "earshot: cannot reopen the log (No such file or directory)" in capfd.readouterr().err  # type: ignore[attr-defined]


def test_reopen_moves_to_a_new_file_without_losing_or_splitting_a_record(tmp_path: Path) -> None:
    """
    logrotate moves the file, SIGHUP calls `reopen`: records written before are whole in
    the old file, the new file starts with `log.reopened`, and none is lost.
    """
    path = tmp_path / "earshot.log"
    sink = LogSink(str(path))
    log = make_logger(sink)
    for i in range(500):
        log.info("realtime.event", n=i, pad="x" * 200)
    _wait_for(lambda: sink.written_total == 500)
    path.rename(tmp_path / "earshot.log.1")

    sink.reopen()
    for i in range(500, 1000):
        log.info("realtime.event", n=i, pad="x" * 200)
    sink.close()

    old = [orjson.loads(line) for line in (tmp_path / "earshot.log.1").read_bytes().splitlines()]
    new = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert "log.reopened" == new[0]["event"]
    assert list(range(1000)) == [r["n"] for r in old + new if "n" in r]


def test_a_write_error_is_reported_once_on_stderr_and_counted(capfd: object) -> None:
    """
    Writing to a full device: the records are dropped and counted, and stderr says so
    once, not once per batch.
    """
    dropped: list[int] = []
    sink = LogSink("/dev/full", on_dropped=dropped.append)
    log = make_logger(sink)
    for _ in range(3):
        log.info("realtime.event")
        _wait_for(lambda: sum(dropped) > 0)
        time.sleep(0.1)
    sink.close(timeout=1)

    err = capfd.readouterr().err  # type: ignore[attr-defined]
    assert 1 == err.count("earshot: cannot write the log (No space left on device)")
    assert 3 <= sum(dropped)


def test_a_reopen_never_follows_a_planted_symbolic_link(tmp_path: Path, capfd: object) -> None:
    """
    After logrotate moved the file, someone plants a symbolic link where the log was: the
    reopen does not follow it (the target is untouched), says so on stderr, and records
    go on into the file already open.
    """
    path = tmp_path / "earshot.log"
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    sink = LogSink(str(path))
    log = make_logger(sink)
    path.rename(tmp_path / "earshot.log.1")
    path.symlink_to(target)

    sink.reopen()
    log.info("realtime.event", n=1)
    sink.close()

    assert b"" == target.read_bytes()
    lines = (tmp_path / "earshot.log.1").read_bytes().splitlines()
    assert [1] == [orjson.loads(line)["n"] for line in lines]
    assert "cannot reopen the log (a symbolic link)" in capfd.readouterr().err  # type: ignore[attr-defined]


def test_a_reopen_refuses_a_file_another_user_owns(
    tmp_path: Path, capfd: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A file planted where the log was, owned by another user (a folder others may write
    to): not appended to. (The other user is played by the process's own uid seen as
    someone else's.)
    """
    path = tmp_path / "earshot.log"
    sink = LogSink(str(path))
    log = make_logger(sink)
    path.rename(tmp_path / "earshot.log.1")
    path.write_bytes(b"planted\n")
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(path).st_uid + 1)

    sink.reopen()
    log.info("realtime.event", n=1)
    sink.close()

    assert b"planted\n" == path.read_bytes()
    assert [1] == [
        orjson.loads(line)["n"] for line in (tmp_path / "earshot.log.1").read_bytes().splitlines()
    ]
    assert "cannot reopen the log (owned by another user, or not a file)" in capfd.readouterr().err  # type: ignore[attr-defined]
