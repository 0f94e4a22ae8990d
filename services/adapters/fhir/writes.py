"""One record's write: a conditional create on the hub's identifier, or a versioned update.

- New records: `POST [base]/<type>` with `If-None-Exist: identifier=<hub system>|<hub id>`, so a
  retried batch finds what the first attempt created. When it finds one whose content differs, the
  record is updated like a linked one.
- Linked records: `PUT [base]/<type>/<id>` with `If-Match: W/"<versionId>"`, the version the write is
  based on: the record's `meta.versionId` when the caller sends it, else the current one, read first.
  412 means the EMR changed the record meanwhile: it fails with VENDOR_VERSION_CONFLICT and is never
  overwritten (the next pull brings the EMR's version through the merge) — unless the current
  content already is what was sent (a retried write that had landed).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import httpx

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from services.adapters.common import struct, without_values
from services.adapters.fhir.client import FhirClient, outcome_text, reason_for
from services.adapters.fhir.resources import FhirResource
from services.adapters.fhir.search import ID

# Refusals of one record's content or state; anything else fails the whole activity.
RECORD_STATUSES = frozenset({400, 404, 405, 409, 410, 412, 422})
_SERVER_META = ("versionId", "lastUpdated", "source")


class RecordFailed(Exception):
    def __init__(self, reason: str, message: str = "", response: httpx.Response | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message
        self.response = response

    def describe(self, record: dict) -> str:
        if self.response is None:
            return self.message
        return outcome_text(self.response, lambda diagnostics: without_values(diagnostics, record))


def plain(value: Any) -> Any:
    """JSON from a protobuf Struct, whose numbers are all doubles: whole numbers become FHIR integers again."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _meta(resource: dict) -> dict:
    meta = resource.get("meta")
    return meta if isinstance(meta, dict) else {}


def content(resource: dict) -> dict:
    """What a write sets: the resource without its id and the server-maintained meta."""
    body = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    meta = {k: v for k, v in _meta(resource).items() if k not in _SERVER_META}
    return {**body, "meta": meta} if meta else body


def _version(response: httpx.Response, resource: dict) -> str | None:
    version = _meta(resource).get("versionId")
    if isinstance(version, str) and version:
        return version
    etag = re.match(r'^(?:W/)?"([^"]+)"$', response.headers.get("ETag", ""))
    return etag.group(1) if etag else None


# Element names and codes of the structure, not the patient's data: kept so messages stay readable.
_STRUCTURAL = frozenset({"resourceType", "system", "use", "url"})


class RecordWriter:
    def __init__(self, client: FhirClient, resource: FhirResource) -> None:
        self.client = client
        self._resource = resource

    async def write(self, item: pb.UpsertItem, record: dict) -> pb.UpsertResult:
        try:
            if item.external_id:
                written, created = await self._update(item.external_id, record), False
            else:
                written, created = await self._create(record)
        except RecordFailed as failed:
            return pb.UpsertResult(
                ref=item.ref,
                success=False,
                error_reason=failed.reason,
                error_message=failed.describe(record),
            )
        return pb.UpsertResult(
            ref=item.ref, external_id=written["id"], success=True, created=created, record=struct(written)
        )

    async def _create(self, record: dict) -> tuple[dict, bool]:
        kind = self._resource
        hub_id = kind.hub_id(record)
        if hub_id is None:
            raise RecordFailed(
                "HUB_IDENTIFIER_MISSING",
                f"a new {kind.type} needs the identifier {kind.hub_system}, or a retry could create it twice",
            )
        body = {"resourceType": kind.type, **content(record)}
        response = await self.client.send(
            "POST",
            kind.type,
            json=body,
            headers={
                "If-None-Exist": urlencode({"identifier": f"{kind.hub_system}|{hub_id}"}),
                "Prefer": "return=representation",
            },
            accept=RECORD_STATUSES,
        )
        if response.status_code == 412:
            raise RecordFailed("VENDOR_MULTIPLE_MATCHES", f"several {kind.type} resources carry this hub identifier")
        self._refuse(response)
        found = await self._written(response)
        if response.status_code == 201:
            return found, True
        # 200: an earlier attempt created it. Same content: done; else it is brought up to date.
        if content(found) == content(body):
            return found, False
        return await self._put(found["id"], body, _version(response, found)), False

    async def _update(self, external_id: str, record: dict) -> dict:
        if not ID.match(external_id):
            raise RecordFailed("INVALID_EXTERNAL_ID", f"the external id is not a FHIR {self._resource.type} id")
        body = {"resourceType": self._resource.type, **content(record)}
        version = _meta(record).get("versionId")
        if not isinstance(version, str) or not version:
            response, current = await self._read(external_id)
            if content(current) == content(body):
                return current  # nothing to change: no new version for the EMR to notify about
            version = _version(response, current)
        return await self._put(external_id, body, version)

    async def _put(self, external_id: str, body: dict, version: str | None) -> dict:
        kind = self._resource
        headers = {"Prefer": "return=representation"}
        if version:
            headers["If-Match"] = f'W/"{version}"'
        response = await self.client.send(
            "PUT",
            f"{kind.type}/{external_id}",
            json={**body, "id": external_id},
            headers=headers,
            accept=RECORD_STATUSES,
        )
        if response.status_code == 412:
            _, current = await self._read(external_id)
            if content(current) == content(body):
                return current  # this write had landed on an earlier attempt
            raise RecordFailed(
                "VENDOR_VERSION_CONFLICT",
                f"the {kind.type} changed at the EMR since version {version}; the next pull brings it",
            )
        self._refuse(response)
        return await self._written(response, external_id)

    async def _read(self, external_id: str) -> tuple[httpx.Response, dict]:
        response = await self.client.send("GET", f"{self._resource.type}/{external_id}", accept=RECORD_STATUSES)
        self._refuse(response)
        return response, self._resource_of(response)

    async def _written(self, response: httpx.Response, external_id: str = "") -> dict:
        """The resource a write answered with; read back when the server sent none (Prefer ignored)."""
        resource = self._resource_of(response, required=False)
        if resource is not None:
            return resource
        location = response.headers.get("Location", "")
        match = re.search(rf"{self._resource.type}/([A-Za-z0-9\-.]{{1,64}})", location)
        if not (external_id or match):
            raise RecordFailed("VENDOR_ERROR", "the server answered a write without the resource or its Location")
        return (await self._read(external_id or match.group(1)))[1]

    def _resource_of(self, response: httpx.Response, required: bool = True) -> dict | None:
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        if (
            isinstance(body, dict)
            and body.get("resourceType") == self._resource.type
            and isinstance(body.get("id"), str)
        ):
            return body
        if required:
            raise RecordFailed("VENDOR_ERROR", f"the server answered without a {self._resource.type}")
        return None

    @staticmethod
    def _refuse(response: httpx.Response) -> None:
        if response.status_code in RECORD_STATUSES:
            raise RecordFailed(reason_for(response.status_code), response=response)
