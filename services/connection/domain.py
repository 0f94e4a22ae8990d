"""Connection rules: pure, no gRPC, no SQL."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar
from urllib.parse import urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from libs.errors import InvalidArgument

# The data-key owner of secrets that belong to no practice (vendor app credentials).
SYSTEM_PRACTICE = "_system"
# Auth kinds, named as the registry's AuthKind enum names them.
AUTHORIZATION_CODE = "AUTH_KIND_OAUTH2_AUTHORIZATION_CODE"
PASSWORD = "AUTH_KIND_OAUTH2_PASSWORD"  # noqa: S105 (an auth kind, not a password)
JWT_BEARER = "AUTH_KIND_OAUTH2_JWT_BEARER"
API_KEY = "AUTH_KIND_API_KEY"
SMART_BACKEND_SERVICES = "AUTH_KIND_SMART_BACKEND_SERVICES"
# Kinds whose token requests carry the OAuth client's secret.
_SECRET_KINDS = frozenset({AUTHORIZATION_CODE, PASSWORD})
_VENDOR_ERROR = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
# Salesforce's identity URL: https://login.salesforce.com/id/<orgId>/<userId>.
_IDENTITY_PATH = re.compile(r"^/id/([A-Za-z0-9]{15,18})/[A-Za-z0-9]{15,18}/?$")
# Salesforce caps a JWT bearer assertion's exp at three minutes ahead.
JWT_BEARER_LIFETIME_SECONDS = 180
# SMART allows five minutes; one is kept back for clock skew between Concord and the EMR.
CLIENT_ASSERTION_LIFETIME_SECONDS = 240
CLIENT_ASSERTION_ALGORITHMS = ("RS384", "ES384", "RS256")

# OAuth details the registry's catalog does not describe yet; a definition's extra.oauth overrides them.
# GHL issues a Location token when asked with user_type=Location and names the location in locationId.
_OAUTH_DEFAULTS: dict[str, dict[str, Any]] = {
    "ghl": {"token_params": {"user_type": "Location"}, "account_id_field": "locationId"},
}


class Status(StrEnum):
    PENDING = "PENDING"
    CONNECTED = "CONNECTED"
    EXPIRED = "EXPIRED"
    DISCONNECTED = "DISCONNECTED"


@dataclass(frozen=True)
class Endpoints:
    api_base_url: str = ""
    authorize_url: str = ""
    token_url: str = ""
    revocation_url: str = ""


_ENDPOINT_FIELDS = frozenset(Endpoints.__dataclass_fields__)


@dataclass(frozen=True)
class VendorDefinition:
    integration_type: str
    auth_kind: str
    pkce_supported: bool
    scopes: tuple[str, ...]
    endpoints: Endpoints
    token_params: dict[str, str] = field(default_factory=dict)
    account_id_field: str = ""
    # Every way the vendor may be connected (supported_auth_kinds, else the preferred auth_kind).
    auth_kinds: tuple[str, ...] = ()
    # The aud of JWT bearer assertions: extra.oauth.jwt_audience, else the token URL's origin.
    jwt_audience: str = ""

    def supports(self, kind: str) -> bool:
        return kind in self.auth_kinds

    @property
    def needs_client_secret(self) -> bool:
        return any(kind in _SECRET_KINDS for kind in self.auth_kinds)


@dataclass(frozen=True)
class ConfigRef:
    config_id: str
    practice_id: str
    integration_type: str


@dataclass(frozen=True)
class OAuthClient:
    integration_type: str
    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class StoredConnection:
    """A connection row; tokens stay ciphertext until a use case needs one."""

    config_id: str
    practice_id: str
    integration_type: str
    status: Status
    encrypted_access_token: bytes | None = field(default=None, repr=False)
    encrypted_refresh_token: bytes | None = field(default=None, repr=False)
    expires_at: datetime | None = None
    scopes: list[str] = field(default_factory=list)
    external_account_id: str = ""
    connected_at: datetime | None = None
    last_refresh_at: datetime | None = None
    updated_at: datetime | None = None
    credential_kind: str = AUTHORIZATION_CODE
    # The credentials a grant is re-run with (password, JWT key, SMART key), JSON, encrypted.
    encrypted_credential: bytes | None = field(default=None, repr=False)
    # The API host the vendor named in its token response (Salesforce instance_url).
    instance_url: str | None = None


@dataclass(frozen=True)
class PendingAuthorization:
    state_hash: str
    config_id: str
    practice_id: str
    redirect_uri: str
    encrypted_code_verifier: bytes | None
    expires_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class TokenGrant:
    """A token endpoint's answer, in Concord's terms."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None
    scopes: list[str]
    external_account_id: str
    instance_url: str = ""


@dataclass(frozen=True)
class PasswordCredential:
    kind: ClassVar[str] = PASSWORD
    username: str
    password: str = field(repr=False)
    security_token: str = field(default="", repr=False)


@dataclass(frozen=True)
class JwtBearerCredential:
    kind: ClassVar[str] = JWT_BEARER
    username: str
    private_key_pem: str = field(repr=False)


@dataclass(frozen=True)
class ApiKeyCredential:
    kind: ClassVar[str] = API_KEY
    api_key: str = field(repr=False)


@dataclass(frozen=True)
class ClientAssertionCredential:
    kind: ClassVar[str] = SMART_BACKEND_SERVICES
    private_key_pem: str = field(repr=False)
    key_id: str
    algorithm: str
    scopes: tuple[str, ...] = ()


Credential = PasswordCredential | JwtBearerCredential | ApiKeyCredential | ClientAssertionCredential
_CREDENTIALS: dict[str, type[Credential]] = {
    c.kind: c for c in (PasswordCredential, JwtBearerCredential, ApiKeyCredential, ClientAssertionCredential)
}


def credential_to_json(credential: Credential) -> dict[str, Any]:
    return {"kind": credential.kind, **asdict(credential)}


def credential_from_json(document: dict[str, Any]) -> Credential:
    values = dict(document)
    kind = _CREDENTIALS[values.pop("kind")]
    if "scopes" in values:
        values["scopes"] = tuple(values["scopes"])
    return kind(**values)


def _required(value: str, field_path: str, max_length: int = 255) -> str:
    if not value:
        raise InvalidArgument(f"{field_path} is required", field=field_path, reason="REQUIRED_FIELD_MISSING")
    if len(value) > max_length:
        raise InvalidArgument(f"{field_path} is longer than {max_length} characters", field=field_path)
    return value


def _private_key(pem: str, field_path: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    _required(pem, field_path, 20_000)
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise InvalidArgument(
            f"{field_path} must be an unencrypted PEM RSA or EC private key",
            field=field_path,
            reason="INVALID_PRIVATE_KEY",
        )
    return key


def password_credential(username: str, password: str, security_token: str) -> PasswordCredential:
    # The security token is optional: orgs that trust Concord's IP range issue none.
    if len(security_token) > 255:
        raise InvalidArgument("password.security_token is longer than 255 characters", field="password.security_token")
    return PasswordCredential(
        _required(username, "password.username"), _required(password, "password.password", 1024), security_token
    )


def jwt_bearer_credential(username: str, private_key_pem: str) -> JwtBearerCredential:
    if not isinstance(_private_key(private_key_pem, "jwt_bearer.private_key_pem"), rsa.RSAPrivateKey):
        raise InvalidArgument(
            "the JWT bearer flow signs with RS256: the key must be an RSA key",
            field="jwt_bearer.private_key_pem",
            reason="INVALID_PRIVATE_KEY",
        )
    return JwtBearerCredential(_required(username, "jwt_bearer.username"), private_key_pem)


def api_key_credential(api_key: str) -> ApiKeyCredential:
    return ApiKeyCredential(_required(api_key, "api_key.api_key", 1024))


def client_assertion_credential(
    private_key_pem: str, key_id: str, algorithm: str, scopes: list[str]
) -> ClientAssertionCredential:
    key = _private_key(private_key_pem, "client_assertion.private_key_pem")
    is_p384 = isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1)
    algorithm = algorithm or ("ES384" if is_p384 else "RS384")
    if algorithm not in CLIENT_ASSERTION_ALGORITHMS:
        raise InvalidArgument(
            "client_assertion.algorithm must be RS384, ES384 or RS256", field="client_assertion.algorithm"
        )
    if (algorithm == "ES384") != is_p384 or (algorithm != "ES384" and not isinstance(key, rsa.RSAPrivateKey)):
        raise InvalidArgument(
            f"{algorithm} needs an {'EC P-384' if algorithm == 'ES384' else 'RSA'} key",
            field="client_assertion.private_key_pem",
            reason="INVALID_PRIVATE_KEY",
        )
    for scope in scopes:
        _required(scope, "client_assertion.scopes")
    return ClientAssertionCredential(
        private_key_pem, _required(key_id, "client_assertion.key_id"), algorithm, tuple(scopes)
    )


class VendorRefused(Exception):
    """The vendor's token endpoint answered with an OAuth error."""

    def __init__(self, error: str, status: int) -> None:
        super().__init__(error)
        self.error = error
        self.status = status


class VendorUnavailable(Exception):
    """The vendor could not be reached or failed (network, 5xx, a body that is not OAuth)."""


def vendor_definition(document: dict[str, Any]) -> VendorDefinition:
    """Builds the OAuth view of a registry definition (json_format dict, proto field names)."""
    integration_type = document.get("integration_type", "")
    oauth = {**_OAUTH_DEFAULTS.get(integration_type, {}), **(document.get("extra", {}).get("oauth") or {})}
    endpoints = Endpoints(**{k: v for k, v in document.get("endpoints", {}).items() if k in _ENDPOINT_FIELDS})
    token_url = urlsplit(endpoints.token_url)
    auth_kind = document.get("auth_kind", "")
    return VendorDefinition(
        integration_type=integration_type,
        auth_kind=auth_kind,
        pkce_supported=bool(document.get("pkce_supported", False)),
        scopes=tuple(document.get("scopes", [])),
        endpoints=endpoints,
        token_params={k: str(v) for k, v in (oauth.get("token_params") or {}).items()},
        account_id_field=oauth.get("account_id_field", ""),
        auth_kinds=tuple(document.get("supported_auth_kinds") or ([auth_kind] if auth_kind else [])),
        jwt_audience=oauth.get("jwt_audience")
        or (f"{token_url.scheme}://{token_url.netloc}" if token_url.netloc else ""),
    )


def require_supported(definition: VendorDefinition, credential: Credential) -> None:
    if not definition.supports(credential.kind):
        raise InvalidArgument(
            f"{definition.integration_type} cannot be connected with {credential.kind}",
            field="credential",
            reason="AUTH_KIND_NOT_SUPPORTED",
        )


def validate_redirect_uri(uri: str) -> None:
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
        raise InvalidArgument(
            "redirect_uri must be an absolute http(s) URL without a fragment",
            field="redirect_uri",
            reason="INVALID_REDIRECT_URI",
        )


def hash_state(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def needs_refresh(connection: StoredConnection, now: datetime, margin_seconds: int) -> bool:
    return connection.expires_at is not None and connection.expires_at <= now + timedelta(seconds=margin_seconds)


def grant_from_token(token: dict[str, Any], definition: VendorDefinition, now: datetime) -> TokenGrant:
    """Reads a token response; the caller has already turned OAuth errors into VendorRefused."""
    access_token = token.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise VendorRefused("missing_access_token", 200)
    expires_in = token.get("expires_in")
    expires_at = now + timedelta(seconds=float(expires_in)) if isinstance(expires_in, int | float) else None
    scope = token.get("scope")
    scopes = scope.split() if isinstance(scope, str) else list(definition.scopes)
    account = token.get(definition.account_id_field) if definition.account_id_field else None
    refresh_token = token.get("refresh_token")
    instance_url = token.get("instance_url")
    return TokenGrant(
        access_token=access_token,
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        expires_at=expires_at,
        scopes=scopes,
        external_account_id=str(account) if account else identity_account(token.get("id")),
        instance_url=instance_url if isinstance(instance_url, str) and _http_url(instance_url) else "",
    )


def identity_account(identity_url: object) -> str:
    """The org id of a Salesforce identity URL (``https://login.salesforce.com/id/<orgId>/<userId>``)."""
    if not isinstance(identity_url, str) or not _http_url(identity_url):
        return ""
    found = _IDENTITY_PATH.match(urlsplit(identity_url).path)
    return found.group(1) if found else ""


def _http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and len(value) <= 2048


def safe_vendor_error(error: object) -> str:
    """The vendor's OAuth error code, only when it looks like one (never free text)."""
    return error if isinstance(error, str) and _VENDOR_ERROR.match(error) else "unrecognised_error"


def refresh_token_refused(error: VendorRefused) -> bool:
    """True when the vendor rejects the grant itself (a user must authorize again), not our client."""
    return error.error == "invalid_grant" or (error.status == 401 and error.error != "invalid_client")


def credential_refused(kind: str, error: VendorRefused) -> bool:
    """True when re-running a grant fails because the stored credential no longer works."""
    # A SMART client authenticates with the stored key itself: refusing the client refuses the key.
    return refresh_token_refused(error) or (kind == SMART_BACKEND_SERVICES and error.error == "invalid_client")


def access_purpose(config_id: str) -> str:
    return f"access-token|{config_id}"


def refresh_purpose(config_id: str) -> str:
    return f"refresh-token|{config_id}"


def verifier_purpose(config_id: str) -> str:
    return f"pkce-verifier|{config_id}"


def credential_purpose(config_id: str) -> str:
    return f"credential|{config_id}"


def client_secret_purpose(integration_type: str) -> str:
    return f"oauth-client|{integration_type}"
