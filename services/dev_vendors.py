"""The vendor sandboxes of the embedded default, each with the development credentials a practice
admin would be given by the vendor. Credentials are generated at first start under
``<data_dir>/keys/dev-vendors/`` (mode 0600), never kept in the repository."""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from libs.asgi import RunningAsgi, serve_asgi_at
from libs.settings import Settings

PORTS = {"ghl": 8701, "zenoti": 8702, "salesforce": 8703, "fhir": 8704, "zapier": 8705}
FHIR_TENANT = "default"
FHIR_SCOPES = "system/Patient.cruds system/Appointment.cruds system/HealthcareService.cruds"


@dataclass
class DevVendor:
    """A running sandbox and how Concord connects to it."""

    integration_type: str
    sandbox: RunningAsgi
    app: Any
    client_id: str
    client_secret: str = ""
    # The body of POST /integrations/{slug}/connect; None for browser (authorization-code) vendors.
    connect: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Concord settings this vendor's sandbox decides (the key GHL signs webhooks with).
    settings: dict[str, Any] = field(default_factory=dict)


def _secrets(settings: Settings, vendor: str, make: Callable[[], dict]) -> dict:
    path: Path = settings.data_dir / "keys" / "dev-vendors" / f"{vendor}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(make(), handle)
    return json.loads(path.read_text())


def _rsa_pair(kid: str) -> dict:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    numbers = key.public_key().public_numbers()

    def b64(number: int) -> str:
        return base64.urlsafe_b64encode(number.to_bytes((number.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    jwk = {"kty": "RSA", "n": b64(numbers.n), "e": b64(numbers.e), "kid": kid, "alg": "RS384", "use": "sig"}
    return {"private_key_pem": pem, "jwk": jwk, "key_id": kid}


async def start_ghl(settings: Settings, port: int, redirect_uri: str, rate_limit: bool) -> DevVendor:
    from sandbox.ghl.app import create_app
    from sandbox.ghl.settings import AppRegistration, GhlSandboxSettings

    creds = _secrets(
        settings,
        "ghl",
        lambda: {"client_id": f"concord-dev-{secrets.token_hex(6)}", "client_secret": secrets.token_urlsafe(32)},
    )
    holder: dict[str, Any] = {}

    def make(url: str) -> Any:
        holder["app"] = create_app(
            GhlSandboxSettings(
                base_url=url,
                rate_limit_enabled=rate_limit,
                apps=[
                    AppRegistration(
                        creds["client_id"],
                        creds["client_secret"],
                        [redirect_uri],
                        # The app's webhook URL, as set in GHL's marketplace: the gateway's.
                        webhook_url=f"{settings.public_base_url}/webhooks/ghl",
                    )
                ],
            )
        )
        return holder["app"]

    sandbox = await serve_asgi_at(make, "127.0.0.1", port)
    key = holder["app"].state.sandbox.webhooks.signer.public_pem
    return DevVendor(
        "ghl",
        sandbox,
        holder["app"],
        creds["client_id"],
        creds["client_secret"],
        settings={"ghl_webhook_public_key": key},
    )


async def start_salesforce(settings: Settings, port: int, redirect_uri: str, rate_limit: bool) -> DevVendor:
    from sandbox.salesforce.app import create_app
    from sandbox.salesforce.settings import ConnectedAppRegistration, SalesforceSandboxSettings, UserRegistration

    creds = _secrets(
        settings,
        "salesforce",
        lambda: {
            "consumer_key": f"3MVG9concord{secrets.token_hex(8)}",
            "consumer_secret": secrets.token_hex(32),
            "username": "integration@popahealth.example",
            "password": secrets.token_urlsafe(16),
            "security_token": secrets.token_hex(12),
        },
    )
    holder: dict[str, Any] = {}

    def make(url: str) -> Any:
        holder["app"] = create_app(
            SalesforceSandboxSettings(
                base_url=url,
                login_url=url,
                rate_limit_enabled=rate_limit,
                users=[UserRegistration(creds["username"], creds["password"], creds["security_token"])],
                apps=[
                    ConnectedAppRegistration(
                        creds["consumer_key"], creds["consumer_secret"], redirect_uris=[redirect_uri]
                    )
                ],
            )
        )
        return holder["app"]

    sandbox = await serve_asgi_at(make, "127.0.0.1", port)
    connect = {
        "kind": "password",
        "username": creds["username"],
        "password": creds["password"],
        "security_token": creds["security_token"],
    }
    return DevVendor("salesforce", sandbox, holder["app"], creds["consumer_key"], creds["consumer_secret"], connect)


async def start_fhir(settings: Settings, port: int, redirect_uri: str, rate_limit: bool) -> DevVendor:
    from sandbox.fhir.app import create_app
    from sandbox.fhir.settings import ClientRegistration, FhirSandboxSettings

    creds = _secrets(
        settings, "fhir", lambda: {"client_id": f"concord-{secrets.token_hex(6)}", **_rsa_pair("concord-dev-1")}
    )
    holder: dict[str, Any] = {}

    def make(url: str) -> Any:
        holder["app"] = create_app(
            FhirSandboxSettings(
                base_url=url,
                tenants=(FHIR_TENANT,),
                rate_limit_enabled=rate_limit,
                clients=[ClientRegistration(creds["client_id"], FHIR_SCOPES, jwks={"keys": [creds["jwk"]]})],
            )
        )
        return holder["app"]

    sandbox = await serve_asgi_at(make, "127.0.0.1", port)
    connect = {
        "kind": "client_assertion",
        "private_key_pem": creds["private_key_pem"],
        "key_id": creds["key_id"],
        "algorithm": "RS384",
        "account_id": FHIR_TENANT,
    }
    return DevVendor("fhir", sandbox, holder["app"], creds["client_id"], "", connect)


async def start_zenoti(settings: Settings, port: int, redirect_uri: str, rate_limit: bool) -> DevVendor:
    from sandbox.zenoti.app import create_app
    from sandbox.zenoti.settings import OrgConfig, ZenotiSandboxSettings

    creds = _secrets(
        settings,
        "zenoti",
        lambda: {
            "account_name": "concordspa",
            "api_key": secrets.token_hex(32),
            "app_id": secrets.token_hex(16),
            "app_secret": secrets.token_hex(32),
        },
    )
    holder: dict[str, Any] = {}

    def make(url: str) -> Any:
        org = OrgConfig(
            account_name=creds["account_name"],
            api_key=creds["api_key"],
            app_id=creds["app_id"],
            app_secret=creds["app_secret"],
            # A new Zenoti organisation: its guests arrive from the hub.
            seed=False,
        )
        holder["app"] = create_app(ZenotiSandboxSettings(base_url=url, rate_limit_enabled=rate_limit, orgs=[org]))
        return holder["app"]

    sandbox = await serve_asgi_at(make, "127.0.0.1", port)
    centers = sorted(holder["app"].state.sandbox.org(creds["account_name"]).centers.values(), key=lambda c: c.code)
    connect = {"kind": "api_key", "api_key": creds["api_key"], "account_id": centers[0].id}
    return DevVendor("zenoti", sandbox, holder["app"], creds["app_id"], "", connect)


async def start_zapier(settings: Settings, port: int, redirect_uri: str, rate_limit: bool) -> DevVendor:
    """Zapier plays the client: Concord issues its API key once a practice connects it, and the
    practice's app definition (``zapier_app``) is registered with the sandbox then."""
    from sandbox.zapier.app import create_app
    from sandbox.zapier.settings import ZapierSandboxSettings

    holder: dict[str, Any] = {}

    def make(url: str) -> Any:
        holder["app"] = create_app(ZapierSandboxSettings(base_url=url, rate_limit_enabled=rate_limit))
        return holder["app"]

    sandbox = await serve_asgi_at(make, "127.0.0.1", port)
    return DevVendor("zapier", sandbox, holder["app"], client_id="")


def zapier_app(app_id: str, gateway_url: str, api_key: str) -> dict[str, Any]:
    """The sandbox's stand-in for the practice's Zapier app (index.js): Concord's REST hook
    triggers, polling samples and actions, authenticated by the key Concord issued."""

    def hook(event: str, sample: str) -> dict[str, Any]:
        return {
            "key": event.replace(".", "_"),
            "subscribe": {
                "method": "POST",
                "path": "/zapier/hooks",
                "body_template": {"target_url": "{{bundle.targetUrl}}", "event": event},
            },
            "unsubscribe": {"method": "DELETE", "path_template": "/zapier/hooks/{id}"},
            "perform_list": {"method": "GET", "path": sample},
        }

    return {
        "app_id": app_id,
        "base_url": gateway_url,
        "auth": {
            "type": "api_key",
            "header": "X-API-Key",
            "key": api_key,
            "test": {"method": "GET", "path": "/zapier/me"},
        },
        "triggers": [
            hook("patient.created", "/zapier/patients"),
            hook("patient.updated", "/zapier/patients"),
            hook("appointment.booked", "/zapier/appointments"),
            hook("appointment.cancelled", "/zapier/appointments"),
            {"key": "new_or_updated_patient", "perform_list": {"method": "GET", "path": "/zapier/patients"}},
        ],
        "actions": [
            {"key": "create_or_update_patient", "method": "POST", "path": "/zapier/patients"},
            {"key": "book_appointment", "method": "POST", "path": "/zapier/appointments"},
        ],
    }


LAUNCHERS = {
    "ghl": start_ghl,
    "salesforce": start_salesforce,
    "fhir": start_fhir,
    "zenoti": start_zenoti,
    "zapier": start_zapier,
}
