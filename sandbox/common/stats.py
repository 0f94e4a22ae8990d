"""Request counts per endpoint (route template), for ``/_sandbox/stats``."""

from __future__ import annotations

from collections import Counter

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send


class Stats:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def as_json(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))

    def reset(self) -> None:
        self.counts.clear()

    def total(self, *, exclude_prefixes: tuple[str, ...] = ("/_sandbox",)) -> int:
        return sum(n for key, n in self.counts.items() if not key.split(" ", 1)[1].startswith(exclude_prefixes))


class StatsMiddleware:
    """Counts each request under "METHOD /route/{template}" of the route that matched."""

    def __init__(self, app: ASGIApp, stats: Stats, routes: list[BaseRoute]) -> None:
        self.app = app
        self.stats = stats
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            template = scope["path"]
            for route in self.routes:
                match, _ = route.matches(scope)
                if match == Match.FULL:
                    template = getattr(route, "path", template)
                    break
            self.stats.counts[f"{scope['method']} {template}"] += 1
        await self.app(scope, receive, send)
