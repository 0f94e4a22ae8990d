"""Bearer JWT authentication, the development OIDC issuer of the embedded default, and the
access-control matrix (roles, permissions, data access levels).

The gateway accepts JWTs signed RS256 or ES256 (never ``none``, never an HMAC: no key of an
issuer's JWKS is a shared secret) whose issuer, audience, expiry, not-before and issued-at check
out (``jwt_leeway_seconds`` of clock skew). The keys come from:

- the development issuer (embedded default): Concord is its own issuer, an RSA key pair made at
  first start in ``<data_dir>/keys/dev-issuer.json`` (mode 0600);
- an external OIDC issuer when ``oidc_jwks_url`` is set: its JWKS fetched with httpx, cached for
  ``oidc_jwks_cache_seconds`` and fetched once more when a token names a key id it lacks (the IdP
  rotated its key), at most once per ``JWKS_REFETCH_SECONDS`` whatever tokens arrive: never per
  request.

Claims: ``sub`` (user), ``practice_id`` and ``role`` (names set by ``oidc_practice_claim`` and
``oidc_role_claim``), optionally ``data_access_level`` (narrows the role's, never widens it).

Session bound: a token whose session began (``auth_time``, else ``iat``) more than
``session_timeout_minutes`` ago is refused 401 SESSION_EXPIRED even when its ``exp`` is later.
That is the absolute bound only; idle timeout is the IdP's and the frontend's (short-lived access
tokens, refreshed while the user is active: a refreshed token carries a new ``iat``, the original
``auth_time``).

JOSE is joserfc, the successor of authlib's JOSE module by the same author (the issue says
"authlib"; authlib's own ``jose`` package is deprecated in favour of it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey
from joserfc.jwt import JWTClaimsRegistry

from libs.errors import PermissionDenied, Unauthenticated, Unavailable
from libs.identity import Caller
from libs.keyfiles import create_once
from libs.settings import Settings

logger = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "ES256")
# The key type (and curve) each allowed algorithm verifies with. A token of any other algorithm
# ("none", "HS256" keyed with a public key, ...) finds no key and is refused before any check.
_KEY_TYPES: dict[str, tuple[str, str | None]] = {"RS256": ("RSA", None), "ES256": ("EC", "P-256")}
_MIN_RSA_BITS = 2048
ROLES = ("admin", "provider", "staff")

# Which roles may do what; the HIPAA issue widens this into the full access-control matrix.
PERMISSIONS = {
    "practice.manage": {"admin"},
    "integration.manage": {"admin"},
    "integration.read": {"admin", "provider", "staff"},
    "sync.start": {"admin", "provider"},
    # Email/SMS to a patient discloses PHI to the vendor: clinicians and admins, not front-desk staff.
    "message.send": {"admin", "provider"},
    # Booking (availability asks the vendor about a patient): the front desk's everyday work.
    "appointment.book": {"admin", "provider", "staff"},
    "patient.read": {"admin", "provider", "staff"},
    "patient.write": {"admin", "provider", "staff"},
    # Deleting or merging a patient reaches every connected vendor (deletes there): not the front desk.
    "patient.delete": {"admin", "provider"},
    "mapping.read": {"admin", "provider", "staff"},
    # The review queue shows one field's values of a record (PHI); settling it changes the record.
    "review.read": {"admin", "provider", "staff"},
    "review.resolve": {"admin", "provider"},
    "mapping.manage": {"admin"},
    # The audit log (who touched which patient's which fields): practice admins (compliance).
    "audit.read": {"admin"},
    # A patient's accounting of disclosures (HIPAA 164.528), which a clinician may give the patient.
    "disclosure.read": {"admin", "provider"},
}

# data_access_level, widest first. full: whole records. limited: a patient without the PHI a front
# desk does not need (services/gateway/access.py names what it keeps). read_only: what limited
# shows and no write at all (403 READ_ONLY_ACCESS). Each role has a default; a token's
# ``data_access_level`` claim may narrow it (a provider's token saying "limited"), never widen it.
ACCESS_LEVELS = ("full", "limited", "read_only")
ROLE_ACCESS_LEVELS = {"admin": "full", "provider": "full", "staff": "limited"}
ACCESS_LEVEL_CLAIM = "data_access_level"
# How often an unknown key id may send the gateway to the issuer's JWKS (rotation is picked up
# within this long; a stream of made-up kids costs the IdP one request per interval).
JWKS_REFETCH_SECONDS = 30.0
_MAX_JWKS_BYTES = 256 * 1024
# Verified bearer tokens kept (emptied when full: a miss costs one signature check).
_VERIFIED_LIMIT = 4096


@dataclass(frozen=True)
class GatewayCaller(Caller):
    """A user the gateway authenticated, with the data access level its role and token grant. The
    level is applied here (responses shaped, writes refused); services receive the plain Caller."""

    data_access_level: str = "read_only"


def access_level(caller: Caller) -> str:
    """The caller's data access level: a gateway user's own; otherwise its role's (Zapier keys and
    webhook senders act as staff), the narrowest for a role with none."""
    level = getattr(caller, "data_access_level", None)
    if level in ACCESS_LEVELS:
        return level
    return ROLE_ACCESS_LEVELS.get(caller.role, "read_only")


def narrowest(*levels: str) -> str:
    return max(levels, key=ACCESS_LEVELS.index)


class DevIssuer:
    """Concord's own development issuer: signs tokens for the demo and tests."""

    def __init__(self, key: RSAKey, issuer: str, audience: str) -> None:
        self.key = key
        self.issuer = issuer
        self.audience = audience

    @classmethod
    def in_data_dir(cls, settings: Settings) -> DevIssuer:
        path: Path = settings.data_dir / "keys" / "dev-issuer.json"

        def new_key() -> str:
            key = RSAKey.generate_key(2048, parameters={"kid": uuid.uuid4().hex[:12]}, private=True)
            return json.dumps(key.as_dict(private=True))

        key = RSAKey.import_key(json.loads(create_once(path, new_key)))
        return cls(key, settings.jwt_issuer, settings.jwt_audience)

    def jwks(self) -> dict:
        return KeySet([self.key]).as_dict(private=False)

    def mint(self, user_id: str, practice_id: str, role: str, ttl_seconds: int = 3600) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user_id,
            "practice_id": practice_id,
            "role": role,
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode({"alg": "RS256", "kid": self.key.kid}, claims, self.key)


class RemoteJwks:
    """An external OIDC issuer's signing keys, fetched from its JWKS URL.

    Fetched for the first token, kept ``ttl`` seconds, then fetched again; a token naming a key id
    the cached set lacks fetches once more (the IdP rotated its key), but no fetch follows another
    within ``refetch_interval`` seconds, so no stream of tokens makes the gateway fetch per request.
    A failed fetch keeps the keys it had (logged by error type only); with none, requests are 503
    JWKS_UNAVAILABLE. Only RSA (2048 bits or more) and P-256 EC keys whose ``use`` is absent or
    ``sig`` are kept: a symmetric ("oct") key in a JWKS is ignored, never used as an HMAC secret.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 600.0,
        refetch_interval: float = JWKS_REFETCH_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 5.0,
    ) -> None:
        _check_jwks_url(url)
        self.url = url
        self.clock = clock
        self._ttl = ttl
        self._refetch_interval = refetch_interval
        self._transport = transport
        self._timeout = timeout
        self._keys: KeySet | None = None
        self._expires = 0.0
        self._next_fetch = float("-inf")
        self._lock: asyncio.Lock | None = None

    @property
    def keys(self) -> KeySet | None:
        return self._keys

    async def ensure(self, kid: object) -> None:
        """Fetches the JWKS when it is not cached, has expired, or lacks ``kid`` (within limits)."""
        if self._due(kid):
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if self._due(kid):  # not fetched meanwhile by a concurrent request
                    await self._fetch()
        if self._keys is None:
            raise Unavailable("the identity provider's signing keys could not be fetched", reason="JWKS_UNAVAILABLE")

    def _due(self, kid: object) -> bool:
        now = self.clock()
        if now < self._next_fetch:
            return False
        if self._keys is None or now >= self._expires:
            return True
        return isinstance(kid, str) and all(key.kid != kid for key in self._keys)

    async def _fetch(self) -> None:
        now = self.clock()
        self._next_fetch = now + self._refetch_interval
        try:
            async with httpx.AsyncClient(
                transport=self._transport, timeout=self._timeout, follow_redirects=False
            ) as http:
                response = await http.get(self.url, headers={"Accept": "application/json"})
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            if len(response.content) > _MAX_JWKS_BYTES:
                raise ValueError("JWKS too large")
            keys = _signing_keys(response.json())
        except (httpx.HTTPError, ValueError, TypeError, KeyError, JoseError) as error:
            logger.warning("the OIDC issuer's JWKS could not be fetched (%s)", type(error).__name__)
            return
        self._keys = keys
        self._expires = now + self._ttl


def _check_jwks_url(url: str) -> None:
    # A JWKS fetched in clear could be swapped on the way: https, or plain http to this host only.
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname:
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return
    raise ValueError("oidc_jwks_url must be an https URL (plain http only to a loopback address)")


def _signing_keys(document: Any) -> KeySet:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK Set")
    keys: list[RSAKey | ECKey] = []
    for data in document["keys"]:
        if not isinstance(data, dict) or data.get("use", "sig") != "sig":
            continue
        try:
            if data.get("kty") == "RSA":
                key: RSAKey | ECKey = RSAKey.import_key(data)
                if key.public_key.key_size < _MIN_RSA_BITS:
                    continue
            elif data.get("kty") == "EC" and data.get("crv") == "P-256":
                key = ECKey.import_key(data)
            else:
                continue
        except (JoseError, ValueError, TypeError):
            continue
        keys.append(key)
    if not keys:
        raise ValueError("no usable signing key")
    return KeySet(keys)


def _bearer(authorization: str | None) -> str:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthenticated("a bearer token is required", reason="MISSING_BEARER_TOKEN")
    return authorization[7:].strip()


def _header(token: str) -> dict:
    try:
        header = jws.extract_compact(token.encode()).protected
    except (JoseError, ValueError, TypeError, UnicodeError) as error:
        raise _invalid(error) from None
    if header.get("alg") not in _KEY_TYPES:
        raise Unauthenticated("the bearer token's algorithm is not allowed", reason="INVALID_TOKEN")
    return header


def _invalid(error: Exception) -> Unauthenticated:
    # The error's type names what failed (BadSignatureError, ExpiredTokenError, InvalidClaimError);
    # its text is never echoed (it may quote the token).
    return Unauthenticated(f"the bearer token is not valid ({type(error).__name__})", reason="INVALID_TOKEN")


def _numeric(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


class TokenVerifier:
    """Checks bearer JWTs against the development issuer's key set or an external issuer's JWKS.

    ``verify`` uses the keys at hand (synchronous: the validation-error path checks the token
    first too); ``verify_async``, which ``deps.authenticate`` calls, first lets an external
    issuer's JWKS be fetched when due."""

    def __init__(
        self,
        keys: KeySet | None,
        issuer: str,
        audience: str,
        *,
        jwks: RemoteJwks | None = None,
        leeway: int = 30,
        session_timeout: int = 15 * 60,
        practice_claim: str = "practice_id",
        role_claim: str = "role",
        now: Callable[[], float] = time.time,
    ) -> None:
        if (keys is None) == (jwks is None):
            raise ValueError("a TokenVerifier takes a key set or a JWKS source")
        self._keys = keys
        self.jwks = jwks
        self._leeway = leeway
        self._session_timeout = session_timeout
        self._practice_claim = practice_claim
        self._role_claim = role_claim
        self._now = now
        # Token text -> (header, key, claims) of tokens whose signature checked out; see verify.
        self._verified: dict[str, tuple[dict, RSAKey | ECKey, dict]] = {}
        self._registry = JWTClaimsRegistry(
            now=lambda: int(self._now()),
            leeway=leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},
        )

    @classmethod
    def from_settings(cls, settings: Settings, dev_keys: KeySet) -> TokenVerifier:
        """The external issuer's JWKS when ``oidc_jwks_url`` is set, else the development issuer's keys."""
        jwks = (
            RemoteJwks(settings.oidc_jwks_url, ttl=settings.oidc_jwks_cache_seconds) if settings.oidc_jwks_url else None
        )
        return cls(
            None if jwks else dev_keys,
            settings.jwt_issuer,
            settings.jwt_audience,
            jwks=jwks,
            leeway=settings.jwt_leeway_seconds,
            session_timeout=settings.session_timeout_minutes * 60,
            practice_claim=settings.oidc_practice_claim,
            role_claim=settings.oidc_role_claim,
        )

    async def verify_async(self, authorization: str | None) -> dict:
        if self.jwks is not None:
            await self.jwks.ensure(_header(_bearer(authorization)).get("kid"))
        return self.verify(authorization)

    def verify(self, authorization: str | None) -> dict:
        """The token's claims, with ``practice_id`` and ``role`` under those names; raises
        Unauthenticated (401) with reason INVALID_TOKEN, INVALID_TOKEN_CLAIMS or SESSION_EXPIRED."""
        token = _bearer(authorization)
        known = self._verified.get(token)
        # A token whose signature was checked before, with a key the issuer still has, skips the
        # RSA or ECDSA check and the decoding (the same user's next request); everything below,
        # expiry and session included, is checked again on every request.
        if known is not None and self._key_for(known[0]) is known[1]:
            signed = known[2]
        else:
            header = _header(token)
            key = self._key_for(header)
            try:
                signed = jwt.decode(token, key, algorithms=[header["alg"]]).claims
            except (JoseError, ValueError, TypeError) as error:
                raise _invalid(error) from None
            if len(self._verified) >= _VERIFIED_LIMIT:
                self._verified.clear()
            self._verified[token] = (header, key, signed)
        try:
            self._registry.validate(signed)
        except (JoseError, ValueError, TypeError) as error:
            raise _invalid(error) from None
        claims = dict(signed)
        role, practice = claims.get(self._role_claim), claims.get(self._practice_claim)
        if role not in ROLES or not isinstance(practice, str) or not practice:
            raise Unauthenticated("the token lacks a practice or a known role", reason="INVALID_TOKEN_CLAIMS")
        if claims.get(ACCESS_LEVEL_CLAIM, "full") not in ACCESS_LEVELS:
            raise Unauthenticated("the token's data_access_level is not known", reason="INVALID_TOKEN_CLAIMS")
        self._check_session(claims)
        claims["role"], claims["practice_id"] = role, practice
        return claims

    def _key_for(self, header: dict) -> RSAKey | ECKey:
        keys = self.jwks.keys if self.jwks is not None else self._keys
        kty, crv = _KEY_TYPES[header["alg"]]
        kid = header.get("kid")
        candidates = [
            key
            for key in keys or ()
            if key.key_type == kty
            and (crv is None or key.get("crv") == crv)
            and key.get("use", "sig") == "sig"
            and key.get("alg", header["alg"]) == header["alg"]
            and (kid is None or key.kid == kid)
        ]
        # Without a kid only an issuer with a single key of that type can be meant.
        if len(candidates) != 1 or (kid is not None and not isinstance(kid, str)):
            raise Unauthenticated("the bearer token names no signing key of its issuer", reason="INVALID_TOKEN")
        return candidates[0]

    def _check_session(self, claims: dict) -> None:
        if self._session_timeout <= 0:
            return
        began = claims.get("auth_time", claims.get("iat"))
        if not _numeric(began) or began > self._now() + self._leeway:
            raise Unauthenticated(
                "the token does not say when its session began (auth_time or iat)", reason="INVALID_TOKEN_CLAIMS"
            )
        if self._now() - began > self._session_timeout + self._leeway:
            raise Unauthenticated("the session has expired: sign in again", reason="SESSION_EXPIRED")


def caller_from_claims(claims: dict, ip_address: str, user_agent: str, request_id: str) -> GatewayCaller:
    role = str(claims["role"])
    return GatewayCaller(
        user_id=str(claims["sub"]),
        practice_id=str(claims["practice_id"]),
        role=role,
        ip_address=ip_address,
        user_agent=user_agent[:200],
        request_id=request_id,
        data_access_level=narrowest(
            ROLE_ACCESS_LEVELS.get(role, "read_only"), str(claims.get(ACCESS_LEVEL_CLAIM, "full"))
        ),
    )


def is_read(permission: str) -> bool:
    return permission.endswith(".read")


def require(caller: Caller, permission: str) -> None:
    if caller.role not in PERMISSIONS[permission]:
        raise PermissionDenied(f"role {caller.role} may not {permission}", reason="ROLE_FORBIDDEN")
    if not is_read(permission) and access_level(caller) == "read_only":
        raise PermissionDenied(f"read-only access may not {permission}", reason="READ_ONLY_ACCESS")
