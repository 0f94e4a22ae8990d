"""Connections made without a browser (ConnectWithCredentials) and the Salesforce web-server flow,
over real gRPC against the Salesforce, Zenoti and FHIR sandboxes served over real HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from libs.errors import FailedPrecondition, InvalidArgument, NotFound
from libs.grpc_client import call
from libs.protos.concord.connection.v1 import connection_pb2 as pb
from tests.connection.conftest import (
    FHIR_CLIENT_ID,
    FHIR_SCOPES,
    REDIRECT_URI,
    SF_CONSUMER_SECRET,
    SF_PASSWORD,
    SF_SECURITY_TOKEN,
    SF_SESSION_TIMEOUT,
    SF_USERNAME,
    RawDatabase,
    Vendors,
)

TWO_HOURS = 7200  # a refresh margin longer than the EMR's one-hour token: always due


async def _connect(stub, config_id: str, account: str = "", **credential) -> pb.Connection:  # noqa: ANN001, ANN003
    request = pb.ConnectWithCredentialsRequest(config_id=config_id, external_account_id=account, **credential)
    return (await call(stub.ConnectWithCredentials, request)).connection


async def _token(stub, config_id: str, force: bool = False) -> pb.GetAccessTokenResponse:  # noqa: ANN001
    return await call(stub.GetAccessToken, pb.GetAccessTokenRequest(config_id=config_id, force_refresh=force))


async def _connection(stub, config_id: str) -> pb.Connection:  # noqa: ANN001
    return (await call(stub.GetConnection, pb.GetConnectionRequest(config_id=config_id))).connection


def _password(password: str = SF_PASSWORD) -> dict:
    return {"password": pb.PasswordGrant(username=SF_USERNAME, password=password, security_token=SF_SECURITY_TOKEN)}


def _jwt(vendors: Vendors, key: str = "salesforce") -> dict:
    return {"jwt_bearer": pb.JwtBearerGrant(username=SF_USERNAME, private_key_pem=vendors.keys[key].private_pem)}


def _smart(vendors: Vendors, key: str = "fhir_rsa", algorithm: str = "RS384") -> dict:
    pair = vendors.keys[key]
    return {
        "client_assertion": pb.ClientAssertionGrant(
            private_key_pem=pair.private_pem, key_id=pair.public_jwk["kid"], algorithm=algorithm, scopes=FHIR_SCOPES
        )
    }


# --- Salesforce -----------------------------------------------------------------------------------


async def test_salesforce_password_grant_logs_in_again_after_the_session_timeout(
    vendors: Vendors, vendors_db: RawDatabase
) -> None:
    config_id = vendors.config("salesforce")
    connection = await _connect(vendors.stub, config_id, **_password())
    assert connection.status == pb.CONNECTION_STATUS_CONNECTED
    assert connection.external_account_id == vendors.salesforce_org_id  # from the identity URL
    assert list(connection.scopes) == ["api", "refresh_token"]
    assert not connection.HasField("access_token_expire_time")  # lives until the org's session timeout

    token = await _token(vendors.stub, config_id)
    assert token.token_type == "Bearer"
    assert token.api_base_url == vendors.salesforce_instance_url  # instance_url, not the login host
    assert not token.HasField("expire_time")
    assert (await vendors.salesforce_status(token)).status_code == 200
    assert await vendors_db.credential(config_id) == {
        "kind": "AUTH_KIND_OAUTH2_PASSWORD",
        "username": SF_USERNAME,
        "password": SF_PASSWORD,
        "security_token": SF_SECURITY_TOKEN,
    }

    vendors.clock.advance(SF_SESSION_TIMEOUT + 1)
    expired = await vendors.salesforce_status(token)
    assert expired.status_code == 401
    assert expired.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    logins = vendors.token_requests("salesforce")

    renewed = await _token(vendors.stub, config_id, force=True)
    assert renewed.access_token != token.access_token
    assert vendors.token_requests("salesforce") == logins + 1
    assert (await vendors.salesforce_status(renewed)).status_code == 200
    assert (await _token(vendors.stub, config_id)).access_token == renewed.access_token
    connection = await _connection(vendors.stub, config_id)
    assert connection.status == pb.CONNECTION_STATUS_CONNECTED
    assert connection.last_refresh_time.seconds > 0


async def test_salesforce_refusing_the_password_changes_nothing(vendors: Vendors, vendors_db: RawDatabase) -> None:
    config_id = vendors.config("salesforce")
    with pytest.raises(FailedPrecondition) as error:
        await _connect(vendors.stub, config_id, **_password("not-the-password"))
    assert error.value.reason == "VENDOR_TOKEN_EXCHANGE_FAILED"
    assert error.value.metadata["vendor_error"] == "invalid_grant"
    assert "not-the-password" not in error.value.message
    assert (await _connection(vendors.stub, config_id)).status == pb.CONNECTION_STATUS_DISCONNECTED
    assert not any(config_id in row for row in await vendors_db.rows())  # nothing half-written

    # A working connection keeps working when a later attempt is refused.
    await _connect(vendors.stub, config_id, **_password())
    before = await _token(vendors.stub, config_id)
    with pytest.raises(FailedPrecondition):
        await _connect(vendors.stub, config_id, **_password("not-the-password"))
    after = await _token(vendors.stub, config_id)
    assert after.access_token == before.access_token
    assert (await vendors.salesforce_status(after)).status_code == 200


async def test_salesforce_jwt_bearer_mints_a_new_assertion_after_a_401(vendors: Vendors) -> None:
    config_id = vendors.config("salesforce", "p2")
    connection = await _connect(vendors.stub, config_id, **_jwt(vendors))
    assert connection.status == pb.CONNECTION_STATUS_CONNECTED
    assert connection.external_account_id == vendors.salesforce_org_id
    token = await _token(vendors.stub, config_id)
    assert token.token_type == "Bearer"
    assert token.api_base_url == vendors.salesforce_instance_url
    assert (await vendors.salesforce_status(token)).status_code == 200

    await vendors.fault("salesforce", expire_all_tokens=True)  # every session times out
    assert (await vendors.salesforce_status(token)).json()[0]["errorCode"] == "INVALID_SESSION_ID"
    renewed = await _token(vendors.stub, config_id, force=True)
    assert renewed.access_token != token.access_token
    assert (await vendors.salesforce_status(renewed)).status_code == 200


async def test_salesforce_jwt_signed_with_an_unregistered_key_is_refused(vendors: Vendors) -> None:
    config_id = vendors.config("salesforce")
    with pytest.raises(FailedPrecondition) as error:
        await _connect(vendors.stub, config_id, **_jwt(vendors, "stranger"))
    assert error.value.reason == "VENDOR_TOKEN_EXCHANGE_FAILED"
    assert error.value.metadata["vendor_error"] == "invalid_grant"


async def test_salesforce_web_server_flow_uses_pkce_and_the_instance_url(vendors: Vendors) -> None:
    config_id = vendors.config("salesforce")
    started = await call(
        vendors.stub.StartAuthorization, pb.StartAuthorizationRequest(config_id=config_id, redirect_uri=REDIRECT_URI)
    )
    query = parse_qs(urlsplit(started.authorization_url).query)
    assert query["code_challenge_method"] == ["S256"]
    consent = await vendors.http.get(started.authorization_url)
    assert consent.status_code == 302, consent.text
    code = parse_qs(urlsplit(consent.headers["location"]).query)["code"][0]

    done = await call(
        vendors.stub.CompleteAuthorization, pb.CompleteAuthorizationRequest(state=started.state, code=code)
    )
    assert done.connection.status == pb.CONNECTION_STATUS_CONNECTED
    assert done.connection.external_account_id == vendors.salesforce_org_id
    token = await _token(vendors.stub, config_id)
    assert token.api_base_url == vendors.salesforce_instance_url
    assert (await vendors.salesforce_status(token)).status_code == 200

    await vendors.fault("salesforce", expire_all_tokens=True)
    renewed = await _token(vendors.stub, config_id, force=True)  # through the refresh token
    assert renewed.access_token != token.access_token
    assert renewed.api_base_url == vendors.salesforce_instance_url
    assert (await vendors.salesforce_status(renewed)).status_code == 200


async def test_disconnect_revokes_the_salesforce_session_and_forgets_the_credentials(
    vendors: Vendors, vendors_db: RawDatabase
) -> None:
    config_id = vendors.config("salesforce")
    await _connect(vendors.stub, config_id, **_password())
    token = await _token(vendors.stub, config_id)
    done = await call(vendors.stub.Disconnect, pb.DisconnectRequest(config_id=config_id))
    assert done.revoked_at_vendor is True
    assert (await vendors.salesforce_status(token)).status_code == 401
    row = await vendors_db.connection_row(config_id)
    assert row.encrypted_access_token is None and row.encrypted_credential is None
    with pytest.raises(FailedPrecondition) as error:
        await _token(vendors.stub, config_id, force=True)
    assert error.value.reason == "NOT_CONNECTED"


# --- Zenoti ---------------------------------------------------------------------------------------


async def test_zenoti_api_key_is_handed_out_as_apikey_until_it_is_rotated(
    vendors: Vendors, vendors_db: RawDatabase
) -> None:
    config_id = vendors.config("zenoti")
    api_key = {"api_key": pb.ApiKeyCredential(api_key=vendors.zenoti_api_key)}
    connection = await _connect(vendors.stub, config_id, vendors.zenoti_center_id, **api_key)
    assert connection.status == pb.CONNECTION_STATUS_CONNECTED
    assert connection.external_account_id == vendors.zenoti_center_id
    assert not connection.HasField("access_token_expire_time")

    token = await _token(vendors.stub, config_id)
    assert (token.token_type, token.access_token) == ("apikey", vendors.zenoti_api_key)
    assert token.api_base_url == vendors.zenoti_url
    assert token.external_account_id == vendors.zenoti_center_id
    assert not token.HasField("expire_time")
    assert await vendors.zenoti_status(token) == 200

    rotated = await vendors.http.post(f"{vendors.zenoti_url}/_sandbox/orgs/concordspa/api-key")
    assert await vendors.zenoti_status(token) == 401
    for force in (True, False):  # nothing can renew a revoked key: a user must enter the new one
        with pytest.raises(FailedPrecondition) as error:
            await _token(vendors.stub, config_id, force=force)
        assert error.value.reason == "CONNECTION_EXPIRED"
    assert (await _connection(vendors.stub, config_id)).status == pb.CONNECTION_STATUS_EXPIRED
    assert (await vendors_db.connection_row(config_id)).encrypted_access_token is None

    new_key = {"api_key": pb.ApiKeyCredential(api_key=rotated.json()["api_key"])}
    await _connect(vendors.stub, config_id, vendors.zenoti_center_id, **new_key)
    assert await vendors.zenoti_status(await _token(vendors.stub, config_id)) == 200


# --- FHIR (SMART backend services) ----------------------------------------------------------------


@pytest.mark.parametrize(("key", "algorithm"), [("fhir_rsa", "RS384"), ("fhir_ec", "ES384")])
async def test_smart_backend_services_connects_with_a_signed_client_assertion(
    vendors: Vendors, key: str, algorithm: str
) -> None:
    config_id = vendors.config("fhir")
    connection = await _connect(vendors.stub, config_id, **_smart(vendors, key, algorithm))
    assert connection.status == pb.CONNECTION_STATUS_CONNECTED
    assert list(connection.scopes) == FHIR_SCOPES
    expires = connection.access_token_expire_time.ToDatetime(tzinfo=UTC)
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)

    token = await _token(vendors.stub, config_id)
    assert token.token_type == "Bearer"
    assert token.api_base_url == f"{vendors.fhir_url}/fhir/default"
    assert await vendors.fhir_status(token) == 200


async def test_smart_expiry_mints_a_fresh_assertion_and_never_replays_a_jti(vendors: Vendors) -> None:
    config_id = vendors.config("fhir")
    await _connect(vendors.stub, config_id, **_smart(vendors))
    first = await _token(vendors.stub, config_id)

    _, eager = await vendors.start_connection(margin_seconds=TWO_HOURS)
    due = await _token(eager, config_id)  # within the margin of its one-hour expiry: a new assertion
    assert due.access_token != first.access_token
    assert await vendors.fhir_status(due) == 200

    await vendors.fault("fhir", expire_all_tokens=True)
    assert await vendors.fhir_status(due) == 401
    tokens = [await _token(vendors.stub, config_id, force=True) for _ in range(3)]
    tokens += await asyncio.gather(*(_token(vendors.stub, config_id, force=True) for _ in range(5)))
    for token in tokens:
        assert await vendors.fhir_status(token) == 200

    # The EMR refuses a replayed jti (invalid_grant): every request carried a new one.
    used = vendors.sandbox("fhir").used_jti
    assert {client for client, _ in used} == {FHIR_CLIENT_ID}
    assert len(used) == vendors.token_requests("fhir") >= 5
    assert (await _connection(vendors.stub, config_id)).status == pb.CONNECTION_STATUS_CONNECTED


async def test_smart_key_unknown_to_the_emr_is_refused(vendors: Vendors) -> None:
    pair = vendors.keys["fhir_rsa"]
    grant = pb.ClientAssertionGrant(private_key_pem=pair.private_pem, key_id="not-registered", scopes=FHIR_SCOPES)
    with pytest.raises(FailedPrecondition) as error:
        await _connect(vendors.stub, vendors.config("fhir"), client_assertion=grant)
    assert error.value.metadata["vendor_error"] == "invalid_client"


# --- secrets at rest, validation ------------------------------------------------------------------


async def test_credentials_and_tokens_are_never_stored_in_clear(vendors: Vendors, vendors_db: RawDatabase) -> None:
    stub = vendors.stub
    await _connect(stub, vendors.config("salesforce"), **_password())
    await _connect(stub, vendors.config("salesforce", "p2"), **_jwt(vendors))
    await _connect(
        stub, vendors.config("zenoti"), "center", api_key=pb.ApiKeyCredential(api_key=vendors.zenoti_api_key)
    )
    await _connect(stub, vendors.config("fhir"), **_smart(vendors))
    tokens = [
        (await _token(stub, vendors.config(vendor, practice))).access_token
        for vendor, practice in (("salesforce", "p1"), ("salesforce", "p2"), ("fhir", "p1"))
    ]
    # A line from the middle of each private key's base64 body.
    key_lines = [vendors.keys[k].private_pem.splitlines()[5] for k in ("salesforce", "fhir_rsa")]
    secrets = [SF_PASSWORD, SF_SECURITY_TOKEN, SF_CONSUMER_SECRET, vendors.zenoti_api_key, *key_lines, *tokens]

    jwt_credential = await vendors_db.credential(vendors.config("salesforce", "p2"))
    assert jwt_credential["private_key_pem"] == vendors.keys["salesforce"].private_pem
    everything = repr(await vendors_db.rows())
    for secret in secrets:
        assert secret not in everything
        assert secret.encode().hex() not in everything
    if not vendors.settings.database_url:
        raw = vendors_db.file_bytes()
        assert raw
        for secret in secrets:
            assert secret.encode() not in raw


async def test_bad_credentials_and_unsupported_kinds_are_refused_naming_the_field(vendors: Vendors) -> None:
    stub, pair = vendors.stub, vendors.keys["fhir_ec"]
    cases = [
        (vendors.config("salesforce"), {}, "credential", "REQUIRED_FIELD_MISSING"),
        (vendors.config("zenoti"), _password(), "credential", "AUTH_KIND_NOT_SUPPORTED"),
        (
            vendors.config("fhir"),
            {"api_key": pb.ApiKeyCredential(api_key="k")},
            "credential",
            "AUTH_KIND_NOT_SUPPORTED",
        ),
        (
            vendors.config("salesforce"),
            {"password": pb.PasswordGrant(password=SF_PASSWORD)},
            "password.username",
            "REQUIRED_FIELD_MISSING",
        ),
        (
            vendors.config("salesforce"),
            {"jwt_bearer": pb.JwtBearerGrant(username=SF_USERNAME, private_key_pem="-----BEGIN nonsense")},
            "jwt_bearer.private_key_pem",
            "INVALID_PRIVATE_KEY",
        ),
        (  # RS256 needs an RSA key
            vendors.config("salesforce"),
            {"jwt_bearer": pb.JwtBearerGrant(username=SF_USERNAME, private_key_pem=pair.private_pem)},
            "jwt_bearer.private_key_pem",
            "INVALID_PRIVATE_KEY",
        ),
        (
            vendors.config("fhir"),
            {
                "client_assertion": pb.ClientAssertionGrant(
                    private_key_pem=pair.private_pem, key_id="k", algorithm="RS384"
                )
            },
            "client_assertion.private_key_pem",
            "INVALID_PRIVATE_KEY",
        ),
        (
            vendors.config("fhir"),
            {
                "client_assertion": pb.ClientAssertionGrant(
                    private_key_pem=pair.private_pem, key_id="k", algorithm="HS256"
                )
            },
            "client_assertion.algorithm",
            "INVALID_ARGUMENT",
        ),
        (
            vendors.config("fhir"),
            {"client_assertion": pb.ClientAssertionGrant(private_key_pem=pair.private_pem)},
            "client_assertion.key_id",
            "REQUIRED_FIELD_MISSING",
        ),
        (vendors.config("zenoti"), {"api_key": pb.ApiKeyCredential()}, "api_key.api_key", "REQUIRED_FIELD_MISSING"),
        ("", {"api_key": pb.ApiKeyCredential(api_key="k")}, "config_id", "REQUIRED_FIELD_MISSING"),
    ]
    for config_id, credential, field, reason in cases:
        with pytest.raises(InvalidArgument) as error:
            await _connect(stub, config_id, **credential)
        assert (error.value.field, error.value.reason) == (field, reason)
        assert SF_PASSWORD not in error.value.message
    with pytest.raises(NotFound):
        await _connect(stub, "no-such-config", api_key=pb.ApiKeyCredential(api_key="k"))
    for vendor in ("salesforce", "zenoti", "fhir"):
        assert (await _connection(stub, vendors.config(vendor))).status == pb.CONNECTION_STATUS_DISCONNECTED

    # Zenoti offers no browser flow; a client without a secret only where no flow sends one.
    with pytest.raises(FailedPrecondition) as error:
        await call(
            stub.StartAuthorization,
            pb.StartAuthorizationRequest(config_id=vendors.config("zenoti"), redirect_uri=REDIRECT_URI),
        )
    assert error.value.reason == "AUTH_KIND_UNSUPPORTED"
    with pytest.raises(InvalidArgument) as error:
        await call(stub.SetOAuthClient, pb.SetOAuthClientRequest(integration_type="salesforce", client_id="app"))
    assert error.value.field == "client_secret"
