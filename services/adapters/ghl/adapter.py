"""The GoHighLevel adapter: each entity type is a resource module (contacts.py, appointments.py);
this class gets the activity its tokens and client, and hands the request to the resource."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import quote

import httpx
from temporalio.exceptions import ApplicationError

from libs import webhooks
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2
from services.adapters import AdapterContext
from services.adapters.common import access_token, struct
from services.adapters.ghl.appointments import Appointments
from services.adapters.ghl.client import Credentials, GhlClient, GhlError, Pacers
from services.adapters.ghl.contacts import Contacts
from services.adapters.ghl.messages import send
from services.adapters.ghl.resource import Resource

# GHL answers an unknown contact id with 400 ("Contact not found") or 404, and 422 for a malformed one.
GONE = (400, 404, 422)


class GhlAdapter:
    vendor = "ghl"

    def __init__(
        self,
        context: AdapterContext,
        http: httpx.AsyncClient | None = None,
        backoff_seconds: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._context = context
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(30.0))
        self._pacers = Pacers(enabled=context.settings.vendor_pacing, share=context.settings.vendor_rate_share)
        self._backoff_seconds = backoff_seconds
        self._resources: dict[int, Resource] = {
            common_pb2.ENTITY_TYPE_PATIENT: Contacts(),
            common_pb2.ENTITY_TYPE_APPOINTMENT: Appointments(clock),
        }

    async def aclose(self) -> None:
        await self._http.aclose()

    def _resource(self, entity_type: int) -> Resource:
        resource = self._resources.get(entity_type)
        if resource is None:
            raise ApplicationError(
                "GoHighLevel syncs patients and appointments only", type="InvalidArgument", non_retryable=True
            )
        return resource

    def _client(self, config_id: str) -> GhlClient:
        async def tokens(force: bool) -> Credentials:
            response = await access_token(self._context.connections, config_id, force)
            return Credentials(response.access_token, response.external_account_id, response.api_base_url)

        return GhlClient(self._http, tokens, self._pacers, backoff_seconds=self._backoff_seconds)

    async def fetch_changes(self, request: pb.FetchChangesRequest) -> pb.FetchChangesResponse:
        return await self._resource(request.entity_type).fetch(self._client(request.config_id), request)

    async def upsert_batch(self, request: pb.UpsertBatchRequest) -> pb.UpsertBatchResponse:
        return await self._resource(request.entity_type).upsert(self._client(request.config_id), request)

    async def send_message(self, request: pb.SendMessageRequest) -> pb.SendMessageResponse:
        return await send(self._client(request.config_id), request)

    async def get_records(self, request: pb.GetRecordsRequest) -> pb.GetRecordsResponse:
        """Contacts by id as they are now (GET /contacts/{id}), in the shape fetch_changes returns."""
        if request.entity_type != common_pb2.ENTITY_TYPE_PATIENT:
            raise ApplicationError("GoHighLevel reads contacts by id only", type="InvalidArgument", non_retryable=True)
        client = self._client(request.config_id)
        response = pb.GetRecordsResponse()
        for external_id in dict.fromkeys(request.external_ids):
            try:
                found = await client.request("GET", f"/contacts/{quote(external_id, safe='')}")
            except GhlError as error:
                if error.status not in GONE:  # the contact's absence, not the connection's
                    raise
                response.missing_ids.append(external_id)
                continue
            response.records.append(struct(found.get("contact") or {}))
        response.vendor_requests = client.requests
        return response

    async def delete_records(self, request: pb.DeleteRecordsRequest) -> pb.DeleteRecordsResponse:
        if request.entity_type != common_pb2.ENTITY_TYPE_PATIENT:
            raise ApplicationError("GoHighLevel deletes contacts only", type="InvalidArgument", non_retryable=True)
        client = self._client(request.config_id)
        response = pb.DeleteRecordsResponse()
        for external_id in dict.fromkeys(request.external_ids):
            try:
                await client.request("DELETE", f"/contacts/{quote(external_id, safe='')}")
            except GhlError as error:
                if error.status not in GONE:  # already gone counts as deleted
                    response.results.append(
                        pb.DeleteResult(
                            external_id=external_id,
                            success=False,
                            error_reason=error.reason,
                            error_message="GoHighLevel refused the delete",
                        )
                    )
                    continue
            response.results.append(pb.DeleteResult(external_id=external_id, success=True))
        response.vendor_requests = client.requests
        return response

    async def verify_webhook(self, request: pb.VerifyWebhookRequest) -> pb.VerifyWebhookResponse:
        return webhooks.verify_ghl(self._context.settings.ghl_webhook_public_key, request)

    async def check_health(self, request: pb.CheckHealthRequest) -> pb.CheckHealthResponse:
        client = self._client(request.config_id)
        try:
            creds = await client.credentials()
            await client.request("POST", "/contacts/search", json={"locationId": creds.location_id, "pageLimit": 1})
        except GhlError as error:
            return pb.CheckHealthResponse(healthy=False, detail=error.reason)
        except ApplicationError as error:
            if not error.non_retryable:
                raise
            return pb.CheckHealthResponse(healthy=False, detail=error.message)
        return pb.CheckHealthResponse(healthy=True, detail="ok")
