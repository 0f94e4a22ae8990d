"""ENTITY_TYPE_SERVICE: the catalog of the connection's center, pull only.

``GET /v1/centers/{center_id}/services`` lists every service with the center's price and its
category embedded (``additional_info.category``), so one list is the whole catalog: categories need
no calls of their own. The list has no ``last_updated`` filter and no modification time, so every
pull is a full pass over it (paging.py, back to front), and what the last pass already returned
unchanged is recognised by fingerprint and not returned again: a price, name or category change
changes the fingerprint and comes through. Zenoti's public API has no catalog writes: a push is
refused with FailedPrecondition READ_ONLY_ENTITY.
"""

from __future__ import annotations

from datetime import datetime

from temporalio.exceptions import ApplicationError

from services.adapters.zenoti import paging, schemas
from services.adapters.zenoti.client import ZenotiClient, ZenotiMalformed

READ_ONLY = "READ_ONLY_ENTITY"


def malformed(what: str) -> ApplicationError:
    # Retryable: a vendor glitch; returning the page (or a cursor built from it) would lose records.
    return ApplicationError(f"malformed service list: {what}", type="VendorMalformedPage")


class Services:
    def parse_cursor(self, raw: str) -> paging.Cursor:
        return paging.Cursor.decode(raw, "Zenoti services")

    async def fetch(
        self, client: ZenotiClient, center_id: str, cursor: paging.Cursor, size: int, now: datetime
    ) -> paging.Step:
        async def list_page(_since: datetime | None, page: int, size: int) -> paging.Page:
            # No time filter exists for the catalog: every pass reads all of it.
            params = {"page": page, "size": size}
            try:
                body = await client.request("GET", f"/v1/centers/{center_id}/services", params=params)
            except ZenotiMalformed:
                raise malformed("the body is not JSON") from None
            found = schemas.guest_list(body, "page_info", size, items="services")
            if found is None:
                raise malformed("not a list of services with ids and a page total")
            return paging.Page(*found)

        return await paging.next_step(cursor, size, list_page, now)

    async def write(
        self, client: ZenotiClient, center_id: str, external_id: str, record: dict, options: object = None
    ) -> tuple[dict, bool]:
        raise ApplicationError(
            f"{READ_ONLY}: Zenoti's public API does not create or update catalog services",
            type="FailedPrecondition",
            non_retryable=True,
        )
