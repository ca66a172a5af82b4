"""
Build earshot's image with buildah on a Debian base made from packages, then check it.
Not part of the test run (it needs root, buildah and mmdebstrap: `apt-get install buildah
mmdebstrap`); its output is quoted in the closing notes.

    python tools/build_image.py                 # base + image + checks
    python tools/build_image.py --tag earshot:1 # another tag

1. **Base**: mmdebstrap makes a minimal Debian (`python3`, `python3-venv`,
   `ca-certificates`) as a tarball; buildah turns it into `localhost/earshot-base:<suite>`.
2. **Image**: `buildah bud` on the project's Dockerfile, unchanged but for
   `--build-arg BASE=…` (vfs storage, chroot isolation: no daemon, no overlay mounts).
3. **Checks**, on the built image:
   - its user is a numeric non-root uid, and `id -u` inside says the same;
   - its ENTRYPOINT + CMD start the proxy on port 8080: `/healthz` and `/readyz` answer
     200, and so does the image's own HEALTHCHECK command, run inside it;
   - a WebSocket session goes through it to an upstream on this machine, byte-exact;
   - SIGTERM (what a kubelet or `docker stop` sends) ends it with exit status 0, and
     its last record is `proxy.stop`;
   - it runs the compiled build (mypyc): its `proxy.start` record says `build: mypyc`.

Behind a proxy that re-signs TLS, the build's pip needs that proxy's CA: the host's CA
bundle is lent to every RUN step, read-only (`--ca-file`, `--no-host-ca` to skip it).
Nothing of it stays in the image.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
EXCLUDED = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")


def _buildah(*args: str, capture: bool = True) -> str:
    done = subprocess.run(
        ["buildah", "--storage-driver", "vfs", *args],
        check=True,
        text=True,
        stdout=subprocess.PIPE if capture else None,
    )
    return done.stdout.strip() if capture else ""


def _step(name: str, started: float) -> float:
    now = time.monotonic()
    print(f"  {name}: {now - started:.1f} s", flush=True)
    return now


def build_base(suite: str, mirror: str, work: Path) -> str:
    """A minimal Debian with Python as an image; its name."""
    tarball = work / "base.tar"
    subprocess.run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=minbase",
            f"--include={BASE_PACKAGES}",
            *(f"--dpkgopt=path-exclude={glob}" for glob in EXCLUDED),
            '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
            suite,
            str(tarball),
            mirror,
        ],
        check=True,
    )
    (work / "Containerfile").write_text('FROM scratch\nADD base.tar /\nCMD ["python3"]\n')
    name = f"localhost/earshot-base:{suite}"
    _buildah("bud", "--quiet", "--isolation", "chroot", "-t", name, str(work), capture=False)
    return name


def build_image(base: str, tag: str, ca_file: Path | None) -> None:
    volumes = ["-v", f"{ca_file}:{HOST_CA}:ro"] if ca_file else []
    _buildah(
        "bud",
        "--quiet",
        "--isolation",
        "chroot",
        "--layers=false",
        "--format",
        "docker",  # the OCI format has no HEALTHCHECK
        *volumes,
        "--build-arg",
        f"BASE={base}",
        "-t",
        tag,
        str(ROOT),
        capture=False,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _descendant(pid: int, needle: str) -> int:
    """The process under `pid` whose command line holds `needle` and is a Python."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            argv = (Path("/proc") / str(current) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            argv = []
        if argv and argv[0].endswith(b"python3") and needle.encode() in b" ".join(argv):
            return current
        todo.extend(children.get(current, []))
    raise LookupError(f"no process running {needle} under {pid}")


async def _echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=("realtime",))
    await ws.prepare(request)
    await ws.send_str('{"type":"session.created","event_id":"e0","session":{"id":"s"}}')
    async for msg in ws:
        await ws.send_str(msg.data)
    return ws


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return int(answer.status)
    except OSError:
        return 0


async def check_image(tag: str) -> list[tuple[str, bool, str]]:
    """Runs the image's command and checks it; (check, passed, detail) rows."""
    results: list[tuple[str, bool, str]] = []
    image = json.loads(_buildah("inspect", "--type", "image", tag))
    config = image["Docker"]["config"]
    user = str(config.get("User", ""))
    uid = user.split(":")[0]
    results.append(("numeric non-root USER", uid.isdigit() and uid != "0", f"USER {user}"))

    container = _buildah("from", "--quiet", tag)
    upstream = web.Application()
    upstream.router.add_get("/v1/realtime", _echo)
    runner = web.AppRunner(upstream)
    await runner.setup()
    up_port, port = _free_port(), 8080
    await web.TCPSite(runner, "127.0.0.1", up_port).start()
    try:
        inside = _buildah("run", "--isolation", "chroot", container, "--", "id", "-u")
        results.append(("id -u inside", inside == uid, inside))

        argv = [*config.get("Entrypoint", []), *config.get("Cmd", [])]
        proc = await asyncio.create_subprocess_exec(
            "buildah",
            "--storage-driver",
            "vfs",
            "run",
            "--isolation",
            "chroot",
            "-e",
            f"EARSHOT_UPSTREAM_URL=http://127.0.0.1:{up_port}",
            container,
            "--",
            *argv,
            stdout=asyncio.subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while _get(f"http://127.0.0.1:{port}/healthz") != 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        for path in ("/healthz", "/readyz"):
            status = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}{path}")
            results.append((f"{' '.join(argv)}: {path}", status == 200, str(status)))
        probe = (config.get("Healthcheck") or {}).get("Test") or ["NONE"]  # ["CMD", argv…]
        try:
            _buildah("run", "--isolation", "chroot", container, "--", *probe[1:])
            results.append(("HEALTHCHECK command inside", True, probe[0]))
        except subprocess.CalledProcessError as exc:
            results.append(("HEALTHCHECK command inside", False, f"exit {exc.returncode}"))

        frame = '{"type":"input_audio_buffer.append","event_id":"c1","audio":"' + "A" * 6400 + '"}'
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(
                f"http://127.0.0.1:{port}/v1/realtime?model=gpt-realtime",
                headers={"Authorization": "Bearer sk-image-check"},
                protocols=("realtime",),
            )
            greeting = await ws.receive_str(timeout=10)
            await ws.send_str(frame)
            echoed = await ws.receive_str(timeout=10)
            await ws.close()
        results.append(
            ("a session through it, byte-exact", echoed == frame, f"greeting {greeting[:28]}…")
        )

        os.kill(_descendant(proc.pid, "earshot"), signal.SIGTERM)
        written, _ = await asyncio.wait_for(proc.communicate(), 30)
        status = proc.returncode
        records = [json.loads(line) for line in written.splitlines() if line.startswith(b"{")]
        events = [r["event"] for r in records]
        results.append(("SIGTERM: exit status 0", status == 0, str(status)))
        results.append(
            (
                "records: ws.open, ws.close, then proxy.stop last",
                {"ws.open", "ws.close"} <= set(events) and events[-1:] == ["proxy.stop"],
                f"{len(events)} records",
            )
        )
        builds = [r.get("build") for r in records if r["event"] == "proxy.start"]
        results.append(("the compiled build runs (proxy.start)", builds == ["mypyc"], str(builds)))
        leaked = b"sk-image-check" in written
        results.append(("the client's key in no record", not leaked, ""))
    finally:
        await runner.cleanup()
        subprocess.run(
            ["buildah", "--storage-driver", "vfs", "rm", container],
            check=False,
            stdout=subprocess.DEVNULL,
        )
    return results


def _version() -> str:
    """The project's version (pyproject.toml): the image's tag, as the manifests pin it."""
    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    found = re.search(r'^version = "([^"]+)"', text, re.M)
    return found.group(1) if found else "dev"


def _prune() -> None:
    """Remove what the build left: dangling layers of this and earlier runs (~415 MB a run
    before), and working containers. The base and the image stay."""
    subprocess.run(
        ["buildah", "--storage-driver", "vfs", "rm", "--all"], capture_output=True, check=False
    )
    subprocess.run(
        ["buildah", "--storage-driver", "vfs", "rmi", "--prune"], capture_output=True, check=False
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--suite", default="bookworm")
    parser.add_argument("--mirror", default="http://deb.debian.org/debian")
    # One version, one tag: the manifests' `images:` pin names the same (README: push it).
    parser.add_argument("--tag", default=f"localhost/earshot:{_version()}")
    parser.add_argument("--ca-file", type=Path, default=HOST_CA if HOST_CA.exists() else None)
    parser.add_argument("--no-host-ca", action="store_true")
    args = parser.parse_args()
    for tool in ("buildah", "mmdebstrap"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (apt-get install buildah mmdebstrap)", file=sys.stderr)
            return 2
    ca_file = None if args.no_host_ca else args.ca_file
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 8080)) == 0:
            print("port 8080 is in use here; the checks run the image on it", file=sys.stderr)
            return 2

    print(f"building {args.tag} on Debian {args.suite}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as work:
        base = build_base(args.suite, args.mirror, Path(work))
    now = _step(f"base {base} (mmdebstrap + buildah)", started)
    build_image(base, args.tag, ca_file)
    _step(f"image {args.tag} (buildah bud)", now)
    _step("total build", started)
    for name in (base, args.tag):
        size = _buildah("images", "--format", "{{.Size}}", name)
        print(f"  size of {name}: {size}")

    results = asyncio.run(check_image(args.tag))
    _prune()
    print("checks:")
    for check, passed, detail in results:
        print(f"  {'ok  ' if passed else 'FAIL'} {check}" + (f" ({detail})" if detail else ""))
    return 0 if all(passed for _, passed, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
