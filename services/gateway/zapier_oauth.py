"""Concord as the OAuth 2.0 authorization server for Zapier (services/adapters/zapier/README.md, "OAuth").

Admin side (JWT, ``integration.manage``): register the practice's Zapier client (secret shown once)
and consent by creating a one-time ticket; the authorize URL of the Zapier app definition carries it
(``/zapier/oauth/authorize?ticket=ct_...``). There is no consent page: the ticket is the admin's
consent, given through the authenticated API, single use and 10 minutes long. The grants those
consents made are listed (never a token) and revoked one at a time.

Zapier side: ``GET /zapier/oauth/authorize`` (authorization code + PKCE S256, answers 302 to the
registered redirect URI) and ``POST /zapier/oauth/token`` (``application/x-www-form-urlencoded``,
parsed with urllib since python-multipart is not installed; ``authorization_code`` with
``code_verifier``, or ``refresh_token``, which rotates). The token endpoint answers RFC 6749 5.2
error JSON (``{"error": "invalid_grant"}``), which OAuth clients read, not RFC 9457 problems."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from libs.errors import ConcordError, InvalidArgument
from libs.grpc_client import call
from libs.protos.concord.connection.v1 import connection_pb2
from services.gateway.auth import require
from services.gateway.deps import BackendsDep, CallerDep, config_for, find_config, find_config_or_none, time_or_none

ZAPIER = "zapier"
TICKET_TTL_SECONDS = 600
MAX_FORM_BYTES = 8192
# Reasons the authorize endpoint reports to the client through the redirect (RFC 6749 4.1.2.1);
# an unknown client or redirect URI is never redirected to.
_REDIRECTED = {"INVALID_CONSENT_TICKET": "access_denied", "INVALID_REQUEST": "invalid_request"}
_TOKEN_ERRORS = {
    "INVALID_GRANT": (400, "invalid_grant"),
    "INVALID_CLIENT": (401, "invalid_client"),
    "UNSUPPORTED_GRANT_TYPE": (400, "unsupported_grant_type"),
}

router = APIRouter(tags=["zapier"])


class ClientIn(BaseModel):
    redirect_uri: str = Field(min_length=8, max_length=2048)


class TicketIn(BaseModel):
    client_id: str = Field(min_length=1, max_length=64)


@router.post("/integrations/zapier/oauth/clients", status_code=201, summary="Register Zapier's OAuth client")
async def create_client(body: ClientIn, caller: CallerDep, backends: BackendsDep) -> dict[str, Any]:
    require(caller, "integration.manage")
    config = await config_for(backends, caller, ZAPIER)
    created = await call(
        backends.connection.CreateIssuedOAuthClient,
        connection_pb2.CreateIssuedOAuthClientRequest(config_id=config.config_id, redirect_uri=body.redirect_uri),
    )
    return {
        "client_id": created.client.client_id,
        "client_secret": created.client_secret,
        "redirect_uri": created.client.redirect_uri,
        "config_id": config.config_id,
    }


@router.delete("/integrations/zapier/oauth/clients/{client_id}", status_code=204, summary="Revoke it and its tokens")
async def revoke_client(client_id: str, caller: CallerDep, backends: BackendsDep) -> Response:
    require(caller, "integration.manage")
    config = await find_config(backends, caller, ZAPIER)
    await call(
        backends.connection.RevokeIssuedOAuthClient,
        connection_pb2.RevokeIssuedOAuthClientRequest(config_id=config.config_id, client_id=client_id),
    )
    return Response(status_code=204)


@router.post("/integrations/zapier/oauth/tickets", status_code=201, summary="Consent once to a Zapier connection")
async def create_ticket(body: TicketIn, caller: CallerDep, backends: BackendsDep) -> dict[str, Any]:
    require(caller, "integration.manage")
    config = await find_config(backends, caller, ZAPIER)
    created = await call(
        backends.connection.CreateOAuthConsentTicket,
        connection_pb2.CreateOAuthConsentTicketRequest(config_id=config.config_id, client_id=body.client_id),
    )
    return {"ticket": created.ticket, "expires_in": TICKET_TTL_SECONDS}


@router.get("/integrations/zapier/oauth/grants", summary="The practice's live Zapier OAuth grants (no tokens)")
async def list_grants(
    caller: CallerDep, backends: BackendsDep, page_size: int = Query(50, ge=1, le=500), page_token: str = ""
) -> dict[str, Any]:
    require(caller, "integration.manage")
    config = await find_config_or_none(backends, caller, ZAPIER)
    if config is None:
        return {"grants": [], "next_page_token": ""}
    listed = await call(
        backends.connection.ListIssuedOAuthGrants,
        connection_pb2.ListIssuedOAuthGrantsRequest(
            config_id=config.config_id, page_size=page_size, page_token=page_token
        ),
    )
    return {
        "grants": [
            {
                "id": g.grant_id,
                "client_id": g.client_id,
                "scopes": list(g.scopes),
                "created_at": time_or_none(g, "create_time"),
                "last_used_at": time_or_none(g, "last_use_time"),
                "last_refreshed_at": time_or_none(g, "last_refresh_time"),
                "expires_at": time_or_none(g, "expire_time"),
            }
            for g in listed.grants
        ],
        "next_page_token": listed.next_page_token,
    }


@router.delete("/integrations/zapier/oauth/grants/{grant_id}", status_code=204, summary="Revoke one Zapier grant")
async def revoke_grant(grant_id: str, caller: CallerDep, backends: BackendsDep) -> Response:
    """Its access and refresh tokens stop working at once; the practice's other grants go on."""
    require(caller, "integration.manage")
    config = await find_config(backends, caller, ZAPIER)
    await call(
        backends.connection.RevokeIssuedOAuthGrant,
        connection_pb2.RevokeIssuedOAuthGrantRequest(config_id=config.config_id, grant_id=grant_id),
    )
    return Response(status_code=204)


@router.get("/zapier/oauth/authorize", summary="OAuth authorize endpoint (consent by ticket)")
async def authorize(request: Request, backends: BackendsDep) -> Response:
    query = request.query_params
    if query.get("response_type") != "code":
        raise InvalidArgument("response_type must be code", field="response_type", reason="UNSUPPORTED_RESPONSE_TYPE")
    redirect_uri = query.get("redirect_uri", "")
    state = {"state": query["state"]} if "state" in query else {}
    try:
        code = (
            await call(
                backends.connection.AuthorizeIssuedOAuth,
                connection_pb2.AuthorizeIssuedOAuthRequest(
                    ticket=query.get("ticket", ""),
                    client_id=query.get("client_id", ""),
                    redirect_uri=redirect_uri,
                    code_challenge=query.get("code_challenge", ""),
                    code_challenge_method=query.get("code_challenge_method", ""),
                ),
            )
        ).code
    except ConcordError as error:
        if error.reason not in _REDIRECTED:
            raise  # unknown client or redirect URI: a problem, never a redirect
        return RedirectResponse(
            _with_query(redirect_uri, {"error": _REDIRECTED[error.reason], **state}), status_code=302
        )
    return RedirectResponse(_with_query(redirect_uri, {"code": code, **state}), status_code=302)


@router.post("/zapier/oauth/token", summary="OAuth token endpoint (form POST)")
async def token(request: Request, backends: BackendsDep) -> Response:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES or not request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        return _token_error(400, "invalid_request")
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    client_id, client_secret = _basic(request) or (form.get("client_id", ""), form.get("client_secret", ""))
    try:
        tokens = await call(
            backends.connection.ExchangeIssuedOAuthToken,
            connection_pb2.ExchangeIssuedOAuthTokenRequest(
                grant_type=form.get("grant_type", ""),
                client_id=client_id,
                client_secret=client_secret,
                code=form.get("code", ""),
                redirect_uri=form.get("redirect_uri", ""),
                code_verifier=form.get("code_verifier", ""),
                refresh_token=form.get("refresh_token", ""),
            ),
        )
    except ConcordError as error:
        status, oauth_error = _TOKEN_ERRORS.get(error.reason, (400, "invalid_request"))
        return _token_error(status, oauth_error)
    return JSONResponse(
        {
            "access_token": tokens.access_token,
            "token_type": "Bearer",
            "expires_in": tokens.expires_in,
            "refresh_token": tokens.refresh_token,
        },
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def _token_error(status: int, error: str) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="concord"'
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def _with_query(uri: str, params: dict[str, str]) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}{urlencode(params)}"
