"""Concord as the OAuth 2.0 authorization server for Zapier (services/connection/oauth_server.py),
on the connection service's migrated database, each backend: authorization code + PKCE S256,
single-use codes and tickets, rotating refresh tokens, replay revokes the grant, revocation."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import services.connection
from libs.errors import InvalidArgument, NotFound, Unauthenticated
from libs.grpc_client import call
from libs.protos.concord.connection.v1 import connection_pb2 as pb
from libs.service import open_database
from libs.settings import Settings
from services.connection.oauth_server import OAuthServer
from tests.connection.conftest import Harness, RawDatabase

REDIRECT = "https://zapier.com/dashboard/auth/oauth/return/App123CLIAPI/"
MIGRATIONS = Path(services.connection.__file__).parent / "migrations"


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[tuple[OAuthServer, Clock]]:
    db = await open_database("connection", settings, MIGRATIONS)
    clock = Clock()
    try:
        yield OAuthServer(db.sessions, now=clock), clock
    finally:
        await db.engine.dispose()


def pkce() -> tuple[str, str]:
    """Verifier and challenge computed the way a client does (RFC 7636 appendix B), not with the
    helper the server uses, so a wrong server-side computation fails here."""
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def consented_code(oauth: OAuthServer, config_id: str = "cfg-1") -> tuple[str, str, str, str]:
    client, secret = await oauth.create_client(config_id, "practice-a", REDIRECT)
    ticket = await oauth.create_ticket(config_id, client.client_id)
    verifier, challenge = pkce()
    code = await oauth.authorize(ticket, client.client_id, REDIRECT, challenge, "S256")
    return client.client_id, secret, code, verifier


async def test_code_flow_issues_a_bearer_bound_to_the_practice(server) -> None:  # noqa: ANN001
    oauth, _ = server
    client_id, secret, code, verifier = await consented_code(oauth)
    tokens = await oauth.exchange_code(client_id, secret, code, REDIRECT, verifier)
    bearer = await oauth.authenticate(tokens.access_token)
    assert (bearer.client_id, bearer.config_id, bearer.practice_id) == (client_id, "cfg-1", "practice-a")
    assert tokens.expires_in == 3600
    assert tokens.access_token not in repr(tokens) and tokens.refresh_token not in repr(tokens)


async def test_a_reused_code_is_refused_and_revokes_what_it_issued(server) -> None:  # noqa: ANN001
    oauth, _ = server
    client_id, secret, code, verifier = await consented_code(oauth)
    tokens = await oauth.exchange_code(client_id, secret, code, REDIRECT, verifier)
    with pytest.raises(InvalidArgument) as refused:
        await oauth.exchange_code(client_id, secret, code, REDIRECT, verifier)
    assert refused.value.reason == "INVALID_GRANT"
    with pytest.raises(Unauthenticated):
        await oauth.authenticate(tokens.access_token)
    with pytest.raises(InvalidArgument):
        await oauth.refresh(client_id, secret, tokens.refresh_token)


async def test_a_wrong_verifier_is_refused(server) -> None:  # noqa: ANN001
    oauth, _ = server
    client_id, secret, code, _ = await consented_code(oauth)
    other_verifier, _ = pkce()
    with pytest.raises(InvalidArgument) as refused:
        await oauth.exchange_code(client_id, secret, code, REDIRECT, other_verifier)
    assert refused.value.reason == "INVALID_GRANT"


async def test_authorize_wants_s256_the_registered_redirect_and_a_fresh_ticket(server) -> None:  # noqa: ANN001
    oauth, _ = server
    client, _ = await oauth.create_client("cfg-1", "practice-a", REDIRECT)
    ticket = await oauth.create_ticket("cfg-1", client.client_id)
    verifier, challenge = pkce()
    with pytest.raises(InvalidArgument):
        await oauth.authorize(ticket, client.client_id, REDIRECT, verifier, "plain")
    with pytest.raises(InvalidArgument) as wrong_redirect:
        await oauth.authorize(ticket, client.client_id, "https://evil.example/cb", challenge, "S256")
    assert wrong_redirect.value.reason == "INVALID_REDIRECT_URI"
    await oauth.authorize(ticket, client.client_id, REDIRECT, challenge, "S256")
    with pytest.raises(Unauthenticated) as spent:
        await oauth.authorize(ticket, client.client_id, REDIRECT, challenge, "S256")
    assert spent.value.reason == "INVALID_CONSENT_TICKET"
    with pytest.raises(NotFound):  # a ticket only for the config's own client
        await oauth.create_ticket("cfg-other", client.client_id)


async def test_codes_expire_after_ten_minutes(server) -> None:  # noqa: ANN001
    oauth, clock = server
    client_id, secret, code, verifier = await consented_code(oauth)
    clock.at += timedelta(minutes=10, seconds=1)
    with pytest.raises(InvalidArgument):
        await oauth.exchange_code(client_id, secret, code, REDIRECT, verifier)


async def test_refresh_rotates_and_a_replayed_refresh_token_ends_the_grant(server) -> None:  # noqa: ANN001
    oauth, clock = server
    client_id, secret, code, verifier = await consented_code(oauth)
    first = await oauth.exchange_code(client_id, secret, code, REDIRECT, verifier)
    clock.at += timedelta(hours=2)
    with pytest.raises(Unauthenticated):  # expired access token
        await oauth.authenticate(first.access_token)
    second = await oauth.refresh(client_id, secret, first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert (await oauth.authenticate(second.access_token)).config_id == "cfg-1"
    with pytest.raises(InvalidArgument):
        await oauth.refresh(client_id, secret, first.refresh_token)
    with pytest.raises(Unauthenticated):  # the replay revoked the rotated tokens too
        await oauth.authenticate(second.access_token)
    with pytest.raises(InvalidArgument):
        await oauth.refresh(client_id, secret, second.refresh_token)


async def test_client_secret_is_checked_and_revoking_the_client_ends_its_tokens(server) -> None:  # noqa: ANN001
    oauth, _ = server
    client_id, secret, code, verifier = await consented_code(oauth)
    with pytest.raises(Unauthenticated) as bad_secret:
        await oauth.exchange_code(client_id, secret + "x", code, REDIRECT, verifier)
    assert bad_secret.value.reason == "INVALID_CLIENT"
    tokens = await oauth.exchange_code(client_id, secret, code, REDIRECT, verifier)
    await oauth.revoke_client("cfg-1", client_id)
    with pytest.raises(Unauthenticated):
        await oauth.authenticate(tokens.access_token)
    with pytest.raises(Unauthenticated):
        await oauth.refresh(client_id, secret, tokens.refresh_token)
    with pytest.raises(NotFound):
        await oauth.revoke_client("cfg-1", client_id)


async def test_the_flow_over_grpc_stores_no_secret_in_clear(harness: Harness, raw_db: RawDatabase) -> None:
    stub = harness.stub
    created = await call(
        stub.CreateIssuedOAuthClient,
        pb.CreateIssuedOAuthClientRequest(config_id=harness.config_id, redirect_uri=REDIRECT),
    )
    assert created.client.practice_id == "p1" and created.client_secret
    client_id = created.client.client_id
    ticket = (
        await call(
            stub.CreateOAuthConsentTicket,
            pb.CreateOAuthConsentTicketRequest(config_id=harness.config_id, client_id=client_id),
        )
    ).ticket
    verifier, challenge = pkce()
    code = (
        await call(
            stub.AuthorizeIssuedOAuth,
            pb.AuthorizeIssuedOAuthRequest(
                ticket=ticket,
                client_id=client_id,
                redirect_uri=REDIRECT,
                code_challenge=challenge,
                code_challenge_method="S256",
            ),
        )
    ).code
    exchange = pb.ExchangeIssuedOAuthTokenRequest(
        grant_type="authorization_code",
        client_id=client_id,
        client_secret=created.client_secret,
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=verifier,
    )
    tokens = await call(stub.ExchangeIssuedOAuthToken, exchange)
    with pytest.raises(InvalidArgument) as reused:
        await call(stub.ExchangeIssuedOAuthToken, exchange)
    assert reused.value.reason == "INVALID_GRANT"
    with pytest.raises(Unauthenticated) as revoked:  # the replay ended the grant
        await call(
            stub.AuthenticateIssuedAccessToken,
            pb.AuthenticateIssuedAccessTokenRequest(access_token=tokens.access_token),
        )
    assert revoked.value.reason == "INVALID_ACCESS_TOKEN"
    with pytest.raises(InvalidArgument) as bad_grant:
        await call(
            stub.ExchangeIssuedOAuthToken,
            pb.ExchangeIssuedOAuthTokenRequest(grant_type="password", client_id=client_id),
        )
    assert bad_grant.value.reason == "UNSUPPORTED_GRANT_TYPE"
    with pytest.raises(NotFound):
        await call(
            stub.CreateIssuedOAuthClient, pb.CreateIssuedOAuthClientRequest(config_id="no-such", redirect_uri=REDIRECT)
        )
    stored = repr(await raw_db.rows())
    for value in (created.client_secret, ticket, code, tokens.access_token, tokens.refresh_token):
        assert value not in stored
