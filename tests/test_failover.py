"""A live stream failing over again and again: 20 times its node is stopped with SIGTERM, 20 times killed with
SIGKILL, alternately, on two real `scribe serve` nodes with speech recognition, one PostgreSQL database and one
audio directory. The client (the Python streaming client) goes wherever the load balancer sends it and resumes;
the counts of acknowledged bytes lost and bytes stored twice, and how soon each resume began, are printed and
written to the test artifacts."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile

from scribe.config import Settings
from scribe.store import open_database
from scribe.streaming.client import LiveAudio, pcm16, percentile, stream_pcm
from tests.accounts import enrol
from tests.conftest import ARTIFACTS, SAMPLES
from tests.helpers.server import free_port, launch_server, wait_until_serving
from tests.test_multinode import DR_A, PUBLIC_URL, new_database

pytestmark = pytest.mark.slow

CYCLES = 40  # alternately SIGTERM and SIGKILL: 20 of each
LEASE_S = 3.0  # the nodes' SCRIBE_STREAM_LEASE_S: a killed node's claim on the stream runs out this soon
SLICE_BYTES = 32000  # audio (1 s) a node must acknowledge before it is stopped
FRAME_BYTES = 3200  # 100 ms, captured in real time


@dataclass
class FailoverNode:
    """One `scribe serve`, restartable on its port."""

    name: str
    data_dir: Path
    models_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    starts: int = 0

    def start(self) -> None:
        """Launch and wait until it can stream (its model loaded)."""
        self.starts += 1
        log = self.data_dir / f"node-{self.name}-{self.starts}.log"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = launch_server(
            self.data_dir, self.port, self.models_dir, log=log, env={**self.env, "SCRIBE_NODE_ID": f"node-{self.name}"}
        )
        wait_until_serving(self.process, self.port, log=log)

    def stop(self, how: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(how)

    def wait_gone(self) -> int:
        assert self.process is not None
        return self.process.wait(timeout=60)

    def logs(self) -> str:
        return "".join(path.read_text() for path in sorted(self.data_dir.glob(f"node-{self.name}-*.log")))


def looped_speech() -> np.ndarray:
    """The dictation samples one after another: played again and again as the microphone."""
    parts = [soundfile.read(str(path), dtype="float32")[0] for path in sorted(SAMPLES.glob("*.wav"))]
    speech = np.concatenate(parts)
    return speech[: len(speech) - len(speech) % (FRAME_BYTES // 2)]  # whole frames, so the loop stays aligned


def test_forty_failovers_lose_and_repeat_no_acknowledged_audio(tmp_path: Path, models_dir: Path):
    with new_database() as url:
        tester = open_database(Settings(data_dir=tmp_path / "tester", database_url=url))
        enrol(tester, DR_A)
        tester.engine.dispose()
        env = {
            "SCRIBE_DATABASE_URL": url,
            "SCRIBE_AUDIO_DIR": str(tmp_path / "shared-audio"),
            "SCRIBE_PUBLIC_URL": PUBLIC_URL,
            "SCRIBE_STREAM_LEASE_S": str(LEASE_S),
        }
        nodes = [FailoverNode(name, tmp_path / f"data-{name}", models_dir, env) for name in ("a", "b")]
        nodes[0].start()  # one after the other: both migrating an empty database is the multinode tests' job
        nodes[1].start()
        try:
            figures, sent, transcript = asyncio.run(_fail_over(nodes))
        finally:
            for node in nodes:
                if node.process is not None and node.process.poll() is None:
                    node.stop(signal.SIGTERM)
                    node.wait_gone()
        stored = (tmp_path / "shared-audio" / "enc-failover" / "audio.pcm").read_bytes()

    figures["sent_bytes"], figures["stored_bytes"] = len(sent), len(stored)
    figures["duplicated_bytes"] = max(0, len(stored) - len(sent))
    figures["missing_bytes"] = max(0, len(sent) - len(stored))
    print("\nfailover:", json.dumps(figures, indent=1))
    (ARTIFACTS / "failover.json").parent.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "failover.json").write_text(json.dumps(figures, indent=2) + "\n")

    assert figures["cycles"] == {"SIGTERM": CYCLES // 2, "SIGKILL": CYCLES // 2}
    assert figures["acked_bytes_lost"] == 0 and figures["duplicated_bytes"] == figures["missing_bytes"] == 0
    assert stored == sent  # every byte, once, in order
    assert max(figures["resume_s"]["SIGTERM"]) <= 5.0, figures  # the target: on the other node within 5 s
    assert max(figures["resume_s"]["SIGKILL"]) <= LEASE_S + 5.0, figures  # once the dead node's lease runs out
    segments = transcript["segments"]
    assert segments and [s["id"] for s in segments] == list(range(len(segments)))
    for node in nodes:
        assert "Traceback" not in node.logs()


async def _fail_over(nodes: list[FailoverNode]) -> tuple[dict, bytes, dict]:
    """Stream while stopping the serving node CYCLES times; the figures, the audio sent and the transcript."""
    speech = pcm16(looped_speech())
    live = LiveAudio()
    serving = 0  # the node the load balancer sends new connections to
    acked = 0  # the last `ack`'s received_bytes
    readies: list[tuple[float, int]] = []  # (when, received_bytes) of every `ready`
    progress = asyncio.Event()
    figures: dict = {
        "cycles": {"SIGTERM": 0, "SIGKILL": 0},
        "resume_s": {"SIGTERM": [], "SIGKILL": []},
        "acked_bytes_lost": 0,
        "lease_s": LEASE_S,
    }

    def heard(message: dict) -> None:
        nonlocal acked
        if message["type"] == "ack":
            acked = int(message["received_bytes"])
        elif message["type"] == "ready":  # a resume must start at or past every byte ever acknowledged
            received = int(message["received_bytes"])
            figures["acked_bytes_lost"] += max(0, acked - received)
            readies.append((time.monotonic(), received))
        progress.set()

    def route(url: str, **kwargs):
        import websockets

        return websockets.connect(f"ws://127.0.0.1:{nodes[serving].port}/v1/encounters/enc-failover/stream", **kwargs)

    async def capture() -> None:
        """The microphone: 100 ms at a time in real time, until the cycles are done."""
        position, began = 0, time.monotonic()
        while not done_cycles.is_set():
            live.append(speech[position % len(speech) : position % len(speech) + FRAME_BYTES])
            position += FRAME_BYTES
            await asyncio.sleep(max(0.0, began + position / 32000 - time.monotonic()))
        live.close()

    async def until(condition, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if streamer.done():
                streamer.result()  # the stream failed: its error, not a timeout
                raise AssertionError("the stream ended before the cycles did")
            progress.clear()
            remaining = deadline - time.monotonic()
            assert remaining > 0, "timed out"
            try:
                await asyncio.wait_for(progress.wait(), min(remaining, 0.5))
            except TimeoutError:
                pass

    done_cycles = asyncio.Event()
    restarting: asyncio.Task | None = None

    async def cycles() -> None:
        nonlocal serving, restarting
        await until(lambda: readies, 60)
        for cycle in range(CYCLES):
            how = signal.SIGTERM if cycle % 2 == 0 else signal.SIGKILL
            await until(lambda start=acked: acked >= start + SLICE_BYTES, 60)
            if restarting is not None:
                await restarting  # the other node is up again: there is somewhere to go
            victim = nodes[serving]
            stopped_at, seen = time.monotonic(), len(readies)
            victim.stop(how)
            serving = 1 - serving
            await until(lambda seen=seen: len(readies) > seen, 60)
            figures["cycles"][how.name] += 1
            figures["resume_s"][how.name].append(round(readies[seen][0] - stopped_at, 3))
            restarting = asyncio.create_task(asyncio.to_thread(_restart, victim))
        done_cycles.set()

    async def stream() -> dict:
        result = await stream_pcm(
            "ws://load-balancer",
            live,
            token=DR_A["Authorization"].split()[1],
            on_message=heard,
            connect=route,
            max_reconnects=10,
        )
        assert result.transcript is not None
        return result.transcript

    streamer = asyncio.create_task(stream())
    try:
        await asyncio.gather(capture(), cycles())
        transcript = await asyncio.wait_for(streamer, 120)
    finally:
        streamer.cancel()
    if restarting is not None:
        await restarting
    for how in ("SIGTERM", "SIGKILL"):
        times = figures["resume_s"][how]
        figures[f"resume_p50_s_{how}"], figures[f"resume_p95_s_{how}"] = percentile(times, 50), percentile(times, 95)
    return figures, bytes(live.data), transcript


def _restart(node: FailoverNode) -> None:
    """Wait for the stopped node to exit (a drained one exits 0), then start it again."""
    code = node.wait_gone()
    assert code in (0, -signal.SIGKILL), (code, node.logs()[-3000:])
    node.start()
