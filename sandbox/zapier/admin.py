"""The simulator's control surface under /_sandbox (no auth): apps, connections, Zaps, polls, actions,
the clock tick and seeding; plus the OAuth redirect page Zapier hosts."""

from __future__ import annotations

import html
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from sandbox.common import synthetic
from sandbox.common.admin import json_body
from sandbox.common.faults import FaultError

from . import client, zaps
from .definitions import DefinitionError
from .state import RegisteredApp, Sandbox, Zap

ZAP_FIELDS = {"app_id", "trigger", "input", "on", "autoreplay"}


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _sb(request: Request) -> Sandbox:
    return request.app.state.sandbox


async def _body(request: Request) -> dict[str, Any]:
    try:
        return await json_body(request)
    except FaultError as exc:
        raise AdminError(400, str(exc)) from None


def base_url(request: Request) -> str:
    return (_sb(request).settings.base_url or str(request.base_url)).rstrip("/")


def _app(request: Request) -> RegisteredApp:
    app = _sb(request).apps.get(request.path_params["app_id"])
    if app is None:
        raise AdminError(404, "unknown app_id")
    return app


def _zap(request: Request) -> Zap:
    raw = request.path_params["zap_id"]
    zap = _sb(request).zaps.get(int(raw)) if raw.isdigit() else None
    if zap is None:
        raise AdminError(404, "unknown zap")
    return zap


def _live(zap: Zap) -> None:
    if zap.state != "on":
        raise AdminError(409, f"zap {zap.id} is {zap.state}")


def handled(endpoint):  # noqa: ANN001, ANN201
    async def wrapper(request: Request) -> Response:
        try:
            return await endpoint(request)
        except AdminError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)

    return wrapper


async def register_app(request: Request) -> Response:
    body = await _body(request)
    try:
        app = _sb(request).register(body)
    except DefinitionError as exc:
        raise AdminError(400, str(exc)) from None
    return JSONResponse(app.as_json(), status_code=201)


async def list_apps(request: Request) -> Response:
    return JSONResponse([app.as_json() for app in _sb(request).apps.values()])


async def get_app(request: Request) -> Response:
    return JSONResponse(_app(request).as_json())


async def connect(request: Request) -> Response:
    """Connects the app's account. API key: (re)stores the key and runs the auth test. OAuth2: builds
    the authorize URL; with ``follow`` (default) opens it as a consenting user and completes the flow
    when the app redirects straight back, else answers 202 with the URL for a browser."""
    sb, app, body = _sb(request), _app(request), await _body(request)
    auth = app.definition.auth
    try:
        if auth.type != "oauth2":
            app.connection.auth_data, app.connection.connected, app.connection.error = {"api_key": auth.key}, True, None
            await client.test(sb, app)
            return JSONResponse(app.as_json())
        authorize_url = client.begin(sb, app, base_url(request))
        params = await client.follow(sb, app, authorize_url) if body.get("follow", True) else None
        if params is None:
            return JSONResponse({"connected": False, "authorize_url": authorize_url}, status_code=202)
        await client.finish(sb, app, params)
    except client.AuthError as exc:
        app.connection.connected, app.connection.error = False, str(exc)
        raise AdminError(502, str(exc)) from None
    return JSONResponse(app.as_json())


async def oauth_return(request: Request) -> Response:
    """Zapier's redirect URI (``/dashboard/auth/oauth/return/<app>/``) for a browser-driven flow."""
    sb = _sb(request)
    app = sb.apps.get(request.path_params["app_id"])
    if app is None:
        return HTMLResponse("<!doctype html><title>Error</title><p>Unknown app.</p>", status_code=404)
    try:
        await client.finish(sb, app, dict(request.query_params))
    except client.AuthError as exc:
        page = f"<!doctype html><title>Connection failed</title><p>{html.escape(str(exc))}</p>"
        return HTMLResponse(page, status_code=400)
    return HTMLResponse("<!doctype html><title>Connected</title><p>Your account is connected.</p>")


async def create_zap(request: Request) -> Response:
    """Creates a Zap and (unless ``on: false``) turns it on; a failed turn-on leaves it off with the
    error recorded, still 201."""
    sb, body = _sb(request), await _body(request)
    if unknown := set(body) - ZAP_FIELDS:
        raise AdminError(400, f"unknown fields: {sorted(unknown)}")
    app = sb.apps.get(body.get("app_id", ""))
    if app is None:
        raise AdminError(404, "unknown app_id")
    trigger = app.definition.triggers.get(body.get("trigger", ""))
    if trigger is None:
        raise AdminError(400, f"unknown trigger; the app has {sorted(app.definition.triggers)}")
    input_data = body.get("input") or {}
    if not isinstance(input_data, dict):
        raise AdminError(400, "input must be an object")
    zap_id, token = sb.new_zap_id(), sb.new_token()
    zap = Zap(
        id=zap_id,
        token=token,
        app_id=app.definition.app_id,
        trigger=trigger,
        input=input_data,
        target_url=f"{base_url(request)}/hooks/catch/{zap_id}/{token}/",
        autoreplay=bool(body.get("autoreplay", sb.settings.autoreplay)),
    )
    sb.zaps[zap.id] = zap
    if body.get("on", True):
        await zaps.turn_on(sb, zap)
    return JSONResponse(zap.as_json(), status_code=201)


async def list_zaps(request: Request) -> Response:
    return JSONResponse([zap.as_json() for zap in _sb(request).zaps.values()])


async def get_zap(request: Request) -> Response:
    return JSONResponse(_zap(request).as_json())


async def zap_on(request: Request) -> Response:
    zap = _zap(request)
    if zap.state == "deleted":
        raise AdminError(409, f"zap {zap.id} is deleted")
    await zaps.turn_on(_sb(request), zap)
    return JSONResponse(zap.as_json())


async def zap_off(request: Request) -> Response:
    zap = _zap(request)
    if zap.state == "deleted":
        raise AdminError(409, f"zap {zap.id} is deleted")
    await zaps.turn_off(_sb(request), zap)
    return JSONResponse(zap.as_json())


async def delete_zap(request: Request) -> Response:
    zap = _zap(request)
    if zap.state != "deleted":
        await zaps.turn_off(_sb(request), zap, delete=True)
    return JSONResponse(zap.as_json())


async def deliveries(request: Request) -> Response:
    return JSONResponse(_zap(request).deliveries)


async def runs(request: Request) -> Response:
    return JSONResponse(_zap(request).runs)


async def poll(request: Request) -> Response:
    zap = _zap(request)
    _live(zap)
    return JSONResponse(await zaps.poll(_sb(request), zap))


async def run_action(request: Request) -> Response:
    """Body: the step's inputData (a JSON object). Answers the run record once the step has finished,
    throttle waits and autoreplays included (through ``settings.sleep``)."""
    sb, zap = _sb(request), _zap(request)
    _live(zap)
    action = sb.apps[zap.app_id].definition.actions.get(request.path_params["action_key"])
    if action is None:
        raise AdminError(404, "unknown action")
    return JSONResponse(await zaps.run_action(sb, zap, action, await _body(request)))


async def tick(request: Request) -> Response:
    return JSONResponse(await zaps.tick(_sb(request)))


async def calls(request: Request) -> Response:
    return JSONResponse(_sb(request).calls)


def patient_input(patient: dict[str, Any]) -> dict[str, Any]:
    """A Synthea Patient as the flat inputData a Zap would map into an action (simulator-chosen keys)."""
    name = synthetic.official_name(patient)
    phone = next((t.get("value") for t in patient.get("telecom", []) if t.get("system") == "phone"), None)
    email = next((t.get("value") for t in patient.get("telecom", []) if t.get("system") == "email"), None)
    address = (patient.get("address") or [{}])[0]
    fields = {
        "external_id": patient.get("id"),
        "first_name": " ".join(name.get("given") or []) or None,
        "last_name": name.get("family"),
        "birth_date": patient.get("birthDate"),
        "gender": patient.get("gender"),
        "phone": phone,
        "email": email,
        "address_line": (address.get("line") or [None])[0],
        "city": address.get("city"),
        "state": address.get("state"),
        "postal_code": address.get("postalCode"),
        "country": address.get("country"),
    }
    return {k: v for k, v in fields.items() if v is not None}


async def seed(request: Request) -> Response:
    """``{zap_id, action, count?, offset?}``: runs the action once per Synthea patient."""
    sb, body = _sb(request), await _body(request)
    zap = sb.zaps.get(body.get("zap_id")) if isinstance(body.get("zap_id"), int) else None
    if zap is None:
        raise AdminError(404, "unknown zap_id")
    _live(zap)
    action = sb.apps[zap.app_id].definition.actions.get(body.get("action", ""))
    if action is None:
        raise AdminError(404, "unknown action")
    count, offset = body.get("count", 10), body.get("offset", 0)
    if not all(isinstance(n, int) and n >= 0 for n in (count, offset)):
        raise AdminError(400, "count and offset must be non-negative integers")
    patients = synthetic.load().patients
    chosen = [patients[(offset + n) % len(patients)] for n in range(count)]
    records = [await zaps.run_action(sb, zap, action, patient_input(p)) for p in chosen]
    return JSONResponse(
        {"runs": len(records), "succeeded": sum(r["ok"] for r in records), "run_ids": [r["id"] for r in records]},
        status_code=201,
    )


def routes() -> list[Route]:
    table: list[tuple[str, str, Any]] = [
        ("/_sandbox/apps", "POST", register_app),
        ("/_sandbox/apps", "GET", list_apps),
        ("/_sandbox/apps/{app_id}", "GET", get_app),
        ("/_sandbox/apps/{app_id}/connect", "POST", connect),
        ("/_sandbox/zaps", "POST", create_zap),
        ("/_sandbox/zaps", "GET", list_zaps),
        ("/_sandbox/zaps/{zap_id}", "GET", get_zap),
        ("/_sandbox/zaps/{zap_id}", "DELETE", delete_zap),
        ("/_sandbox/zaps/{zap_id}/on", "POST", zap_on),
        ("/_sandbox/zaps/{zap_id}/off", "POST", zap_off),
        ("/_sandbox/zaps/{zap_id}/deliveries", "GET", deliveries),
        ("/_sandbox/zaps/{zap_id}/runs", "GET", runs),
        ("/_sandbox/zaps/{zap_id}/poll", "POST", poll),
        ("/_sandbox/zaps/{zap_id}/actions/{action_key}", "POST", run_action),
        ("/_sandbox/tick", "POST", tick),
        ("/_sandbox/calls", "GET", calls),
        ("/_sandbox/seed", "POST", seed),
    ]
    return [
        *(Route(path, handled(endpoint), methods=[method]) for path, method, endpoint in table),
        Route("/dashboard/auth/oauth/return/{app_id}/", oauth_return, methods=["GET"]),
    ]
