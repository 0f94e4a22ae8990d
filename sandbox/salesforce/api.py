"""The REST request pipeline under /services/data/vXX.X: API version (404), faults, session (401),
daily API allowance (403 REQUEST_LIMIT_EXCEEDED), handler; every answer carries Sforce-Limit-Info.
Handlers are plain functions of (Ctx, ApiRequest) so the Composite resource can run them too."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

from .dml import Txn
from .errors import INVALID_SESSION, LIMIT_EXCEEDED, RecordError, SfError, not_found, sf_error
from .state import Org, Sandbox, Session, User

_VERSION = re.compile(r"^v(\d+)\.0$")


@dataclass
class ApiRequest:
    method: str
    path_params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any = None


@dataclass
class ApiResponse:
    status: int
    body: Any = None  # None: no body
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Ctx:
    sb: Sandbox
    org: Org
    session: Session
    user: User
    version: int
    client: str | None
    shared: Txn | None = None  # the Composite allOrNone transaction, when inside one
    force_all_or_none: bool = False

    @property
    def origin(self) -> str:
        origin = f"com/salesforce/api/rest/{self.version}.0"
        return f"{origin};client={self.client}" if self.client else origin

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Txn]:
        """The enclosing Composite transaction (undone to a savepoint on error) or a new one that
        commits on success and rolls back on error."""
        if self.shared is not None:
            point = self.shared.savepoint()
            try:
                yield self.shared
            except BaseException:
                self.shared.rollback_to(point)
                raise
            return
        txn = Txn(self.sb, self.org, self.user.id, self.origin)
        try:
            yield txn
        except BaseException:
            txn.rollback()
            raise
        txn.commit()


Handler = Callable[[Ctx, ApiRequest], ApiResponse]


@dataclass
class ApiRoute:
    template: str
    handlers: dict[str, Handler]
    composite: bool = True  # may run as a Composite subrequest
    route: Route | None = None


def parse_version(raw: str, sb: Sandbox) -> int:
    match = _VERSION.match(raw)
    if not match or not sb.settings.min_api_version <= int(match.group(1)) <= sb.settings.max_api_version:
        raise not_found()
    return int(match.group(1))


def call_client(headers: dict[str, str]) -> str | None:
    """``Sforce-Call-Options: client=<id>[, defaultNamespace=<ns>]``."""
    for part in headers.get("sforce-call-options", "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip() == "client" and value.strip():
            return value.strip()
    return None


def bearer(headers: dict[str, str]) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "oauth") and token.strip():
        return token.strip()
    return None


def authenticate(sb: Sandbox, headers: dict[str, str]) -> tuple[Session, Org, User]:
    token = bearer(headers)
    session = sb.live_session(token) if token else None
    if session is None:
        raise SfError(401, INVALID_SESSION, {"WWW-Authenticate": 'Token realm="Salesforce"'})
    org = sb.orgs[session.org_id]
    return session, org, org.users[session.user_id]


def fault_error(sb: Sandbox, fault: str) -> SfError:
    if fault == "outage":
        return sf_error(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable. Please try again later.")
    if fault == "rate_limit":
        return SfError(403, LIMIT_EXCEEDED)
    if sb.fault_rng.random() < 0.75:
        a, b, c = sb.fault_rng.randrange(10**9), sb.fault_rng.randrange(10**5), sb.fault_rng.randrange(10**9)
        return sf_error(
            500,
            "UNKNOWN_EXCEPTION",
            f"An unexpected error occurred. Please include this ErrorId if you contact support: {a}-{b} (-{c})",
        )
    return sf_error(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable. Please try again later.")


def limit_header(org: Org) -> dict[str, str]:
    return {"Sforce-Limit-Info": f"api-usage={len(org.api_calls)}/{org.daily_api_limit}"}


def parse_json(raw: bytes, method: str) -> Any:
    if not raw.strip():
        if method in ("POST", "PUT"):
            raise sf_error(
                400, "JSON_PARSER_ERROR", "The HTTP entity body is required, but this request has no entity body."
            )
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        char = exc.doc[exc.pos] if exc.pos < len(exc.doc) else "EOF"
        raise sf_error(
            400,
            "JSON_PARSER_ERROR",
            f"Unexpected character ('{char}' (code {ord(char) if len(char) == 1 else -1})): expected a valid value "
            f"(number, String, array, object, 'true', 'false' or 'null') at [line:{exc.lineno}, column:{exc.colno}]",
        ) from None
    except UnicodeDecodeError:
        raise sf_error(400, "JSON_PARSER_ERROR", "Invalid UTF-8 in the request body") from None


def render(response: ApiResponse) -> Response:
    if response.body is None and response.status in (204, 304):
        return Response(status_code=response.status, headers=response.headers)
    return JSONResponse(response.body, status_code=response.status, headers=response.headers)


def make_endpoint(api_route: ApiRoute) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        sb: Sandbox = request.app.state.sandbox
        headers = {k.lower(): v for k, v in request.headers.items()}
        org: Org | None = None
        try:
            version = parse_version(request.path_params["version"], sb)
            fault = await sb.gate.before_request()
            if fault:
                raise fault_error(sb, fault)
            session, org, user = authenticate(sb, headers)
            session.last_active = sb.clock()
            if not org.count_call(sb.clock(), sb.faults.rate_limit_enabled):
                raise SfError(403, LIMIT_EXCEEDED)
            handler = api_route.handlers["GET" if request.method == "HEAD" else request.method]
            body = parse_json(await request.body(), request.method)
            ctx = Ctx(sb, org, session, user, version, call_client(headers) or session.client)
            api_request = ApiRequest(
                request.method,
                {k: unquote(str(v)) for k, v in request.path_params.items()},
                dict(request.query_params),
                headers,
                body,
            )
            response = handler(ctx, api_request)
        except SfError as err:
            response = ApiResponse(err.status, err.body, dict(err.headers))
        except RecordError as err:
            rest = err.rest()
            response = ApiResponse(rest.status, rest.body)
        if org is not None:
            response.headers.update(limit_header(org))
        return render(response)

    return endpoint


def build_routes(api_routes: list[ApiRoute]) -> list[Route]:
    out = []
    for api_route in api_routes:
        api_route.route = Route(api_route.template, make_endpoint(api_route), methods=list(api_route.handlers))
        out.append(api_route.route)
    return out


def match(api_routes: list[ApiRoute], method: str, path: str) -> tuple[ApiRoute, dict[str, str]] | None:
    """The route a Composite subrequest URL (path only) runs, with its path parameters."""
    partial = None
    scope = {"type": "http", "path": path, "method": method}
    for api_route in api_routes:
        assert api_route.route is not None
        outcome, child = api_route.route.matches(scope)
        if outcome == Match.FULL:
            return api_route, {k: unquote(str(v)) for k, v in child["path_params"].items()}
        if outcome == Match.PARTIAL and partial is None:
            partial = api_route
    if partial is not None:
        raise sf_error(
            405,
            "METHOD_NOT_ALLOWED",
            f"HTTP Method '{method}' not allowed. Allowed are {','.join(sorted(partial.handlers))}",
        )
    return None
