"""The /_sandbox surface: accounts and keys, seeding, a user's edits, the stored records, plus the
shared stats, faults and reset routes."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.common.admin import common_routes, json_body
from sandbox.common.faults import FaultError

from . import seed
from .api import WRITABLE, render
from .settings import AccountConfig
from .state import Account, Sandbox


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _account(sb: Sandbox, account_id: Any) -> Account:
    if account_id is None:
        return next(iter(sb.accounts.values()))
    account = sb.accounts.get(str(account_id))
    if account is None:
        raise AdminError(404, "unknown account_id")
    return account


def _patient(sb: Sandbox, patient_id: str) -> tuple[Account, dict[str, Any]]:
    for account in sb.accounts.values():
        if patient_id in account.patients:
            return account, account.patients[patient_id]
    raise AdminError(404, "unknown patient")


def _account_json(account: Account) -> dict[str, Any]:
    return {
        "account_id": account.id,
        "name": account.name,
        "api_key": account.api_key,
        "patients": len(account.patients),
    }


async def list_accounts(request: Request, sb: Sandbox) -> Response:
    return JSONResponse([_account_json(a) for a in sb.accounts.values()])


async def create_account(request: Request, sb: Sandbox) -> Response:
    """An admin signs a practice up and creates its API key in the web app."""
    body = await json_body(request)
    account_id = f"acct_{sb.rng.randbytes(6).hex()}"
    account = sb.add_account(AccountConfig(account_id, str(body.get("name") or "New Clinic"), sb.new_key()))
    return JSONResponse(_account_json(account), status_code=201)


async def rotate_key(request: Request, sb: Sandbox) -> Response:
    """Settings > API keys > regenerate: the old key answers 401 at once."""
    account = _account(sb, request.path_params["account_id"])
    account.api_key = sb.new_key()
    return JSONResponse(_account_json(account))


async def seed_patients(request: Request, sb: Sandbox) -> Response:
    """``{account_id?, count}``: patients made by the practice's staff, from the Synthea set."""
    body = await json_body(request)
    count = body.get("count", 10)
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 10_000:
        raise AdminError(400, "count must be an integer in [0, 10000]")
    return JSONResponse({"ids": seed.add_patients(sb, _account(sb, body.get("account_id")), count)})


async def list_patients(request: Request, sb: Sandbox) -> Response:
    account = _account(sb, request.query_params.get("account_id"))
    return JSONResponse({"data": [render(r) for r in sorted(account.patients.values(), key=lambda r: r["id"])]})


async def edit_patient(request: Request, sb: Sandbox) -> Response:
    """A user edits the patient in the web app: the given fields change, updated_at moves on."""
    _, record = _patient(sb, request.path_params["patient_id"])
    body = await json_body(request)
    unknown = sorted(set(body) - set(WRITABLE))
    if unknown:
        raise AdminError(400, f"unknown field: {unknown[0]}")
    record.update(body)
    sb.touch(record)
    return JSONResponse(render(record))


def routes(sb: Sandbox) -> list[Route]:
    def wrap(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request, sb)
            except (AdminError, FaultError) as error:
                status = error.status if isinstance(error, AdminError) else 400
                return JSONResponse({"error": str(error)}, status_code=status)

        return endpoint

    async def on_actions(actions: set[str]) -> None:
        # API keys do not expire: expire_all_tokens has nothing to act on.
        if "revoke_tokens" in actions:
            sb.revoke_all_keys()

    async def reset() -> None:
        sb.reset()

    table = [
        ("GET", "/_sandbox/accounts", list_accounts),
        ("POST", "/_sandbox/accounts", create_account),
        ("POST", "/_sandbox/accounts/{account_id}/api-key", rotate_key),
        ("POST", "/_sandbox/seed", seed_patients),
        ("GET", "/_sandbox/patients", list_patients),
        ("PATCH", "/_sandbox/patients/{patient_id}", edit_patient),
    ]
    common = common_routes(
        stats=sb.stats, faults=lambda: sb.faults, reset_faults=sb.reset_faults, on_actions=on_actions, reset=reset
    )
    return [*common, *(Route(path, wrap(handler), methods=[method]) for method, path, handler in table)]
