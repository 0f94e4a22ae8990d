"""RFC 9457 problem details for every error the gateway returns. Never echoes request values."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from libs.errors import ConcordError

PROBLEM = "application/problem+json"

STATUS_BY_CODE = {
    "INVALID_ARGUMENT": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "FAILED_PRECONDITION": 409,
    "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503,
}


# Where FastAPI says a request value came from; the field is named without it.
_LOCATIONS = {"body", "query", "path", "header", "cookie"}


def problem(status: int, detail: str, instance: str, **extra: object) -> JSONResponse:
    # With type about:blank, RFC 9457 (4.2.1) wants the status phrase as title (RFC 9110 renamed 422).
    title = "Unprocessable Content" if status == 422 else HTTPStatus(status).phrase
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "instance": instance, **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def instance_of(request: Request) -> str:
    """The problem's ``instance``: the route's template (``/patients/{patient_id}``), never the path
    as sent, which may carry whatever the caller typed (a name, an email)."""
    route = request.scope.get("route")
    return getattr(route, "path", "") or "about:blank"


def domain_problem(request: Request, error: ConcordError) -> JSONResponse:
    status = STATUS_BY_CODE.get(error.code.name, 500)
    extra: dict[str, object] = {"reason": error.reason}
    if error.field:
        extra["field"] = error.field
    detail = error.message if status < 500 else "the request could not be completed"
    return problem(status, detail, instance_of(request), **extra)


def _field(loc: tuple) -> str:
    parts = list(loc[1:] if loc and loc[0] in _LOCATIONS else loc)
    if loc and loc[0] == "body" and (not parts or isinstance(parts[0], int)):
        return "body"  # the body as a whole (missing, not an object, not JSON), not a character offset
    return ".".join(str(part) for part in parts)


def install(app: FastAPI, authenticate_first: Callable[[Request], None] | None = None) -> None:
    """authenticate_first(request) raises when a route that needs a token lacks a valid one, so a
    caller without one learns nothing from validation errors."""

    @app.exception_handler(ConcordError)
    async def _domain(request: Request, error: ConcordError) -> JSONResponse:
        return domain_problem(request, error)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
        if authenticate_first is not None:
            try:
                authenticate_first(request)
            except ConcordError as refused:
                return domain_problem(request, refused)
        errors = [
            {"field": _field(tuple(e["loc"])), "reason": e["type"].upper(), "message": e["msg"]} for e in error.errors()
        ]
        first = errors[0]["field"] if errors else ""
        # Syntax the server cannot parse is 400 (RFC 9110 15.5.1); 422 is for well-formed content.
        malformed = any(e["reason"] == "JSON_INVALID" for e in errors)
        return problem(
            400 if malformed else 422,
            f"invalid request field: {first}",
            instance_of(request),
            field=first,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return problem(error.status_code, str(error.detail), instance_of(request))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        return problem(500, "the request could not be completed", instance_of(request))
