"""Service identity: every call between Concord's services carries the caller, signed.

The gateway authenticates a user (a bearer JWT) and the caller it derives (user, practice, role,
client address and agent, request id) travels to every service it calls, and on to the services
those call. Plain gRPC metadata would let anything that reaches a service's port claim to be any
user of any practice, so the caller travels as a short-lived HS256 JWT (``x-concord-identity``)
signed with the deployment's service key, and each service's server interceptor
(libs/grpc_server.py) verifies it before the call runs: a call that skips the gateway, or names a
caller of its own making, is refused UNAUTHENTICATED and gains nothing.

The service key is made at first start in ``<data_dir>/keys/service-token.key`` (mode 0600),
which every service of a deployment shares (docker-compose mounts one data volume), or given as
``CONCORD_SERVICE_TOKEN_KEY`` (base64 of 32 bytes) where they share none. A process trusts every
key it has installed and signs with the last: one in production; a test process that starts
several stacks trusts each of their keys.

Holding the key is being a Concord service: a system caller (the sync workflows, schedules, the
adapters) is one whose token names no practice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from joserfc.jwt import JWTClaimsRegistry

from libs.errors import Unauthenticated
from libs.identity import Caller
from libs.keyfiles import create_once
from libs.settings import Settings

METADATA_KEY = "x-concord-identity"
ISSUER = AUDIENCE = "concord-services"
ALGORITHMS = ["HS256"]
# Tokens are minted per caller and reused: short enough that a leaked one soon stops working.
TOKEN_SECONDS = 300
_REMINT_BEFORE = 60
# Both caches below are emptied when full: a miss costs one HMAC, never a refusal.
_CACHE_LIMIT = 4096

# Claim name -> Caller attribute.
_CLAIMS = {
    "sub": "user_id",
    "prc": "practice_id",
    "rol": "role",
    "ip": "ip_address",
    "ua": "user_agent",
    "rid": "request_id",
}

_trusted: dict[str, OctKey] = {}
_signing: OctKey | None = None
# By the claims a token carries (_claims_of), so a gateway's caller and the plain Caller a service
# rebuilds from its token share one token: a request's every hop sends the same one.
_minted: dict[tuple[str, ...], tuple[str, float]] = {}
# Tokens whose signature was checked here (or that this process signed), by their exact text, with
# the caller and claims they carry. A token seen again (the next hop of the same request, in the
# embedded default) skips the HMAC and the JSON; its claims (expiry, issuer, audience) are still
# validated on every call, so it stops working exactly when a fresh check would refuse it.
_verified: dict[str, tuple[Caller, dict]] = {}
_registry = JWTClaimsRegistry(
    # Services on other hosts: their clocks may differ by this much.
    leeway=30,
    iss={"essential": True, "value": ISSUER},
    aud={"essential": True, "value": AUDIENCE},
    exp={"essential": True},
)


def install(settings: Settings) -> None:
    """Loads (or at first start makes) the deployment's service key: this process signs its calls
    with it and trusts calls signed with it. Idempotent."""
    global _signing
    secret = _secret(settings)
    kid = _kid(secret)
    key = _trusted.get(kid) or OctKey.import_key(secret, parameters={"kid": kid})
    _trusted[kid] = key
    if _signing is not key:
        _signing = key
        _minted.clear()
        _verified.clear()


def token_for(caller: Caller) -> str | None:
    """The signed identity of ``caller``; None in a process that holds no service key."""
    if _signing is None:
        return None
    now = time.time()
    values = _claims_of(caller)
    cached = _minted.get(values)
    if cached is not None and cached[1] - now > _REMINT_BEFORE:
        return cached[0]
    claims = {name: value for name, value in zip(_CLAIMS, values, strict=True) if value}
    issued = int(now)
    claims |= {"iss": ISSUER, "aud": AUDIENCE, "iat": issued, "exp": issued + TOKEN_SECONDS}
    token = jwt.encode({"alg": "HS256", "kid": _signing.kid}, claims, _signing)
    if len(_minted) >= _CACHE_LIMIT:
        _minted.clear()
    _minted[values] = (token, issued + TOKEN_SECONDS)
    # Signed here with a trusted key: as good as verified (caller_from still validates its claims).
    _remember(token, claims)
    return token


def _claims_of(caller: Caller) -> tuple[str, ...]:
    return tuple(getattr(caller, attr) for attr in _CLAIMS.values())


def _remember(token: str, claims: dict) -> Caller:
    caller = Caller(**{attr: str(claims.get(name, "")) for name, attr in _CLAIMS.items()})
    if len(_verified) >= _CACHE_LIMIT:
        _verified.clear()
    _verified[token] = (caller, claims)
    return caller


def caller_from(token: str | None) -> Caller:
    """The caller a service token names, after checking its signature, issuer, audience and expiry."""
    if not token:
        raise Unauthenticated(
            "the call carries no service identity: Concord's services are called through the gateway",
            reason="MISSING_SERVICE_IDENTITY",
        )
    known = _verified.get(token)
    try:
        if known is not None:
            _registry.validate(known[1])
            return known[0]
        kid = jws.extract_compact(token.encode()).protected.get("kid")
        key = _trusted.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise ValueError("unknown key")
        decoded = jwt.decode(token, key, algorithms=ALGORITHMS)
        _registry.validate(decoded.claims)
    except (JoseError, ValueError, TypeError):
        _verified.pop(token, None)
        raise Unauthenticated("the service identity is not valid", reason="INVALID_SERVICE_IDENTITY") from None
    return _remember(token, decoded.claims)


def _secret(settings: Settings) -> bytes:
    given = os.environ.get("CONCORD_SERVICE_TOKEN_KEY", "")
    if given:
        secret = base64.b64decode(given)
        if len(secret) < 32:
            raise ValueError("CONCORD_SERVICE_TOKEN_KEY must be the base64 of at least 32 bytes")
        return secret
    path: Path = settings.data_dir / "keys" / "service-token.key"
    return base64.b64decode(create_once(path, lambda: base64.b64encode(secrets.token_bytes(32)).decode()).strip())


def _kid(secret: bytes) -> str:
    # Names the key without revealing it: the first bytes of an HMAC of a fixed label.
    return hmac.new(secret, b"concord service key id", hashlib.sha256).hexdigest()[:16]
