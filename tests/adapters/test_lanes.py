"""The rate governor's priority lanes: while a vendor's window is full, waiting requests go by
lane (real time, a user's, scheduled, backfill), first come first served within one; the worker
sets the lane of each activity from its request."""

from __future__ import annotations

import asyncio
import contextvars

import httpx
from temporalio.exceptions import ApplicationError

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from services.adapters import worker
from services.adapters.common import Pacer, current_lane
from services.adapters.ghl.client import GhlPacer
from services.adapters.salesforce.client import Allowance, AllowancePolicy
from services.adapters.zenoti.client import Pacer as ZenotiPacer


class Clock:
    """A clock that moves only when a waiter sleeps; sleeping waits for the gate to open."""

    def __init__(self) -> None:
        self.now = 0.0
        self.gate = asyncio.Event()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await self.gate.wait()


async def _served_in_order(pacer: Pacer, clock: Clock, lanes: list[tuple[str, int]]) -> list[str]:
    served: list[str] = []

    async def request(name: str, lane: int) -> None:
        current_lane.set(lane)
        await pacer.acquire()
        served.append(name)

    await pacer.acquire()  # the window is full from here on
    first = asyncio.create_task(request("user-1", pb.LANE_USER), context=contextvars.copy_context())
    # Each loop below yields to the event loop until the state it names is reached (no time passes).
    while clock.now == 0:  # noqa: ASYNC110 (user-1 holds the pacer, waiting for the window)
        await asyncio.sleep(0)
    tasks = [asyncio.create_task(request(name, lane), context=contextvars.copy_context()) for name, lane in lanes]
    while pacer._lock.waiting < len(lanes):  # noqa: SLF001, ASYNC110
        await asyncio.sleep(0)
    clock.gate.set()
    await asyncio.gather(first, *tasks)
    return served


async def test_waiters_are_served_by_lane_then_by_arrival() -> None:
    clock = Clock()
    pacer = Pacer(1, 10.0, clock=clock, sleep=clock.sleep)
    lanes = [
        ("backfill-1", pb.LANE_BACKFILL),
        ("scheduled-1", pb.LANE_SCHEDULED),
        ("backfill-2", pb.LANE_BACKFILL),
        ("realtime-1", pb.LANE_REALTIME),
        ("user-2", pb.LANE_USER),
        ("realtime-2", pb.LANE_REALTIME),
    ]
    served = await _served_in_order(pacer, clock, lanes)
    assert served == ["user-1", "realtime-1", "realtime-2", "user-2", "scheduled-1", "backfill-1", "backfill-2"]
    assert clock.now == 70.0 and pacer.waited_seconds == 70.0  # one request per window, none lost


async def test_zenotis_pacer_serves_by_lane_too() -> None:
    clock = Clock()
    pacer = ZenotiPacer(limit=1, window=10.0, clock=clock, sleep=clock.sleep)
    served = await _served_in_order(pacer, clock, [("backfill", pb.LANE_BACKFILL), ("realtime", pb.LANE_REALTIME)])
    assert served == ["user-1", "realtime", "backfill"]


async def test_a_waiter_that_gives_up_leaves_the_queue() -> None:
    clock = Clock()
    pacer = Pacer(1, 10.0, clock=clock, sleep=clock.sleep)
    await pacer.acquire()
    holder = asyncio.create_task(pacer.acquire())
    while not clock.now:  # noqa: ASYNC110 (the holder is waiting for the window)
        await asyncio.sleep(0)
    quitter = asyncio.create_task(pacer.acquire())
    while pacer._lock.waiting < 1:  # noqa: SLF001, ASYNC110
        await asyncio.sleep(0)
    quitter.cancel()
    await asyncio.gather(quitter, return_exceptions=True)
    assert pacer._lock.waiting == 0  # noqa: SLF001
    clock.gate.set()
    await holder
    await pacer.acquire()  # the lock is free again


async def test_the_worker_runs_each_call_in_its_requests_lane(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(worker.activity, "heartbeat", lambda *args: None)  # outside a real activity
    seen: list[int] = []

    async def call() -> None:
        seen.append(current_lane.get())

    for lane in (pb.LANE_BACKFILL, pb.LANE_REALTIME, pb.LANE_UNSPECIFIED):
        await asyncio.create_task(worker._alive(call(), lane))  # noqa: SLF001
    assert seen == [pb.LANE_BACKFILL, pb.LANE_REALTIME, pb.LANE_USER]


# --- what each lane may spend, and replicas ----------------------------------------------------------


async def test_near_the_daily_allowance_backfills_stop_first_and_real_time_goes_on() -> None:
    allowance = Allowance(AllowancePolicy(), clock=lambda: 0.0)
    allowance.observe(httpx.Headers({"Sforce-Limit-Info": "api-usage=86000/100000"}))  # 86 %: spacing applies
    allowance.gap = lambda: 0.0  # type: ignore[method-assign]  # this test is about stopping, not spacing

    async def admitted(lane: int) -> bool:
        current_lane.set(lane)
        try:
            await allowance.admit()
        except ApplicationError as refusal:
            assert refusal.type == "VendorAllowanceLow" and refusal.next_retry_delay == AllowancePolicy().backoff
            return False
        return True

    async def lanes() -> list[bool]:
        return [await admitted(lane) for lane in (pb.LANE_BACKFILL, pb.LANE_SCHEDULED, pb.LANE_USER, pb.LANE_REALTIME)]

    assert await asyncio.create_task(lanes(), context=contextvars.copy_context()) == [False, True, True, True]
    allowance.observe(httpx.Headers({"Sforce-Limit-Info": "api-usage=91000/100000"}))
    assert await asyncio.create_task(lanes(), context=contextvars.copy_context()) == [False, False, True, True]


async def test_a_replica_paces_its_share_of_the_limit() -> None:
    clock = Clock()
    clock.gate.set()
    pacer = Pacer(100, 10.0, clock=clock, sleep=clock.sleep, share=0.25)
    for _ in range(50):
        await pacer.acquire()
    # 25 a window: the 26th waited one window, the 50th is still in the second.
    assert clock.now == 10.0 and pacer.capacity == 25


async def test_ghl_saying_none_remain_holds_every_request_for_a_window() -> None:
    clock = Clock()
    clock.gate.set()
    pacer = GhlPacer(95, 10.0, clock=clock, sleep=clock.sleep)
    await pacer.acquire()
    pacer.follow(
        httpx.Headers(
            {"X-RateLimit-Max": "100", "X-RateLimit-Interval-Milliseconds": "10000", "X-RateLimit-Remaining": "0"}
        )
    )
    await pacer.acquire()  # another app of the location spent the window: wait it out, no 429
    assert clock.now == 10.0
    pacer.follow(
        httpx.Headers(
            {"X-RateLimit-Max": "100", "X-RateLimit-Interval-Milliseconds": "10000", "X-RateLimit-Remaining": "7"}
        )
    )
    await pacer.acquire()
    assert clock.now == 10.0


async def test_zenotis_pacer_paces_its_share_too() -> None:
    clock = Clock()
    clock.gate.set()
    pacer = ZenotiPacer(limit=60, window=60.0, clock=clock, sleep=clock.sleep, share=0.5)
    for _ in range(29):  # 60 less the 5 % margin is 57; half of it, 28 a window
        await pacer.acquire()
    assert clock.now == 60.0
