"""RFC 9457 problem details for every error the gateway returns. Never echoes request values."""

from __future__ import annotations

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


def problem(status: int, title: str, detail: str, instance: str, **extra: object) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "instance": instance, **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ConcordError)
    async def _domain(request: Request, error: ConcordError) -> JSONResponse:
        status = STATUS_BY_CODE.get(error.code.name, 500)
        extra: dict[str, object] = {"reason": error.reason}
        if error.field:
            extra["field"] = error.field
        detail = error.message if status < 500 else "the request could not be completed"
        return problem(status, error.code.name.replace("_", " ").title(), detail, request.url.path, **extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(part) for part in e["loc"] if part != "body"),
                "reason": e["type"].upper(),
                "message": e["msg"],
            }
            for e in error.errors()
        ]
        first = errors[0]["field"] if errors else ""
        return problem(
            422,
            "Unprocessable Content",
            f"invalid request field: {first}",
            request.url.path,
            field=first,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return problem(error.status_code, str(error.detail), str(error.detail), request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        return problem(500, "Internal Server Error", "the request could not be completed", request.url.path)
