"""One queue per engine for every session's passes: finalising passes first, then whoever has waited longest.

Passes run on as many worker threads as the engine serves calls at once (Whisper on the CPU:
a call per core, a call on more threads being slower; MedASR: one call on every core). Each session has at most one
request waiting; a free worker picks a finalising request first (an endpoint or the end
of input: a final is what a clinician waits for), then the request waiting longest. A
session that asks again joins the back, so under load every session gets a pass per round
and each pass simply covers more audio. Priority is read when a worker picks, not when the
request was made: a session whose speech ended while it waited moves ahead.

`congested` tells sessions that passes have had to queue lately: they then make finals only
from whole-utterance passes and ask for partials less often (see WhisperStream), so load
costs partial latency, never final accuracy.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Request(Generic[T]):
    job: Callable[[], T]
    urgent: Callable[[], bool]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop
    since: float = field(default_factory=time.monotonic)


CONGESTED_HOLD_S = 3.0  # how long after a pass last had to wait the scheduler still counts as congested
CONGESTED_WAIT_S = 0.25  # a wait shorter than this is scheduling noise, not load


class PassScheduler:
    """Runs jobs on `workers` daemon threads, started on first use."""

    def __init__(self, name: str = "asr", workers: int = 1) -> None:
        self.name = name
        self.workers = max(1, workers)
        self._cond = threading.Condition()
        self._waiting: list[_Request[Any]] = []
        self._threads: list[threading.Thread] = []
        self._waited_at = float("-inf")  # when a request last started after waiting CONGESTED_WAIT_S or more

    def congested(self) -> bool:
        """Passes queue for want of a worker now, or did within the last CONGESTED_HOLD_S."""
        now = time.monotonic()
        with self._cond:
            if any(now - r.since >= CONGESTED_WAIT_S for r in self._waiting):
                return True
            return now - self._waited_at < CONGESTED_HOLD_S

    @property
    def waiting(self) -> int:
        """Requests queued and not started."""
        with self._cond:
            return len(self._waiting)

    async def run(self, job: Callable[[], T], urgent: Callable[[], bool] = lambda: False) -> T:
        """Queue `job`, wait for its turn and its result (its exception is raised here).

        Cancelling the wait before the job starts withdraws it; once it runs, it runs to the end
        and the result is dropped.
        """
        loop = asyncio.get_running_loop()
        request: _Request[T] = _Request(job, urgent, loop.create_future(), loop)
        with self._cond:
            self._waiting.append(request)
            if not self._threads:
                self._threads = [
                    threading.Thread(target=self._work, name=f"{self.name}-{i}", daemon=True)
                    for i in range(self.workers)
                ]
                for thread in self._threads:
                    thread.start()
            self._cond.notify()
        try:
            return await request.future
        except asyncio.CancelledError:
            with self._cond:
                if request in self._waiting:
                    self._waiting.remove(request)
            raise

    def _next(self) -> _Request[Any]:
        with self._cond:
            while not self._waiting:
                self._cond.wait()
            chosen = min(self._waiting, key=lambda r: (not _safely(r.urgent), r.since))
            self._waiting.remove(chosen)
            now = time.monotonic()
            if now - chosen.since >= CONGESTED_WAIT_S:
                self._waited_at = now
            return chosen

    def _work(self) -> None:
        while True:
            request = self._next()
            if request.future.done():  # withdrawn
                continue
            try:
                result, error = request.job(), None
            except BaseException as exc:  # handed to the waiting session, which decides
                result, error = None, exc
            try:
                request.loop.call_soon_threadsafe(_deliver, request.future, result, error)
            except RuntimeError:  # the waiting event loop is closed: nobody wants the result
                pass


def _safely(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        return False


def _deliver(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
