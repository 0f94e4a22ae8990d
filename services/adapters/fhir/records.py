"""Records by id and deletes (the optional get_records / delete_records capabilities).

- Reads: `GET [base]/<type>?_id=a,b,c` per batch of ID_BATCH ids, paged as every search is; a server
  that refuses the search or ignores `_id` is read `GET [base]/<type>/<id>` per id instead (404/410:
  missing). The resources are those a pull returns: the server's current version, as it sent it.
- Deletes: `DELETE [base]/<type>/<id>` per id (the sandbox, like most EMRs, serves no `transaction`
  Bundle). 2xx and 404/410 (already gone) are deleted; refusals of the one record (400, 405, 409 a
  referential-integrity refusal, 412, 422) fail that record; 403 and exhausted retries fail the activity.
"""

from __future__ import annotations

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from services.adapters.fhir import search
from services.adapters.fhir.client import FhirClient, FhirError, reason_for
from services.adapters.fhir.resources import FhirResource
from services.adapters.fhir.search import ID, malformed

# Ids per `_id` search: 50 ids of up to 64 characters keep the URL near 3 KB, under every server's limit.
ID_BATCH = 50
GONE = (404, 410)
# A search the server will not run (unknown or unsupported `_id`, URL too long, no search scope):
# the ids are read one by one instead.
SEARCH_REFUSED = (400, 403, 405, 414, 501)
DELETE_REFUSED = frozenset({400, 405, 409, 412, 422})


class RecordReader:
    def __init__(self, client: FhirClient, resource: FhirResource) -> None:
        self.client = client
        self._resource = resource
        self._search = True  # until the server shows it cannot search by `_id`

    async def read(self, ids: list[str]) -> dict[str, dict]:
        """The live resources among ``ids`` (valid ids, each once), by id."""
        found: dict[str, dict] = {}
        for start in range(0, len(ids), ID_BATCH):
            batch = ids[start : start + ID_BATCH]
            matched = await self._searched(batch) if self._search else None
            if matched is None:
                self._search = False
                matched = {i: r for i in batch if (r := await self._one(i)) is not None}
            found.update(matched)
        return found

    async def _searched(self, batch: list[str]) -> dict[str, dict] | None:
        try:
            return await search.by_ids(self.client, self._resource.type, batch)
        except FhirError as error:
            if error.status not in SEARCH_REFUSED:
                raise
            return None

    async def _one(self, external_id: str) -> dict | None:
        kind = self._resource.type
        response = await self.client.send("GET", f"{kind}/{external_id}", accept=GONE)
        if response.status_code in GONE:
            return None
        try:
            body = response.json()
        except ValueError:
            raise malformed("a read answered with a body that is not JSON") from None
        if not isinstance(body, dict) or body.get("resourceType") != kind or body.get("id") != external_id:
            raise malformed(f"a read answered with something other than that {kind}")
        return body


async def delete(client: FhirClient, resource: FhirResource, external_id: str) -> pb.DeleteResult:
    if not ID.match(external_id):
        return pb.DeleteResult(
            external_id=external_id,
            success=False,
            error_reason="INVALID_EXTERNAL_ID",
            error_message=f"the external id is not a FHIR {resource.type} id",
        )
    response = await client.send("DELETE", f"{resource.type}/{external_id}", accept=DELETE_REFUSED | set(GONE))
    status = response.status_code
    if status < 300 or status in GONE:
        return pb.DeleteResult(external_id=external_id, success=True)
    # The OperationOutcome's diagnostics may quote the record (HAPI names referencing resources): left out.
    return pb.DeleteResult(
        external_id=external_id,
        success=False,
        error_reason=reason_for(status),
        error_message=f"the EMR refused to delete the {resource.type} (HTTP {status})",
    )
