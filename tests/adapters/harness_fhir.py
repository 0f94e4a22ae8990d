"""The FHIR R4 sandbox in the shared adapter suite: a tenant of its own, Concord registered as a SMART
backend-services client with an RSA key, and the config connected through the connection service's
ConnectWithCredentials(ClientAssertionGrant), so every token is a real client_credentials grant.

The sandbox caps search pages at PAGE_CAP entries, as EMRs cap `_count`: every fetch of the suite
follows next links inside the activity, and a broken next link is met by the fetch that got it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import functools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from libs import fhir_service
from libs.asgi import serve_asgi
from libs.grpc_client import call, open_channel
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.connection.v1 import connection_pb2 as cpb
from libs.protos.concord.connection.v1 import connection_pb2_grpc
from libs.protos.concord.registry.v1 import registry_pb2 as rpb
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from libs.settings import Settings
from sandbox.fhir.app import create_app
from sandbox.fhir.settings import ClientRegistration, FhirSandboxSettings
from sandbox.fhir.state import Sandbox as FhirSandboxState
from services.adapters import AdapterContext
from services.adapters.fhir import FhirAdapter
from services.adapters.fhir.resources import APPOINTMENT, PATIENT
from services.mapping.mappers.fhir_services import FhirServiceMapper
from tests.adapters.conftest import PRACTICE_ID, AdapterHarness, EntityCase, _start_services, plain, struct

VENDOR = "fhir"
CLIENT_ID = "concord-adapter-tests"
KEY_ID = "concord-suite-key-1"
SCOPES = "system/Patient.cruds"
# Another app at the EMR (its users' front desk): seeds and reads patients on its own rate-limit budget.
EHR_CLIENT_ID = "ehr-front-desk"
TENANT = "clinic-a"
OTHER_TENANT = "clinic-b"
PAGE_CAP = 7


def _rsa_key() -> tuple[str, dict]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    numbers = key.public_key().public_numbers()

    def b64(number: int) -> str:
        raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return pem, {"kty": "RSA", "n": b64(numbers.n), "e": b64(numbers.e), "kid": KEY_ID, "alg": "RS384", "use": "sig"}


@functools.cache
def keys() -> tuple[tuple[str, dict], tuple[str, dict]]:
    """Concord's key and one the EMR does not know (generated once: RSA generation is slow)."""
    return _rsa_key(), _rsa_key()


@dataclass
class FhirHarness(AdapterHarness):
    tenant: str = TENANT
    sandbox: FhirSandboxState | None = field(default=None, repr=False)  # the simulator's memory
    ehr_token: str = field(default="", repr=False)

    @property
    def base(self) -> str:
        return f"{self.sandbox_url}/fhir/{self.tenant}"

    def record_id(self, record: dict) -> str:
        return record["id"]

    async def ehr(self, method: str, path: str, tenant: str | None = None, **kwargs: Any) -> httpx.Response:
        """A request of the EMR's own front-desk app, through whatever faults are switched on."""
        url = f"{self.sandbox_url}/fhir/{tenant or self.tenant}/{path}"
        for _ in range(20):
            if not self.ehr_token:
                self.ehr_token = (await self._admin("POST", "/tokens", json={"client_id": EHR_CLIENT_ID}))[
                    "access_token"
                ]
            headers = {"Authorization": f"Bearer {self.ehr_token}"}
            response = await self.http.request(method, url, headers=headers, **kwargs)
            if response.status_code == 401:
                self.ehr_token = ""
            elif response.status_code not in (429, 500, 503):
                return response
            else:
                await asyncio.sleep(float(response.headers.get("Retry-After", "0.05")))
        raise AssertionError("the sandbox kept refusing the front desk")

    async def create_patients(self, patients: list[dict], tenant: str | None = None) -> list[str]:
        return await self.create_resources("Patient", patients, tenant)

    async def create_resources(self, kind: str, resources: list[dict], tenant: str | None = None) -> list[str]:
        """The EMR's users create these; their ids in the order the EMR made them."""
        gate = asyncio.Semaphore(25)  # in flight together: each POST waits out localhost's delayed ACK

        async def create(resource: dict) -> str:
            async with gate:
                response = await self.ehr("POST", kind, tenant, json=resource)
            assert response.status_code == 201, response.text
            return response.json()["id"]

        ids = await asyncio.gather(*(create(r) for r in resources))
        assert self.sandbox is not None
        stored = self.sandbox.tenants[tenant or self.tenant]
        return sorted(ids, key=lambda i: stored.resource(kind, i)["meta"]["lastUpdated"])

    async def seed(self, count: int) -> list[str]:
        return await self.create_patients(
            [
                {
                    "resourceType": "Patient",
                    "identifier": [
                        {"system": "urn:oid:1.2.36.146.595.217.0.1", "value": f"MRN-{uuid.uuid4().hex[:10]}"}
                    ],
                    "name": [{"use": "official", "family": "Seeded", "given": [f"Patient{i}"]}],
                    "gender": "female" if i % 2 else "male",
                    "birthDate": f"19{50 + i % 50:02d}-0{1 + i % 9}-1{i % 10}",
                    "address": [{"city": "Worcester", "state": "MA", "country": "US"}],
                }
                for i in range(count)
            ]
        )

    async def edit(self, external_id: str) -> None:
        await self._admin(
            "PATCH",
            f"/resources/Patient/{external_id}",
            params={"tenant": self.tenant},
            json={"address": [{"city": "Edited Springs", "country": "US"}]},
        )

    async def stored(self) -> dict[str, dict]:
        assert self.sandbox is not None
        return {p["id"]: p for p in self.sandbox.tenants[self.tenant].live("Patient")}

    def new_records(self, count: int) -> list[dict]:
        """As the mapper writes them: the hub's id as an identifier, for conditional creates."""
        return [
            {
                "resourceType": "Patient",
                "identifier": [{"use": "secondary", "system": PATIENT.hub_system, "value": str(uuid.uuid4())}],
                "name": [{"use": "official", "family": "Suite", "given": [f"Adapter{i}"]}],
                "telecom": [
                    {"system": "phone", "value": f"+1617555{i:04d}", "use": "mobile"},
                    {"system": "email", "value": f"adapter.suite.{i}@example.com"},
                ],
                "gender": "female",
                "birthDate": "1980-02-29",
                "address": [{"city": "Boston", "state": "MA", "country": "US"}],
            }
            for i in range(count)
        ]

    def changed(self, record: dict) -> dict:
        changed = copy.deepcopy(record)
        changed["address"][0]["city"] = f"Moved {record['name'][0]['given'][0]}"
        return changed

    def changed_value(self, stored: dict) -> Any:
        return stored["address"][0]["city"]

    def malformed(self, record: dict) -> list[tuple[dict, str]]:
        return [
            ({**record, "birthDate": "1980-13-45"}, "1980-13-45"),  # not a date: 400
            ({**record, "gender": "teal-and-violet"}, "teal-and-violet"),  # outside the required binding: 422
        ]

    async def expire_access_tokens(self) -> None:
        await self._admin("POST", "/faults", json={"expire_all_tokens": True})

    async def revoke_tokens(self) -> None:
        """The EMR's admin revokes Concord's key: live tokens die and no new assertion verifies."""
        unknown_key = keys()[1][1]
        await self._admin(
            "POST", "/clients", json={"client_id": CLIENT_ID, "jwks": {"keys": [unknown_key]}, "scopes": SCOPES}
        )
        await self._admin("POST", "/faults", json={"revoke_tokens": True})

    async def live_refresh_tokens(self) -> set[str]:
        """SMART backend services issue no refresh token: the grant is re-run, so the live access tokens
        are what must turn over."""
        assert self.sandbox is not None
        now = self.sandbox.clock()
        return {t for t, g in self.sandbox.tokens.items() if g.client_id == CLIENT_ID and g.expires_at > now}

    async def token_requests(self) -> int:
        return (await self._admin("GET", "/stats")).get("POST /auth/token", 0)


async def open_fhir_harness(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    http: httpx.AsyncClient,
    rate_limit: tuple[int, float] | None = None,
    page_cap: int = PAGE_CAP,
) -> FhirHarness:
    (pem, public), (_, ehr_public) = keys()
    limits = {} if rate_limit is None else {"rate_limit_requests": rate_limit[0], "rate_limit_window": rate_limit[1]}
    app = create_app(
        FhirSandboxSettings(
            tenants=(TENANT, OTHER_TENANT),
            seed_data=False,
            max_count=page_cap,
            clients=[
                ClientRegistration(CLIENT_ID, SCOPES, jwks={"keys": [public]}),
                ClientRegistration(EHR_CLIENT_ID, "system/*.cruds", jwks={"keys": [ehr_public]}),
            ],
            **limits,
        )
    )
    served = await serve_asgi(app)
    stack.push_async_callback(served.stop)
    settings = await _start_services(stack, settings, VENDOR, served.url)

    registry_channel = open_channel(settings.registry_address)
    stack.push_async_callback(registry_channel.close)
    registry = registry_pb2_grpc.RegistryServiceStub(registry_channel)
    await call(registry.CreatePractice, rpb.CreatePracticeRequest(practice_id=PRACTICE_ID, name="Suite Clinic"))
    config = await call(
        registry.CreateIntegrationConfig,
        rpb.CreateIntegrationConfigRequest(
            config=rpb.IntegrationConfig(practice_id=PRACTICE_ID, integration_type=VENDOR)
        ),
    )
    config_id = config.config.config_id

    channel = open_channel(settings.connection_address)
    stack.push_async_callback(channel.close)
    connections = connection_pb2_grpc.ConnectionServiceStub(channel)
    # SMART backend services authenticate with the key alone: the OAuth client has an id, no secret.
    await call(connections.SetOAuthClient, cpb.SetOAuthClientRequest(integration_type=VENDOR, client_id=CLIENT_ID))
    await call(
        connections.ConnectWithCredentials,
        cpb.ConnectWithCredentialsRequest(
            config_id=config_id,
            client_assertion=cpb.ClientAssertionGrant(private_key_pem=pem, key_id=KEY_ID, algorithm="RS384"),
            external_account_id=TENANT,
        ),
    )

    # Retries after a 5xx without Retry-After back off 20 ms, not 0.5 s: the suite waits for retries, not outages.
    adapter = FhirAdapter(AdapterContext(settings, connections), backoff_seconds=0.02)
    stack.push_async_callback(adapter.aclose)
    return FhirHarness(
        vendor=VENDOR,
        settings=settings,
        sandbox_url=served.url,
        config_id=config_id,
        connections=connections,
        adapter=adapter,
        http=http,
        sandbox=app.state.sandbox,
    )


async def open_harness(
    stack: contextlib.AsyncExitStack, settings: Settings, http: httpx.AsyncClient, rate_limit: tuple[int, float] | None
) -> FhirHarness:
    return await open_fhir_harness(stack, settings, http, rate_limit)


async def grant_scopes(harness: FhirHarness, scopes: str) -> None:
    """The EMR's admin widens what the suite's client may do; the next grant asks for the
    definition's scopes and gets them."""
    public = keys()[0][1]
    await harness._admin(
        "POST", "/clients", json={"client_id": CLIENT_ID, "jwks": {"keys": [public]}, "scopes": scopes}
    )
    token = await call(
        harness.connections.GetAccessToken, cpb.GetAccessTokenRequest(config_id=harness.config_id, force_refresh=True)
    )
    assert harness.sandbox is not None
    granted = harness.sandbox.tokens[token.access_token].scope_text
    assert all(scope in granted for scope in scopes.split()), granted


async def upsert_entities(harness: FhirHarness, entity_type: int, items: list[tuple[str, str, dict]]) -> dict:
    """UpsertBatch of (ref, EMR id or "", record); the results by ref."""
    request = pb.UpsertBatchRequest(
        config_id=harness.config_id,
        entity_type=entity_type,
        items=[pb.UpsertItem(ref=ref, external_id=eid, record=struct(rec)) for ref, eid, rec in items],
    )
    return {r.ref: r for r in (await harness.adapter.upsert_batch(request)).results}


async def fetch_run(harness: FhirHarness, entity_type: int, cursor: str, size: int = 5) -> tuple[list[dict], str]:
    """One pull run: pages until has_more is false; the records and the cursor after them."""
    records: list[dict] = []
    for _ in range(50):
        request = pb.FetchChangesRequest(
            config_id=harness.config_id, entity_type=entity_type, cursor=cursor, page_size=size
        )
        page = await harness.adapter.fetch_changes(request)
        records += [plain(r) for r in page.records]
        cursor = page.next_cursor
        if not page.has_more:
            return records, cursor
    raise AssertionError("has_more never turned false")


# --- the suite's other entities: Appointment and HealthcareService ---------------------------------------


@dataclass
class FhirResourceCase(EntityCase):
    """A FHIR resource type other than Patient, written as its mapper writes it (the hub's id as an
    identifier, for conditional creates) and edited by the EMR's users."""

    kind: str = ""
    edit_patch: dict = field(default_factory=dict)

    @property
    def fhir(self) -> FhirHarness:
        assert isinstance(self.harness, FhirHarness)
        return self.harness

    def record_id(self, record: dict) -> str:
        return record["id"]

    def resource(self, i: int, hub_id: str | None) -> dict:
        raise NotImplementedError

    async def seed(self, count: int) -> list[str]:
        return await self.fhir.create_resources(self.kind, [self.resource(i, None) for i in range(count)])

    async def edit(self, external_id: str) -> None:
        await self.fhir._admin(
            "PATCH", f"/resources/{self.kind}/{external_id}", params={"tenant": self.fhir.tenant}, json=self.edit_patch
        )

    async def stored(self) -> dict[str, dict]:
        assert self.fhir.sandbox is not None
        return {r["id"]: r for r in self.fhir.sandbox.tenants[self.fhir.tenant].live(self.kind)}

    def new_records(self, count: int) -> list[dict]:
        return [self.resource(i, str(uuid.uuid4())) for i in range(count)]


def appointment(patient_id: str, hub_id: str | None, start: datetime, minutes: int = 30) -> dict:
    """As the mapper writes it: the EMR's patient reference and the hub's id as an identifier."""
    instant = "%Y-%m-%dT%H:%M:%SZ"
    record = {
        "resourceType": "Appointment",
        "status": "booked",
        "serviceType": [{"coding": [{"system": "http://snomed.info/sct", "code": "394814009"}], "text": "General"}],
        "start": start.strftime(instant),
        "end": (start + timedelta(minutes=minutes)).strftime(instant),
        "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}],
    }
    if hub_id:
        record["identifier"] = [{"use": "secondary", "system": APPOINTMENT.hub_system, "value": hub_id}]
    return record


@dataclass
class FhirAppointmentCase(FhirResourceCase):
    patient_id: str = ""

    def resource(self, i: int, hub_id: str | None) -> dict:
        start = datetime(2024, 6, 3, 9, tzinfo=UTC) + timedelta(minutes=15 * i)  # a quarter-hour apart
        return appointment(self.patient_id, hub_id, start, minutes=10)

    def changed(self, record: dict) -> dict:
        return {**record, "status": "fulfilled"}

    def changed_value(self, stored: dict) -> Any:
        return stored.get("status")

    def malformed(self, record: dict) -> list[tuple[dict, str]]:
        return [
            ({**record, "status": "teal-and-violet"}, "teal-and-violet"),  # outside the required binding
            ({**record, "start": "2024-13-45T09:00:00Z"}, "2024-13-45T09:00:00Z"),  # not an instant
        ]


@dataclass
class FhirServiceCase(FhirResourceCase):
    def resource(self, i: int, hub_id: str | None) -> dict:
        item = fhir_service.catalog_item(
            name=f"Treatment {i}",
            service_code=f"T{i:04d}",
            category_code="c-facials",
            category_name="Facials",
            duration_minutes=30 + i % 4 * 15,
            price=100.0 + i,
            currency="USD",
        )
        return FhirServiceMapper().to_vendor({**item, "id": hub_id} if hub_id else item)

    def changed(self, record: dict) -> dict:
        return {**record, "comment": f"Changed {record['name']}"}

    def changed_value(self, stored: dict) -> Any:
        return stored.get("comment")

    def malformed(self, record: dict) -> list[tuple[dict, str]]:
        return [
            ({**record, "active": "teal-and-violet"}, "teal-and-violet"),  # not a boolean
            ({**record, "telecom": [{"system": "pigeon", "value": "x"}]}, "pigeon"),  # outside the binding
        ]


async def _appointment_case(harness: AdapterHarness) -> EntityCase:
    assert isinstance(harness, FhirHarness)
    await grant_scopes(harness, "system/Patient.cruds system/Appointment.cruds")
    (patient_id,) = await harness.seed(1)
    return FhirAppointmentCase(
        harness,
        entity=common_pb2.ENTITY_TYPE_APPOINTMENT,
        kind="Appointment",
        edit_patch={"comment": "Moved by the front desk"},
        patient_id=patient_id,
    )


async def _service_case(harness: AdapterHarness) -> EntityCase:
    assert isinstance(harness, FhirHarness)
    await grant_scopes(harness, "system/Patient.cruds system/HealthcareService.cruds")
    return FhirServiceCase(
        harness, entity=common_pb2.ENTITY_TYPE_SERVICE, kind="HealthcareService", edit_patch={"active": False}
    )


ENTITIES = {"appointment": _appointment_case, "service": _service_case}
GET_RECORDS = DELETE_RECORDS = ("patient", "appointment", "service")
