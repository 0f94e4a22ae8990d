"""ASGI app factory: the catch hooks and OAuth redirect page Zapier hosts, and the /_sandbox surface
that plays the Zapier user (apps, connections, Zaps, polls, actions, clock)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.common.admin import common_routes
from sandbox.common.stats import StatsMiddleware

from . import admin, hooks
from .settings import ZapierSandboxSettings
from .state import Sandbox

HOOK_PATHS = ("/hooks/catch/{zap_id}/{token}/", "/hooks/catch/{zap_id}/{token}")


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    return JSONResponse(
        {"status": "error", "message": "Not Found" if status == 404 else "Method Not Allowed"}, status_code=status
    )


def _fault_actions(sb: Sandbox):  # noqa: ANN202
    async def on_actions(actions: set[str]) -> None:
        """expire_all_tokens: every stored access token stops working (the app answers 401, Zapier
        refreshes); revoke_tokens: access and refresh tokens and API keys all stop working."""
        for app in sb.apps.values():
            data = app.connection.auth_data
            if "revoke_tokens" in actions:
                for key in ("access_token", "refresh_token", "api_key"):
                    if key in data:
                        data[key] = f"revoked-{sb.new_token()}"
            elif "expire_all_tokens" in actions and "access_token" in data:
                data["access_token"] = f"expired-{sb.new_token()}"

    return on_actions


def create_app(settings: ZapierSandboxSettings | None = None) -> Starlette:
    sb = Sandbox(settings or ZapierSandboxSettings())

    async def reset() -> None:
        sb.reset()

    routes: list[Any] = [
        *(Route(path, hooks.catch, methods=["POST"]) for path in HOOK_PATHS),
        *(Route(path, hooks.delete, methods=["DELETE"]) for path in HOOK_PATHS),
        *admin.routes(),
        *common_routes(
            stats=sb.stats,
            faults=lambda: sb.faults,
            reset_faults=sb.reset_faults,
            on_actions=_fault_actions(sb),
            reset=reset,
        ),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await sb.aclose()

    app = Starlette(
        routes=routes,
        middleware=[Middleware(StatsMiddleware, stats=sb.stats, routes=routes)],
        exception_handlers={404: _not_found, 405: _not_found},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False
    app.state.sandbox = sb
    return app
