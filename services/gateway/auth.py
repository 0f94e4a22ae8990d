"""Bearer JWT authentication and the development OIDC issuer of the embedded default.

The gateway accepts RS256 JWTs whose issuer, audience and expiry check out against the issuer's
JWKS. In the embedded default Concord is its own issuer: an RSA key pair made at first start in
``<data_dir>/keys/dev-issuer.json`` (mode 0600). Claims: ``sub`` (user), ``practice_id``, ``role``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from joserfc.jwt import JWTClaimsRegistry

from libs.errors import PermissionDenied, Unauthenticated
from libs.identity import Caller
from libs.settings import Settings

ALGORITHMS = ["RS256"]
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
}


class DevIssuer:
    """Concord's own development issuer: signs tokens for the demo and tests."""

    def __init__(self, key: RSAKey, issuer: str, audience: str) -> None:
        self.key = key
        self.issuer = issuer
        self.audience = audience

    @classmethod
    def in_data_dir(cls, settings: Settings) -> DevIssuer:
        path: Path = settings.data_dir / "keys" / "dev-issuer.json"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = RSAKey.generate_key(2048, parameters={"kid": uuid.uuid4().hex[:12]}, private=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(key.as_dict(private=True), handle)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        key = RSAKey.import_key(json.loads(path.read_text()))
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


class TokenVerifier:
    def __init__(self, keys: KeySet, issuer: str, audience: str) -> None:
        self._keys = keys
        self._registry = JWTClaimsRegistry(
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},
        )

    def verify(self, authorization: str | None) -> dict:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Unauthenticated("a bearer token is required", reason="MISSING_BEARER_TOKEN")
        token = authorization[7:].strip()
        try:
            decoded = jwt.decode(token, self._keys, algorithms=ALGORITHMS)
            self._registry.validate(decoded.claims)
        except (JoseError, ValueError) as error:
            raise Unauthenticated(
                f"the bearer token is not valid ({type(error).__name__})", reason="INVALID_TOKEN"
            ) from None
        claims = decoded.claims
        if claims.get("role") not in ROLES or not claims.get("practice_id"):
            raise Unauthenticated("the token lacks a practice or a known role", reason="INVALID_TOKEN_CLAIMS")
        return claims


def caller_from_claims(claims: dict, ip_address: str, user_agent: str, request_id: str) -> Caller:
    return Caller(
        user_id=str(claims["sub"]),
        practice_id=str(claims["practice_id"]),
        role=str(claims["role"]),
        ip_address=ip_address,
        user_agent=user_agent[:200],
        request_id=request_id,
    )


def require(caller: Caller, permission: str) -> None:
    if caller.role not in PERMISSIONS[permission]:
        raise PermissionDenied(f"role {caller.role} may not {permission}", reason="ROLE_FORBIDDEN")
