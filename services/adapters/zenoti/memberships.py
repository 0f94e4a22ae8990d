"""ENTITY_TYPE_MEMBERSHIP: the memberships the guests of the connection's center hold, pull only.

Zenoti lists memberships per guest (``GET /v1/guests/{guest_id}/memberships``); the center's list
(``GET /v1/centers/{center_id}/memberships``) is the plans on sale, not who holds them. A membership
carries no modification time, and a sale or cancellation does not touch the guest's
``last_updated``, so every pull is a full pass over the center's guest list (``GET /v1/guests``,
back to front as paging.py reads it, no ``last_updated`` filter) and, for each guest of a page,
that guest's memberships. Each returned membership gets its guest's id as ``guest_id`` (the mapper
links it to the patient).

Every pass returns every membership (fingerprints only drop repeats within the pass), unlike the
catalog, whose passes return changed services only: a membership whose guest is not linked yet fails
PATIENT_NOT_LINKED in the hub while its cursor still moves on, so remembering it as "already
returned" would lose it for good once the guest is pulled. Unchanged memberships are no-op merges in
the hub (nothing created or updated); the vendor calls are the same either way. One guest page
costs 1 + one call per guest, every call through the organisation's Pacer. Zenoti's public API has
no membership writes: a push is refused with FailedPrecondition READ_ONLY_ENTITY.
"""

from __future__ import annotations

from datetime import datetime

from temporalio.exceptions import ApplicationError

from services.adapters.zenoti import paging, schemas
from services.adapters.zenoti.client import ZenotiClient, ZenotiMalformed
from services.adapters.zenoti.guests import _guests
from services.adapters.zenoti.services import READ_ONLY


def malformed(what: str) -> ApplicationError:
    # Retryable: a vendor glitch; returning the page (or a cursor built from it) would lose records.
    return ApplicationError(f"malformed membership list: {what}", type="VendorMalformedPage")


async def guest_memberships(client: ZenotiClient, guest_id: str) -> list[dict]:
    """Every membership of one guest (all its pages), each with ``guest_id`` added."""
    found: list[dict] = []
    page = 1
    while True:
        params = {"page": page, "size": paging.MAX_PAGE}
        try:
            body = await client.request("GET", f"/v1/guests/{guest_id}/memberships", params=params)
        except ZenotiMalformed:
            raise malformed("the body is not JSON") from None
        listed = schemas.guest_list(body, "page_info", paging.MAX_PAGE, items="memberships")
        if listed is None:
            raise malformed("not a list of memberships with ids and a page total")
        items, total = listed
        found.extend({**item, "guest_id": guest_id} for item in items)
        if not items or page * paging.MAX_PAGE >= total:
            return found
        page += 1


class Memberships:
    def parse_cursor(self, raw: str) -> paging.Cursor:
        return paging.Cursor.decode(raw, "Zenoti memberships")

    async def fetch(
        self, client: ZenotiClient, center_id: str, cursor: paging.Cursor, size: int, now: datetime
    ) -> paging.Step:
        async def list_page(_since: datetime | None, page: int, size: int) -> paging.Page:
            # Memberships change without touching the guest: every pass reads every guest.
            guests, total = await _guests(
                client, "/v1/guests", {"center_id": center_id, "page": page, "size": size}, "page_info"
            )
            records: list[dict] = []
            for guest in guests:
                records.extend(await guest_memberships(client, guest["id"]))
            return paging.Page(records, total)

        # The guest page is sized by guests; a page of guests holds few memberships each. Nothing is
        # known from earlier passes (see above): the pass starts with no fingerprints.
        return await paging.next_step(paging.Cursor(None, paging.Fingerprints(), cursor.current), size, list_page, now)

    async def write(
        self, client: ZenotiClient, center_id: str, external_id: str, record: dict, options: object = None
    ) -> tuple[dict, bool]:
        raise ApplicationError(
            f"{READ_ONLY}: Zenoti's public API does not create or update guest memberships",
            type="FailedPrecondition",
            non_retryable=True,
        )
