"""The vendors' OAuth 2.0 endpoints, spoken through authlib."""

from __future__ import annotations

import logging
import secrets
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.base_client import OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey, RSAKey

# authlib 1.9 announces a move to "httpx2"; Concord (and OpenTelemetry's httpx instrumentation)
# stays on httpx, which authlib 1.x still supports (pinned < 2 in pyproject.toml).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncAssertionClient, AsyncOAuth2Client

from services.connection.domain import (
    CLIENT_ASSERTION_LIFETIME_SECONDS,
    JWT_BEARER_LIFETIME_SECONDS,
    ClientAssertionCredential,
    JwtBearerCredential,
    OAuthClient,
    PasswordCredential,
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
                lambda: oauth.refresh_token(
                    definition.endpoints.token_url, refresh_token=refresh_token, **definition.token_params
                ),
            )

    async def password_grant(
        self, client: OAuthClient, definition: VendorDefinition, credential: PasswordCredential
    ) -> dict[str, Any]:
        """Resource-owner password grant; Salesforce takes the security token appended to the password."""
        async with self._client(client) as oauth:
            return await _token_call(
                oauth,
                lambda: oauth.fetch_token(
                    definition.endpoints.token_url,
                    grant_type="password",
                    username=credential.username,
                    password=credential.password + credential.security_token,
                    **definition.token_params,
                ),
            )

    async def jwt_bearer_grant(
        self, client: OAuthClient, definition: VendorDefinition, credential: JwtBearerCredential
    ) -> dict[str, Any]:
        """RFC 7523 authorization grant: an RS256 assertion for the user, signed with the app's key."""
        async with AsyncAssertionClient(
            token_endpoint=definition.endpoints.token_url,
            issuer=client.client_id,
            subject=credential.username,
            audience=definition.jwt_audience,
            key=RSAKey.import_key(credential.private_key_pem),
            alg="RS256",
            expires_in=JWT_BEARER_LIFETIME_SECONDS,
            timeout=self._timeout,
            transport=self._transport,
        ) as oauth:
            return await _token_call(oauth, oauth.refresh_token)

    async def client_assertion_grant(
        self, client: OAuthClient, definition: VendorDefinition, credential: ClientAssertionCredential, scopes: str
    ) -> dict[str, Any]:
        """SMART backend services: client_credentials, the client authenticated by a private_key_jwt."""
        key_type = ECKey if credential.algorithm.startswith("ES") else RSAKey
        assertion = PrivateKeyJWT(
            definition.endpoints.token_url,
            # A fresh jti per request: the EMR refuses a replayed assertion.
            claims={"jti": secrets.token_urlsafe(32), "exp": int(time.time()) + CLIENT_ASSERTION_LIFETIME_SECONDS},
            headers={"kid": credential.key_id},
            alg=credential.algorithm,
        )
        async with AsyncOAuth2Client(
            client_id=client.client_id,
            client_secret=key_type.import_key(credential.private_key_pem),
            token_endpoint_auth_method=assertion,
            timeout=self._timeout,
            transport=self._transport,
        ) as oauth:
            return await _token_call(
                oauth,
                lambda: oauth.fetch_token(
                    definition.endpoints.token_url, grant_type="client_credentials", scope=scopes
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


async def _token_call(oauth: httpx.AsyncClient, send: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """Runs one token-endpoint request, turning its failures into VendorRefused / VendorUnavailable."""
    seen: dict[str, int] = {}

    async def _record(response: httpx.Response) -> None:
        seen["status"] = response.status_code

    oauth.event_hooks["response"].append(_record)
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
