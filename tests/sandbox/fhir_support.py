"""Helpers for the FHIR sandbox tests: a fake clock, a webhook/JWKS receiver and SMART client keys."""

from __future__ import annotations

import functools
import itertools
import json
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

T0 = 1_750_000_000.0  # 2025-06-15T15:06:40Z
JWKS_URL = "https://client.example/.well-known/jwks.json"
_jti = itertools.count(1)


class Receiver:
    """Notification endpoint and JWKS host behind an httpx.MockTransport; `statuses` are answered in turn."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.statuses: list[int] = []
        self.jwks: dict[str, Any] = {"keys": []}

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == JWKS_URL:
            return httpx.Response(200, json=self.jwks)
        self.requests.append(request)
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200)

    def bodies(self) -> list[dict[str, Any] | None]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


@functools.cache
def rsa_key(kid: str = "rsa-1") -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS384", "use": "sig"})


@functools.cache
def ec_key(kid: str = "ec-1") -> ECKey:
    return ECKey.generate_key("P-384", parameters={"kid": kid, "alg": "ES384", "use": "sig"})


def public_jwks(*keys: RSAKey | ECKey) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def assertion(
    client_id: str,
    token_url: str,
    now: float,
    *,
    key: RSAKey | ECKey | None = None,
    lifetime: float = 240,
    **claims: Any,
) -> str:
    """A SMART Backend Services client assertion (RS384 by default)."""
    key = key or rsa_key()
    alg = "ES384" if isinstance(key, ECKey) else "RS384"
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "exp": int(now + lifetime),
        "jti": f"jti-{next(_jti)}",
    }
    body.update(claims)
    header = {"alg": alg, "kid": key.kid, "typ": "JWT"}
    return jwt.encode(header, body, key, algorithms=[alg])
