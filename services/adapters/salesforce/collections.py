"""Writes: sObject Collections, 200 records per API call, per-record results.

Records the hub has not linked yet are upserted on the resource's external id field (the hub's
own id), so a retried batch updates what the first attempt created. Linked records are updated by
their Salesforce Id, which also writes the external id onto records first created in Salesforce.
A call that holds both kinds goes as one Composite request with the two collection subrequests:
still one API call per 200 records.

Deletes are the Collections delete by Id (``DELETE /composite/sobjects?ids=…&allOrNone=false``),
200 ids a call; a record already gone (in the recycle bin, or no record of that id) counts as
deleted, so a retried batch is harmless.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from temporalio.exceptions import ApplicationError

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from services.adapters.common import struct
from services.adapters.salesforce.changes import canonical_id
from services.adapters.salesforce.client import DATA_PATH, SalesforceClient, SalesforceError, error_code, json_body
from services.adapters.salesforce.schemas import SObjectResource

MAX_RECORDS = 200
_QUOTED = re.compile(r"'([A-Za-z0-9_]+)'")
# A delete refused for these found the record already gone: deleted before (ENTITY_IS_DELETED, its
# recycle bin days included) or never there / purged (INVALID_CROSS_REFERENCE_KEY, NOT_FOUND).
GONE = frozenset({"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "NOT_FOUND"})
# Concord's own reason for an id of another sObject: never sent (a Collections delete takes any
# object's ids, and an appointment delete must not remove a patient).
WRONG_SOBJECT = "WRONG_SOBJECT"


@dataclass
class Write:
    index: int
    item: pb.UpsertItem
    body: dict[str, Any]

    @property
    def linked(self) -> bool:
        return bool(self.item.external_id)


def _failure(ref: str, reason: str, message: str) -> pb.UpsertResult:
    return pb.UpsertResult(ref=ref, success=False, error_reason=reason, error_message=message)


def _refusal(ref: str, errors: Any, body: dict[str, Any]) -> pb.UpsertResult:
    """Salesforce's statusCode and the fields it names; its message can quote values (PHI) and is
    read only for field names the record itself has (INVALID_FIELD names the column only there)."""
    errors = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
    parts, codes = [], []
    for error in errors or [{}]:
        code = error_code(error.get("statusCode") or error.get("errorCode"))
        named = [f for f in error.get("fields") or [] if isinstance(f, str)]
        if not named and isinstance(error.get("message"), str):
            named = [name for name in _QUOTED.findall(error["message"]) if name in body]
        codes.append(code)
        parts.append(f"{code} on {', '.join(named)}" if named else code)
    return _failure(ref, codes[0], "Salesforce refused the record: " + "; ".join(parts))


def _outcome(write: Write, result: Any, created_flag: bool) -> pb.UpsertResult:
    if not isinstance(result, dict):
        raise ApplicationError("malformed collection result", type="VendorMalformedResponse")
    if result.get("success") is not True:
        return _refusal(write.item.ref, result.get("errors"), write.body)
    record_id = result.get("id") or write.item.external_id
    if not isinstance(record_id, str) or not record_id:
        raise ApplicationError("malformed collection result: no id", type="VendorMalformedResponse")
    # Echoes what was written rather than reading it back: the daily allowance is the scarce resource.
    record = {k: v for k, v in write.body.items() if k != "attributes"} | {"Id": record_id}
    return pb.UpsertResult(
        ref=write.item.ref,
        external_id=record_id,
        success=True,
        created=created_flag and result.get("created") is True,
        record=struct(record),
    )


def _outcomes(writes: list[Write], results: Any, upserted: bool) -> list[pb.UpsertResult]:
    # Results come in request order, one per record, even when some fail (HTTP 200).
    if not isinstance(results, list) or len(results) != len(writes):
        raise ApplicationError("collection results do not match the records sent", type="VendorMalformedResponse")
    return [_outcome(w, r, upserted) for w, r in zip(writes, results, strict=True)]


def _refused_call(writes: list[Write], error: SalesforceError) -> list[pb.UpsertResult]:
    """A whole collection refused (a malformed request): each of its records fails with the reason."""
    detail = f"{error.code} on {', '.join(error.fields)}" if error.fields else error.code
    return [_failure(w.item.ref, error.code, f"Salesforce refused the request: {detail}") for w in writes]


def _not_deleted(external_id: str, reason: str, message: str) -> pb.DeleteResult:
    return pb.DeleteResult(external_id=external_id, success=False, error_reason=reason, error_message=message)


def _deleted(external_id: str, result: Any) -> pb.DeleteResult:
    """One record's delete result: Salesforce's statusCode and the fields it names, never its
    message (it can quote values)."""
    if not isinstance(result, dict):
        raise ApplicationError("malformed collection result", type="VendorMalformedResponse")
    if result.get("success") is True:
        return pb.DeleteResult(external_id=external_id, success=True)
    errors = result.get("errors")
    errors = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
    codes = [error_code(e.get("statusCode") or e.get("errorCode")) for e in errors] or ["VENDOR_ERROR"]
    if all(code in GONE for code in codes):
        return pb.DeleteResult(external_id=external_id, success=True)
    parts = []
    for code, error in zip(codes, errors or [{}], strict=True):
        named = [f for f in error.get("fields") or [] if isinstance(f, str)]
        parts.append(f"{code} on {', '.join(named)}" if named else code)
    return _not_deleted(external_id, codes[0], "Salesforce refused the delete: " + "; ".join(parts))


class Collections:
    def __init__(self, resource: SObjectResource) -> None:
        self.resource = resource
        self._upsert_path = f"{DATA_PATH}/composite/sobjects/{resource.sobject}/{resource.external_id_field}"
        self._update_path = f"{DATA_PATH}/composite/sobjects"

    def _payload(self, writes: list[Write]) -> dict[str, Any]:
        return {"allOrNone": False, "records": [w.body for w in writes]}

    async def upsert(self, client: SalesforceClient, items: list[pb.UpsertItem]) -> list[pb.UpsertResult]:
        results: dict[int, pb.UpsertResult] = {}
        writes: list[Write] = []
        key = self.resource.external_id_field
        for index, item in enumerate(items):
            record = json_format.MessageToDict(item.record)
            body = {
                "attributes": {"type": self.resource.sobject},
                **{k: v for k, v in record.items() if k != "attributes"},
            }
            if item.external_id:
                body["Id"] = item.external_id
            elif not isinstance(body.get(key), str) or not body[key]:
                # Without the hub's id an insert is not idempotent: a retried batch would duplicate it.
                results[index] = _failure(item.ref, "MISSING_EXTERNAL_ID", f"{key} is required for a new record")
                continue
            writes.append(Write(index, item, body))
        # Upserts first, then updates: at most one call holds both kinds.
        ordered = [w for w in writes if not w.linked] + [w for w in writes if w.linked]
        for start in range(0, len(ordered), MAX_RECORDS):
            chunk = ordered[start : start + MAX_RECORDS]
            for write, result in zip(chunk, await self._send(client, chunk), strict=True):
                results[write.index] = result
        return [results[i] for i in range(len(items))]

    async def _send(self, client: SalesforceClient, chunk: list[Write]) -> list[pb.UpsertResult]:
        new = [w for w in chunk if not w.linked]
        linked = [w for w in chunk if w.linked]
        path, upserted = (self._upsert_path, True) if new else (self._update_path, False)
        try:
            if new and linked:
                return await self._send_both(client, new, linked)  # chunk is new + linked, in that order
            response = await client.request("PATCH", path, json=self._payload(chunk))
        except SalesforceError as error:
            if error.status >= 500:
                raise
            return _refused_call(chunk, error)
        return _outcomes(chunk, json_body(response, "a collection"), upserted)

    async def _send_both(
        self, client: SalesforceClient, new: list[Write], linked: list[Write]
    ) -> list[pb.UpsertResult]:
        subrequests = [
            {"method": "PATCH", "url": self._upsert_path, "referenceId": "upserts", "body": self._payload(new)},
            {"method": "PATCH", "url": self._update_path, "referenceId": "updates", "body": self._payload(linked)},
        ]
        response = await client.request(
            "POST", f"{DATA_PATH}/composite", json={"allOrNone": False, "compositeRequest": subrequests}
        )
        body = json_body(response, "a composite request")
        answers = body.get("compositeResponse") if isinstance(body, dict) else None
        if not isinstance(answers, list) or len(answers) != 2 or not all(isinstance(a, dict) for a in answers):
            raise ApplicationError("malformed composite response", type="VendorMalformedResponse")
        out = []
        for writes, answer, upserted in ((new, answers[0], True), (linked, answers[1], False)):
            status = answer.get("httpStatusCode")
            if status == 200:
                out += _outcomes(writes, answer.get("body"), upserted)
                continue
            if not isinstance(status, int) or status >= 500:
                raise ApplicationError(f"Salesforce failed a subrequest (HTTP {status})", type="VendorUnavailable")
            errors = answer.get("body")
            first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
            fields = [f for f in first.get("fields") or [] if isinstance(f, str)]
            out += _refused_call(writes, SalesforceError(status, error_code(first.get("errorCode")), fields))
        return out

    async def delete(self, client: SalesforceClient, external_ids: list[str]) -> list[pb.DeleteResult]:
        """One result per distinct id, in request order. An id that is not a Salesforce id, or is
        another sObject's, is refused without a call; the rest go 200 a call, allOrNone=false."""
        outcome: dict[str, pb.DeleteResult] = {}
        canonical: dict[str, str] = {}
        for raw in dict.fromkeys(external_ids):
            record_id = canonical_id(raw)
            if record_id is None:
                outcome[raw] = _not_deleted(raw, "MALFORMED_ID", "not a Salesforce record id")
            elif not record_id.startswith(self.resource.key_prefix):
                outcome[raw] = _not_deleted(
                    raw, WRONG_SOBJECT, f"the id is of another sObject than {self.resource.sobject}"
                )
            else:
                canonical[raw] = record_id
        to_send = list(dict.fromkeys(canonical.values()))  # a 15- and an 18-character form: one record
        by_record: dict[str, pb.DeleteResult] = {}
        for start in range(0, len(to_send), MAX_RECORDS):
            chunk = to_send[start : start + MAX_RECORDS]
            by_record.update(zip(chunk, await self._delete(client, chunk), strict=True))
        results = []
        for raw in dict.fromkeys(external_ids):
            if raw in outcome:
                results.append(outcome[raw])
                continue
            result = pb.DeleteResult()
            result.CopyFrom(by_record[canonical[raw]])
            result.external_id = raw
            results.append(result)
        return results

    async def _delete(self, client: SalesforceClient, chunk: list[str]) -> list[pb.DeleteResult]:
        params = {"ids": ",".join(chunk), "allOrNone": "false"}
        try:
            response = await client.request("DELETE", self._update_path, params=params)
        except SalesforceError as error:
            if error.status >= 500:
                raise
            # A whole call refused (a permission, a malformed request): each of its records fails.
            detail = f"{error.code} on {', '.join(error.fields)}" if error.fields else error.code
            return [_not_deleted(i, error.code, f"Salesforce refused the request: {detail}") for i in chunk]
        results = json_body(response, "a collection delete")
        # Results come in request order, one per id, even when some fail (HTTP 200).
        if not isinstance(results, list) or len(results) != len(chunk):
            raise ApplicationError("collection results do not match the ids sent", type="VendorMalformedResponse")
        return [_deleted(i, r) for i, r in zip(chunk, results, strict=True)]
