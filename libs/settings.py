"""The one settings loader: every service reads CONCORD_* environment variables through it."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("registry", "connection", "mapping", "sync", "audit")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONCORD_", frozen=True, extra="ignore")

    data_dir: Path = Path("var")
    # Empty: one SQLite file per service under data_dir. Otherwise a PostgreSQL (asyncpg) URL
    # shared by all services, each in its own schema.
    database_url: str = ""
    database_schema_prefix: str = ""

    registry_address: str = "127.0.0.1:50051"
    connection_address: str = "127.0.0.1:50052"
    mapping_address: str = "127.0.0.1:50053"
    sync_address: str = "127.0.0.1:50054"
    audit_address: str = "127.0.0.1:50055"
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    # Where vendors redirect users after authorizing (the gateway's callback).
    public_base_url: str = "http://127.0.0.1:8080"

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    sync_task_queue: str = "sync"

    # Vendor -> base URL of its local sandbox; the registry points that vendor's endpoints there
    # (same paths, other host). Empty in production.
    vendor_base_urls: dict[str, str] = {}
    # The PEM public key GoHighLevel signs its webhooks with (GHL publishes it; the GHL sandbox
    # serves its own at /_sandbox/webhook-public-key). Unset: GHL webhooks are refused.
    ghl_webhook_public_key: str = ""

    # Adapters pace themselves under each vendor's rate limit. Only benchmarks against a sandbox
    # whose limit is switched off turn this off.
    vendor_pacing: bool = True
    # This worker process's part of each vendor's per-window limit: 1 / the number of replicas of
    # one vendor's adapter worker (each paces its own share; the vendor's "remaining" headers,
    # which every replica sees, hold them all when the shared bucket runs dry anyway).
    vendor_rate_share: float = Field(default=1.0, gt=0.0, le=1.0)

    otel_exporter: Literal["none", "console", "otlp", "memory"] = "none"
    log_level: str = "INFO"

    # Access tokens are refreshed when they expire within this many seconds.
    token_refresh_margin_seconds: int = 300
    # A larger request body is refused 413 before any route reads it (a 60-patient FHIR import
    # bundle is about 1 MB).
    gateway_max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # Who wraps the data keys: the local keyring (<data_dir>/keys/keyring.json) or AWS KMS
    # (libs/key_providers.py; pip install 'concord[aws]').
    key_provider: Literal["local", "aws-kms"] = "local"
    # aws-kms: the customer managed key (id, ARN or alias/...) and its region (empty: boto3's chain).
    aws_kms_key_id: str = ""
    aws_region: str = ""
    # TLS and mutual TLS between services (libs/tls.py): this process's certificate, its key and
    # the CA of every service's; or development certificates made at first start.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_ca_file: str = ""
    tls_dev_certificates: bool = False

    # The development OIDC issuer the gateway trusts in the embedded default.
    jwt_issuer: str = "concord-dev"
    jwt_audience: str = "concord-gateway"
    # An external OIDC issuer instead (services/gateway/auth.py): its JWKS URL (https), the keys
    # cached this long; jwt_issuer/jwt_audience then name that issuer and this API as its tokens do.
    oidc_jwks_url: str = ""
    oidc_jwks_cache_seconds: int = Field(default=600, ge=30)
    # The claims naming the user's practice and role (the development issuer writes these two).
    oidc_practice_claim: str = "practice_id"
    oidc_role_claim: str = "role"
    # Clock skew allowed on exp, nbf and iat.
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    # Absolute session bound: a token whose session began (auth_time, else iat) longer ago is
    # refused 401 SESSION_EXPIRED. Idle timeout is the IdP's (short-lived tokens, refreshed). 0: off.
    session_timeout_minutes: int = Field(default=15, ge=0)

    def service_address(self, service: str) -> str:
        return getattr(self, f"{service}_address")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
