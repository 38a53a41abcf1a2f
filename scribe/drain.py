"""A node's graceful shutdown (SIGTERM): it takes no new work, lets every live stream send the finals it owes (each
utterance that ended) and move to another node, and leaves unfinished uploads to the durable job queue, all within
`shutdown_grace_s`. The stream route registers its sessions here; `scribe serve` runs `drain` before uvicorn
closes its sockets, so `/healthz` can say why the node is not ready while it drains."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar

log = logging.getLogger("scribe.drain")

DRAINING_REASON = "the node is shutting down (draining): it takes no new streams"
POLL_S = 0.05
WAKE_S = 0.25  # how soon a request waiting for work notices the drain
T = TypeVar("T")


class Drainable(Protocol):
    """A live stream as the drain sees it (scribe.streaming.session.StreamingSession)."""

    def drain(self) -> None: ...  # read no more audio, send the finals owed, then `reconnect` + 1012
    def abandon(self) -> None: ...  # the grace is over: `reconnect` + 1012 now, the rest is recognised on resume


class NodeDrain:
    """The node's drain state: whether it drains, its deadline, and the live streams it must move."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        # the last part of the grace is kept for closing what is still open, and for uvicorn's own shutdown
        self.reserve_s = min(5.0, grace_s / 4)
        self.jobs_stop = threading.Event()  # set when draining: upload workers claim no new job
        self._started: float | None = None
        self._streams: set[Drainable] = set()

    @property
    def draining(self) -> bool:
        return self._started is not None

    @property
    def live_streams(self) -> int:
        return len(self._streams)

    def remaining_s(self) -> float:
        """Seconds left of the grace period (all of it before the drain begins)."""
        if self._started is None:
            return self.grace_s
        return max(0.0, self._started + self.grace_s - time.monotonic())

    @contextmanager
    def stream(self, session: Drainable) -> Iterator[None]:
        """Register a live stream for its lifetime; one that starts while the node drains is drained at once."""
        self._streams.add(session)
        if self.draining:
            session.drain()
        try:
            yield
        finally:
            self._streams.discard(session)

    def begin(self) -> None:
        """Take no new work from now on, and tell every live stream to finish and move."""
        if self._started is not None:
            return
        self._started = time.monotonic()
        self.jobs_stop.set()
        log.info("draining: %d live streams, grace %.0f s", self.live_streams, self.grace_s)
        for session in list(self._streams):
            session.drain()

    async def until_draining(self, work: Awaitable[T], timeout_s: float) -> T | None:
        """`work`'s result (its error raised), or None after `timeout_s` or once the drain begins: a request
        waiting for work the job queue also holds answers then rather than keep the node up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        task = asyncio.ensure_future(work)
        try:
            while not task.done() and not self.draining and loop.time() < deadline:
                await asyncio.wait([task], timeout=min(WAKE_S, deadline - loop.time()))
            return task.result() if task.done() else None
        finally:
            if not task.done():
                task.cancel()

    async def run(self, forced: Callable[[], bool] = lambda: False) -> None:
        """Drain the streams: wait for each to move; those still open when only the reserve of the grace is
        left are abandoned (closed with `reconnect` at once). Returns early when `forced` (a second Ctrl-C)."""
        self.begin()
        while self._streams and self.remaining_s() > self.reserve_s and not forced():
            await asyncio.sleep(POLL_S)
        if self._streams and not forced():
            log.warning("drain: grace nearly over, closing %d streams that are still finishing", self.live_streams)
            for session in list(self._streams):
                session.abandon()
            while self._streams and self.remaining_s() > self.reserve_s / 2 and not forced():
                await asyncio.sleep(POLL_S)
        log.info("drained: %d streams still open, %.1f s of the grace left", self.live_streams, self.remaining_s())
