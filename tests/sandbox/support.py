"""Test helpers shared by the sandbox tests."""

from __future__ import annotations


class FakeClock:
    """Epoch seconds that move only when a test says so; ``sleep`` moves them instead of waiting."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
