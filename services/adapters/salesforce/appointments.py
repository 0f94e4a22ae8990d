"""Appointments: ServiceAppointments whose parent is the patient's Person Account, upserted on
Concord_Appointment_Id__c.

ParentRecordId can be set on create only: Salesforce refuses it on an update
(INVALID_FIELD_FOR_INSERT_UPDATE), and an upsert that matches an existing record is an update. So
it is dropped from updates by Id, and a record whose upsert was refused for it (a retried batch:
the first attempt created it) is upserted once more without it. AccountId follows the patient.
"""

from __future__ import annotations

from google.protobuf import json_format

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from services.adapters.common import struct
from services.adapters.salesforce import changes, schemas
from services.adapters.salesforce.client import SalesforceClient
from services.adapters.salesforce.resource import SObjectEntity

PARENT = "ParentRecordId"
_READ_ONLY_ON_UPDATE = "INVALID_FIELD_FOR_INSERT_UPDATE"


def _without_parent(item: pb.UpsertItem) -> pb.UpsertItem:
    record = json_format.MessageToDict(item.record)
    record.pop(PARENT, None)
    return pb.UpsertItem(ref=item.ref, external_id=item.external_id, record=struct(record))


def _parent_refused(result: pb.UpsertResult) -> bool:
    # The message names only codes and fields (collections._refusal), never values.
    return not result.success and result.error_reason == _READ_ONLY_ON_UPDATE and PARENT in result.error_message


class Appointments(SObjectEntity):
    def __init__(self, settle_seconds: float = changes.SETTLE_SECONDS) -> None:
        super().__init__(schemas.SERVICE_APPOINTMENTS, settle_seconds)

    async def upsert(self, client: SalesforceClient, request: pb.UpsertBatchRequest) -> pb.UpsertBatchResponse:
        items = [_without_parent(i) if i.external_id else i for i in request.items]
        results = await self.write(client, items)
        again = [n for n, r in enumerate(results) if _parent_refused(r) and PARENT in items[n].record.fields]
        if again:
            retried = await self.write(client, [_without_parent(items[n]) for n in again])
            for n, result in zip(again, retried, strict=True):
                results[n] = result
        for item, result in zip(request.items, results, strict=True):
            # The echoed record is what the hub maps back: it keeps the patient the hub asked for.
            if result.success and PARENT in item.record.fields and PARENT not in result.record.fields:
                result.record.fields[PARENT].CopyFrom(item.record.fields[PARENT])
        return pb.UpsertBatchResponse(results=results, vendor_requests=client.requests)
