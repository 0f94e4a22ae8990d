"""OAuth 2.0 authorization-code flow (docs/oauth/Authorization.md, apps/oauth.json).

Token-endpoint errors are RFC 6749 bodies worded as node-oauth2-server words them, the library whose
"Invalid token: access token is invalid" GHL's 401 DTO carries (simulator-chosen).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import html
import secrets
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from .errors import EXPIRED_BEARER, oauth_error, unauthorized
from .state import App, Grant, Sandbox

FORM = "application/x-www-form-urlencoded"


def _error_page(message: str) -> HTMLResponse:
    body = f"<!doctype html><title>Authorization error</title><h1>Authorization error</h1><p>{html.escape(message)}</p>"
    return HTMLResponse(body, status_code=400)


async def choose_location(request: Request, sb: Sandbox) -> Response:
    """The user's consent screen, auto-approved for the app's location (or ?locationId=)."""
    query = request.query_params
    app = sb.apps.get(query.get("client_id", ""))
    if app is None:
        return _error_page("Invalid client_id.")
    redirect_uri = query.get("redirect_uri") or app.redirect_uris[0]
    if redirect_uri not in app.redirect_uris:
        return _error_page("redirect_uri does not match any redirect URL registered for this app.")
    if query.get("response_type") != "code":
        return _error_page("response_type must be 'code'.")
    location_id = query.get("locationId") or app.location_id
    if location_id not in sb.locations:
        return _error_page(f"Unknown location {location_id}.")
    code = secrets.token_hex(20)
    sb.codes[code] = Grant(
        client_id=app.client_id,
        location_id=location_id,
        scope=" ".join(query.get("scope", "").split()),
        expires_at=sb.clock() + sb.settings.auth_code_ttl,
        redirect_uri=query.get("redirect_uri"),
    )
    app.installed.add(location_id)
    params = {"code": code} | ({"state": query["state"]} if "state" in query else {})
    parts = urlsplit(redirect_uri)
    target = urlunsplit(parts._replace(query=urlencode([*parse_qsl(parts.query), *params.items()])))
    return RedirectResponse(target, status_code=302)


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    """client_secret_basic (authlib's default) or client_secret_post."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, _, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise oauth_error(400, "invalid_client", "Invalid client: cannot retrieve client credentials") from None
        return unquote_plus(client_id), unquote_plus(secret)
    if not form.get("client_id") or "client_secret" not in form:
        raise oauth_error(400, "invalid_client", "Invalid client: cannot retrieve client credentials")
    return form["client_id"], form["client_secret"]


async def token(request: Request, sb: Sandbox) -> Response:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        raise oauth_error(400, "invalid_request", f"Invalid request: content must be {FORM}")
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    client_id, secret = _client_credentials(request, form)
    app = sb.apps.get(client_id)
    if app is None or not hmac.compare_digest(app.client_secret.encode(), secret.encode()):
        raise oauth_error(401, "invalid_client", "Invalid client: client is invalid")
    grant_type = form.get("grant_type")
    if not grant_type:
        raise oauth_error(400, "invalid_request", "Missing parameter: `grant_type`")
    if grant_type not in ("authorization_code", "refresh_token"):
        raise oauth_error(400, "unsupported_grant_type", "Unsupported grant type: `grant_type` is invalid")
    if form.get("user_type") not in (None, "", "Location"):
        raise oauth_error(400, "invalid_request", "Invalid request: the sandbox issues Location tokens only")
    now = sb.clock()
    if grant_type == "authorization_code":
        grant = _take(sb.codes, form, "code", client_id, "authorization code", now)
        redirect_uri = form.get("redirect_uri")
        if grant.redirect_uri and redirect_uri and redirect_uri != grant.redirect_uri:
            raise oauth_error(400, "invalid_request", "Invalid request: `redirect_uri` is invalid")
    else:
        grant = _take(sb.refresh_tokens, form, "refresh_token", client_id, "refresh token", now)
    body = issue_tokens(sb, app, grant.location_id, grant.scope)
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _take(store: dict[str, Grant], form: dict[str, str], param: str, client_id: str, what: str, now: float) -> Grant:
    """Removes and returns a single-use grant (codes, rotated refresh tokens)."""
    value = form.get(param)
    if not value:
        raise oauth_error(400, "invalid_request", f"Missing parameter: `{param}`")
    grant = store.get(value)
    if grant is None or grant.client_id != client_id:
        raise oauth_error(400, "invalid_grant", f"Invalid grant: {what} is invalid")
    del store[value]
    if grant.expires_at <= now:
        raise oauth_error(400, "invalid_grant", f"Invalid grant: {what} has expired")
    return grant


def issue_tokens(sb: Sandbox, app: App, location_id: str, scope: str) -> dict[str, Any]:
    now, settings = sb.clock(), sb.settings
    access, refresh = secrets.token_hex(16), secrets.token_hex(16)
    sb.access_tokens[access] = Grant(app.client_id, location_id, scope, now + settings.access_token_ttl)
    sb.refresh_tokens[refresh] = Grant(app.client_id, location_id, scope, now + settings.refresh_token_ttl)
    app.installed.add(location_id)
    location = sb.locations[location_id]
    body: dict[str, Any] = {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": max(int(settings.access_token_ttl) - 1, 0),
        "refresh_token": refresh,
        "scope": scope,
        "userType": "Location",
        "locationId": location_id,
        "companyId": location.company_id,
        "approvedLocations": [location_id],
        "userId": location.user_id,
    }
    if app.plan_id:
        body["planId"] = app.plan_id
    body["isBulkInstallation"] = False
    return body


def authenticate(request: Request, sb: Sandbox) -> Grant:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    grant = sb.access_tokens.get(value.strip()) if scheme.lower() == "bearer" else None
    if grant is None:
        raise unauthorized()
    if grant.expires_at <= sb.clock():
        raise unauthorized(EXPIRED_BEARER)
    return grant


def expire_all(sb: Sandbox) -> None:
    now = sb.clock()
    for grant in sb.access_tokens.values():
        grant.expires_at = min(grant.expires_at, now)


def revoke_all(sb: Sandbox) -> None:
    sb.codes.clear()
    sb.access_tokens.clear()
    sb.refresh_tokens.clear()
