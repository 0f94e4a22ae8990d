"""PlainREST's patient API (/api/v1/patients): list by update time, read, idempotent create,
full-replace update. Errors are ``{"error": {"code", "message", "field"?}}`` and never quote a value."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, date, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .state import Account, Replay, Sandbox

WRITABLE = (
    "first_name",
    "last_name",
    "dob",
    "sex",
    "mobile",
    "email",
    "street",
    "city",
    "region",
    "postcode",
    "country_code",
)
READ_ONLY = ("id", "created_at", "updated_at")
REQUIRED = ("first_name", "last_name")
SEXES = ("M", "F", "X", "U")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_LENGTH = 200


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(code)
        self.status, self.code, self.message, self.field = status, code, message, field

    def response(self, headers: dict[str, str] | None = None) -> Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        return JSONResponse({"error": error}, status_code=self.status, headers=headers)


def invalid(message: str, field: str | None = None) -> ApiError:
    return ApiError(422, "validation_failed", message, field)


def render(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if not key.startswith("_")}


def _today(sb: Sandbox) -> date:
    return datetime.fromtimestamp(sb.clock(), UTC).date()


def validate(sb: Sandbox, body: Any) -> dict[str, Any]:
    """The writable fields of a create or full-replace body; absent ones are null."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    unknown = sorted(set(body) - set(WRITABLE) - set(READ_ONLY))
    if unknown:
        raise invalid(f"unknown field: {unknown[0]}", unknown[0])
    fields = {}
    for name in WRITABLE:
        value = body.get(name)
        if isinstance(value, str):
            value = value.strip() or None
        if value is not None and not isinstance(value, str):
            raise invalid(f"{name} must be a string or null", name)
        if value is not None and len(value) > MAX_LENGTH:
            raise invalid(f"{name} must be at most {MAX_LENGTH} characters", name)
        fields[name] = value
    for name in REQUIRED:
        if fields[name] is None:
            raise invalid(f"{name} is required", name)
    checks = (
        ("email", lambda v: _EMAIL.match(v), "email must be an email address"),
        ("mobile", lambda v: _E164.match(v), "mobile must be an E.164 phone number"),
        ("country_code", lambda v: _COUNTRY.match(v), "country_code must be an ISO 3166-1 alpha-2 code"),
        ("sex", lambda v: v in SEXES, f"sex must be one of {', '.join(SEXES)}"),
        ("dob", lambda v: _past_date(v, _today(sb)), "dob must be a past date (YYYY-MM-DD)"),
    )
    for name, check, message in checks:
        if fields[name] is not None and not check(fields[name]):
            raise invalid(message, name)
    return fields


def _past_date(value: str, today: date) -> bool:
    try:
        return bool(_DATE.match(value)) and date.fromisoformat(value) <= today
    except ValueError:
        return False


def _cursor(record: dict[str, Any]) -> str:
    raw = json.dumps([record["_updated_us"], record["id"]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(token: str) -> tuple[int, str]:
    try:
        micros, record_id = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if isinstance(micros, int) and isinstance(record_id, str):
            return micros, record_id
    except (ValueError, TypeError):
        pass
    raise ApiError(400, "invalid_parameter", "cursor is not a cursor this API issued", "cursor")


def _since(raw: str) -> int:
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise ApiError(
            400, "invalid_parameter", "updated_since must be an ISO 8601 date-time", "updated_since"
        ) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


async def list_patients(request: Request, sb: Sandbox, account: Account) -> Response:
    """Patients updated at or after ``updated_since`` (inclusive), oldest change first (ties by id);
    ``next_cursor`` is null on the last page."""
    params = request.query_params
    try:
        limit = int(params.get("limit", sb.settings.default_page_size))
    except ValueError:
        limit = 0
    if not 1 <= limit <= sb.settings.max_page_size:
        raise ApiError(400, "invalid_parameter", f"limit must be between 1 and {sb.settings.max_page_size}", "limit")
    since = _since(params["updated_since"]) if params.get("updated_since") else None
    after = _after(params["cursor"]) if params.get("cursor") else None
    ordered = sorted(account.patients.values(), key=lambda r: (r["_updated_us"], r["id"]))
    matching = [
        r
        for r in ordered
        if (since is None or r["_updated_us"] >= since) and (after is None or (r["_updated_us"], r["id"]) > after)
    ]
    page = matching[:limit]
    next_cursor = _cursor(page[-1]) if len(matching) > limit else None
    if sb.gate.take_malformed_page():
        # A serializer failure mid-page: a 200 whose JSON stops half way.
        text = json.dumps({"data": [render(r) for r in page], "next_cursor": next_cursor})
        return Response(text[: max(len(text) // 2, 1)], media_type="application/json")
    return JSONResponse({"data": [render(r) for r in page], "next_cursor": next_cursor})


def _find(account: Account, patient_id: str) -> dict[str, Any]:
    record = account.patients.get(patient_id)
    if record is None:
        raise ApiError(404, "not_found", "no patient with this id")
    return record


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise ApiError(400, "invalid_body", "the body is not JSON") from None


async def get_patient(request: Request, sb: Sandbox, account: Account) -> Response:
    return JSONResponse(render(_find(account, request.path_params["patient_id"])))


async def create_patient(request: Request, sb: Sandbox, account: Account) -> Response:
    """201 with the new patient. Under an Idempotency-Key, the same body again within the TTL
    answers 200 with the first answer and ``Idempotent-Replayed: true``; another body, 422."""
    body = await _json(request)
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 255:
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 characters")
    fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    now = sb.clock()
    replay = account.replays.get(key) if key else None
    if replay is not None and replay.expires > now:
        if replay.fingerprint != fingerprint:
            raise ApiError(422, "idempotency_key_reused", "the Idempotency-Key was used with a different body")
        return JSONResponse(replay.body, status_code=200, headers={"Idempotent-Replayed": "true"})
    record = {"id": sb.new_id(), **validate(sb, body)}
    sb.touch(record)
    account.patients[record["id"]] = record
    answer = render(record)
    if key:
        account.replays[key] = Replay(now + sb.settings.idempotency_ttl, fingerprint, answer)
    return JSONResponse(answer, status_code=201)


async def update_patient(request: Request, sb: Sandbox, account: Account) -> Response:
    """Full replace: every writable field the body leaves out becomes null."""
    record = _find(account, request.path_params["patient_id"])
    fields = validate(sb, await _json(request))
    record.update(fields)
    sb.touch(record)
    return JSONResponse(render(record))
