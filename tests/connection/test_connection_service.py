"""The connection service over real gRPC and real HTTP: the GHL code flow, encrypted tokens,
refresh with rotating refresh tokens, expiry, disconnect and the error cases."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from google.protobuf import struct_pb2

from libs.errors import FailedPrecondition, InvalidArgument, NotFound
from libs.grpc_client import call
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.connection.v1 import connection_pb2 as pb
from libs.protos.concord.registry.v1 import registry_pb2 as rpb
from tests.conftest import POSTGRES_URL
from tests.connection.conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, Harness, RawDatabase

TWO_DAYS = 2 * 86_400  # a refresh margin longer than GHL's one-day access token: always due


ROOT = Path(__file__).resolve().parents[2]
# The scopes Concord asks GoHighLevel for are the definition's.
GHL_SCOPES = json.loads((ROOT / "services/registry/definitions/ghl.json").read_text())["scopes"]


async def _token(stub, config_id: str, force: bool = False) -> pb.GetAccessTokenResponse:  # noqa: ANN001
    return await call(stub.GetAccessToken, pb.GetAccessTokenRequest(config_id=config_id, force_refresh=force))


async def _connection(stub, config_id: str) -> pb.Connection:  # noqa: ANN001
    return (await call(stub.GetConnection, pb.GetConnectionRequest(config_id=config_id))).connection


async def test_code_flow_connects_without_pkce_for_ghl(harness: Harness) -> None:
    started = await call(
        harness.stub.StartAuthorization,
        pb.StartAuthorizationRequest(config_id=harness.config_id, redirect_uri=REDIRECT_URI),
    )
    url = urlsplit(started.authorization_url)
    query = parse_qs(url.query)
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{harness.sandbox.url}/v2/oauth/chooselocation"
    assert query["response_type"] == ["code"]
    assert query["client_id"] == [CLIENT_ID]
    assert query["redirect_uri"] == [REDIRECT_URI]
    assert query["scope"] == [" ".join(GHL_SCOPES)]
    assert query["state"] == [started.state]
    assert len(base64.urlsafe_b64decode(started.state + "==")) >= 16  # at least 128 bits
    assert "code_challenge" not in query  # GHL documents no PKCE
    pending = await _connection(harness.stub, harness.config_id)
    assert pending.status == pb.CONNECTION_STATUS_PENDING

    connection = await harness.connect()
    assert connection.status == pb.CONNECTION_STATUS_CONNECTED
    assert connection.practice_id == "p1"
    assert connection.integration_type == "ghl"
    assert connection.external_account_id == harness.location_id
    assert list(connection.scopes) == GHL_SCOPES
    expires = connection.access_token_expire_time.ToDatetime(tzinfo=UTC)
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(days=1)
    assert connection.connect_time.seconds > 0

    token = await _token(harness.stub, harness.config_id)
    assert token.token_type == "Bearer"
    assert token.api_base_url == harness.sandbox.url
    assert token.external_account_id == harness.location_id
    assert token.expire_time == connection.access_token_expire_time
    assert await harness.api_status(token.access_token) == 200
    assert harness.token_requests() == 1  # not close to expiry: no refresh


async def test_tokens_and_client_secret_are_never_stored_in_clear(harness: Harness, raw_db: RawDatabase) -> None:
    await harness.connect()
    stored = await raw_db.tokens(harness.config_id)
    assert stored.access in harness.sandbox.state.access_tokens
    assert stored.refresh in harness.sandbox.state.refresh_tokens
    secrets = [stored.access, stored.refresh, CLIENT_SECRET]

    row = await raw_db.connection_row(harness.config_id)
    assert row.status == "CONNECTED"
    assert row.encrypted_access_token and row.encrypted_refresh_token
    everything = repr(await raw_db.rows())
    for secret in secrets:
        assert secret not in everything
        assert secret.encode().hex() not in everything
    if not harness.settings.database_url:
        raw = raw_db.file_bytes()
        assert raw
        for secret in secrets:
            assert secret.encode() not in raw


async def test_access_token_is_refreshed_when_close_to_expiry(harness: Harness, raw_db: RawDatabase) -> None:
    await harness.connect()
    before = await raw_db.tokens(harness.config_id)
    _, eager = await harness.start_connection(margin_seconds=TWO_DAYS)

    token = await _token(eager, harness.config_id)
    after = await raw_db.tokens(harness.config_id)
    assert token.access_token == after.access != before.access
    assert after.refresh != before.refresh  # GHL rotates the refresh token on every refresh
    assert await harness.api_status(token.access_token) == 200
    connection = await _connection(eager, harness.config_id)
    assert connection.last_refresh_time.seconds > 0
    assert connection.external_account_id == harness.location_id


async def test_forced_refresh_rotates_and_the_old_refresh_token_is_refused(
    harness: Harness, raw_db: RawDatabase
) -> None:
    await harness.connect()
    before = await raw_db.tokens(harness.config_id)
    # The vendor expires the access token early: the adapter's call gets a 401 and it forces a refresh.
    await harness.http.post(f"{harness.sandbox.url}/_sandbox/faults", json={"expire_all_tokens": True})
    assert await harness.api_status(before.access) == 401

    token = await _token(harness.stub, harness.config_id, force=True)
    after = await raw_db.tokens(harness.config_id)
    assert token.access_token == after.access != before.access
    assert after.refresh != before.refresh
    assert await harness.api_status(token.access_token) == 200
    refused = await harness.refresh_at_vendor(before.refresh)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert (await _connection(harness.stub, harness.config_id)).status == pb.CONNECTION_STATUS_CONNECTED


async def test_refresh_token_revoked_at_vendor_expires_the_connection(harness: Harness, raw_db: RawDatabase) -> None:
    await harness.connect()
    await harness.http.post(f"{harness.sandbox.url}/_sandbox/faults", json={"revoke_tokens": True})

    with pytest.raises(FailedPrecondition) as error:
        await _token(harness.stub, harness.config_id, force=True)
    assert error.value.reason == "CONNECTION_EXPIRED"
    connection = await _connection(harness.stub, harness.config_id)
    assert connection.status == pb.CONNECTION_STATUS_EXPIRED
    row = await raw_db.connection_row(harness.config_id)
    assert row.encrypted_access_token is None and row.encrypted_refresh_token is None
    with pytest.raises(FailedPrecondition) as error:
        await _token(harness.stub, harness.config_id)
    assert error.value.reason == "CONNECTION_EXPIRED"

    # A user authorizes again and the connection works again.
    assert (await harness.connect()).status == pb.CONNECTION_STATUS_CONNECTED
    assert await harness.api_status((await _token(harness.stub, harness.config_id)).access_token) == 200


async def test_concurrent_forced_refreshes_never_use_a_stale_refresh_token(
    harness: Harness, raw_db: RawDatabase
) -> None:
    await harness.connect()
    before = await raw_db.tokens(harness.config_id)
    requests_before = harness.token_requests()

    tokens = await asyncio.gather(*(_token(harness.stub, harness.config_id, force=True) for _ in range(10)))

    refreshes = harness.token_requests() - requests_before
    assert 1 <= refreshes <= 10  # calls that waited for a refresh made by another reuse its result
    after = await raw_db.tokens(harness.config_id)
    assert tokens[-1].access_token != before.access
    assert after.access in {t.access_token for t in tokens}
    for token in tokens:
        assert await harness.api_status(token.access_token) == 200
    assert (await _connection(harness.stub, harness.config_id)).status == pb.CONNECTION_STATUS_CONNECTED
    # A refresh token used by any of those refreshes would now be refused: the stored one still works.
    token = await _token(harness.stub, harness.config_id, force=True)
    assert await harness.api_status(token.access_token) == 200


@pytest.mark.postgres_only  # one connection-service process per SQLite file: replicas need PostgreSQL
async def test_two_replicas_refreshing_at_once_serialise_on_the_row_lock(harness: Harness, raw_db: RawDatabase) -> None:
    assert POSTGRES_URL
    await harness.connect()
    _, replica = await harness.start_connection()
    stubs = [harness.stub, replica] * 5

    tokens = await asyncio.gather(*(_token(stub, harness.config_id, force=True) for stub in stubs))

    for token in tokens:
        assert await harness.api_status(token.access_token) == 200
    assert (await _connection(replica, harness.config_id)).status == pb.CONNECTION_STATUS_CONNECTED
    stored = await raw_db.tokens(harness.config_id)
    assert stored.refresh in harness.sandbox.state.refresh_tokens


async def test_background_refresher_refreshes_before_expiry(harness: Harness, raw_db: RawDatabase) -> None:
    await harness.connect()
    before = await raw_db.tokens(harness.config_id)
    server, stub = await harness.start_connection(margin_seconds=TWO_DAYS, refresh_interval_seconds=0.05)
    assert server.refresher is not None
    await server.refresher.next_cycle()  # may have begun before this call ...
    await server.refresher.next_cycle()  # ... this one began after it

    connection = await _connection(stub, harness.config_id)
    assert connection.last_refresh_time.seconds > 0
    after = await raw_db.tokens(harness.config_id)
    assert after.access != before.access and after.refresh != before.refresh
    assert await harness.api_status(after.access) == 200


async def test_stop_ends_the_background_refresher(harness: Harness) -> None:
    server, _ = await harness.start_connection(refresh_interval_seconds=0.01)
    assert server.refresher.running
    await server.refresher.next_cycle()
    await server.stop()
    assert not server.refresher.running


async def test_state_is_single_use(harness: Harness) -> None:
    state, code = await harness.authorize(harness.stub)
    done = await call(harness.stub.CompleteAuthorization, pb.CompleteAuthorizationRequest(state=state, code=code))
    assert done.connection.status == pb.CONNECTION_STATUS_CONNECTED

    for replay in (state, "never-issued-state"):
        with pytest.raises(InvalidArgument) as error:
            await call(harness.stub.CompleteAuthorization, pb.CompleteAuthorizationRequest(state=replay, code=code))
        assert error.value.reason == "INVALID_STATE"
        assert error.value.field == "state"


async def test_expired_state_is_refused(harness: Harness) -> None:
    _, hasty = await harness.start_connection(pending_authorization_ttl_seconds=0)
    state, code = await harness.authorize(hasty)
    with pytest.raises(InvalidArgument) as error:
        await call(hasty.CompleteAuthorization, pb.CompleteAuthorizationRequest(state=state, code=code))
    assert error.value.reason == "INVALID_STATE"


async def test_vendor_refusing_the_code_reports_its_error_code_only(harness: Harness) -> None:
    state, _ = await harness.authorize(harness.stub)
    with pytest.raises(FailedPrecondition) as error:
        await call(harness.stub.CompleteAuthorization, pb.CompleteAuthorizationRequest(state=state, code="forged"))
    assert error.value.reason == "VENDOR_TOKEN_EXCHANGE_FAILED"
    assert error.value.metadata["vendor_error"] == "invalid_grant"
    assert "authorization code is invalid" not in error.value.message  # the vendor's description stays out
    assert (await _connection(harness.stub, harness.config_id)).status == pb.CONNECTION_STATUS_PENDING


async def test_disconnect_destroys_tokens_and_is_idempotent(harness: Harness, raw_db: RawDatabase) -> None:
    await harness.connect()
    done = await call(harness.stub.Disconnect, pb.DisconnectRequest(config_id=harness.config_id))
    assert done.connection.status == pb.CONNECTION_STATUS_DISCONNECTED
    assert done.revoked_at_vendor is False  # GHL documents no revocation endpoint
    row = await raw_db.connection_row(harness.config_id)
    assert row.encrypted_access_token is None and row.encrypted_refresh_token is None
    assert row.status == "DISCONNECTED"
    with pytest.raises(FailedPrecondition) as error:
        await _token(harness.stub, harness.config_id)
    assert error.value.reason == "NOT_CONNECTED"

    again = await call(harness.stub.Disconnect, pb.DisconnectRequest(config_id=harness.config_id))
    assert again.connection.status == pb.CONNECTION_STATUS_DISCONNECTED
    assert again.revoked_at_vendor is False


async def test_pkce_is_used_where_the_definition_supports_it(harness: Harness) -> None:
    definition = rpb.IntegrationDefinition(
        integration_type="ghl_pkce",
        name="GoHighLevel with PKCE",
        category="marketing",
        auth_kind=rpb.AUTH_KIND_OAUTH2_AUTHORIZATION_CODE,
        pkce_supported=True,
        capabilities=[common_pb2.ENTITY_TYPE_PATIENT],
        scopes=["contacts.readonly"],
        endpoints=rpb.Endpoints(
            api_base_url=harness.sandbox.url,
            authorize_url=f"{harness.sandbox.url}/oauth/chooselocation",
            token_url=f"{harness.sandbox.url}/oauth/token",
        ),
    )
    definition.extra.update({"oauth": {"token_params": {"user_type": "Location"}, "account_id_field": "locationId"}})
    assert isinstance(definition.extra, struct_pb2.Struct)
    await call(
        harness.registry.UpsertIntegrationDefinition, rpb.UpsertIntegrationDefinitionRequest(definition=definition)
    )
    config = await call(
        harness.registry.CreateIntegrationConfig,
        rpb.CreateIntegrationConfigRequest(config=rpb.IntegrationConfig(practice_id="p1", integration_type="ghl_pkce")),
    )
    config_id = config.config.config_id
    await call(
        harness.stub.SetOAuthClient,
        pb.SetOAuthClientRequest(integration_type="ghl_pkce", client_id=CLIENT_ID, client_secret=CLIENT_SECRET),
    )
    started = await call(
        harness.stub.StartAuthorization, pb.StartAuthorizationRequest(config_id=config_id, redirect_uri=REDIRECT_URI)
    )
    query = parse_qs(urlsplit(started.authorization_url).query)
    assert query["code_challenge_method"] == ["S256"]
    challenge = query["code_challenge"][0]
    assert len(base64.urlsafe_b64decode(challenge + "=")) == hashlib.sha256().digest_size

    connection = await harness.connect(config_id=config_id)
    assert connection.status == pb.CONNECTION_STATUS_CONNECTED
    assert connection.external_account_id == harness.location_id


async def test_unknown_ids_bad_input_and_missing_client(harness: Harness) -> None:
    stub = harness.stub
    with pytest.raises(NotFound):
        await call(stub.StartAuthorization, pb.StartAuthorizationRequest(config_id="nope", redirect_uri=REDIRECT_URI))
    with pytest.raises(NotFound):
        await _connection(stub, "nope")
    with pytest.raises(NotFound):
        await _token(stub, "nope")
    with pytest.raises(NotFound):
        await call(stub.Disconnect, pb.DisconnectRequest(config_id="nope"))
    with pytest.raises(NotFound):
        await call(
            stub.SetOAuthClient, pb.SetOAuthClientRequest(integration_type="acme", client_id="a", client_secret="b")
        )

    for uri in ("ftp://127.0.0.1/cb", "not a url", "http:///no-host"):
        with pytest.raises(InvalidArgument) as error:
            await call(
                stub.StartAuthorization, pb.StartAuthorizationRequest(config_id=harness.config_id, redirect_uri=uri)
            )
        assert error.value.field == "redirect_uri"
    with pytest.raises(InvalidArgument) as error:
        await call(stub.StartAuthorization, pb.StartAuthorizationRequest(redirect_uri=REDIRECT_URI))
    assert error.value.field == "config_id"
    with pytest.raises(InvalidArgument) as error:
        await call(stub.CompleteAuthorization, pb.CompleteAuthorizationRequest(state="s"))
    assert error.value.field == "code"
    with pytest.raises(InvalidArgument) as error:
        await call(stub.SetOAuthClient, pb.SetOAuthClientRequest(integration_type="ghl", client_id="x"))
    assert error.value.field == "client_secret"

    never = await _connection(stub, harness.config_id)
    assert never.status == pb.CONNECTION_STATUS_DISCONNECTED
    with pytest.raises(FailedPrecondition) as error:
        await _token(stub, harness.config_id)
    assert error.value.reason == "NOT_CONNECTED"


async def test_start_without_an_oauth_client_is_refused(harness: Harness) -> None:
    acme = rpb.IntegrationDefinition(
        integration_type="acme",
        name="Acme CRM",
        auth_kind=rpb.AUTH_KIND_OAUTH2_AUTHORIZATION_CODE,
        capabilities=[common_pb2.ENTITY_TYPE_PATIENT],
        endpoints=rpb.Endpoints(authorize_url="https://acme.test/authorize", token_url="https://acme.test/token"),
    )
    await call(harness.registry.UpsertIntegrationDefinition, rpb.UpsertIntegrationDefinitionRequest(definition=acme))
    config = await call(
        harness.registry.CreateIntegrationConfig,
        rpb.CreateIntegrationConfigRequest(config=rpb.IntegrationConfig(practice_id="p1", integration_type="acme")),
    )
    with pytest.raises(FailedPrecondition) as error:
        await call(
            harness.stub.StartAuthorization,
            pb.StartAuthorizationRequest(config_id=config.config.config_id, redirect_uri=REDIRECT_URI),
        )
    assert error.value.reason == "OAUTH_CLIENT_MISSING"
