"""SMART Backend Services (client_credentials with a private_key_jwt assertion, RS384/ES384), SMART v1/v2
system scopes, bearer checks and the per-client request limit."""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact
from starlette.requests import Request

from .outcome import FhirError, OAuthError, error
from .settings import ClientRegistration

if TYPE_CHECKING:
    from .state import Sandbox

ALGORITHMS = ["RS384", "ES384"]
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
V1 = {"read": frozenset("rs"), "write": frozenset("cud"), "*": frozenset("cruds")}
_SCOPE = re.compile(r"^(system|patient|user)/([A-Za-z]+|\*)\.([a-z*]+)(\?.*)?$")
# Launch-context and identity scopes mean nothing to a backend service: dropped from the grant.
_IGNORED = {"launch", "launch/patient", "launch/encounter", "openid", "fhirUser", "profile", "offline_access",
            "online_access"}  # fmt: skip
_TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"


@dataclass(frozen=True)
class Scope:
    text: str
    resource: str  # a resource type or "*"
    perms: frozenset[str]  # subset of "cruds"

    def covers(self, other: Scope) -> bool:
        return self.resource in ("*", other.resource) and other.perms <= self.perms


def parse_scope(text: str) -> Scope | None:
    """A system scope; None for scopes a backend grant ignores; ValueError when malformed."""
    if text in _IGNORED:
        return None
    match = _SCOPE.match(text)
    if not match:
        raise ValueError("malformed scope")
    context, resource, action, query = match.groups()
    if query:
        raise ValueError("granular (query) scopes are not supported")
    if action in V1:
        perms = V1[action]
    elif action == "*" or "".join(c for c in "cruds" if c in action) != action:
        raise ValueError("permissions must be read, write, * or an ordered subset of cruds")
    else:
        perms = frozenset(action)
    return Scope(text, resource, perms) if context == "system" else None


@dataclass
class Client:
    client_id: str
    scopes: list[Scope]
    scope_text: str
    jwks: dict[str, Any] | None
    jwks_url: str | None
    tenants: set[str] | None
    fetched: KeySet | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "scopes": self.scope_text,
            "jwks": self.jwks,
            "jwks_url": self.jwks_url,
            "tenants": sorted(self.tenants) if self.tenants is not None else None,
        }


@dataclass
class Grant:
    client_id: str
    scopes: list[Scope]
    scope_text: str
    expires_at: float
    tenants: set[str] | None = None

    def allows(self, resource_type: str, perm: str) -> bool:
        return any(s.resource in ("*", resource_type) and perm in s.perms for s in self.scopes)


def make_client(reg: ClientRegistration) -> Client:
    """Validates a registration; ValueError names what is wrong."""
    if not reg.client_id or not isinstance(reg.client_id, str):
        raise ValueError("client_id is required")
    if (reg.jwks is None) == (reg.jwks_url is None):
        raise ValueError("exactly one of jwks or jwks_url is required")
    if reg.jwks is not None:
        public_only(reg.jwks)
    if reg.jwks_url is not None and not str(reg.jwks_url).startswith(("http://", "https://")):
        raise ValueError("jwks_url must be an http(s) URL")
    scopes = []
    for text in str(reg.scopes or "").split():
        scope = parse_scope(text)
        if scope is None:
            raise ValueError("registered scopes must be system/ scopes")
        scopes.append(scope)
    if not scopes:
        raise ValueError("at least one system/ scope is required")
    tenants = set(reg.tenants) if reg.tenants is not None else None
    return Client(reg.client_id, scopes, " ".join(s.text for s in scopes), reg.jwks, reg.jwks_url, tenants)


def public_only(jwks: Any) -> KeySet:
    """Imports a JWK Set, keeping only public parameters (a registration never needs the private part)."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ValueError("jwks must be a JWK Set with a non-empty keys list")
    private = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
    cleaned = []
    for key in jwks["keys"]:
        if not isinstance(key, dict) or key.get("kty") not in ("RSA", "EC"):
            raise ValueError("each key must be an RSA or EC JWK")
        cleaned.append({k: v for k, v in key.items() if k not in private})
    try:
        return KeySet.import_key_set({"keys": cleaned})
    except (JoseError, ValueError, TypeError) as exc:
        raise ValueError(f"invalid JWK: {exc}") from None


async def issue_token(sb: Sandbox, form: dict[str, str], token_url: str) -> dict[str, Any]:
    """POST /auth/token (SMART Backend Services, RFC 7523 client authentication)."""
    if form.get("grant_type") != "client_credentials":
        if not form.get("grant_type"):
            raise OAuthError("invalid_request", "Missing grant_type")
        raise OAuthError("unsupported_grant_type", "Only client_credentials is supported")
    assertion = form.get("client_assertion")
    if not assertion or not form.get("client_assertion_type"):
        raise OAuthError("invalid_request", "client_assertion and client_assertion_type are required")
    if form["client_assertion_type"] != ASSERTION_TYPE:
        raise OAuthError("invalid_client", "Unsupported client_assertion_type")
    if not form.get("scope"):
        raise OAuthError("invalid_request", "Missing scope")
    try:
        unverified = extract_compact(assertion.encode())
        header, claims = unverified.headers(), json.loads(unverified.payload)
    except (JoseError, ValueError, UnicodeError):
        raise OAuthError("invalid_client", "The client assertion is not a valid JWT") from None
    if not isinstance(claims, dict):
        raise OAuthError("invalid_client", "The client assertion is not a valid JWT")
    client = sb.clients.get(str(claims.get("iss")))
    if client is None:
        raise OAuthError("invalid_client", "Unknown client")
    if form.get("client_id") not in (None, client.client_id):
        raise OAuthError("invalid_client", "client_id does not match the assertion issuer")
    if header.get("alg") not in ALGORITHMS:
        raise OAuthError("invalid_client", "The assertion must be signed with RS384 or ES384")
    if not header.get("kid"):
        raise OAuthError("invalid_client", "The assertion header must carry a kid")
    if "jku" in header and header["jku"] != client.jwks_url:
        raise OAuthError("invalid_client", "The jku header does not match the registered JWK Set URL")
    keys = await _keys(sb, client, str(header["kid"]))
    try:
        jwt.decode(assertion, keys, algorithms=ALGORITHMS)
    except JoseError:
        raise OAuthError("invalid_client", "The assertion signature could not be verified") from None
    now = sb.clock()
    _check_claims(sb, client, claims, token_url, now)
    scopes = grant_scopes(client, form["scope"])
    sb.used_jti[(client.client_id, str(claims["jti"]))] = float(claims["exp"])
    return mint(sb, client, scopes)


def mint(sb: Sandbox, client: Client, scopes: list[Scope]) -> dict[str, Any]:
    """Stores an opaque access token for these scopes; the token response body."""
    token = "".join(sb.rng.choices(_TOKEN_ALPHABET, k=64))
    text = " ".join(s.text for s in scopes)
    ttl = sb.settings.access_token_ttl
    sb.tokens[token] = Grant(client.client_id, scopes, text, sb.clock() + ttl, client.tenants)
    return {"access_token": token, "token_type": "bearer", "expires_in": ttl, "scope": text}


def _check_claims(sb: Sandbox, client: Client, claims: dict[str, Any], token_url: str, now: float) -> None:
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise OAuthError("invalid_client", "iss and sub must both be the client_id")
    aud = claims.get("aud")
    if aud != token_url and not (isinstance(aud, list) and token_url in aud):
        raise OAuthError("invalid_client", "aud must be the token endpoint URL")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise OAuthError("invalid_client", "exp is required")
    if exp <= now:
        raise OAuthError("invalid_client", "The client assertion has expired")
    if exp > now + sb.settings.assertion_max_lifetime:
        raise OAuthError("invalid_client", "exp must be no more than five minutes in the future")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and nbf > now:
        raise OAuthError("invalid_client", "The client assertion is not yet valid")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise OAuthError("invalid_client", "jti is required")
    for key, expiry in list(sb.used_jti.items()):
        if expiry <= now:
            del sb.used_jti[key]
    if (client.client_id, jti) in sb.used_jti:
        raise OAuthError("invalid_grant", "The assertion jti has already been used")


def grant_scopes(client: Client, requested: str) -> list[Scope]:
    granted = []
    for text in requested.split():
        try:
            scope = parse_scope(text)
        except ValueError as exc:
            raise OAuthError("invalid_scope", f"Invalid scope: {exc}") from None
        if scope is not None and any(r.covers(scope) for r in client.scopes) and scope not in granted:
            granted.append(scope)
    if not granted:
        raise OAuthError("invalid_scope", "None of the requested scopes is allowed for this client")
    return granted


async def _keys(sb: Sandbox, client: Client, kid: str) -> KeySet:
    if client.jwks is not None:
        return public_only(client.jwks)
    known = client.fetched is not None and any(k.kid == kid for k in client.fetched.keys)
    if not known:
        try:
            async with httpx.AsyncClient(transport=sb.settings.transport, timeout=5.0) as http:
                response = await http.get(str(client.jwks_url), headers={"Accept": "application/json"})
            response.raise_for_status()
            client.fetched = public_only(response.json())
        except (httpx.HTTPError, ValueError):
            raise OAuthError("invalid_client", "Could not retrieve the client's JWK Set") from None
    assert client.fetched is not None
    return client.fetched


def authenticate(request: Request, sb: Sandbox, tenant: str) -> Grant:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    realm = 'Bearer realm="fhir"'
    if scheme.lower() != "bearer" or not token.strip():
        raise error(401, "login", "Authentication required: no bearer token", headers={"WWW-Authenticate": realm})
    grant = sb.tokens.get(token.strip())
    if grant is None:
        raise error(
            401,
            "login",
            "The access token is invalid",
            headers={
                "WWW-Authenticate": f'{realm}, error="invalid_token", error_description="The access token is invalid"'
            },
        )
    if sb.clock() >= grant.expires_at:
        raise error(
            401,
            "expired",
            "The access token has expired",
            headers={
                "WWW-Authenticate": f'{realm}, error="invalid_token", error_description="The access token expired"'
            },
        )
    if grant.tenants is not None and tenant not in grant.tenants:
        raise error(403, "forbidden", "The client is not authorized for this FHIR server")
    return grant


def require(grant: Grant, resource_type: str, perm: str) -> None:
    if not grant.allows(resource_type, perm):
        needed = f"system/{resource_type}.{perm}"
        raise FhirError(
            403,
            {"severity": "error", "code": "forbidden", "diagnostics": f"Access denied: the token lacks scope {needed}"},
            headers={"WWW-Authenticate": f'Bearer realm="fhir", error="insufficient_scope", scope="{needed}"'},
        )


class RateLimiter:
    """Fixed windows per client (simulator-chosen: FHIR servers publish no standard limit)."""

    def __init__(self, sb: Sandbox) -> None:
        self._sb = sb
        self._windows: dict[str, tuple[float, int]] = {}

    def reset(self) -> None:
        self._windows.clear()

    def hit(self, key: str) -> int | None:
        """None when allowed; else the seconds to wait (Retry-After)."""
        settings, now = self._sb.settings, self._sb.clock()
        start, count = self._windows.get(key, (now, 0))
        if now >= start + settings.rate_limit_window:
            start, count = now, 0
        if count >= settings.rate_limit_requests:
            return max(1, int(start + settings.rate_limit_window - now + 0.999))
        self._windows[key] = (start, count + 1)
        return None
