"""The catch hooks the app delivers to (``hooks.zapier.com/hooks/catch/<zap>/<token>/``)."""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from . import zaps
from .state import Sandbox, Zap

# What a load balancer in front of a down service answers (simulator-chosen).
OUTAGE_PAGE = (
    "<html><head><title>503 Service Temporarily Unavailable</title></head>"
    "<body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>"
)
STORM_RETRY_AFTER = 60


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"status": "error", "message": message}, status_code=status, headers=headers)


def _limited(sb: Sandbox, zap: Zap) -> int | None:
    """Seconds to wait when a catch-hook limit is hit: per user (the sandbox is one Zapier user) per
    5 minutes, and per hook per second."""
    now, s = sb.clock(), sb.settings
    if len(sb.hook_windows) > 10_000:
        sb.hook_windows.clear()
    user_key = ("", int(now // s.hook_user_window))
    hook_key = (zap.token, int(now))
    if sb.hook_windows.get(user_key, 0) >= s.hook_user_limit:
        return math.ceil((user_key[1] + 1) * s.hook_user_window - now)
    if sb.hook_windows.get(hook_key, 0) >= s.hook_per_second_limit:
        return max(math.ceil(hook_key[1] + 1 - now), 1)
    sb.hook_windows[user_key] = sb.hook_windows.get(user_key, 0) + 1
    sb.hook_windows[hook_key] = sb.hook_windows.get(hook_key, 0) + 1
    return None


def _payload(request: Request, raw: bytes) -> Any:
    """JSON (object, array or scalar); a form body becomes an object; anything else is kept as text."""
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text) if text.strip() else {}
    except ValueError:
        pass
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(text, keep_blank_values=True))
    return text


async def _gate(sb: Sandbox) -> Response | None:
    fault = await sb.gate.before_request()
    if fault == "outage":
        return HTMLResponse(OUTAGE_PAGE, status_code=503)
    if fault == "rate_limit":
        return _error(429, "Throttled by Zapier", {"Retry-After": str(STORM_RETRY_AFTER)})
    if fault == "5xx":
        return _error(500, "Internal Server Error")
    return None


async def catch(request: Request) -> Response:
    sb: Sandbox = request.app.state.sandbox
    if (failure := await _gate(sb)) is not None:
        return failure
    zap = sb.zap_for_hook(request.path_params["zap_id"], request.path_params["token"])
    if zap is None:
        return _error(404, "No such hook")
    raw = await request.body()
    request_id = sb.new_uuid()
    delivery: dict[str, Any] = {
        "id": request_id,
        "at": sb.clock(),
        "method": request.method,
        "headers": dict(request.headers),
        "body": None,
        "run_ids": [],
    }
    response: Response
    if len(raw) > sb.settings.hook_payload_limit:
        response = _error(413, "Payload too large: the limit is 10 MB")
    elif sb.faults.rate_limit_enabled and (wait := _limited(sb, zap)) is not None:
        response = _error(429, "Throttled by Zapier", {"Retry-After": str(wait)})
    elif zap.state != "on":
        # The Zap is off or deleted: the app must drop this subscription.
        response = _error(410, "This Zap is turned off or deleted; please unsubscribe")
    else:
        delivery["body"] = _payload(request, raw)
        delivery["run_ids"] = zaps.hook_runs(sb, zap, delivery["body"], request_id)
        body = {"attempt": request_id, "id": request_id, "request_id": request_id, "status": "success"}
        response = JSONResponse(body)
    delivery["status"] = response.status_code
    zap.deliveries.append(delivery)
    return response


async def delete(request: Request) -> Response:
    """A DELETE to the target URL turns the Zap off (Powered-by-Zapier "known limitations")."""
    sb: Sandbox = request.app.state.sandbox
    if (failure := await _gate(sb)) is not None:
        return failure
    zap = sb.zap_for_hook(request.path_params["zap_id"], request.path_params["token"])
    if zap is None:
        return _error(404, "No such hook")
    if zap.state != "on":
        return _error(410, "This Zap is turned off or deleted; please unsubscribe")
    await zaps.turn_off(sb, zap)
    return JSONResponse({"status": "success"})
