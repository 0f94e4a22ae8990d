"""Connection rules: pure, no gRPC, no SQL."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from libs.errors import InvalidArgument

# The data-key owner of secrets that belong to no practice (vendor app credentials).
SYSTEM_PRACTICE = "_system"
AUTHORIZATION_CODE = "AUTH_KIND_OAUTH2_AUTHORIZATION_CODE"
_VENDOR_ERROR = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")

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
    return VendorDefinition(
        integration_type=integration_type,
        auth_kind=document.get("auth_kind", ""),
        pkce_supported=bool(document.get("pkce_supported", False)),
        scopes=tuple(document.get("scopes", [])),
        endpoints=Endpoints(**{k: v for k, v in document.get("endpoints", {}).items() if k in _ENDPOINT_FIELDS}),
        token_params={k: str(v) for k, v in (oauth.get("token_params") or {}).items()},
        account_id_field=oauth.get("account_id_field", ""),
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
    return TokenGrant(
        access_token=access_token,
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        expires_at=expires_at,
        scopes=scopes,
        external_account_id=str(account) if account else "",
    )


def safe_vendor_error(error: object) -> str:
    """The vendor's OAuth error code, only when it looks like one (never free text)."""
    return error if isinstance(error, str) and _VENDOR_ERROR.match(error) else "unrecognised_error"


def refresh_token_refused(error: VendorRefused) -> bool:
    """True when the vendor rejects the grant itself (a user must authorize again), not our client."""
    return error.error == "invalid_grant" or (error.status == 401 and error.error != "invalid_client")


def access_purpose(config_id: str) -> str:
    return f"access-token|{config_id}"


def refresh_purpose(config_id: str) -> str:
    return f"refresh-token|{config_id}"


def verifier_purpose(config_id: str) -> str:
    return f"pkce-verifier|{config_id}"


def client_secret_purpose(integration_type: str) -> str:
    return f"oauth-client|{integration_type}"
