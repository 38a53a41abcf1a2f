"""`scribe` as a real subprocess (tests that use these are `slow`): a CLI run to its end, or `scribe serve` on a
free port for the tests that need the whole service process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.accounts import KEY

# `scribe` as a subprocess of this interpreter (the venv's), whatever console scripts are on PATH.
SCRIBE = (sys.executable, "-c", "from scribe.cli import main; main()")


def run_scribe(*args: object, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`scribe ARGS` run to its end, its output captured as text; `env` adds to this process's environment."""
    return subprocess.run(
        [*SCRIBE, *map(str, args)], env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_server(
    data_dir: Path,
    port: int,
    models_dir: Path | None = None,
    *,
    asr: bool = True,
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> subprocess.Popen:
    """`scribe serve` on `port` with its own data directory, returned at once; `env` adds to or overrides the
    settings, `log` takes its output (else a pipe). The bundled Whisper of `models_dir` is linked in, not rebuilt."""
    environment = {**os.environ, "SCRIBE_DATA_DIR": str(data_dir), "SCRIBE_SECRET_KEY": KEY, **(env or {})}
    (data_dir / "models").mkdir(parents=True, exist_ok=True)
    if (
        models_dir is not None
        and not (data_dir / "models" / "whisper-base").exists()
        and (models_dir / "whisper-base").exists()
    ):
        (data_dir / "models" / "whisper-base").symlink_to(models_dir / "whisper-base")
    output = log.open("w") if log is not None else subprocess.PIPE
    try:
        return subprocess.Popen(
            [*SCRIBE, "serve", "--port", str(port), *([] if asr else ["--no-asr"])],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    finally:
        if log is not None:
            output.close()


def wait_until_serving(proc: subprocess.Popen, port: int, *, ready: bool = True, log: Path | None = None) -> None:
    """Wait until the server answers /healthz (and, with `ready`, can stream); its output if it exits first."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json()
            if health["ready"] or not ready:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            output = log.read_text() if log is not None else proc.stdout.read() if proc.stdout else ""
            raise AssertionError(output or "server exited")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not become ready")


def start_server(data_dir: Path, port: int, models_dir: Path, **settings: str) -> subprocess.Popen:
    """`launch_server`, returned once it can stream; `settings` are SCRIBE_* variables for it."""
    proc = launch_server(data_dir, port, models_dir, env=settings)
    wait_until_serving(proc, port)
    return proc


def memory_kb(pid: int, *, reset_peak: bool = False) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of process `pid`; `reset_peak` first starts a new peak (Linux clear_refs 5)."""
    if reset_peak:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def request_head(port: int, path: str, token: str, media: str, length: int | None) -> bytes:
    """A POST's head as written on a socket: a declared `length`, or chunked when None."""
    size = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {media}\r\n{size}\r\n\r\n"
    ).encode()


def send_until_answered(port: int, head: bytes, chunks, *, chunked: bool) -> tuple[bytes, int, float]:
    """Send `head` then body chunks until the server answers (or stops reading); (answer, body bytes sent, seconds)."""
    import select as io_select

    started = time.perf_counter()
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head)
        for chunk in chunks:
            if io_select.select([sock], [], [], 0)[0]:
                break
            frame = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk
            try:
                sock.sendall(frame)
            except OSError:  # the server answered and closed: read what it said
                break
            sent += len(chunk)
        sock.settimeout(30)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except OSError:
            pass
    return answer, sent, time.perf_counter() - started
