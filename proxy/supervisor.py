"""
The parent of `listen.workers > 1`: it forks the workers, owns the log, and keeps them up.

**One writer.** Each worker writes its records into a pipe of its own; the parent reads
every pipe and copies complete lines to `log.output`, so it is the only writer there.
Lines cannot interleave whatever their length (two workers writing one shared pipe could
only keep lines of up to PIPE_BUF, 4,096 bytes, whole) and the parent never parses a
record: it splits on newlines. SIGHUP reopens the output in the parent alone.

**Supervision.** A worker that ends while the parent is not stopping is logged as
`worker.exited` (`pid`, `code` or `signal`, `restarted`) and started again (after a
second, if it lived less than one), its last metrics folded into the retired ones so that
no counter a scrape has shown goes backwards (`proxy.workers`). Each worker asks the
kernel for SIGTERM when the parent dies (`PR_SET_PDEATHSIG`), so no worker outlives it
serving the port; the metrics folder is removed by the parent, or — when the parent was
killed — by the last worker to leave.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import attrs

from proxy.log import LogSink, make_logger
from proxy.metrics import merge_exposition
from proxy.settings import Settings
from proxy.workers import RETIRED, Siblings

_PR_SET_PDEATHSIG: Final = 1
_MAX_PARTIAL: Final = 64 * 1024 * 1024  # a line longer than this is cut (never reached)

RunOne = Callable[[Settings, Siblings, int], int]


@attrs.define(eq=False)
class _Worker:
    index: int
    pid: int
    pipe: int
    started: float
    partial: bytearray = attrs.field(factory=bytearray)


class Supervisor:
    """The parent's state: its workers, its log, its metrics folder."""

    def __init__(self, settings: Settings, run_one: RunOne) -> None:
        self.settings = settings
        self._run_one = run_one
        self.folder = Path(tempfile.mkdtemp(prefix="earshot-workers-"))  # mode 0700
        self.sink = LogSink(
            settings.log.output,
            capacity=settings.log.buffer_records,
            block=True,  # the parent only copies: a slow output slows the workers' pipes
        )
        self.log = make_logger(self.sink, settings.log.level)
        self.stopping = False
        self.restarts = 0
        self.workers: dict[int, _Worker] = {}
        self._selector = selectors.DefaultSelector()
        self._retired: bytes = b""
        self._parent = os.getpid()

    # --- workers ------------------------------------------------------------------------

    def spawn(self, index: int) -> None:
        """Fork worker `index`, its records into a pipe of its own."""
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover (runs in the child)
            # The parent's handlers act on its table of workers: not the child's business.
            for sig in (signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            os.close(read)
            for other in self.workers.values():
                with contextlib.suppress(OSError):
                    os.close(other.pipe)
            code = 1
            try:
                _die_with(self._parent)
                siblings = Siblings(self.folder, index, self.settings.listen.workers)
                code = self._run_one(self.settings, siblings, write)
            finally:
                if os.getppid() != self._parent:  # the parent is gone: the last one cleans up
                    shutil.rmtree(self.folder, ignore_errors=True)
                os._exit(code)
        os.close(write)
        os.set_blocking(read, False)
        worker = _Worker(index, pid, read, time.monotonic())
        self.workers[index] = worker
        self._selector.register(read, selectors.EVENT_READ, worker)

    def _reaped(self, worker: _Worker, status: int) -> None:
        """A worker has ended: its last lines, its record, its metrics; maybe a restart."""
        self._drain(worker, final=True)
        self._selector.unregister(worker.pipe)
        os.close(worker.pipe)
        del self.workers[worker.index]
        restart = not self.stopping
        if restart:
            self.restarts += 1
        self._retire(worker.index)
        if not self.stopping or os.WIFSIGNALED(status) or os.waitstatus_to_exitcode(status):
            how = (
                {"signal": os.WTERMSIG(status)}
                if os.WIFSIGNALED(status)
                else {"code": os.waitstatus_to_exitcode(status)}
            )
            self.log.warning("worker.exited", pid=worker.pid, restarted=restart, **how)
        if restart:
            if time.monotonic() - worker.started < 1.0:
                time.sleep(1.0)  # one that dies at once is not restarted in a tight loop
            self.spawn(worker.index)

    def _retire(self, index: int) -> None:
        """Fold a dead worker's last metrics into `retired.prom` (with the restarts)."""
        last = self.folder / f"last-{index}.prom"
        texts = [self._retired.decode()] if self._retired else []
        with contextlib.suppress(OSError, UnicodeDecodeError):
            texts.append(last.read_text())
            last.unlink()
        self._retired = merge_exposition(texts, counting_only=True) if texts else b""
        self.write_retired()

    def write_retired(self) -> None:
        """`retired.prom`: exited workers' counters and the restarts, for every scrape."""
        restarts = (
            "# HELP earshot_workers_restarted_total Worker processes that ended unexpectedly"
            " and were started again\n# TYPE earshot_workers_restarted_total counter\n"
            f"earshot_workers_restarted_total {self.restarts}\n"
        )
        texts = [restarts] + ([self._retired.decode()] if self._retired else [])
        tmp = self.folder / "retired.tmp"
        with contextlib.suppress(OSError):
            tmp.write_bytes(merge_exposition(texts))
            tmp.replace(self.folder / RETIRED)

    # --- the log ------------------------------------------------------------------------

    def _drain(self, worker: _Worker, *, final: bool = False) -> None:
        """Copy the complete lines a worker has written to the log."""
        while True:
            try:
                data = os.read(worker.pipe, 1 << 16)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                break
            worker.partial += data
            end = worker.partial.rfind(b"\n")
            if end >= 0:
                for line in bytes(worker.partial[: end + 1]).splitlines(keepends=True):
                    self.sink.msg(line)
                del worker.partial[: end + 1]
            if len(worker.partial) > _MAX_PARTIAL:
                worker.partial.clear()
        if final:
            worker.partial.clear()  # a record cut short by the worker's death is no record

    # --- the loop -----------------------------------------------------------------------

    def run(self) -> int:
        """Start the workers, copy their records, restart the ones that die; on SIGTERM
        or SIGINT pass it on and wait for all of them. The exit status: the first
        non-zero one of a worker stopped by the parent, else 0."""
        status = 0

        def stop(signum: int, _frame: object) -> None:
            self.stopping = True
            for worker in self.workers.values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signum)

        self.write_retired()
        for index in range(self.settings.listen.workers):
            self.spawn(index)
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, lambda _s, _f: self.sink.reopen())
        try:
            while self.workers:
                for key, _ in self._selector.select(timeout=0.2):
                    self._drain(key.data)
                while self.workers:
                    try:
                        pid, code = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        pid = 0
                    if pid == 0:
                        break
                    worker = next((w for w in self.workers.values() if w.pid == pid), None)
                    if worker is not None:
                        if self.stopping:
                            status = status or os.waitstatus_to_exitcode(code)
                        self._reaped(worker, code)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.sink.close()
        return status


def _die_with(parent: int) -> None:  # pragma: no cover (runs in the child)
    """Ask the kernel for SIGTERM when the parent dies (Linux), and check it has not."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)
