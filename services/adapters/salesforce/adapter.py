"""The Salesforce Health Cloud adapter: each entity type is a module (patients.py, appointments.py,
events.py) this class dispatches to after giving the activity its session and client; which module
a config's appointments go to is its options' appointment object. A query page or a 200-record
collection per API call, paced under the org's daily API allowance."""

from __future__ import annotations

import httpx
from temporalio.exceptions import ApplicationError

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.registry.v1 import registry_pb2 as rpb
from services.adapters import AdapterContext
from services.adapters.common import access_token
from services.adapters.salesforce import changes
from services.adapters.salesforce.appointments import Appointments
from services.adapters.salesforce.client import (
    DATA_PATH,
    AllowancePolicy,
    Allowances,
    Credentials,
    SalesforceClient,
    SalesforceError,
)
from services.adapters.salesforce.events import CalendarEvents
from services.adapters.salesforce.patients import Patients
from services.adapters.salesforce.resource import Resource


class SalesforceAdapter:
    vendor = "salesforce"

    def __init__(
        self,
        context: AdapterContext,
        http: httpx.AsyncClient | None = None,
        backoff_seconds: float = 0.5,
        allowance: AllowancePolicy | None = None,
        settle_seconds: float = changes.SETTLE_SECONDS,
    ) -> None:
        self._context = context
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(60.0))
        self._backoff_seconds = backoff_seconds
        self.allowances = Allowances(allowance or AllowancePolicy())
        self._resources: dict[int, Resource] = {
            common_pb2.ENTITY_TYPE_PATIENT: Patients(settle_seconds),
            common_pb2.ENTITY_TYPE_APPOINTMENT: Appointments(settle_seconds),
        }
        # Each config chooses its appointment object (README: "Appointments"); ServiceAppointment by default.
        self._appointment_objects: dict[int, Resource] = {
            rpb.SALESFORCE_APPOINTMENT_OBJECT_EVENT: CalendarEvents(settle_seconds),
        }

    async def aclose(self) -> None:
        await self._http.aclose()

    def _client(self, config_id: str) -> SalesforceClient:
        async def tokens(force: bool) -> Credentials:
            response = await access_token(self._context.connections, config_id, force)
            if not response.api_base_url:
                raise ApplicationError("the connection names no instance URL", type="NotConnected", non_retryable=True)
            return Credentials(response.access_token, response.token_type, response.api_base_url)

        return SalesforceClient(self._http, tokens, self.allowances, backoff_seconds=self._backoff_seconds)

    def _resource(self, entity_type: int, options: rpb.VendorOptions) -> Resource:
        resource = self._resources.get(entity_type)
        if resource is None:
            raise ApplicationError(
                "Salesforce syncs patients and appointments only", type="InvalidArgument", non_retryable=True
            )
        if entity_type == common_pb2.ENTITY_TYPE_APPOINTMENT:
            return self._appointment_objects.get(options.salesforce.appointment_object, resource)
        return resource

    async def fetch_changes(self, request: pb.FetchChangesRequest) -> pb.FetchChangesResponse:
        resource = self._resource(request.entity_type, request.options)
        return await resource.fetch(self._client(request.config_id), request)

    async def upsert_batch(self, request: pb.UpsertBatchRequest) -> pb.UpsertBatchResponse:
        resource = self._resource(request.entity_type, request.options)
        return await resource.upsert(self._client(request.config_id), request)

    async def get_records(self, request: pb.GetRecordsRequest) -> pb.GetRecordsResponse:
        """Optional capability: records by Salesforce Id as they are now, in fetch_changes' shape."""
        resource = self._resource(request.entity_type, request.options)
        return await resource.get(self._client(request.config_id), request)

    async def delete_records(self, request: pb.DeleteRecordsRequest) -> pb.DeleteRecordsResponse:
        """Optional capability: deletes by Salesforce Id; a record already gone counts as deleted."""
        resource = self._resource(request.entity_type, request.options)
        return await resource.delete(self._client(request.config_id), request)

    async def check_health(self, request: pb.CheckHealthRequest) -> pb.CheckHealthResponse:
        client = self._client(request.config_id)
        try:
            creds = await client.credentials()
            await client.request("GET", f"{DATA_PATH}/limits")
        except SalesforceError as error:
            return pb.CheckHealthResponse(healthy=False, detail=error.code)
        except ApplicationError as error:
            if error.non_retryable or error.type in ("VendorRateLimited", "VendorAllowanceLow"):
                return pb.CheckHealthResponse(healthy=False, detail=error.message)
            raise
        allowance = self.allowances(creds.instance_url)
        return pb.CheckHealthResponse(healthy=True, detail=f"ok; daily API usage {allowance.used}/{allowance.max}")
