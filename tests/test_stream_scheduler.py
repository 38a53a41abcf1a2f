"""PassScheduler: finalising requests first, then the longest-waiting; errors reach the caller."""

import asyncio
import threading

import pytest

from scribe.streaming.scheduler import PassScheduler


def test_finalising_first_then_longest_waiting():
    scheduler = PassScheduler("test-asr")
    gate = threading.Event()
    order: list[str] = []

    def job(name):
        def run():
            if name == "blocker":
                gate.wait(5)
            order.append(name)
            return name

        return run

    async def main():
        blocker = asyncio.create_task(scheduler.run(job("blocker")))
        await asyncio.sleep(0.05)  # the worker is now busy with the blocker
        urgent_later = {"flag": False}
        tasks = [
            asyncio.create_task(scheduler.run(job("partial-a"))),
            asyncio.create_task(scheduler.run(job("partial-b"))),
            asyncio.create_task(scheduler.run(job("final-c"), urgent=lambda: True)),
            asyncio.create_task(scheduler.run(job("became-final-d"), urgent=lambda: urgent_later["flag"])),
        ]
        await asyncio.sleep(0.05)
        assert scheduler.waiting == 4
        urgent_later["flag"] = True  # its speech ended while it waited: priority is read at pick time
        gate.set()
        return [await blocker] + [await t for t in tasks]

    results = asyncio.run(main())
    assert results == ["blocker", "partial-a", "partial-b", "final-c", "became-final-d"]
    assert order == ["blocker", "final-c", "became-final-d", "partial-a", "partial-b"]


def test_a_failing_job_raises_in_its_caller_and_the_worker_goes_on():
    scheduler = PassScheduler("test-asr")

    def boom():
        raise ValueError("bad audio")

    async def main():
        with pytest.raises(ValueError, match="bad audio"):
            await scheduler.run(boom)
        return await scheduler.run(lambda: 42)

    assert asyncio.run(main()) == 42


def test_a_withdrawn_request_never_runs():
    scheduler = PassScheduler("test-asr")
    gate = threading.Event()
    ran: list[str] = []

    async def main():
        blocker = asyncio.create_task(scheduler.run(lambda: gate.wait(5)))
        await asyncio.sleep(0.05)
        withdrawn = asyncio.create_task(scheduler.run(lambda: ran.append("withdrawn")))
        await asyncio.sleep(0.05)
        withdrawn.cancel()
        with pytest.raises(asyncio.CancelledError):
            await withdrawn
        assert scheduler.waiting == 0
        gate.set()
        await blocker
        await scheduler.run(lambda: ran.append("next"))

    asyncio.run(main())
    assert ran == ["next"]


def test_two_workers_run_two_jobs_at_once():
    scheduler = PassScheduler("test-asr", workers=2)
    both_running = threading.Barrier(2, timeout=5)

    def job(name):
        def run():
            both_running.wait()  # breaks (and raises) unless the other job runs at the same time
            return name

        return run

    async def main():
        return await asyncio.gather(scheduler.run(job("a")), scheduler.run(job("b")))

    assert asyncio.run(main()) == ["a", "b"]


def test_congested_while_passes_queue_and_for_a_while_after(monkeypatch):
    import scribe.streaming.scheduler as scheduler_module

    monkeypatch.setattr(scheduler_module, "CONGESTED_HOLD_S", 0.5)
    scheduler = PassScheduler("test", workers=1)
    release = threading.Event()

    async def main() -> None:
        assert not scheduler.congested()
        first = asyncio.create_task(scheduler.run(release.wait))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(scheduler.run(lambda: None))  # waits for the only worker
        await asyncio.sleep(scheduler_module.CONGESTED_WAIT_S + 0.1)
        assert scheduler.congested()  # a request has waited long enough to count as load
        release.set()
        await asyncio.gather(first, second)
        assert scheduler.congested()  # it ran after waiting: the load is recent
        await asyncio.sleep(0.6)
        assert not scheduler.congested()

    asyncio.run(main())
