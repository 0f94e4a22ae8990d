"""HIPAA access control at the gateway: refused tokens change nothing, roles and data access
levels (full / limited / read_only), the absolute session bound, and an external OIDC issuer whose
JWKS is fetched, cached and re-fetched when the IdP rotates its key."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from libs.asgi import RunningAsgi, serve_asgi
from libs.errors import Unauthenticated, Unavailable
from libs.grpc_client import open_channel
from libs.protos.concord.audit.v1 import audit_pb2_grpc
from libs.protos.concord.connection.v1 import connection_pb2_grpc
from libs.protos.concord.mapping.v1 import mapping_pb2_grpc
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from libs.protos.concord.sync.v1 import sync_pb2_grpc
from services.gateway.access import LIMITED_PATIENT_ELEMENTS
from services.gateway.app import create_app
from services.gateway.auth import JWKS_REFETCH_SECONDS, DevIssuer, RemoteJwks, TokenVerifier
from services.gateway.deps import Backends
from services.supervisor import Stack
from tests.gateway.conftest import Client, assert_problem

MRN = {
    "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
    "system": "urn:concord:test:mrn",
    "value": "MRN-0042",
}
SSN = {
    "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS"}]},
    "system": "http://hl7.org/fhir/sid/us-ssn",
    "value": "078-05-1120",
}
CONSENT = {
    "url": "https://concord.health/fhir/StructureDefinition/marketing-consent",
    "extension": [{"url": "channel", "valueCode": "sms"}, {"url": "decision", "valueCode": "deny"}],
}


def patient(**extra: object) -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [MRN, SSN],
        "name": [{"family": "Thistlewood", "given": ["Ines"]}],
        "telecom": [{"system": "phone", "value": "+16175550142"}, {"system": "email", "value": "ines@example.com"}],
        "gender": "female",
        "birthDate": "1979-11-02",
        "address": [{"line": ["12 Larch Lane"], "city": "Salem", "state": "MA", "postalCode": "01970"}],
        "maritalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]
        },
        "contact": [{"name": {"family": "Thistlewood", "given": ["Olaf"]}}],
        "extension": [CONSENT],
        **extra,
    }


HIDDEN = {"address", "maritalStatus", "contact", "extension"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(issuer: DevIssuer, practice: str, **changes: object) -> dict:
    now = int(time.time())
    claims = {
        "iss": issuer.issuer,
        "aud": issuer.audience,
        "sub": "mallory",
        "practice_id": practice,
        "role": "admin",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(issuer: DevIssuer, practice: str, key: RSAKey | None = None, **changes: object) -> str:
    key = key or issuer.key
    return jwt.encode({"alg": "RS256", "kid": key.kid}, _claims(issuer, practice, **changes), key)


def _unsigned(header: dict, claims: dict) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _alg_none(issuer: DevIssuer, practice_id: str) -> str:
    return _unsigned({"alg": "none", "typ": "JWT"}, _claims(issuer, practice_id)) + "."


def _hs256_with_public_key(issuer: DevIssuer, practice_id: str) -> str:
    signing = _unsigned({"alg": "HS256", "kid": issuer.key.kid}, _claims(issuer, practice_id))
    mac = hmac.new(issuer.key.as_pem(private=False), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{_b64(mac)}"


def _tampered(issuer: DevIssuer, practice_id: str) -> str:
    # A genuine staff token whose payload is edited to say admin: the signature no longer matches.
    header, _, signature = _signed(issuer, practice_id, role="staff").split(".")
    return f"{header}.{_b64(json.dumps(_claims(issuer, practice_id)).encode())}.{signature}"


def _other_key(kid: str | None = None) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid} if kid else None, private=True)


def _hour_ago() -> int:
    return int(time.time()) - 3600


# Each forgery of an admin token for the client's own practice, and the reason it is refused with.
FORGERIES: dict[str, tuple[Callable[[DevIssuer, str], str], str]] = {
    "forged signature (another key, same kid)": (
        lambda i, p: _signed(i, p, key=_other_key(i.key.kid)),
        "INVALID_TOKEN",
    ),
    "tampered payload": (_tampered, "INVALID_TOKEN"),
    "unknown kid": (lambda i, p: _signed(i, p, key=_other_key("rotated-away")), "INVALID_TOKEN"),
    "expired": (lambda i, p: _signed(i, p, exp=int(time.time()) - 120, iat=int(time.time()) - 900), "INVALID_TOKEN"),
    "wrong audience": (lambda i, p: _signed(i, p, aud="another-api"), "INVALID_TOKEN"),
    "wrong issuer": (lambda i, p: _signed(i, p, iss="https://idp.evil.example"), "INVALID_TOKEN"),
    "alg none": (_alg_none, "INVALID_TOKEN"),
    "HS256 keyed with the public key": (_hs256_with_public_key, "INVALID_TOKEN"),
    "issued in the future": (lambda i, p: _signed(i, p, iat=int(time.time()) + 3600), "INVALID_TOKEN"),
    "no subject": (lambda i, p: _signed(i, p, sub=None), "INVALID_TOKEN"),
    "no expiry": (lambda i, p: _signed(i, p, exp=None), "INVALID_TOKEN"),
    "no role": (lambda i, p: _signed(i, p, role=None), "INVALID_TOKEN_CLAIMS"),
    "no practice": (lambda i, p: _signed(i, p, practice_id=None), "INVALID_TOKEN_CLAIMS"),
    "unknown data access level": (lambda i, p: _signed(i, p, data_access_level="everything"), "INVALID_TOKEN_CLAIMS"),
    "session older than the bound": (
        lambda i, p: _signed(i, p, iat=_hour_ago(), exp=_hour_ago() + 7200),
        "SESSION_EXPIRED",
    ),
}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _patient_count(client: Client) -> int:
    listed = await client.http.get("/patients", params={"page_size": 500}, headers=client.headers("admin"))
    assert listed.status_code == 200, listed.text
    return len(listed.json()["patients"])


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
async def test_a_refused_token_is_401_with_its_reason_and_changes_nothing(admin: Client, forgery: str) -> None:
    make, reason = FORGERIES[forgery]
    token = make(admin.stack.gateway.issuer, admin.practice_id)  # type: ignore[union-attr]
    before = await _patient_count(admin)

    created = await admin.http.post("/patients", json=patient(), headers=_bearer(token))
    body = assert_problem(created, 401, reason=reason)
    assert created.headers["www-authenticate"] == "Bearer"
    assert token not in created.text and "Thistlewood" not in created.text
    renamed = await admin.http.post("/practice", json={"name": "Hijacked"}, headers=_bearer(token))
    assert_problem(renamed, 401, reason=reason)
    assert body["reason"] == reason
    assert await _patient_count(admin) == before


async def test_a_staff_user_calling_an_admin_operation_is_refused_and_nothing_changes(admin: Client) -> None:
    staff = admin.headers("staff")
    before = (await admin.http.get("/integrations/hl/status", headers=admin.headers())).json()
    assert before["active"] is True

    refused = await admin.http.post("/integrations/hl/patients/sync-settings", json={"active": False}, headers=staff)
    assert_problem(refused, 403, reason="ROLE_FORBIDDEN")
    assert_problem(await admin.http.get("/audit/verify", headers=staff), 403, reason="ROLE_FORBIDDEN")

    after = (await admin.http.get("/integrations/hl/status", headers=admin.headers())).json()
    assert after == before


async def _create(client: Client, resource: dict | None = None) -> str:
    created = await client.http.post("/patients", json=resource or patient(), headers=client.headers("admin"))
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def test_limited_staff_see_no_address_contacts_extensions_or_identifiers_beyond_the_mrn(admin: Client) -> None:
    patient_id = await _create(admin)
    full = (await admin.http.get(f"/patients/{patient_id}", headers=admin.headers("provider"))).json()
    assert HIDDEN <= full.keys() and len(full["identifier"]) == 2

    seen = await admin.http.get(f"/patients/{patient_id}", headers=admin.headers("staff"))
    assert seen.status_code == 200, seen.text
    view = seen.json()
    assert view.keys() <= LIMITED_PATIENT_ELEMENTS
    assert not HIDDEN & view.keys()
    assert view["identifier"] == [MRN]
    assert view["name"] == full["name"] and view["telecom"] == full["telecom"]
    assert view["birthDate"] == "1979-11-02" and view["id"] == patient_id
    for phi in ("Larch Lane", "01970", "078-05-1120", "Olaf", "marketing-consent"):
        assert phi not in seen.text

    listed = await admin.http.get("/patients", headers=admin.headers("staff"))
    (row,) = [p for p in listed.json()["patients"] if p["id"] == patient_id]
    assert row == view
    assert "Larch Lane" not in listed.text

    # Staff register patients with an address: they may write what they cannot read back.
    created = await admin.http.post("/patients", json=patient(), headers=admin.headers("staff"))
    assert created.status_code == 201, created.text
    assert "address" not in created.json()
    stored = await admin.http.get(f"/patients/{created.json()['id']}", headers=admin.headers())
    assert stored.json()["address"] == full["address"]


async def test_a_limited_replacement_keeps_what_staff_could_not_see(admin: Client) -> None:
    patient_id = await _create(admin)
    staff = admin.headers("staff")
    read = await admin.http.get(f"/patients/{patient_id}", headers=staff)
    view = read.json()
    view["telecom"] = [{"system": "phone", "value": "+16175550199"}]

    put = await admin.http.put(
        f"/patients/{patient_id}", json=view, headers={**staff, "If-Match": read.headers["ETag"]}
    )
    assert put.status_code == 200, put.text
    assert "address" not in put.json()

    stored = (await admin.http.get(f"/patients/{patient_id}", headers=admin.headers())).json()
    assert stored["telecom"] == [{"system": "phone", "value": "+16175550199"}]
    assert stored["address"] == patient()["address"]
    assert stored["contact"] == patient()["contact"] and stored["extension"] == [CONSENT]
    assert stored["identifier"] == [MRN, SSN]

    # The If-Match check still decides: a stale ETag is refused and nothing is written.
    stale = await admin.http.put(
        f"/patients/{patient_id}", json=view | {"gender": "other"}, headers={**staff, "If-Match": read.headers["ETag"]}
    )
    assert stale.status_code in (409, 412), stale.text
    assert (await admin.http.get(f"/patients/{patient_id}", headers=admin.headers())).json()["gender"] == "female"


async def test_a_token_claim_narrows_the_roles_access_level_but_never_widens_it(admin: Client) -> None:
    patient_id = await _create(admin)
    issuer = admin.stack.gateway.issuer  # type: ignore[union-attr]

    provider_limited = _signed(issuer, admin.practice_id, role="provider", data_access_level="limited")
    narrowed = await admin.http.get(f"/patients/{patient_id}", headers=_bearer(provider_limited))
    assert narrowed.status_code == 200 and "address" not in narrowed.json()

    staff_full = _signed(issuer, admin.practice_id, role="staff", data_access_level="full")
    widened = await admin.http.get(f"/patients/{patient_id}", headers=_bearer(staff_full))
    assert widened.status_code == 200 and "address" not in widened.json()

    admin_full = _signed(issuer, admin.practice_id, data_access_level="full")
    assert "address" in (await admin.http.get(f"/patients/{patient_id}", headers=_bearer(admin_full))).json()


async def test_read_only_access_reads_but_every_write_is_refused_with_403(admin: Client) -> None:
    patient_id = await _create(admin)
    before = (await admin.http.get(f"/patients/{patient_id}", headers=admin.headers())).json()
    count = await _patient_count(admin)
    issuer = admin.stack.gateway.issuer  # type: ignore[union-attr]
    read_only = _bearer(_signed(issuer, admin.practice_id, role="admin", data_access_level="read_only"))

    read = await admin.http.get(f"/patients/{patient_id}", headers=read_only)
    assert read.status_code == 200, read.text
    assert "address" not in read.json()  # read_only shows what limited shows
    assert (await admin.http.get("/patients", headers=read_only)).status_code == 200
    assert (await admin.http.get("/integrations/hl/status", headers=read_only)).status_code == 200

    writes = [
        ("POST", "/patients", patient()),
        ("PUT", f"/patients/{patient_id}", before | {"gender": "other"}),
        ("DELETE", f"/patients/{patient_id}", None),
        ("POST", "/practice", {"name": "Renamed"}),
        ("POST", "/integrations/hl/patients/sync-settings", {"active": False}),
        # A GET that makes a config is a write too: refused by its permission.
        ("GET", "/integrations/hl/authorize", None),
    ]
    for method, path, body in writes:
        response = await admin.http.request(method, path, json=body, headers=read_only)
        assert_problem(response, 403, reason="READ_ONLY_ACCESS")

    assert (await admin.http.get(f"/patients/{patient_id}", headers=admin.headers())).json() == before
    assert await _patient_count(admin) == count
    assert (await admin.http.get("/integrations/hl/status", headers=admin.headers())).json()["active"] is True


async def test_a_session_older_than_the_timeout_is_refused_even_before_exp(admin: Client) -> None:
    issuer = admin.stack.gateway.issuer  # type: ignore[union-attr]
    bound = admin.stack.settings.session_timeout_minutes * 60
    assert bound > 0
    now = int(time.time())
    count = await _patient_count(admin)

    old = _signed(issuer, admin.practice_id, iat=now - bound - 120, exp=now + 3600)
    refused = await admin.http.post("/patients", json=patient(), headers=_bearer(old))
    body = assert_problem(refused, 401, reason="SESSION_EXPIRED")
    assert refused.headers["www-authenticate"] == "Bearer" and "sign in" in body["detail"]
    assert await _patient_count(admin) == count

    # A refreshed token (new iat) of a session that began too long ago (auth_time): still refused.
    refreshed = _signed(issuer, admin.practice_id, iat=now, auth_time=now - bound - 120, exp=now + 600)
    assert_problem(await admin.http.get("/patients", headers=_bearer(refreshed)), 401, reason="SESSION_EXPIRED")

    # Within the bound, by auth_time or iat: accepted.
    recent = _signed(issuer, admin.practice_id, iat=now, auth_time=now - bound + 120, exp=now + 600)
    assert (await admin.http.get("/patients", headers=_bearer(recent))).status_code == 200
    young = _signed(issuer, admin.practice_id, iat=now - bound + 120, exp=now + 600)
    assert (await admin.http.get("/patients", headers=_bearer(young))).status_code == 200


# --- an external OIDC issuer ----------------------------------------------------------------------

IDP_ISSUER = "https://idp.example.test/realms/concord"
IDP_AUDIENCE = "concord-api"
PRACTICE_CLAIM = "https://concord.health/practice"
ROLE_CLAIM = "concord_role"


@dataclass
class FakeIdp:
    """An OIDC issuer: its JWKS served over HTTP (counted), its private keys to sign with."""

    signing: list[RSAKey | ECKey | OctKey] = field(default_factory=list)
    requests: int = 0
    status: int = 200
    server: RunningAsgi | None = None

    @property
    def jwks_url(self) -> str:
        return f"{self.server.url}/jwks"  # type: ignore[union-attr]

    async def jwks(self, _request: Request) -> JSONResponse:
        self.requests += 1
        # A symmetric key can only be published with its secret (the misconfiguration tested below).
        keys = [key.as_dict(private=isinstance(key, OctKey)) for key in self.signing]
        return JSONResponse({"keys": keys}, status_code=self.status)

    def token(self, key: RSAKey | ECKey, practice_id: str, role: str = "admin", **changes: object) -> str:
        now = int(time.time())
        claims = {
            "iss": IDP_ISSUER,
            "aud": [IDP_AUDIENCE, "account"],
            "sub": "f4a1c7e0-idp-user",
            PRACTICE_CLAIM: practice_id,
            ROLE_CLAIM: role,
            "iat": now,
            "auth_time": now,
            "exp": now + 300,
        }
        claims.update(changes)
        alg = "ES256" if isinstance(key, ECKey) else "RS256"
        return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key)


@pytest.fixture
async def idp() -> AsyncIterator[FakeIdp]:
    fake = FakeIdp()
    fake.server = await serve_asgi(Starlette(routes=[Route("/jwks", fake.jwks)]))
    yield fake
    await fake.server.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class ExternalGateway:
    http: httpx.AsyncClient
    verifier: TokenVerifier
    clock: Clock


@pytest.fixture
async def external(stack: Stack, idp: FakeIdp) -> AsyncIterator[ExternalGateway]:
    """A second gateway on the same services, trusting the fake IdP instead of the dev issuer."""
    settings = stack.settings.model_copy(
        update={
            "oidc_jwks_url": idp.jwks_url,
            "jwt_issuer": IDP_ISSUER,
            "jwt_audience": IDP_AUDIENCE,
            "oidc_practice_claim": PRACTICE_CLAIM,
            "oidc_role_claim": ROLE_CLAIM,
        }
    )
    names = ("registry", "connection", "sync", "audit", "mapping")
    channels = [open_channel(settings.service_address(name)) for name in names]
    backends = Backends(
        registry=registry_pb2_grpc.RegistryServiceStub(channels[0]),
        connection=connection_pb2_grpc.ConnectionServiceStub(channels[1]),
        sync=sync_pb2_grpc.SyncServiceStub(channels[2]),
        audit=audit_pb2_grpc.AuditServiceStub(channels[3]),
        mapping=mapping_pb2_grpc.MappingServiceStub(channels[4]),
    )
    app = create_app(settings, backends, KeySet([stack.gateway.issuer.key]))  # type: ignore[union-attr]
    verifier: TokenVerifier = app.state.verifier
    clock = Clock()
    assert verifier.jwks is not None and verifier.jwks.url == idp.jwks_url
    verifier.jwks.clock = clock
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test", timeout=60) as http:
        yield ExternalGateway(http, verifier, clock)
    for channel in channels:
        await channel.close()


async def test_an_external_issuers_tokens_are_verified_against_its_jwks_fetched_once(
    stack: Stack, idp: FakeIdp, external: ExternalGateway
) -> None:
    practice = f"p-{uuid.uuid4().hex[:10]}"
    first = ECKey.generate_key("P-256", parameters={"kid": "idp-2024", "use": "sig", "alg": "ES256"}, private=True)
    idp.signing = [first]
    admin = _bearer(idp.token(first, practice))
    assert idp.requests == 0  # nothing is fetched before a token arrives

    created = await external.http.post("/practice", json={"name": "IdP Clinic"}, headers=admin)
    assert created.status_code == 201, created.text
    made = await external.http.post("/patients", json=patient(), headers=admin)
    assert made.status_code == 201, made.text
    for _ in range(5):
        assert (await external.http.get("/patients", headers=admin)).status_code == 200
    assert idp.requests == 1  # cached: never fetched per request

    # The role claim names the role: staff get the limited view there too.
    staff = _bearer(idp.token(first, practice, role="staff"))
    view = await external.http.get(f"/patients/{made.json()['id']}", headers=staff)
    assert view.status_code == 200 and "address" not in view.json()

    # Concord's development issuer is not trusted by this gateway.
    dev = stack.gateway.issuer.mint("admin-user", practice, "admin")  # type: ignore[union-attr]
    assert_problem(await external.http.get("/patients", headers=_bearer(dev)), 401, reason="INVALID_TOKEN")
    # Nor are tokens of the IdP for another audience, or signed by a key it does not publish.
    other_aud = idp.token(first, practice, aud="another-client")
    assert_problem(await external.http.get("/patients", headers=_bearer(other_aud)), 401, reason="INVALID_TOKEN")
    impostor = ECKey.generate_key("P-256", parameters={"kid": "idp-2024"}, private=True)
    forged = idp.token(impostor, practice)
    assert_problem(await external.http.post("/patients", json=patient(), headers=_bearer(forged)), 401)
    assert idp.requests == 1


async def test_a_key_rotated_at_the_idp_is_picked_up_by_one_fetch(idp: FakeIdp, external: ExternalGateway) -> None:
    practice = f"p-{uuid.uuid4().hex[:10]}"
    old = RSAKey.generate_key(2048, parameters={"kid": "rsa-old"}, private=True)
    idp.signing = [old]
    assert (await external.http.get("/patients", headers=_bearer(idp.token(old, practice)))).status_code == 200
    assert idp.requests == 1

    # The IdP rotates: a new key (new kid) replaces the old one in its JWKS.
    new = ECKey.generate_key("P-256", parameters={"kid": "ec-new"}, private=True)
    idp.signing = [new]
    external.clock.now += JWKS_REFETCH_SECONDS + 1
    rotated = _bearer(idp.token(new, practice))
    assert (await external.http.get("/patients", headers=rotated)).status_code == 200
    assert idp.requests == 2
    for _ in range(3):
        assert (await external.http.get("/patients", headers=rotated)).status_code == 200
    assert idp.requests == 2

    # The old key is gone: its tokens are refused, and made-up kids fetch nothing within the interval.
    assert_problem(await external.http.get("/patients", headers=_bearer(idp.token(old, practice))), 401)
    for kid in ("a", "b", "c"):
        stranger = RSAKey.generate_key(2048, parameters={"kid": kid}, private=True)
        assert_problem(await external.http.get("/patients", headers=_bearer(idp.token(stranger, practice))), 401)
    assert idp.requests == 2

    # After the cache's lifetime the JWKS is fetched again; an IdP that fails then leaves the keys in use.
    idp.status = 500
    external.clock.now += 601
    assert (await external.http.get("/patients", headers=rotated)).status_code == 200
    assert idp.requests == 3


async def test_hmac_and_unsigned_tokens_never_use_the_issuers_keys(idp: FakeIdp, external: ExternalGateway) -> None:
    practice = f"p-{uuid.uuid4().hex[:10]}"
    rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}, private=True)
    # A JWKS that (wrongly) also publishes a symmetric key: it is ignored, never an HMAC secret.
    secret = OctKey.generate_key(256, parameters={"kid": "shared"})
    idp.signing = [rsa, secret]
    assert (await external.http.get("/patients", headers=_bearer(idp.token(rsa, practice)))).status_code == 200

    claims = jwt.decode(idp.token(rsa, practice), rsa).claims
    hs_shared = jwt.encode({"alg": "HS256", "kid": "shared"}, claims, secret)
    signing = _unsigned({"alg": "HS256", "kid": "rsa-1"}, claims)
    mac = hmac.new(rsa.as_pem(private=False), signing.encode(), hashlib.sha256).digest()
    hs_public = f"{signing}.{_b64(mac)}"
    none = _unsigned({"alg": "none", "kid": "rsa-1"}, claims) + "."
    for token in (hs_shared, hs_public, none):
        response = await external.http.post("/patients", json=patient(), headers=_bearer(token))
        assert_problem(response, 401, reason="INVALID_TOKEN")
    assert idp.requests == 1


# --- the JWKS source alone (an httpx.MockTransport for the IdP) -----------------------------------


def _mock_idp(keys: list[dict], status: int = 200) -> tuple[httpx.MockTransport, list[int]]:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(status, json={"keys": copy.deepcopy(keys)})

    return httpx.MockTransport(handler), calls


def _verifier(jwks: RemoteJwks) -> TokenVerifier:
    return TokenVerifier(None, IDP_ISSUER, IDP_AUDIENCE, jwks=jwks)


def _plain_token(key: RSAKey | ECKey, **changes: object) -> str:
    now = int(time.time())
    claims = {"iss": IDP_ISSUER, "aud": IDP_AUDIENCE, "sub": "u1", "practice_id": "p1", "role": "staff"}
    claims |= {"iat": now, "exp": now + 300, **changes}
    return jwt.encode({"alg": "ES256" if isinstance(key, ECKey) else "RS256", "kid": key.kid}, claims, key)


async def test_an_unreachable_jwks_is_503_and_is_not_retried_per_request() -> None:
    transport, calls = _mock_idp([], status=503)
    clock = Clock()
    verifier = _verifier(RemoteJwks("https://idp.example.test/jwks", transport=transport, clock=clock))
    key = ECKey.generate_key("P-256", parameters={"kid": "k"}, private=True)
    for _ in range(3):
        with pytest.raises(Unavailable) as refused:
            await verifier.verify_async(f"Bearer {_plain_token(key)}")
        assert refused.value.reason == "JWKS_UNAVAILABLE"
    assert len(calls) == 1
    # Unsigned and HMAC tokens are refused before any fetch.
    with pytest.raises(Unauthenticated):
        await verifier.verify_async("Bearer " + _unsigned({"alg": "none"}, {"sub": "x"}) + ".")
    assert len(calls) == 1


@pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")  # the 1024-bit key, on purpose
async def test_weak_and_encryption_keys_in_a_jwks_are_not_used() -> None:
    weak = RSAKey.generate_key(1024, parameters={"kid": "weak"}, private=True)
    enc = RSAKey.generate_key(2048, parameters={"kid": "enc"}, private=True)
    good = ECKey.generate_key("P-256", parameters={"kid": "good"}, private=True)
    published = [k.as_dict(private=False) for k in (weak, enc, good)]
    published[1]["use"] = "enc"  # the IdP's key for encryption, not for signing tokens
    transport, calls = _mock_idp(published)
    verifier = _verifier(RemoteJwks("https://idp.example.test/jwks", transport=transport, clock=Clock()))
    assert (await verifier.verify_async(f"Bearer {_plain_token(good)}"))["role"] == "staff"
    for key in (weak, enc):
        with pytest.raises(Unauthenticated) as refused:
            await verifier.verify_async(f"Bearer {_plain_token(key)}")
        assert refused.value.reason == "INVALID_TOKEN"
    assert len(calls) == 1


def test_a_jwks_url_must_be_https_unless_it_is_on_this_host() -> None:
    for url in ("http://idp.example.test/jwks", "ftp://idp.example.test/jwks", "/jwks", ""):
        with pytest.raises(ValueError):
            RemoteJwks(url)
    for url in ("https://idp.example.test/jwks", "http://127.0.0.1:8080/jwks", "http://localhost/jwks"):
        RemoteJwks(url)
