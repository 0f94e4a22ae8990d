"""Simulator-only surface under /_sandbox (no auth): orgs, users, connected apps, sessions, seed,
record edits as a Salesforce user in the UI would make them, CDC subscriptions and replay, plus the
shared stats / faults / reset routes."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.common.admin import common_routes, json_body
from sandbox.common.faults import FaultError

from . import cdc, schema
from .dml import Txn
from .errors import RecordError
from .oauth import token_response
from .seed import UI_ORIGIN, seed_org
from .settings import ConnectedAppRegistration, UserRegistration
from .state import Org, Sandbox, Subscription


class _AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _sb(request: Request) -> Sandbox:
    return request.app.state.sandbox


async def _body(request: Request) -> dict[str, Any]:
    try:
        return await json_body(request)
    except FaultError as err:
        raise _AdminError(400, str(err)) from None


def _org(sb: Sandbox, org_id: str | None) -> Org:
    try:
        return sb.org(org_id)
    except KeyError:
        raise _AdminError(404, f"no org {org_id}") from None


def _known(body: dict[str, Any], allowed: set[str]) -> None:
    if unknown := set(body) - allowed:
        raise _AdminError(400, f"unknown fields: {sorted(unknown)}")


def _handled(handler: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except _AdminError as err:
            return JSONResponse({"error": err.message}, status_code=err.status)
        except RecordError as err:
            rest = err.rest()
            return JSONResponse(rest.body, status_code=rest.status)
        except (ValueError, TypeError) as err:
            return JSONResponse({"error": str(err)}, status_code=400)

    return endpoint


async def create_org(request: Request) -> Response:
    body = await _body(request)
    _known(body, {"id", "name", "session_timeout", "daily_api_limit", "instance_url"})
    org = _sb(request).create_org(
        body.get("id"),
        body.get("name"),
        session_timeout=body.get("session_timeout"),
        daily_api_limit=body.get("daily_api_limit"),
        instance_url=body.get("instance_url"),
    )
    return JSONResponse(org.as_json(), status_code=201)


async def list_orgs(request: Request) -> Response:
    sb = _sb(request)
    return JSONResponse([o.as_json() | {"default": o.id == sb.default_org_id} for o in sb.orgs.values()])


async def get_org(request: Request) -> Response:
    return JSONResponse(_org(_sb(request), request.path_params["org_id"]).as_json())


async def patch_org(request: Request) -> Response:
    body = await _body(request)
    _known(body, {"name", "session_timeout", "daily_api_limit"})
    org = _org(_sb(request), request.path_params["org_id"])
    if "name" in body:
        org.name = str(body["name"])
    if "session_timeout" in body:
        org.session_timeout = float(body["session_timeout"])
    if "daily_api_limit" in body:
        org.daily_api_limit = int(body["daily_api_limit"])
    return JSONResponse(org.as_json())


async def create_user(request: Request) -> Response:
    body = await _body(request)
    _known(body, {"username", "password", "security_token", "first_name", "last_name", "email", "org_id"})
    if not all(isinstance(body.get(k), str) and body[k] for k in ("username", "password", "security_token")):
        raise _AdminError(400, "username, password and security_token are required")
    sb = _sb(request)
    _org(sb, body.get("org_id"))
    return JSONResponse(sb.add_user(UserRegistration(**body)).as_json(), status_code=201)


async def create_app(request: Request) -> Response:
    body = await _body(request)
    allowed = {
        "consumer_key", "consumer_secret", "name", "redirect_uris", "jwt_public_key_pem", "scopes", "org_id",
        "require_secret_for_web_server", "require_secret_for_refresh", "client_credentials_user",
    }  # fmt: skip
    _known(body, allowed)
    if not body.get("consumer_key") or not body.get("consumer_secret"):
        raise _AdminError(400, "consumer_key and consumer_secret are required")
    sb = _sb(request)
    _org(sb, body.get("org_id"))
    return JSONResponse(sb.add_app(ConnectedAppRegistration(**body)).as_json(), status_code=201)


async def create_session(request: Request) -> Response:
    """A session without the login round trip (extension): ``{username?, consumer_key?}``."""
    body = await _body(request)
    _known(body, {"username", "consumer_key", "org_id"})
    sb = _sb(request)
    app = sb.apps.get(body["consumer_key"]) if body.get("consumer_key") else None
    if body.get("consumer_key") and app is None:
        raise _AdminError(404, "no such connected app")
    if body.get("username"):
        user = sb.user_by_name(body["username"])
        if user is None:
            raise _AdminError(404, "no such user")
    else:
        user = sb.first_user(_org(sb, body.get("org_id") or (app.org_id if app else None)))
    session = sb.open_session(user, app, app.scopes if app else "full")
    return JSONResponse(token_response(sb, session, app), status_code=201)


async def seed(request: Request) -> Response:
    body = await _body(request)
    _known(body, {"org_id", "future_per_patient", "link_concord_ids"})
    sb = _sb(request)
    org = _org(sb, body.get("org_id"))
    counts = seed_org(
        sb,
        org,
        future_per_patient=int(body.get("future_per_patient", sb.settings.future_visits_per_patient)),
        link_concord_ids=bool(body.get("link_concord_ids", False)),
    )
    return JSONResponse({"org_id": org.id, **counts}, status_code=201)


def _object(name: str) -> schema.SObject:
    obj = schema.sobject(name)
    if obj is None:
        raise _AdminError(404, f"unknown sObject {name}")
    return obj


def _ui_txn(request: Request, sb: Sandbox, org: Org) -> Txn:
    """A transaction as a Salesforce user working in Lightning Experience (``?as_user=`` username)."""
    username = request.query_params.get("as_user")
    user = sb.user_by_name(username) if username else sb.first_user(org)
    if user is None or user.org_id != org.id:
        raise _AdminError(404, f"no user {username} in org {org.id}")
    return Txn(sb, org, user.id, UI_ORIGIN.format(version=sb.settings.max_api_version))


def _run(txn: Txn, action: Any) -> Any:
    try:
        result = action()
    except BaseException:
        txn.rollback()
        raise
    txn.commit()
    return result


async def list_records(request: Request) -> Response:
    sb = _sb(request)
    org = _org(sb, request.query_params.get("org_id"))
    obj = _object(request.path_params["sobject"])
    include_deleted = request.query_params.get("include_deleted") == "true"
    records = [r for r in org.table(obj.name).values() if include_deleted or not r.get("IsDeleted")]
    version = sb.settings.max_api_version
    return JSONResponse([_plain(obj, r, version) for r in records])


def _plain(obj: schema.SObject, record: dict[str, Any], version: int) -> dict[str, Any]:
    from .soql import attributes, value_out

    out: dict[str, Any] = {"attributes": attributes(obj, record["Id"], version)}
    out.update({name: value_out(obj.fields[name], record.get(name)) for name in obj.fields})
    return out


async def ui_create(request: Request) -> Response:
    sb = _sb(request)
    org = _org(sb, request.query_params.get("org_id"))
    obj = _object(request.path_params["sobject"])
    body = await _body(request)
    txn = _ui_txn(request, sb, org)
    record_id = _run(txn, lambda: txn.insert(obj, body))
    return JSONResponse(_plain(obj, org.table(obj.name)[record_id], sb.settings.max_api_version), status_code=201)


async def ui_update(request: Request) -> Response:
    sb = _sb(request)
    org = _org(sb, request.query_params.get("org_id"))
    obj = _object(request.path_params["sobject"])
    body = await _body(request)
    txn = _ui_txn(request, sb, org)
    record_id = _run(txn, lambda: txn.update(obj, request.path_params["record_id"], body))
    return JSONResponse(_plain(obj, org.table(obj.name)[record_id], sb.settings.max_api_version))


async def ui_delete(request: Request) -> Response:
    sb = _sb(request)
    org = _org(sb, request.query_params.get("org_id"))
    obj = _object(request.path_params["sobject"])
    txn = _ui_txn(request, sb, org)
    _run(txn, lambda: txn.delete(obj, request.path_params["record_id"]))
    return Response(status_code=204)


async def ui_merge(request: Request) -> Response:
    """A Salesforce user merging duplicates into this record: ``{"merge_ids": [id, ...]}`` (one or two)."""
    sb = _sb(request)
    org = _org(sb, request.query_params.get("org_id"))
    obj = _object(request.path_params["sobject"])
    body = await _body(request)
    victims = body.get("merge_ids")
    if not isinstance(victims, list) or not all(isinstance(v, str) for v in victims):
        return JSONResponse(
            [{"errorCode": "INVALID_FIELD", "message": "merge_ids: a list of record ids"}], status_code=400
        )
    txn = _ui_txn(request, sb, org)
    record_id = _run(txn, lambda: txn.merge(obj, request.path_params["record_id"], victims))
    return JSONResponse(_plain(obj, org.table(obj.name)[record_id], sb.settings.max_api_version))


async def ui_undelete(request: Request) -> Response:
    sb = _sb(request)
    org = _org(sb, request.query_params.get("org_id"))
    obj = _object(request.path_params["sobject"])
    txn = _ui_txn(request, sb, org)
    record_id = _run(txn, lambda: txn.undelete(obj, request.path_params["record_id"]))
    return JSONResponse(_plain(obj, org.table(obj.name)[record_id], sb.settings.max_api_version))


async def subscribe(request: Request) -> Response:
    """A subscriber connects: ``replay_preset`` LATEST (default), EARLIEST or CUSTOM with
    ``replay_id``, as Pub/Sub's Subscribe takes them. The retained events it starts after are
    delivered first, in order; a replay id the bus no longer holds is refused with Pub/Sub's
    error code (400 here, INVALID_ARGUMENT there) and nothing is subscribed."""
    body = await _body(request)
    _known(body, {"url", "channel", "org_id", "headers", "replay_preset", "replay_id"})
    sb = _sb(request)
    org = _org(sb, body.get("org_id"))
    url, channel = body.get("url"), body.get("channel", cdc.ALL_CHANNEL)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise _AdminError(400, "url must be an http(s) URL")
    if not isinstance(channel, str) or not cdc.valid_channel(channel):
        raise _AdminError(400, f"unknown channel {channel}: use /data/ChangeEvents or /data/<Object>ChangeEvent")
    headers = body.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise _AdminError(400, "headers must map names to strings")
    preset = body.get("replay_preset", "LATEST")
    if preset not in cdc.REPLAY_PRESETS:
        raise _AdminError(400, f"replay_preset must be one of {', '.join(cdc.REPLAY_PRESETS)}")
    replay_id = _replay_id(body.get("replay_id"))
    try:
        backlog = cdc.starting_events(sb, org, preset, replay_id, channel)
    except cdc.ReplayError as error:
        return JSONResponse(error.as_json(), status_code=400)
    subscription = Subscription(
        f"sub-{len(org.subscriptions) + 1}-{sb.token(6)}", url, channel, dict(headers), preset, replay_id
    )
    org.subscriptions[subscription.id] = subscription
    if backlog:
        cdc.deliver(sb, org, backlog, only=subscription)
    return JSONResponse({"org_id": org.id, **subscription.as_json(), "replayed": len(backlog)}, status_code=201)


def _replay_id(value: Any) -> int | None:
    """Pub/Sub's replay ids are opaque bytes; the sandbox's are the event's ``replayId`` number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).lstrip("-").isdigit():
        raise _AdminError(400, "replay_id must be a replay id the bus gave")
    return int(value)


async def age_events(request: Request) -> Response:
    """``{seconds}``: time passes for the event bus only; events past the retention window go."""
    body = await _body(request)
    _known(body, {"seconds", "org_id"})
    sb = _sb(request)
    org = _org(sb, body.get("org_id"))
    seconds = body.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise _AdminError(400, "seconds must be a number >= 0")
    dropped = cdc.age(sb, org, float(seconds))
    return JSONResponse({"dropped": dropped, "retained": len(org.cdc_events)})


async def list_subscriptions(request: Request) -> Response:
    org = _org(_sb(request), request.query_params.get("org_id"))
    return JSONResponse([s.as_json() for s in org.subscriptions.values()])


async def unsubscribe(request: Request) -> Response:
    org = _org(_sb(request), request.query_params.get("org_id"))
    if org.subscriptions.pop(request.path_params["subscription_id"], None) is None:
        raise _AdminError(404, "no such subscription")
    return Response(status_code=204)


async def replay(request: Request) -> Response:
    """``?replayId=N`` (events after N; -2 all retained; -1 none), ``channel=``, ``org_id=``."""
    sb = _sb(request)
    org = _org(sb, request.query_params.get("org_id"))
    channel = request.query_params.get("channel", cdc.ALL_CHANNEL)
    if not cdc.valid_channel(channel):
        raise _AdminError(400, f"unknown channel {channel}")
    try:
        replay_id = int(request.query_params.get("replayId", "-2"))
    except ValueError:
        raise _AdminError(400, "replayId must be an integer") from None
    events = cdc.replay(sb, org, replay_id, channel)
    retained = org.cdc_events[0]["event"]["event"]["replayId"] if org.cdc_events else None
    if replay_id >= 0 and retained is not None and replay_id < retained - 1:
        # the events after replay_id are partly gone: the subscriber must resynchronize (simulator-chosen 410)
        return JSONResponse(
            {"error": f"replayId {replay_id} is older than the retention window", "earliestReplayId": retained}, 410
        )
    return JSONResponse({"channel": channel, "latestReplayId": org.replay_id, "events": events})


async def deliveries(request: Request) -> Response:
    return JSONResponse([d.as_json() for d in _sb(request).sender.deliveries])


def routes(sb: Sandbox) -> list[Route]:
    async def on_actions(actions: set[str]) -> None:
        if "expire_all_tokens" in actions:
            sb.expire_all_sessions()
        if "revoke_tokens" in actions:
            sb.revoke_all()

    def reset_faults() -> None:
        from sandbox.common.faults import Faults

        for name, value in Faults(rate_limit_enabled=sb.settings.rate_limit_enabled).as_json().items():
            setattr(sb.faults, name, value)

    async def reset() -> None:
        sb.reset()

    def route(path: str, handler: Any, method: str) -> Route:
        return Route(path, _handled(handler), methods=[method])

    return [
        *common_routes(
            stats=sb.stats, faults=lambda: sb.faults, reset_faults=reset_faults, on_actions=on_actions, reset=reset
        ),
        route("/_sandbox/orgs", create_org, "POST"),
        route("/_sandbox/orgs", list_orgs, "GET"),
        route("/_sandbox/orgs/{org_id}", get_org, "GET"),
        route("/_sandbox/orgs/{org_id}", patch_org, "PATCH"),
        route("/_sandbox/users", create_user, "POST"),
        route("/_sandbox/connected-apps", create_app, "POST"),
        route("/_sandbox/sessions", create_session, "POST"),
        route("/_sandbox/seed", seed, "POST"),
        route("/_sandbox/records/{sobject}", list_records, "GET"),
        route("/_sandbox/records/{sobject}", ui_create, "POST"),
        route("/_sandbox/records/{sobject}/{record_id}", ui_update, "PATCH"),
        route("/_sandbox/records/{sobject}/{record_id}", ui_delete, "DELETE"),
        route("/_sandbox/records/{sobject}/{record_id}/undelete", ui_undelete, "POST"),
        route("/_sandbox/records/{sobject}/{record_id}/merge", ui_merge, "POST"),
        route("/_sandbox/cdc/subscriptions", subscribe, "POST"),
        route("/_sandbox/cdc/subscriptions", list_subscriptions, "GET"),
        route("/_sandbox/cdc/subscriptions/{subscription_id}", unsubscribe, "DELETE"),
        route("/_sandbox/cdc/events", replay, "GET"),
        route("/_sandbox/cdc/age", age_events, "POST"),
        route("/_sandbox/cdc/deliveries", deliveries, "GET"),
    ]
