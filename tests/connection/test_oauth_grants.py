"""The grants of Concord's OAuth server (services/connection/oauth_server.py): listed without a
token, revoked one at a time, and purged once they can no longer be used, with an injected clock
(no sleeps), on the connection service's migrated database, each backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from libs.db import create_engine, create_session_factory, migrate, schema_for
from libs.errors import ConcordError, InvalidArgument, NotFound, Unauthenticated
from libs.grpc_client import call
from libs.identity import Caller, acting_as
from libs.protos.concord.audit.v1 import audit_pb2 as apb
from libs.protos.concord.connection.v1 import connection_pb2 as pb
from libs.protos.concord.connection.v1.connection_pb2_grpc import ConnectionServiceStub as ConnectionStub
from libs.protos.concord.registry.v1 import registry_pb2 as rpb
from libs.service import open_database
from libs.settings import Settings
from services.connection import models
from services.connection.inbound import _hash
from services.connection.oauth_server import OAuthServer, Tokens
from tests.connection.conftest import Harness, RawDatabase, oauth_row_counts
from tests.connection.test_oauth_server import MIGRATIONS, REDIRECT, Clock, consented_code, pkce


@dataclass
class Store:
    oauth: OAuthServer
    clock: Clock
    sessions: async_sessionmaker

    async def kinds(self, client_id: str) -> dict[str, int]:
        async with self.sessions() as session:
            return await oauth_row_counts(session, client_id)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    db = await open_database("connection", settings, MIGRATIONS)
    clock = Clock()
    try:
        yield Store(OAuthServer(db.sessions, now=clock), clock, db.sessions)
    finally:
        await db.engine.dispose()


async def connected(oauth: OAuthServer, config_id: str = "cfg-1") -> tuple[str, str, Tokens]:
    client_id, secret, code, verifier = await consented_code(oauth, config_id)
    return client_id, secret, await oauth.exchange_code(client_id, secret, code, REDIRECT, verifier)


async def another_grant(oauth: OAuthServer, client_id: str, secret: str, config_id: str = "cfg-1") -> Tokens:
    ticket = await oauth.create_ticket(config_id, client_id)
    verifier, challenge = pkce()
    code = await oauth.authorize(ticket, client_id, REDIRECT, challenge, "S256")
    return await oauth.exchange_code(client_id, secret, code, REDIRECT, verifier)


async def reason(attempt) -> tuple[type, str]:  # noqa: ANN001
    with pytest.raises(ConcordError) as refused:
        await attempt
    return type(refused.value), refused.value.reason


async def test_grants_lists_live_grants_with_their_times_and_never_a_token(store: Store) -> None:
    oauth, clock = store.oauth, store.clock
    client_id, secret, first = await connected(oauth)
    created = clock.at
    clock.at += timedelta(minutes=5)
    second = await another_grant(oauth, client_id, secret)
    await consented_code(oauth, "cfg-2")  # another config's grant, not exchanged either
    pending_ticket = await oauth.create_ticket("cfg-1", client_id)  # consent not yet spent: no grant

    listed, token = await oauth.grants("cfg-1", 0, "")
    assert token == "" and len(listed) == 2
    one = next(g for g in listed if g.created_at == created)
    assert (one.client_id, one.config_id, one.practice_id, one.scopes) == (
        client_id,
        "cfg-1",
        "practice-a",
        ("zapier",),
    )
    assert one.last_used_at is None and one.last_refresh_at is None
    assert one.expires_at == created + timedelta(days=90)
    for value in (secret, first.access_token, first.refresh_token, second.access_token, pending_ticket):
        assert value not in repr(listed)

    clock.at += timedelta(minutes=1)
    await oauth.authenticate(first.access_token)
    used = clock.at
    clock.at += timedelta(seconds=30)
    await oauth.authenticate(first.access_token)  # within the minute: not written again
    clock.at += timedelta(minutes=1)
    refreshed = await oauth.refresh(client_id, secret, first.refresh_token)
    (one,) = [g for g in (await oauth.grants("cfg-1", 0, ""))[0] if g.grant_id == one.grant_id]
    assert one.last_used_at == used and one.last_refresh_at == clock.at
    assert one.expires_at == clock.at + timedelta(days=90)
    assert refreshed.access_token not in repr(one)

    page, token = await oauth.grants("cfg-1", 1, "")
    rest, last = await oauth.grants("cfg-1", 1, token)
    assert len(page) == len(rest) == 1 and page[0].grant_id < rest[0].grant_id
    assert (await oauth.grants("cfg-1", 1, last))[0] == []


async def test_revoking_one_grant_ends_its_tokens_at_once_and_leaves_the_others(store: Store) -> None:
    oauth, clock = store.oauth, store.clock
    client_id, secret, first = await connected(oauth)
    first_at = clock.at
    clock.at += timedelta(minutes=5)
    second = await another_grant(oauth, client_id, secret)
    await connected(oauth, "cfg-2")
    by_time = {g.created_at: g for g in (await oauth.grants("cfg-1", 0, ""))[0]}
    ended, kept = by_time[first_at], by_time[clock.at]

    await oauth.revoke_grant("cfg-1", ended.grant_id)
    with pytest.raises(Unauthenticated):
        await oauth.authenticate(first.access_token)
    with pytest.raises(InvalidArgument) as refused:
        await oauth.refresh(client_id, secret, first.refresh_token)
    assert refused.value.reason == "INVALID_GRANT"
    assert (await oauth.authenticate(second.access_token)).config_id == "cfg-1"
    rotated = await oauth.refresh(client_id, secret, second.refresh_token)
    assert (await oauth.authenticate(rotated.access_token)).config_id == "cfg-1"
    assert [g.grant_id for g in (await oauth.grants("cfg-1", 0, ""))[0]] == [kept.grant_id]

    (other,) = (await oauth.grants("cfg-2", 0, ""))[0]
    for config_id, grant_id in (("cfg-1", ended.grant_id), ("cfg-1", other.grant_id), ("cfg-1", "nope")):
        with pytest.raises(NotFound) as missing:  # ended, another config's, unknown
            await oauth.revoke_grant(config_id, grant_id)
        assert missing.value.reason == "GRANT_NOT_FOUND"


async def test_a_refresh_of_a_grant_revoked_meanwhile_issues_nothing(store: Store) -> None:
    oauth = store.oauth
    client_id, secret, tokens = await connected(oauth)
    (grant,) = (await oauth.grants("cfg-1", 0, ""))[0]
    row = await oauth._spend(tokens.refresh_token, "refresh", client_id)  # the token endpoint's first step
    await oauth.revoke_grant("cfg-1", grant.grant_id)  # lands between spend and issue
    with pytest.raises(InvalidArgument) as refused:
        await oauth._tokens(row.grant_id, await oauth._authenticate_client(client_id, secret), first=False)
    assert refused.value.reason == "INVALID_GRANT"
    assert await store.kinds(client_id) == {"ticket": 1, "code": 1, "access": 1, "refresh": 1, "details": 1}


async def _late_uses(oauth: OAuthServer, client_id: str, secret: str, secrets: dict[str, str]) -> dict:
    verifier, challenge = pkce()
    return {
        "ticket": await reason(oauth.authorize(secrets["ticket"], client_id, REDIRECT, challenge, "S256")),
        "code": await reason(oauth.exchange_code(client_id, secret, secrets["code"], REDIRECT, verifier)),
        "access": await reason(oauth.authenticate(secrets["access"])),
        "refresh": await reason(oauth.refresh(client_id, secret, secrets["refresh"])),
    }


async def _one_of_each(oauth: OAuthServer, config_id: str) -> tuple[str, str, dict[str, str]]:
    """An unspent ticket, an unspent code and a live token pair, all of one client."""
    client_id, secret, tokens = await connected(oauth, config_id)
    ticket = await oauth.create_ticket(config_id, client_id)
    _, challenge = pkce()
    code = await oauth.authorize(
        await oauth.create_ticket(config_id, client_id), client_id, REDIRECT, challenge, "S256"
    )
    return (
        client_id,
        secret,
        {"ticket": ticket, "code": code, "access": tokens.access_token, "refresh": tokens.refresh_token},
    )


async def test_expired_secrets_are_purged_and_a_late_use_answers_as_before(store: Store) -> None:
    oauth, clock = store.oauth, store.clock
    before = await _one_of_each(oauth, "cfg-1")
    after = await _one_of_each(oauth, "cfg-2")
    assert await store.kinds(after[0]) == {"ticket": 3, "code": 2, "access": 1, "refresh": 1, "details": 2}

    clock.at += timedelta(days=90, seconds=1)
    answers_before_purge = await _late_uses(oauth, *before)
    assert answers_before_purge == {
        "ticket": (Unauthenticated, "INVALID_CONSENT_TICKET"),
        "code": (InvalidArgument, "INVALID_GRANT"),
        "access": (Unauthenticated, "INVALID_ACCESS_TOKEN"),
        "refresh": (InvalidArgument, "INVALID_GRANT"),
    }
    assert await oauth.purge() > 0
    assert await store.kinds(after[0]) == {} and await store.kinds(before[0]) == {}
    assert await _late_uses(oauth, *after) == answers_before_purge
    assert await oauth.purge() == 0


async def test_the_purge_keeps_a_live_grants_spent_refresh_tokens_so_a_replay_still_ends_it(store: Store) -> None:
    oauth, clock = store.oauth, store.clock
    client_id, secret, first = await connected(oauth)
    clock.at += timedelta(hours=2)
    second = await oauth.refresh(client_id, secret, first.refresh_token)
    pending = await oauth.create_ticket("cfg-1", client_id)
    clock.at += timedelta(minutes=11)  # the first grant's ticket and code are expired, the new ticket too

    await oauth.purge()
    # Gone: the spent ticket and code, the replaced access token, the expired ticket. Kept: the live
    # pair and the spent refresh token a replay would present.
    assert await store.kinds(client_id) == {"access": 1, "refresh": 2, "details": 1}
    with pytest.raises(Unauthenticated):
        await oauth.authorize(pending, client_id, REDIRECT, pkce()[1], "S256")

    assert (await oauth.authenticate(second.access_token)).client_id == client_id
    with pytest.raises(InvalidArgument) as replay:
        await oauth.refresh(client_id, secret, first.refresh_token)
    assert replay.value.reason == "INVALID_GRANT"
    with pytest.raises(Unauthenticated):  # the replay ended the grant, after a purge too
        await oauth.authenticate(second.access_token)
    assert (await oauth.grants("cfg-1", 0, ""))[0] == []

    await oauth.purge()  # the grant is over: all of it goes
    assert await store.kinds(client_id) == {}
    with pytest.raises(InvalidArgument) as late:
        await oauth.refresh(client_id, secret, second.refresh_token)
    assert late.value.reason == "INVALID_GRANT"


async def test_the_purge_leaves_what_is_still_usable(store: Store) -> None:
    oauth, clock = store.oauth, store.clock
    client_id, secret, tokens = await connected(oauth)
    ticket = await oauth.create_ticket("cfg-1", client_id)
    clock.at += timedelta(minutes=9)
    await oauth.purge()
    verifier, challenge = pkce()
    code = await oauth.authorize(ticket, client_id, REDIRECT, challenge, "S256")
    await oauth.purge()
    again = await oauth.exchange_code(client_id, secret, code, REDIRECT, verifier)
    await oauth.purge()
    for live in (tokens, again):
        assert (await oauth.authenticate(live.access_token)).config_id == "cfg-1"
        assert (await oauth.refresh(client_id, secret, live.refresh_token)).config_id == "cfg-1"
    assert len((await oauth.grants("cfg-1", 0, ""))[0]) == 2


# --- over real gRPC, against the registry and the audit service ------------------------------------

ADMIN_P1 = Caller(user_id="admin-p1", practice_id="p1", role="admin", ip_address="10.0.0.1", request_id="r-1")
ADMIN_P2 = Caller(user_id="admin-p2", practice_id="p2", role="admin", ip_address="10.0.0.2", request_id="r-2")


async def zapier_configs(harness: Harness) -> tuple[str, str]:
    """A Zapier config in practice p1 (the harness's) and one in a second practice, p2."""
    await call(harness.registry.CreatePractice, rpb.CreatePracticeRequest(practice_id="p2", name="Dune Clinic"))
    ids = []
    for practice_id in ("p1", "p2"):
        created = await call(
            harness.registry.CreateIntegrationConfig,
            rpb.CreateIntegrationConfigRequest(
                config=rpb.IntegrationConfig(practice_id=practice_id, integration_type="zapier")
            ),
        )
        ids.append(created.config.config_id)
    return ids[0], ids[1]


async def grpc_client(stub: ConnectionStub, config_id: str) -> tuple[str, str]:
    created = await call(
        stub.CreateIssuedOAuthClient, pb.CreateIssuedOAuthClientRequest(config_id=config_id, redirect_uri=REDIRECT)
    )
    return created.client.client_id, created.client_secret


async def grpc_grant(
    stub: ConnectionStub, config_id: str, client_id: str, secret: str
) -> pb.ExchangeIssuedOAuthTokenResponse:
    """The consent ticket (an admin's), then what the gateway's authorize and token endpoints ask."""
    ticket = (
        await call(
            stub.CreateOAuthConsentTicket, pb.CreateOAuthConsentTicketRequest(config_id=config_id, client_id=client_id)
        )
    ).ticket
    verifier, challenge = pkce()
    with acting_as(Caller()):  # Zapier's side: no user
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
        return await call(
            stub.ExchangeIssuedOAuthToken,
            pb.ExchangeIssuedOAuthTokenRequest(
                grant_type="authorization_code",
                client_id=client_id,
                client_secret=secret,
                code=code,
                redirect_uri=REDIRECT,
                code_verifier=verifier,
            ),
        )


async def grpc_refresh(
    stub: ConnectionStub, client_id: str, secret: str, refresh_token: str
) -> pb.ExchangeIssuedOAuthTokenResponse:
    request = pb.ExchangeIssuedOAuthTokenRequest(
        grant_type="refresh_token", client_id=client_id, client_secret=secret, refresh_token=refresh_token
    )
    return await call(stub.ExchangeIssuedOAuthToken, request)


async def bearer_reason(stub: ConnectionStub, access_token: str) -> str:
    try:
        await call(
            stub.AuthenticateIssuedAccessToken, pb.AuthenticateIssuedAccessTokenRequest(access_token=access_token)
        )
    except Unauthenticated as refused:
        return refused.reason
    return "OK"


async def audit_events(harness: Harness, practice_id: str) -> list[tuple[str, str, str]]:
    answer = await call(harness.audit.Query, apb.QueryRequest(practice_id=practice_id, page_size=100))
    return [(e.action, e.resource, e.user_id) for e in answer.events if e.action.startswith("credential.")]


async def test_grants_over_grpc_are_listed_revoked_and_audited_in_the_callers_practice_only(
    harness: Harness, raw_db: RawDatabase
) -> None:
    stub = harness.stub
    mine, theirs = await zapier_configs(harness)
    with acting_as(ADMIN_P1):
        client_id, secret = await grpc_client(stub, mine)
        first = await grpc_grant(stub, mine, client_id, secret)
        second = await grpc_grant(stub, mine, client_id, secret)
        listed = await call(stub.ListIssuedOAuthGrants, pb.ListIssuedOAuthGrantsRequest(config_id=mine))
    assert len(listed.grants) == 2 and listed.next_page_token == ""
    assert {(g.client_id, g.config_id, g.practice_id, tuple(g.scopes)) for g in listed.grants} == {
        (client_id, mine, "p1", ("zapier",))
    }
    assert all(g.create_time.seconds and g.expire_time.seconds for g in listed.grants)
    for value in (secret, first.access_token, first.refresh_token, second.access_token, second.refresh_token):
        assert value not in str(listed)
    assert await bearer_reason(stub, first.access_token) == "OK"
    with acting_as(ADMIN_P1):
        used = await call(stub.ListIssuedOAuthGrants, pb.ListIssuedOAuthGrantsRequest(config_id=mine))
    assert sum(g.HasField("last_use_time") for g in used.grants) == 1  # the first grant's access token was used
    ended = next(g for g in used.grants if g.HasField("last_use_time"))

    with acting_as(ADMIN_P2):  # another practice: not told apart from nothing at all
        with pytest.raises(NotFound) as listing:
            await call(stub.ListIssuedOAuthGrants, pb.ListIssuedOAuthGrantsRequest(config_id=mine))
        assert listing.value.reason == "CONFIG_NOT_FOUND"
        with pytest.raises(NotFound) as registering:
            await grpc_client(stub, mine)
        assert registering.value.reason == "CONFIG_NOT_FOUND"
        with pytest.raises(NotFound) as consenting:
            await call(
                stub.CreateOAuthConsentTicket, pb.CreateOAuthConsentTicketRequest(config_id=mine, client_id=client_id)
            )
        assert consenting.value.reason == "OAUTH_CLIENT_NOT_FOUND"
        for config_id in (mine, theirs):
            with pytest.raises(NotFound) as revoking:
                await call(
                    stub.RevokeIssuedOAuthGrant,
                    pb.RevokeIssuedOAuthGrantRequest(config_id=config_id, grant_id=ended.grant_id),
                )
            assert revoking.value.reason == "GRANT_NOT_FOUND"
        assert (await call(stub.ListIssuedOAuthGrants, pb.ListIssuedOAuthGrantsRequest(config_id=theirs))).grants == []
    assert await bearer_reason(stub, first.access_token) == "OK"

    with acting_as(ADMIN_P1):
        await call(
            stub.RevokeIssuedOAuthGrant, pb.RevokeIssuedOAuthGrantRequest(config_id=mine, grant_id=ended.grant_id)
        )
        left = await call(stub.ListIssuedOAuthGrants, pb.ListIssuedOAuthGrantsRequest(config_id=mine))
        with pytest.raises(InvalidArgument) as refresh:
            await grpc_refresh(stub, client_id, secret, first.refresh_token)
        with pytest.raises(NotFound):
            await call(
                stub.RevokeIssuedOAuthGrant, pb.RevokeIssuedOAuthGrantRequest(config_id=mine, grant_id=ended.grant_id)
            )
    assert refresh.value.reason == "INVALID_GRANT"
    assert await bearer_reason(stub, first.access_token) == "INVALID_ACCESS_TOKEN"
    assert await bearer_reason(stub, second.access_token) == "OK"
    assert [g.grant_id for g in left.grants] != [ended.grant_id] and len(left.grants) == 1

    assert await audit_events(harness, "p1") == [
        ("credential.create", f"IssuedOAuthClient/{client_id}", "admin-p1"),
        ("credential.consent", f"IssuedOAuthClient/{client_id}", "admin-p1"),
        ("credential.consent", f"IssuedOAuthClient/{client_id}", "admin-p1"),
        ("credential.revoke", f"IssuedOAuthGrant/{ended.grant_id}", "admin-p1"),
    ]
    assert await audit_events(harness, "p2") == []
    stored = repr(await raw_db.rows())
    for value in (secret, first.access_token, first.refresh_token, second.access_token, second.refresh_token):
        assert value not in stored


async def test_a_replayed_refresh_token_is_audited_as_the_system_ending_the_grant(harness: Harness) -> None:
    stub = harness.stub
    mine, _ = await zapier_configs(harness)
    with acting_as(ADMIN_P1):
        client_id, secret = await grpc_client(stub, mine)
        first = await grpc_grant(stub, mine, client_id, secret)
        (grant,) = (await call(stub.ListIssuedOAuthGrants, pb.ListIssuedOAuthGrantsRequest(config_id=mine))).grants
    with acting_as(Caller()):
        rotated = await grpc_refresh(stub, client_id, secret, first.refresh_token)
        with pytest.raises(InvalidArgument):
            await grpc_refresh(stub, client_id, secret, first.refresh_token)
    assert await bearer_reason(stub, rotated.access_token) == "INVALID_ACCESS_TOKEN"
    assert (await audit_events(harness, "p1"))[-1] == (
        "credential.revoke",
        f"IssuedOAuthGrant/{grant.grant_id}",
        "system:connection",
    )


async def test_keys_over_grpc_are_listed_with_their_last_use_and_confined_to_the_practice(harness: Harness) -> None:
    stub = harness.stub
    mine, theirs = await zapier_configs(harness)
    with acting_as(ADMIN_P1):
        created = await call(stub.CreateInboundKey, pb.CreateInboundKeyRequest(config_id=mine, label="zaps"))
        other = await call(stub.CreateInboundKey, pb.CreateInboundKeyRequest(config_id=mine, label="spare"))
        listed = await call(stub.ListInboundKeys, pb.ListInboundKeysRequest(config_id=mine))
    assert sorted((k.key_id, k.label, k.HasField("last_use_time")) for k in listed.keys) == sorted(
        [(created.key.key_id, "zaps", False), (other.key.key_id, "spare", False)]
    )
    assert created.api_key not in str(listed) and other.api_key not in str(listed)
    await call(stub.AuthenticateInboundKey, pb.AuthenticateInboundKeyRequest(api_key=created.api_key))
    with acting_as(ADMIN_P1):
        used = {k.key_id: k for k in (await call(stub.ListInboundKeys, pb.ListInboundKeysRequest(config_id=mine))).keys}
    assert used[created.key.key_id].HasField("last_use_time") and not used[other.key.key_id].HasField("last_use_time")

    with acting_as(ADMIN_P2):
        with pytest.raises(NotFound) as listing:
            await call(stub.ListInboundKeys, pb.ListInboundKeysRequest(config_id=mine))
        assert listing.value.reason == "CONFIG_NOT_FOUND"
        with pytest.raises(NotFound) as creating:
            await call(stub.CreateInboundKey, pb.CreateInboundKeyRequest(config_id=mine, label="theirs"))
        assert creating.value.reason == "CONFIG_NOT_FOUND"
        with pytest.raises(NotFound) as revoking:
            await call(stub.RevokeInboundKey, pb.RevokeInboundKeyRequest(config_id=mine, key_id=other.key.key_id))
        # The registry, asked for my config on their behalf, already answers as if it did not exist.
        assert revoking.value.reason in {"KEY_NOT_FOUND", "CONFIG_NOT_FOUND"}
        assert (await call(stub.ListInboundKeys, pb.ListInboundKeysRequest(config_id=theirs))).keys == []
    with acting_as(ADMIN_P1):
        await call(stub.RevokeInboundKey, pb.RevokeInboundKeyRequest(config_id=mine, key_id=other.key.key_id))
        left = await call(stub.ListInboundKeys, pb.ListInboundKeysRequest(config_id=mine))
    assert [k.key_id for k in left.keys] == [created.key.key_id]
    assert await audit_events(harness, "p1") == [
        ("credential.create", f"InboundKey/{created.key.key_id}", "admin-p1"),
        ("credential.create", f"InboundKey/{other.key.key_id}", "admin-p1"),
        ("credential.revoke", f"InboundKey/{other.key.key_id}", "admin-p1"),
    ]


async def test_the_background_loop_purges_expired_secrets_on_the_services_clock(
    harness: Harness, raw_db: RawDatabase
) -> None:
    clock = Clock()
    server, stub = await harness.start_connection(clock=clock, refresh_interval_seconds=0.05)
    mine, _ = await zapier_configs(harness)
    with acting_as(ADMIN_P1):
        client_id, secret = await grpc_client(stub, mine)
        tokens = await grpc_grant(stub, mine, client_id, secret)
    assert await bearer_reason(stub, tokens.access_token) == "OK"
    assert await raw_db.oauth_rows(client_id) == {"ticket": 1, "code": 1, "access": 1, "refresh": 1, "details": 1}

    clock.at += timedelta(days=90, seconds=1)
    assert server.refresher is not None
    await server.refresher.next_cycle()  # may have begun before the clock moved ...
    await server.refresher.next_cycle()  # ... this one began after it
    assert await raw_db.oauth_rows(client_id) == {}
    assert await bearer_reason(stub, tokens.access_token) == "INVALID_ACCESS_TOKEN"
    with acting_as(Caller()), pytest.raises(InvalidArgument) as late:
        await grpc_refresh(stub, client_id, secret, tokens.refresh_token)
    assert late.value.reason == "INVALID_GRANT"


# --- grants issued before migration 0005 ------------------------------------------------------------


def _upgrade_to(connection, revision: str, schema: str | None) -> None:  # noqa: ANN001
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    command.upgrade(config, revision)


async def test_grants_issued_before_0005_get_their_row_and_keep_working(settings: Settings) -> None:
    clock = Clock()
    t0 = clock.at - timedelta(hours=3)
    secret, verifier = "zs_" + "s" * 43, pkce()
    tokens = {name: prefix + name * 43 for name, prefix in (("a", "zat_"), ("r", "zrt_"), ("c", "zac_"))}

    def row(value: str, kind: str, grant_id: str, at, ttl: timedelta, used=None, **extra) -> dict:  # noqa: ANN001
        return {
            "secret_hash": _hash(value),
            "kind": kind,
            "grant_id": grant_id,
            "client_id": "zc_old",
            "config_id": "cfg-1",
            "practice_id": "practice-a",
            "expires_at": at + ttl,
            "used_at": used,
            "created_at": at,
            "code_challenge": None,
            "redirect_uri": None,
            **extra,
        }

    hour, days90 = timedelta(hours=1), timedelta(days=90)
    rows = [
        # A: exchanged at t0, refreshed at t0 + 1h; its live pair is a and r.
        row("zac_" + "1" * 43, "code", "grant-a", t0, timedelta(minutes=10), t0),
        row("zat_" + "1" * 43, "access", "grant-a", t0, hour, t0 + hour),
        row("zrt_" + "1" * 43, "refresh", "grant-a", t0, days90, t0 + hour),
        row(tokens["a"], "access", "grant-a", t0 + hour, hour * 4),
        row(tokens["r"], "refresh", "grant-a", t0 + hour, days90),
        # B: a code not yet exchanged.
        row(
            tokens["c"],
            "code",
            "grant-b",
            clock.at - timedelta(minutes=1),
            timedelta(minutes=10),
            code_challenge=verifier[1],
            redirect_uri=REDIRECT,
        ),
        # C: revoked (every secret spent).
        row("zrt_" + "2" * 43, "refresh", "grant-c", t0, days90, t0 + hour),
    ]
    engine = create_engine("connection", settings)
    schema = schema_for("connection", settings)
    try:
        async with engine.begin() as conn:
            if schema:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            await conn.run_sync(_upgrade_to, "0004", schema)
            await conn.execute(
                insert(models.issued_oauth_clients).values(
                    client_id="zc_old",
                    secret_hash=_hash(secret),
                    config_id="cfg-1",
                    practice_id="practice-a",
                    redirect_uri=REDIRECT,
                    created_at=t0,
                )
            )
            await conn.execute(insert(models.issued_oauth_grants), rows)
        await migrate(engine, MIGRATIONS, schema)
        oauth = OAuthServer(create_session_factory(engine), now=clock)

        (grant,) = (await oauth.grants("cfg-1", 0, ""))[0]
        assert (grant.grant_id, grant.created_at, grant.last_refresh_at) == ("grant-a", t0, t0 + hour)
        assert grant.expires_at == t0 + hour + days90
        assert (await oauth.authenticate(tokens["a"])).client_id == "zc_old"
        exchanged = await oauth.exchange_code("zc_old", secret, tokens["c"], REDIRECT, verifier[0])
        assert {g.grant_id for g in (await oauth.grants("cfg-1", 0, ""))[0]} == {"grant-a", "grant-b"}
        with pytest.raises(NotFound):
            await oauth.revoke_grant("cfg-1", "grant-c")
        await oauth.revoke_grant("cfg-1", "grant-a")
        with pytest.raises(Unauthenticated):
            await oauth.authenticate(tokens["a"])
        assert (await oauth.authenticate(exchanged.access_token)).config_id == "cfg-1"
    finally:
        await engine.dispose()


async def _grant_ids(stub: ConnectionStub, config_id: str) -> list[str]:
    listed = await call(stub.ListIssuedOAuthGrants, pb.ListIssuedOAuthGrantsRequest(config_id=config_id))
    return [g.grant_id for g in listed.grants]


async def test_disconnect_ends_every_key_and_grant_for_good(harness: Harness) -> None:
    stub = harness.stub
    mine, _ = await zapier_configs(harness)
    with acting_as(ADMIN_P1):
        key = await call(stub.CreateInboundKey, pb.CreateInboundKeyRequest(config_id=mine))
        client_id, secret = await grpc_client(stub, mine)
        grant = await grpc_grant(stub, mine, client_id, secret)
        (first_grant,) = await _grant_ids(stub, mine)
        await call(stub.Disconnect, pb.DisconnectRequest(config_id=mine))
        assert (await call(stub.ListInboundKeys, pb.ListInboundKeysRequest(config_id=mine))).keys == []
        assert await _grant_ids(stub, mine) == []
        again = await grpc_grant(stub, mine, client_id, secret)  # connected again by a code exchange
        (second_grant,) = await _grant_ids(stub, mine)
    assert await bearer_reason(stub, again.access_token) == "OK"
    assert await bearer_reason(stub, grant.access_token) == "INVALID_ACCESS_TOKEN"
    with pytest.raises(Unauthenticated):
        await call(stub.AuthenticateInboundKey, pb.AuthenticateInboundKeyRequest(api_key=key.api_key))
    with acting_as(Caller()), pytest.raises(InvalidArgument):
        await grpc_refresh(stub, client_id, secret, grant.refresh_token)

    with acting_as(ADMIN_P1):
        await call(stub.Disconnect, pb.DisconnectRequest(config_id=mine))
        fresh = await call(stub.CreateInboundKey, pb.CreateInboundKeyRequest(config_id=mine))  # connected by a key
        assert await _grant_ids(stub, mine) == []
    await call(stub.AuthenticateInboundKey, pb.AuthenticateInboundKeyRequest(api_key=fresh.api_key))
    assert await bearer_reason(stub, again.access_token) == "INVALID_ACCESS_TOKEN"
    revoked = [resource for action, resource, _ in await audit_events(harness, "p1") if action == "credential.revoke"]
    assert revoked == [
        f"InboundKey/{key.key.key_id}",
        f"IssuedOAuthGrant/{first_grant}",
        f"IssuedOAuthGrant/{second_grant}",
    ]
