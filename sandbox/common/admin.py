"""The ``/_sandbox`` routes every sandbox has: stats, faults, reset."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.common.faults import FaultError, Faults, apply_patch
from sandbox.common.stats import Stats


async def json_body(request: Request) -> dict[str, Any]:
    if not await request.body():
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise FaultError("body is not JSON") from None
    if not isinstance(body, dict):
        raise FaultError("body must be a JSON object")
    return body


def common_routes(
    *,
    stats: Stats,
    faults: Callable[[], Faults],
    reset_faults: Callable[[], None],
    on_actions: Callable[[set[str]], Awaitable[None]],
    reset: Callable[[], Awaitable[None]],
) -> list[Route]:
    """``faults`` returns the live Faults; ``on_actions`` performs one-shot actions such as
    expire_all_tokens; ``reset`` restores the sandbox to its start state."""

    async def get_stats(request: Request) -> Response:
        return JSONResponse(stats.as_json())

    async def reset_stats(request: Request) -> Response:
        stats.reset()
        return JSONResponse({"reset": True})

    async def get_faults(request: Request) -> Response:
        return JSONResponse(faults().as_json())

    async def set_faults(request: Request) -> Response:
        try:
            actions = apply_patch(faults(), await json_body(request))
        except FaultError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        await on_actions(actions)
        return JSONResponse(faults().as_json())

    async def clear_faults(request: Request) -> Response:
        reset_faults()
        return JSONResponse(faults().as_json())

    async def do_reset(request: Request) -> Response:
        await reset()
        return JSONResponse({"reset": True})

    return [
        Route("/_sandbox/stats", get_stats, methods=["GET"]),
        Route("/_sandbox/stats/reset", reset_stats, methods=["POST"]),
        Route("/_sandbox/faults", get_faults, methods=["GET"]),
        Route("/_sandbox/faults", set_faults, methods=["POST"]),
        Route("/_sandbox/faults", clear_faults, methods=["DELETE"]),
        Route("/_sandbox/reset", do_reset, methods=["POST"]),
    ]
