"""Zapier as a client of the app: ``z.request`` with the app's auth, OAuth2 autoRefresh on 401, and the
authorization-code flow with state and PKCE (S256)."""

from __future__ import annotations

import base64
import hashlib
import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from .state import RegisteredApp, Sandbox

log = logging.getLogger("sandbox.zapier.client")
USER_AGENT = "Zapier"


class CallError(Exception):
    """The request never got an HTTP answer (network error, timeout): worth a replay."""


class ConnectionUnusable(CallError):
    """Not connected, or the token could not be refreshed: the user must reconnect, no replay helps."""


class AuthError(Exception):
    """The OAuth flow failed; the message names the step, never a token."""


def _record(
    sb: Sandbox, app_id: str, zap_id: int | None, purpose: str, method: str, url: str, status: int | str
) -> None:
    # Path only: query strings may carry PHI or codes.
    entry = {"at": sb.clock(), "app_id": app_id, "zap_id": zap_id, "purpose": purpose, "method": method}
    sb.calls.append({**entry, "path": urlsplit(url).path, "status": status})


def _auth_headers(app: RegisteredApp) -> dict[str, str]:
    auth, data = app.definition.auth, app.connection.auth_data
    if auth.type == "api_key":
        return {auth.header: data.get("api_key", "")}
    if auth.type == "oauth2" and data.get("access_token"):
        return {"Authorization": f"Bearer {data['access_token']}"}
    return {}


async def _send(
    sb: Sandbox,
    app: RegisteredApp,
    method: str,
    url: str,
    *,
    purpose: str,
    zap_id: int | None,
    json_body: Any = None,
    form: dict[str, str] | None = None,
    authenticated: bool = True,
) -> httpx.Response:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if authenticated:
        headers.update(_auth_headers(app))
    try:
        response = await sb.http.request(
            method, url, headers=headers, json=json_body if form is None else None, data=form, follow_redirects=False
        )
    except httpx.HTTPError as exc:
        _record(sb, app.definition.app_id, zap_id, purpose, method, url, type(exc).__name__)
        raise CallError(f"{method} {urlsplit(url).path} failed: {type(exc).__name__}") from None
    _record(sb, app.definition.app_id, zap_id, purpose, method, url, response.status_code)
    return response


async def request(
    sb: Sandbox,
    app: RegisteredApp,
    method: str,
    path: str,
    *,
    purpose: str,
    zap_id: int | None = None,
    json_body: Any = None,
) -> httpx.Response:
    """An authenticated call; with OAuth2 a 401 refreshes the token and retries once (autoRefresh)."""
    if not app.connection.connected:
        raise ConnectionUnusable(
            f"the {app.definition.app_id} connection is not usable: {app.connection.error or 'not connected'}"
        )
    url = app.definition.url(path)
    used_token = app.connection.auth_data.get("access_token")
    response = await _send(sb, app, method, url, purpose=purpose, zap_id=zap_id, json_body=json_body)
    if response.status_code == 401 and app.definition.auth.type == "oauth2":
        if not await refresh(sb, app, used_token, zap_id):
            raise ConnectionUnusable(f"authentication expired: {app.connection.error}")
        response = await _send(sb, app, method, url, purpose=purpose, zap_id=zap_id, json_body=json_body)
    return response


def _token_json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) and isinstance(body.get("access_token"), str) else None


async def refresh(sb: Sandbox, app: RegisteredApp, used_token: str | None, zap_id: int | None) -> bool:
    """``grant_type=refresh_token`` with the client credentials in the body, as Zapier's refreshAccessToken."""
    connection, auth = app.connection, app.definition.auth
    async with connection.lock:
        if connection.auth_data.get("access_token") != used_token and connection.connected:
            return True  # another request refreshed while this one waited
        refresh_token = connection.auth_data.get("refresh_token")
        if not refresh_token:
            connection.connected, connection.error = False, "401 and no refresh_token to refresh with"
            return False
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": auth.client_id,
            "client_secret": auth.client_secret,
        }
        try:
            response = await _send(
                sb,
                app,
                "POST",
                app.definition.url(auth.token_url),
                purpose="refresh",
                zap_id=zap_id,
                form=form,
                authenticated=False,
            )
        except CallError as exc:
            connection.connected, connection.error = False, f"refresh failed: {exc}"
            return False
        tokens = _token_json(response) if response.is_success else None
        if tokens is None:
            connection.connected, connection.error = False, f"refresh failed: HTTP {response.status_code}"
            return False
        connection.auth_data.update(tokens)  # a response without refresh_token keeps the old one
        connection.refreshes += 1
        log.info("refreshed the %s connection", app.definition.app_id)
        return True


def redirect_uri(base_url: str, app_id: str) -> str:
    return f"{base_url.rstrip('/')}/dashboard/auth/oauth/return/{app_id}/"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def begin(sb: Sandbox, app: RegisteredApp, base_url: str) -> str:
    """The authorize URL the user's browser opens; remembers state and the PKCE verifier."""
    auth = app.definition.auth
    state = _b64url(sb.rng.randbytes(24))
    verifier = _b64url(sb.rng.randbytes(32))  # 43 characters, within RFC 7636's 43..128
    pending = {"state": state, "code_verifier": verifier, "redirect_uri": redirect_uri(base_url, app.definition.app_id)}
    params = {
        "response_type": "code",
        "client_id": auth.client_id,
        "redirect_uri": pending["redirect_uri"],
        "state": state,
    }
    if auth.scopes:
        params["scope"] = auth.scopes
    if auth.pkce:
        params["code_challenge"] = _b64url(hashlib.sha256(verifier.encode()).digest())
        params["code_challenge_method"] = "S256"
    app.connection.pending = pending
    url = app.definition.url(auth.authorize_url)
    return url + ("&" if urlsplit(url).query else "?") + urlencode(params)


async def follow(sb: Sandbox, app: RegisteredApp, authorize_url: str) -> dict[str, str] | None:
    """Opens the authorize URL as an already-consenting user would; the redirect's query, or None when
    the app shows a page (a login or consent screen needs a real browser)."""
    pending = app.connection.pending or {}
    try:
        response = await sb.http.get(authorize_url, headers={"User-Agent": USER_AGENT}, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise AuthError(f"authorize URL unreachable: {type(exc).__name__}") from None
    _record(sb, app.definition.app_id, None, "authorize", "GET", authorize_url, response.status_code)
    location = response.headers.get("location", "")
    if response.is_redirect and location.split("?", 1)[0] == pending.get("redirect_uri"):
        return dict(parse_qsl(urlsplit(location).query))
    if response.status_code >= 400:
        raise AuthError(f"authorize URL answered HTTP {response.status_code}")
    return None


async def finish(sb: Sandbox, app: RegisteredApp, params: dict[str, str]) -> None:
    """The redirect back to Zapier: checks state, exchanges the code (client credentials and the PKCE
    verifier in the form body) and keeps the token response as authData."""
    connection, auth = app.connection, app.definition.auth
    pending = connection.pending
    if pending is None:
        raise AuthError("no authorization in progress for this app")
    if params.get("error"):
        connection.pending = None
        raise AuthError(f"authorization refused: {params['error']}")
    if params.get("state") != pending["state"]:
        raise AuthError("state does not match the authorization request")
    if not params.get("code"):
        raise AuthError("redirect carries no code")
    form = {
        "grant_type": "authorization_code",
        "code": params["code"],
        "client_id": auth.client_id,
        "client_secret": auth.client_secret,
        "redirect_uri": pending["redirect_uri"],
    }
    if auth.pkce:
        form["code_verifier"] = pending["code_verifier"]
    connection.pending = None
    try:
        response = await _send(
            sb,
            app,
            "POST",
            app.definition.url(auth.token_url),
            purpose="token",
            zap_id=None,
            form=form,
            authenticated=False,
        )
    except CallError as exc:
        raise AuthError(f"token exchange failed: {exc}") from None
    tokens = _token_json(response) if response.is_success else None
    if tokens is None:
        connection.connected, connection.error = False, f"token exchange failed: HTTP {response.status_code}"
        raise AuthError(connection.error)
    connection.auth_data, connection.connected, connection.error = dict(tokens), True, None
    await test(sb, app)


async def test(sb: Sandbox, app: RegisteredApp) -> None:
    """The definition's auth test call; a non-2xx answer leaves the connection unusable."""
    spec = app.definition.auth.test
    if spec is None:
        return
    try:
        response = await request(sb, app, spec.method, spec.path, purpose="auth_test")
    except CallError as exc:
        app.connection.connected, app.connection.error = False, f"auth test failed: {exc}"
        raise AuthError(app.connection.error) from None
    if not response.is_success:
        app.connection.connected, app.connection.error = False, f"auth test failed: HTTP {response.status_code}"
        raise AuthError(app.connection.error)
