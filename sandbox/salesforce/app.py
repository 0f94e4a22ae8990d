"""ASGI app factory: Salesforce's login (OAuth 2.0, SOAP), REST API, Composite and the /_sandbox
admin surface, behind request stats."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.common.stats import StatsMiddleware

from . import admin, composite, oauth, rest
from .api import ApiRoute, build_routes
from .errors import NOT_FOUND_MESSAGE
from .settings import SalesforceSandboxSettings
from .state import Sandbox

D = "/services/data/{version}"


def _api_routes() -> list[ApiRoute]:
    def r(template: str, handlers: dict[str, Any], *, slash: bool = False, in_composite: bool = True) -> list[ApiRoute]:
        out = [ApiRoute(template, handlers, in_composite)]
        if slash:
            out.append(ApiRoute(template + "/", handlers, in_composite))
        return out

    obj = D + "/sobjects/{sobject}"
    return [
        *r(D, {"GET": rest.resources}, slash=True),
        *r(D + "/limits", {"GET": rest.limits}, slash=True),
        *r(D + "/query", {"GET": rest.query}, slash=True),
        *r(D + "/query/{locator}", {"GET": rest.query_more}),
        *r(D + "/queryAll", {"GET": rest.query_all}, slash=True),
        *r(D + "/queryAll/{locator}", {"GET": rest.query_more}),
        *r(D + "/sobjects", {"GET": rest.describe_global}, slash=True),
        *r(obj, {"GET": rest.basic_info, "POST": rest.create}, slash=True),
        *r(obj + "/describe", {"GET": rest.describe}, slash=True),
        *r(obj + "/updated", {"GET": rest.updated}, slash=True),
        *r(obj + "/deleted", {"GET": rest.deleted}, slash=True),
        *r(obj + "/{record_id}", {"GET": rest.get_record, "PATCH": rest.update_record, "DELETE": rest.delete_record}),
        *r(
            obj + "/{field}/{value}",
            {"GET": rest.get_by_external_id, "PATCH": rest.upsert, "DELETE": rest.delete_by_external_id},
        ),
        *r(D + "/composite", {"POST": composite.composite}, slash=True, in_composite=False),
        *r(
            D + "/composite/sobjects",
            {"POST": composite.create, "PATCH": composite.update, "DELETE": composite.delete},
            slash=True,
        ),
        # The vendor's Postman collection also sends update and delete to /composite/sobjects/{SObject}.
        *r(
            D + "/composite/sobjects/{sobject}",
            {
                "GET": composite.retrieve,
                "POST": composite.retrieve,
                "PATCH": composite.update,
                "DELETE": composite.delete,
            },
        ),
        *r(D + "/composite/sobjects/{sobject}/{field}", {"PATCH": composite.upsert}),
    ]


async def _versions(request: Request) -> Response:
    sb: Sandbox = request.app.state.sandbox
    if sb.faults.outage_until is not None and sb.clock() < sb.faults.outage_until:
        return JSONResponse([{"errorCode": "SERVER_UNAVAILABLE", "message": "Server temporarily unavailable."}], 503)
    return JSONResponse(rest.versions(sb))


async def _not_found(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return JSONResponse(
            [
                {
                    "errorCode": "METHOD_NOT_ALLOWED",
                    "message": f"HTTP Method '{request.method}' not allowed. Allowed are {allowed.replace(', ', ',')}",
                }
            ],
            status_code=405,
            headers={"Allow": allowed},
        )
    return JSONResponse([{"errorCode": "NOT_FOUND", "message": NOT_FOUND_MESSAGE}], status_code=404)


def create_app(settings: SalesforceSandboxSettings | None = None) -> Starlette:
    sb = Sandbox(settings or SalesforceSandboxSettings())
    api_routes = _api_routes()
    sb.api_routes = api_routes  # what a Composite subrequest may run
    routes: list[BaseRoute] = [
        Route("/services/oauth2/token", oauth.token, methods=["POST"]),
        Route("/services/oauth2/authorize", oauth.authorize, methods=["GET"]),
        Route("/services/oauth2/revoke", oauth.revoke, methods=["GET", "POST"]),
        Route("/services/oauth2/userinfo", oauth.userinfo, methods=["GET", "POST"]),
        Route("/services/Soap/u/{version}", oauth.soap_login, methods=["POST"]),
        Route("/services/Soap/c/{version}", oauth.soap_login, methods=["POST"]),
        Route("/id/{org_id}/{user_id}", oauth.identity, methods=["GET"]),
        Route("/services/data", _versions, methods=["GET"]),
        Route("/services/data/", _versions, methods=["GET"]),
        *build_routes(api_routes),
        *admin.routes(sb),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await sb.sender.aclose()

    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_found}, lifespan=lifespan)
    app.router.redirect_slashes = False
    app.add_middleware(StatsMiddleware, stats=sb.stats, routes=routes)
    app.state.sandbox = sb
    return app
