"""
The command line and the process: config validation and exit codes, environment
overrides, `check-config`, `demo`, the Dockerfile's command line, a SIGTERM drain of a
real earshot process with open sessions, and metrics across workers.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType
from prometheus_client.parser import text_string_to_metric_families

from proxy import cli
from proxy.settings import ConfigError, load, parse
from tests.helpers import free_port, process, terminated, wait_healthy

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("yaml_text", "problem"),
    [
        (
            "upstream: {url: ftp://example.com}",
            "config.upstream.url: must be an http(s) or ws(s) URL",
        ),
        (
            "upstream: {url: 'https://x.example.com/?key=1'}",
            "config.upstream.url: must not carry a query, fragment or credentials",
        ),
        ("listen: {port: '80'}", "config.listen.port: must be an integer"),
        ("listen: {port: 70000}", "config.listen.port: must be between 0 and 65535"),
        ("listen: {prot: 80}", "config.listen: unknown key(s) prot"),
        ("upstream: {connect_timeout: 0}", "config.upstream.connect_timeout: must be positive"),
        ("upstream: {heartbeat: -1}", "config.upstream.heartbeat: must be 0 or more"),
        (
            "log: {events: {default: full, '*.delta': sometimes}}",
            "config.log.events.*.delta: must be full, summary or off",
        ),
        ("log: {on_full: maybe}", "config.log.on_full: must be drop or block"),
        ("redaction: {text: shout}", "config.redaction.text: must be keep, hash, length or drop"),
        (
            "redaction: {text: {transcripts: hash}}",
            "config.redaction.text.transcripts: unknown text class (one of default, text, transcript, tool, instructions, detail)",
        ),
        (
            "redaction: {patterns: ['(']}",
            "config.redaction.patterns[0]: not a valid regular expression",
        ),
        ("- just\n- a list", "config: must be a mapping"),
        (
            "listen: [1",
            "config: not valid YAML at line 1, column 11: expected ',' or ']', but got '<stream end>'",
        ),
    ],
)
def test_config_problems_are_reported_by_path(tmp_path: Path, yaml_text: str, problem: str) -> None:
    """
    Every problem is reported as `config.path: problem`.
    """
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)

    with pytest.raises(ConfigError) as caught:
        load(path, environ={})

    assert problem in caught.value.problems


def test_all_problems_are_reported_at_once() -> None:
    """
    A file with several problems reports all of them.
    """
    with pytest.raises(ConfigError) as caught:
        parse({"listen": {"port": 70000, "workers": 0}, "log": {"level": "loud"}}, environ={})

    assert 3 == len(caught.value.problems)


def test_unquoted_off_is_the_off_mode(tmp_path: Path) -> None:
    """
    `default: off` (YAML's false) means the `off` event mode, not a type error.
    """
    path = tmp_path / "c.yaml"
    path.write_text("log: {events: {default: full, rate_limits.updated: off}}")

    assert "off" == load(path, environ={}).log.events["rate_limits.updated"]


def test_environment_overrides_single_keys() -> None:
    """
    `EARSHOT_<SECTION>_<KEY>` overrides one key, parsed as YAML.
    """
    settings = parse(
        {"upstream": {"url": "https://api.openai.com"}},
        environ={
            "EARSHOT_UPSTREAM_URL": "http://127.0.0.1:9000",
            "EARSHOT_LISTEN_PORT": "9001",
            "EARSHOT_REDACTION_IMAGE_HOST": "true",
        },
    )

    assert ("http://127.0.0.1:9000", 9001, True) == (
        settings.upstream.url,
        settings.listen.port,
        settings.redaction.image_host,
    )


@pytest.mark.parametrize("name", ["default", "strict-pii", "azure", "audit"])
def test_shipped_configs_are_valid(name: str, tmp_path: Path) -> None:
    """
    Every YAML file under config/ validates (its log file, where it names one, pointed at
    a directory that exists, as a deployment's environment would).
    """
    assert load(
        ROOT / "config" / f"{name}.yaml", environ={"EARSHOT_LOG_OUTPUT": str(tmp_path / "a.log")}
    )


def test_a_log_file_that_cannot_be_opened_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    The audit preset where /var/log/earshot does not exist: `check-config` and the proxy
    itself exit 2 saying so, instead of serving traffic and dropping every record.
    """
    missing = tmp_path / "no-such-dir" / "audit.jsonl"
    os.environ["EARSHOT_LOG_OUTPUT"] = str(missing)
    try:
        assert 2 == cli.main(["check-config", str(ROOT / "config" / "audit.yaml")])
        assert 2 == cli.main(["--config", str(ROOT / "config" / "audit.yaml")])
    finally:
        del os.environ["EARSHOT_LOG_OUTPUT"]

    expected = (
        f"env EARSHOT_LOG_OUTPUT: config.log.output: cannot open {missing}:"
        f" no such directory {missing.parent}\n"
    )
    assert expected * 2 == capsys.readouterr().err


def test_check_config_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """
    `check-config` prints the resolved settings (0) or the problems (2).
    """
    bad = tmp_path / "bad.yaml"
    bad.write_text("upstream: {url: nope}")

    assert 0 == cli.main(["check-config", str(ROOT / "config" / "default.yaml")])
    assert "url: https://api.openai.com" in capsys.readouterr().out
    assert 2 == cli.main(["check-config", str(bad)])
    assert "config.upstream.url: must be an http(s) or ws(s) URL\n" == capsys.readouterr().err


def test_bad_config_exits_2_from_the_command_line(tmp_path: Path) -> None:
    """
    `python -m proxy --config BAD` exits with status 2 and says why on stderr.
    """
    bad = tmp_path / "bad.yaml"
    bad.write_text("listen: {port: -1}")

    done = subprocess.run(
        [sys.executable, "-m", "proxy", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert 2 == done.returncode
    assert "config.listen.port: must be between 0 and 65535" in done.stderr


def test_demo_runs_offline_and_leaks_nothing() -> None:
    """
    `earshot demo` runs its scripted session and reports that nothing leaked; stdout is
    records only (every line parses as JSON: `earshot demo | jq` works), the report is
    on stderr.
    """
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )

    assert 0 == done.returncode, done.stdout[-2000:] + done.stderr[-2000:]
    assert "None of them appears in the records above" in done.stderr
    events = [json.loads(line)["event"] for line in done.stdout.splitlines()]
    assert {"http.exchange", "ws.open", "realtime.event", "realtime.summary", "ws.close"} <= set(
        events
    )


def _dockerfile_command() -> tuple[list[str], dict[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    runtime = text[text.rindex("FROM ") :]
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", runtime, re.M).group(1))  # type: ignore[union-attr]
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", runtime, re.M).group(1))  # type: ignore[union-attr]
    env = dict(re.findall(r"(EARSHOT_\w+)=(\S+)", runtime))
    return [*entrypoint, *cmd], env


async def test_the_images_command_line_runs_the_proxy(upstream: Any, tmp_path: Path) -> None:
    """
    The Dockerfile's ENTRYPOINT + CMD, with its ENV, serve /healthz and exit 0 on SIGTERM.
    """
    _, server = upstream
    argv, env = _dockerfile_command()
    argv = [a.replace("/app/", f"{ROOT}/") for a in argv]
    port = free_port()
    assert "0.0.0.0" == env["EARSHOT_LISTEN_HOST"]
    env = {
        **os.environ,
        **env,
        "EARSHOT_LISTEN_HOST": "127.0.0.1",
        "EARSHOT_LISTEN_PORT": str(port),
        "EARSHOT_UPSTREAM_URL": str(server.make_url("")).rstrip("/"),
    }
    command = [str(Path(sys.executable).parent / argv[0]), *argv[1:]]
    with process(command, env=env, stdout=subprocess.DEVNULL) as proc:
        await wait_healthy(port, proc)
        assert 0 == await terminated(proc)


def _config(
    upstream: Any, tmp_path: Path, extra: str, *, log_events: str = ""
) -> tuple[int, Path, Path]:
    """A config file for an earshot process in front of the fake upstream: its port, its
    log file, the file."""
    _fake, server = upstream
    port = free_port()
    log = tmp_path / "earshot.jsonl"
    config = tmp_path / "c.yaml"
    events = f", events: {log_events}" if log_events else ""
    config.write_text(
        f"listen: {{host: 127.0.0.1, port: {port}}}\n"
        f"upstream: {{url: '{str(server.make_url('')).rstrip('/')}'}}\n"
        f"log: {{output: '{log}'{events}}}\n{extra}"
    )
    return port, log, config


async def test_sigterm_drains_open_sessions(upstream: Any, tmp_path: Path) -> None:
    """
    On SIGTERM: /readyz turns 503, new upgrades are refused, every open session gets
    1001 with a Close frame after the grace period, and the process exits 0.
    """
    port, log, config = _config(upstream, tmp_path, "shutdown: {grace_period: 1.0}\n")
    sessions = 100
    with process([sys.executable, "-m", "proxy", "--config", str(config)]) as proc:
        await wait_healthy(port, proc)
        # No connection limit: the 100 sessions must not starve the /readyz request.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            sockets = []
            for _ in range(sessions):
                ws = await http.ws_connect(
                    f"http://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"
                )
                await ws.receive(timeout=5)
                sockets.append(ws)
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            async with http.get(f"http://127.0.0.1:{port}/readyz") as ready:
                assert 503 == ready.status
            async with http.get(
                f"http://127.0.0.1:{port}/v1/realtime?model=x",
                headers={
                    "Upgrade": "websocket",
                    "Connection": "Upgrade",
                    "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                },
            ) as refused:
                assert 503 == refused.status
            closes = [await ws.receive(timeout=10) for ws in sockets]
            for ws in sockets:
                await ws.close()
        assert [(WSMsgType.CLOSE, 1001)] * sessions == [(m.type, m.data) for m in closes]
        assert 0 == await asyncio.to_thread(proc.wait, 30)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert sessions == sum(
        1 for r in records if r["event"] == "ws.close" and r["closed_by"] == "proxy"
    )
    assert {"proxy.start", "proxy.draining", "proxy.stop"} <= {r["event"] for r in records}


async def test_sighup_reopens_the_log_file(upstream: Any, tmp_path: Path) -> None:
    """
    After logrotate moves the log, SIGHUP makes earshot write to a new file at the same
    path, starting with `log.reopened`; every record is whole, in one file or the other.
    """
    port, log, config = _config(upstream, tmp_path, "", log_events="{default: full}")
    with process([sys.executable, "-m", "proxy", "--config", str(config)]) as proc:
        await wait_healthy(port, proc)
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"http://127.0.0.1:{port}/v1/realtime?model=gpt-realtime")
            await ws.receive(timeout=5)
            for i in range(100):
                await ws.send_str(f'{{"type":"conversation.item.retrieve","item_id":"i{i}"}}')
                if i == 50:
                    await asyncio.sleep(0.2)
                    log.rename(tmp_path / "earshot.jsonl.1")
                    proc.send_signal(signal.SIGHUP)
                    await asyncio.sleep(0.2)
            await ws.close()
        assert 0 == await terminated(proc)
    old = [json.loads(line) for line in (tmp_path / "earshot.jsonl.1").read_text().splitlines()]
    new = [json.loads(line) for line in log.read_text().splitlines()]
    assert "log.reopened" == new[0]["event"]
    retrieved = [
        r["payload"]["item_id"]
        for r in old + new
        if r["event"] == "realtime.event" and r["type"] == "conversation.item.retrieve"
    ]
    assert [f"i{i}" for i in range(100)] == retrieved


def test_ctrl_c_at_start_exits_quietly(tmp_path: Path) -> None:
    """
    Ctrl-C while earshot is still starting (importing, loading its config) prints no
    traceback.
    """
    # "go" is printed from inside `main`'s Ctrl-C guard, when its own work begins.
    start = (
        "import sys, proxy.cli as cli\n"
        "work = cli._main\n"
        "def started(argv):\n"
        "    print('go', flush=True)\n"
        "    return work(argv)\n"
        "cli._main = started\n"
        "sys.exit(cli.main(['--port', sys.argv[1]]))\n"
    )
    # A shell running `.ci/run` in the background ignores SIGINT, and a child inherits
    # that: earshot honouring it would be right, and this test would wait in vain. The
    # child starts with SIGINT's default disposition, as a terminal's foreground job does.
    with process(
        [sys.executable, "-c", start, str(free_port())],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    ) as proc:
        assert proc.stdout is not None
        assert b"go\n" == proc.stdout.readline()  # `main` starts now: imports, config, serving

        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)

    assert b"Traceback" not in err
    assert proc.returncode in (0, 130)


def test_a_port_in_use_is_one_line_on_stderr(tmp_path: Path) -> None:
    """
    A port already in use: exit 1 with one line saying so, no "Unclosed client session".
    """
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "proxy", "--port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert 1 == done.returncode
    assert [f"earshot: cannot listen on 127.0.0.1:{port}: Address already in use"] == (
        done.stderr.splitlines()
    )


def test_the_paced_demo_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """
    The paced demo's figures: two turns (vad, then client), one tool call, one
    interruption, a cost.
    """
    log = tmp_path / "paced.jsonl"
    with log.open("wb") as out:
        subprocess.run(
            [sys.executable, "-m", "proxy", "demo", "--timeline"],
            stdout=out,
            stderr=subprocess.DEVNULL,
            timeout=120,
            cwd=ROOT,
            check=True,
        )
    capsys.readouterr()

    assert 0 == cli.main(["report", "--json", str(log)])
    (session,) = json.loads(capsys.readouterr().out)["sessions"]

    assert (2, 1, 1, "get_balance") == (
        session["turns"],
        session["tool_calls"],
        session["interruptions"],
        session["slowest_tool"]["name"],
    )
    assert session["cost_usd"] > 0
    # From the start marks (after VAD's silence window): ~350 ms to the tool call's
    # arguments, ~420 ms to the answer's audio (scripted pauses; a busy machine adds).
    assert 300 <= session["latency_ms"]["max"] <= 1500


def _sessions_per_worker(parent: int, port: int) -> dict[int, int]:
    """Established connections to `port` that each child of `parent` holds, from /proc."""
    established = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            established.add(fields[9])  # the socket's inode
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    counts = {}
    for child in map(int, children):
        inodes = set()
        for fd in Path(f"/proc/{child}/fd").iterdir():
            target = os.readlink(fd) if fd.is_symlink() else ""
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        counts[child] = len(inodes & established)
    return counts


def _sample_sum(text: str, sample: str, **labels: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample and labels.items() <= s.labels.items()
    )


async def test_one_scrape_adds_up_every_worker(upstream: Any, tmp_path: Path) -> None:
    """
    With `listen.workers: 2` and sessions on both workers, every scrape of the shared
    port shows the whole process: both workers, all sessions, all frames. On SIGTERM
    both exit and the folder of their metrics sockets is gone.
    """
    port, _log, config = _config(upstream, tmp_path, "")
    config.write_text(config.read_text().replace("listen: {", "listen: {workers: 2, "))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "proxy", "--config", str(config)]
    with process(command, env={**os.environ, "TMPDIR": str(tmp)}) as proc:
        await wait_healthy(port, proc)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            for _ in range(100):  # until both workers serve their metrics socket
                async with http.get(f"{url}/metrics") as answer:
                    if _sample_sum(await answer.text(), "earshot_workers") == 2:
                        break
                await asyncio.sleep(0.1)
            sockets = []
            while len(sockets) < 8 or min(_sessions_per_worker(proc.pid, port).values()) < 2:
                assert len(sockets) < 64, _sessions_per_worker(proc.pid, port)
                ws = await http.ws_connect(f"{url}/v1/realtime?model=gpt-realtime")
                await ws.receive(timeout=5)
                await ws.send_str('{"type":"conversation.item.retrieve","item_id":"i"}')
                sockets.append(ws)
            per_worker = _sessions_per_worker(proc.pid, port)
            assert 2 == len(per_worker)
            assert len(sockets) == sum(per_worker.values())
            n = len(sockets)
            for _ in range(50):  # until the last frame is relayed
                async with http.get(f"{url}/metrics") as answer:
                    text = await answer.text()
                if _sample_sum(text, "earshot_frames_total", direction="client") == n:
                    break
                await asyncio.sleep(0.1)
            for _ in range(6):  # one scrape after another, each reaching either worker
                async with http.get(f"{url}/metrics") as answer:
                    text = await answer.text()
                assert 2 == _sample_sum(text, "earshot_workers")
                assert n == _sample_sum(text, "earshot_sessions_active")
                assert n == _sample_sum(text, "earshot_sessions_total")
                assert n == _sample_sum(text, "earshot_frames_total", direction="client")
            for ws in sockets:
                await ws.close()
        assert 0 == await terminated(proc)
    assert [] == list(tmp.iterdir())


@pytest.mark.parametrize(
    ("config", "environ", "line"),
    [
        ("listen: {port: 99999}\n", {}, "config.listen.port: must be between 0 and 65535"),
        (
            "",
            {"EARSHOT_BOGUS_KEY": "1"},
            "env EARSHOT_BOGUS_KEY: matches no config key (EARSHOT_<SECTION>_<KEY>)",
        ),
    ],
)
def test_the_demo_with_a_bad_config_says_so_in_one_line(
    tmp_path: Path, config: str, environ: dict[str, str], line: str
) -> None:
    """
    `earshot demo` with a bad file or a stray `EARSHOT_*` variable: the problem on one
    line and exit 2, as every other command (it was a traceback and exit 1).
    """
    path = tmp_path / "c.yaml"
    path.write_text(config or "{}\n")
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "demo", "--config", str(path)],
        cwd=ROOT, capture_output=True, env={**os.environ, **environ}, timeout=60,
    )  # fmt: skip

    assert (2, [line]) == (done.returncode, done.stderr.decode().splitlines())


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    """
    `earshot report big.jsonl | head -1`: the reader closes the pipe after one line;
    earshot stops writing without a `BrokenPipeError` traceback.
    """
    log = tmp_path / "big.jsonl"
    record = b'{"ts":"2026-12-01T10:00:00.000000Z","level":"info","event":"ws.open","conn":"c_%d","model":"gpt-realtime"}\n'
    log.write_bytes(b"".join(record % n for n in range(20_000)))
    with process(
        [sys.executable, "-m", "proxy", "report", str(log)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read()
        proc.stderr.close()
        proc.wait(60)

    assert b"Traceback" not in err
    assert b"BrokenPipe" not in err


async def test_the_demo_upstream_serves_a_client_of_your_own_through_earshot(
    tmp_path: Path,
) -> None:
    """
    `earshot demo --upstream-only` serves the scripted upstream on a loopback port; an
    earshot pointed at it carries a client's session (here aiohttp's), and both stop on
    SIGTERM.
    """
    up, port = free_port(), free_port()
    with process(
        [sys.executable, "-m", "proxy", "demo", "--upstream-only", "--port", str(up)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
    ) as demo:
        assert demo.stderr is not None
        line = await asyncio.wait_for(asyncio.to_thread(demo.stderr.readline), 30)
        assert f"scripted Realtime upstream on http://127.0.0.1:{up}\n" == line.decode()
        env = {
            **os.environ,
            "EARSHOT_UPSTREAM_URL": f"http://127.0.0.1:{up}",
            "EARSHOT_LISTEN_PORT": str(port),
            "EARSHOT_LOG_OUTPUT": str(tmp_path / "log.jsonl"),
        }
        with process(
            [sys.executable, "-m", "proxy", "--config", "config/default.yaml"], cwd=ROOT, env=env
        ) as earshot:
            await wait_healthy(port, earshot)
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(f"http://127.0.0.1:{port}/v1/realtime?model=gpt-realtime") as ws,
            ):
                first = orjson.loads((await ws.receive(timeout=5)).data)
            assert 0 == await terminated(earshot)
        assert 0 == await terminated(demo)
        demo.stderr.close()

    assert "session.created" == first["type"]
    assert "ws.close" in (tmp_path / "log.jsonl").read_text()


def test_the_build_is_the_one_asked_for() -> None:
    """
    The per-frame modules run compiled exactly when the checkout was built with
    `WITH_MYPYC=1` (and the tests run with it set, as `.ci/run`'s second pass does):
    a compiled pass never silently tests the pure-Python modules, nor the other way round.
    """
    from proxy import build

    assert ("mypyc" if os.environ.get("WITH_MYPYC") == "1" else "python") == build()
