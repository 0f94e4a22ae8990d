"""Authentication: the org-level API key and employee access tokens (POST /v1/tokens)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import ZenotiError, unauthorized
from .model import Org, net_stamp, new_guid
from .state import AccessToken, Sandbox, Session

LOGIN_POLICY = {
    "allowlogin": True,
    "policyaction": 0,
    "policyactiondata": None,
    "userid": None,
    "passwordexpiryreminder": False,
}


@dataclass
class Caller:
    org: Org
    token: str | None = None  # the access token, when the caller used one
    session: Session | None = None


def authenticate(request: Request, sb: Sandbox) -> Caller:
    """``Authorization: apikey <key>`` or ``Authorization: bearer <access_token>`` (schemes case-insensitive)."""
    scheme, _, value = request.headers.get("authorization", "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "apikey" and value:
        org = sb.org_by_key(value)
        if org is not None:
            return Caller(org)
    if scheme.lower() == "bearer" and value:
        token = sb.access_tokens.get(value)
        if token is not None and sb.clock() < token.expiry:
            org = sb.org(token.session.account_name)
            if org is not None:
                return Caller(org, value, token.session)
    raise unauthorized()


def _token_error(status: int, message: str) -> ZenotiError:
    body = {"credentials": None, "login_policy_evaluation": None, "error": {"code": status, "message": message}}
    return ZenotiError(status, body)


def _opaque(sb: Sandbox, account_name: str, nbytes: int) -> str:
    """Shaped like Zenoti's tokens (``AN:<account>|$ARD#<base64>``); clients must treat them as opaque."""
    return f"AN:{account_name}|$ARD#{base64.b64encode(sb.rng.randbytes(nbytes)).decode()}"


def _issue(sb: Sandbox, session: Session) -> dict[str, Any]:
    now, settings = sb.clock(), sb.settings
    access = _opaque(sb, session.account_name, 96)
    sb.access_tokens[access] = AccessToken(session, now + settings.access_token_ttl)
    sb.refresh_tokens.pop(session.refresh_token, None)
    session.refresh_token = _opaque(sb, session.account_name, 72)
    session.refresh_expiry = now + settings.refresh_token_ttl
    sb.refresh_tokens[session.refresh_token] = session
    return {
        "credentials": {
            "access_token": access,
            "access_token_expiry": net_stamp(now + settings.access_token_ttl),
            "refresh_token": session.refresh_token,
            "refresh_token_expiry": net_stamp(session.refresh_expiry),
            "token_type": "bearer",
            "token_id": session.token_id,
            "app_id": session.app_id,
            "user_type": "Employee",
        },
        "login_policy_evaluation": dict(LOGIN_POLICY),
        "error": None,
    }


async def tokens(request: Request, sb: Sandbox) -> Response:
    """POST /v1/tokens: grant_type ``password`` (login) or ``refresh_token``."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _token_error(400, "The request body is invalid.")
    grant = body.get("grant_type")
    if grant == "password":
        missing = [k for k in ("account_name", "user_name", "password", "app_id", "app_secret") if not body.get(k)]
        if missing:
            raise _token_error(400, f"{missing[0]} is required.")
        org = sb.org(str(body["account_name"]))
        if org is None:
            raise _token_error(400, "Invalid account name.")
        config = org.config
        if str(body["app_id"]).lower() != config.app_id.lower() or body["app_secret"] != config.app_secret:
            raise _token_error(401, "Invalid app id or app secret.")
        if config.users.get(str(body["user_name"])) != body["password"]:
            raise _token_error(401, "Invalid user name or password.")
        session = Session(new_guid(sb.rng), org.account_name, str(body["user_name"]), config.app_id, "", 0.0)
        return JSONResponse(_issue(sb, session))
    if grant == "refresh_token":
        session = sb.refresh_tokens.get(str(body.get("refresh_token") or ""))
        if session is None or sb.clock() >= session.refresh_expiry:
            raise _token_error(401, "Invalid refresh token.")
        if body.get("app_id") and str(body["app_id"]).lower() != session.app_id.lower():
            raise _token_error(401, "Invalid app id or app secret.")
        return JSONResponse(_issue(sb, session))
    raise _token_error(400, "Unsupported grant type.")


async def revoke(request: Request, sb: Sandbox, caller: Caller) -> Response:
    """DELETE /v1/tokens/sessions/revoke: every access and refresh token of the calling employee."""
    if caller.session is None:
        raise _token_error(400, "Only access tokens can be revoked.")
    user = (caller.session.account_name, caller.session.user_name)
    for token, value in list(sb.access_tokens.items()):
        if (value.session.account_name, value.session.user_name) == user:
            del sb.access_tokens[token]
    for token, session in list(sb.refresh_tokens.items()):
        if (session.account_name, session.user_name) == user:
            del sb.refresh_tokens[token]
    return JSONResponse(True)
