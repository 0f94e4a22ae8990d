"""The vendors' OAuth 2.0 endpoints, spoken through authlib."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.base_client import OAuthError

# authlib 1.9 announces a move to "httpx2"; Concord (and OpenTelemetry's httpx instrumentation)
# stays on httpx, which authlib 1.x still supports (pinned < 2 in pyproject.toml).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

from services.connection.domain import (
    OAuthClient,
    VendorDefinition,
    VendorRefused,
    VendorUnavailable,
    safe_vendor_error,
)

log = logging.getLogger("concord.connection.oauth")

# GHL (and RFC 6749's most common form) takes the client credentials in the form body.
_CLIENT_AUTH = "client_secret_post"


class VendorOAuth:
    def __init__(self, timeout: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._timeout = timeout
        self._transport = transport

    def _client(self, client: OAuthClient, **kwargs: Any) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=client.client_id,
            client_secret=client.client_secret,
            token_endpoint_auth_method=_CLIENT_AUTH,
            revocation_endpoint_auth_method=_CLIENT_AUTH,
            timeout=self._timeout,
            transport=self._transport,
            **kwargs,
        )

    async def authorization_url(
        self,
        client: OAuthClient,
        definition: VendorDefinition,
        redirect_uri: str,
        state: str,
        code_verifier: str | None,
    ) -> str:
        async with self._client(client, code_challenge_method="S256" if code_verifier else None) as oauth:
            url, _ = oauth.create_authorization_url(
                definition.endpoints.authorize_url,
                state=state,
                code_verifier=code_verifier,
                redirect_uri=redirect_uri,
                scope=" ".join(definition.scopes) or None,
            )
        return url

    async def exchange_code(
        self,
        client: OAuthClient,
        definition: VendorDefinition,
        code: str,
        redirect_uri: str,
        code_verifier: str | None,
    ) -> dict[str, Any]:
        extra = {"code_verifier": code_verifier} if code_verifier else {}
        async with self._client(client) as oauth:
            return await _token_call(
                oauth,
                "access_token_response",
                lambda: oauth.fetch_token(
                    definition.endpoints.token_url,
                    grant_type="authorization_code",
                    code=code,
                    redirect_uri=redirect_uri,
                    **extra,
                    **definition.token_params,
                ),
            )

    async def refresh(self, client: OAuthClient, definition: VendorDefinition, refresh_token: str) -> dict[str, Any]:
        async with self._client(client) as oauth:
            return await _token_call(
                oauth,
                "refresh_token_response",
                lambda: oauth.refresh_token(
                    definition.endpoints.token_url, refresh_token=refresh_token, **definition.token_params
                ),
            )

    async def revoke(self, client: OAuthClient, definition: VendorDefinition, token: str, hint: str) -> bool:
        """RFC 7009 revocation; False when the vendor did not confirm it."""
        try:
            async with self._client(client) as oauth:
                response = await oauth.revoke_token(
                    definition.endpoints.revocation_url, token=token, token_type_hint=hint
                )
        except httpx.HTTPError as error:
            log.warning("revocation at %s failed: %s", definition.integration_type, type(error).__name__)
            return False
        if response.status_code != 200:
            log.warning("revocation at %s answered %d", definition.integration_type, response.status_code)
        return response.status_code == 200


async def _token_call(
    oauth: AsyncOAuth2Client, hook: str, send: Callable[[], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """Runs one token-endpoint request, turning its failures into VendorRefused / VendorUnavailable."""
    seen: dict[str, int] = {}

    def _record(response: httpx.Response) -> httpx.Response:
        seen["status"] = response.status_code
        return response

    oauth.register_compliance_hook(hook, _record)
    try:
        token = dict(await send())
    except OAuthError as error:
        raise VendorRefused(safe_vendor_error(error.error), seen.get("status", 0)) from None
    except (httpx.HTTPError, ValueError) as error:
        # A 5xx, a network failure or a body that is not a JSON object: nothing the user can fix.
        raise VendorUnavailable(type(error).__name__) from None
    if seen.get("status", 200) >= 400:
        raise VendorRefused("unrecognised_error", seen["status"])
    return token
