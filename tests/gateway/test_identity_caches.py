"""Verified tokens are remembered, never trusted past what a fresh check would allow: a bearer
token's signature (services/gateway/auth.py) and a service identity's (libs/service_auth.py) are
checked once per token, their claims (expiry, session, issuer, audience) on every request."""

from __future__ import annotations

import time

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from joserfc.jwt import JWTClaimsRegistry

from libs import service_auth
from libs.errors import Unauthenticated
from libs.identity import Caller
from libs.settings import Settings
from services.gateway import auth
from services.gateway.auth import GatewayCaller, RemoteJwks, TokenVerifier

ISSUER, AUDIENCE = "https://idp.example.test", "concord-gateway"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _token(key: RSAKey | ECKey, clock: Clock, **changes: object) -> str:
    now = int(clock.now)
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "dr-1", "practice_id": "p1", "role": "provider", "iat": now}
    claims |= {"exp": now + 600, **changes}
    return jwt.encode({"alg": "ES256" if isinstance(key, ECKey) else "RS256", "kid": key.kid}, claims, key)


def _counting(monkeypatch: pytest.MonkeyPatch, module: object) -> list[int]:
    """Counts the signature checks (jwt.decode) made through ``module``."""
    calls: list[int] = []
    real = jwt.decode

    def decode(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(module.jwt, "decode", decode)  # type: ignore[attr-defined]
    return calls


def test_a_bearer_token_is_verified_once_and_its_claims_on_every_request(monkeypatch: pytest.MonkeyPatch) -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
    clock = Clock()
    verifier = TokenVerifier(KeySet([key]), ISSUER, AUDIENCE, leeway=30, session_timeout=900, now=clock)
    checks = _counting(monkeypatch, auth)
    token = f"Bearer {_token(key, clock, exp=int(clock.now) + 3600)}"
    for _ in range(3):
        assert verifier.verify(token)["practice_id"] == "p1"
    assert len(checks) == 1

    # The session bound still applies to the remembered token...
    clock.now += 901 + 30
    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(token)
    assert refused.value.reason == "SESSION_EXPIRED"
    # ...and so does its expiry (a verifier without a session bound, the same token remembered).
    verifier._session_timeout = 0  # noqa: SLF001
    assert verifier.verify(token)["sub"] == "dr-1"
    clock.now += 3600
    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(token)
    assert refused.value.reason == "INVALID_TOKEN"
    assert len(checks) == 1

    # A token differing in anything (here its signature) is checked afresh, and refused.
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(Unauthenticated):
        verifier.verify(forged)
    assert len(checks) == 2


async def test_a_remembered_bearer_token_is_refused_once_its_key_leaves_the_issuers_jwks() -> None:
    old = ECKey.generate_key("P-256", parameters={"kid": "old"}, private=True)
    new = ECKey.generate_key("P-256", parameters={"kid": "new"}, private=True)
    published = [old]
    clock = Clock()

    def idp(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"keys": [key.as_dict(private=False) for key in published]})

    jwks = RemoteJwks("https://idp.example.test/jwks", transport=httpx.MockTransport(idp), clock=clock, ttl=60)
    verifier = TokenVerifier(None, ISSUER, AUDIENCE, jwks=jwks, now=clock)
    token = f"Bearer {_token(old, clock)}"
    assert (await verifier.verify_async(token))["sub"] == "dr-1"

    published[:] = [new]  # the IdP drops the old key (rotated, or compromised)
    clock.now += 61
    with pytest.raises(Unauthenticated) as refused:
        await verifier.verify_async(token)
    assert refused.value.reason == "INVALID_TOKEN"
    assert (await verifier.verify_async(f"Bearer {_token(new, clock)}"))["sub"] == "dr-1"


@pytest.fixture
def service_key(tmp_path) -> None:  # noqa: ANN001
    """This process holds a service key (a stack started earlier may have installed one already)."""
    service_auth.install(Settings(data_dir=tmp_path))


@pytest.mark.usefixtures("service_key")
def test_every_hop_of_a_request_sends_one_service_token_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    checks = _counting(monkeypatch, service_auth)
    fields = {"user_id": "dr-1", "practice_id": "p1", "role": "provider", "request_id": "r-cache-1"}
    # The gateway's caller, then the plain Caller a service rebuilds from its token, calling on.
    token = service_auth.token_for(GatewayCaller(**fields, data_access_level="full"))
    assert token is not None
    assert service_auth.token_for(Caller(**fields)) == token
    assert service_auth.caller_from(token) == Caller(**fields)
    assert len(checks) == 0  # signed here: its signature is known good

    # A token of another process of the deployment: checked once, then remembered.
    now = int(time.time())
    claims = {"iss": service_auth.ISSUER, "aud": service_auth.AUDIENCE, "iat": now, "exp": now + 300}
    other = jwt.encode(
        {"alg": "HS256", "kid": service_auth._signing.kid},  # noqa: SLF001
        claims | {"sub": "dr-2", "prc": "p1", "rol": "staff", "rid": "r-cache-2"},
        service_auth._signing,  # noqa: SLF001
    )
    for _ in range(3):
        assert service_auth.caller_from(other).user_id == "dr-2"
    assert len(checks) == 1


@pytest.mark.usefixtures("service_key")
def test_a_remembered_service_token_is_refused_once_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    token = service_auth.token_for(Caller(user_id="dr-1", practice_id="p1", role="provider", request_id="r-exp"))
    assert token is not None
    assert service_auth.caller_from(token).request_id == "r-exp"
    clock = Clock()
    later = JWTClaimsRegistry(
        now=lambda: int(clock.now),
        leeway=30,
        iss={"essential": True, "value": service_auth.ISSUER},
        aud={"essential": True, "value": service_auth.AUDIENCE},
        exp={"essential": True},
    )
    monkeypatch.setattr(service_auth, "_registry", later)
    clock.now += service_auth.TOKEN_SECONDS + 31
    with pytest.raises(Unauthenticated) as refused:
        service_auth.caller_from(token)
    assert refused.value.reason == "INVALID_SERVICE_IDENTITY"
