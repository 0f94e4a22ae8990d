"""ENTITY_TYPE_PATIENT: the guests of the connection's center."""

from __future__ import annotations

from datetime import datetime

from temporalio.exceptions import ApplicationError

from services.adapters.zenoti import paging, schemas
from services.adapters.zenoti.client import ZenotiClient, ZenotiError, ZenotiMalformed


def malformed(what: str) -> ApplicationError:
    # Retryable: a vendor glitch; returning the page (or a cursor built from it) would lose records.
    return ApplicationError(f"malformed guest list: {what}", type="VendorMalformedPage")


async def _guests(client: ZenotiClient, path: str, params: dict, key: str) -> tuple[list[dict], int]:
    try:
        body = await client.request("GET", path, params=params)
    except ZenotiMalformed:
        raise malformed("the body is not JSON") from None
    page = schemas.guest_list(body, key, params["size"])
    if page is None:
        raise malformed("not a list of guests with ids and a page total")
    return page


class Guests:
    """Reads: ``GET /v1/guests?center_id=&last_updated=`` in back-to-front passes (paging.py).
    Writes: create after a search by email (else mobile); update as GET, overlay, PUT (full replace)."""

    def parse_cursor(self, raw: str) -> paging.Cursor:
        return paging.Cursor.decode(raw, "Zenoti guests")

    async def fetch(
        self, client: ZenotiClient, center_id: str, cursor: paging.Cursor, size: int, now: datetime
    ) -> paging.Step:
        async def list_page(since: datetime | None, page: int, size: int) -> paging.Page:
            params: dict = {"center_id": center_id, "page": page, "size": size}
            if since is not None:
                params["last_updated"] = paging.since_param(since)
            return paging.Page(*await _guests(client, "/v1/guests", params, "page_info"))

        return await paging.next_step(cursor, size, list_page, now)

    async def read(self, client: ZenotiClient, guest_id: str) -> dict:
        """One guest as it is now, the object the guest list holds (get_records)."""
        return await self._get(client, guest_id)

    async def write(
        self, client: ZenotiClient, center_id: str, guest_id: str, record: dict, options: object = None
    ) -> tuple[dict, bool]:
        """(the guest as Zenoti holds it after the write, whether it was created)."""
        if guest_id:
            return await self._update(client, guest_id, record), False
        found = await self._find(client, center_id, record, everywhere=False, first_only=True)
        if found is not None:
            return await self._adopt(client, found, record), False
        try:
            created = await client.request("POST", "/v1/guests", json={**record, "center_id": center_id})
        except ZenotiError as error:
            if not error.duplicate:
                raise
            # A guest with this email or mobile exists where the first search did not look (or was
            # made since, or by a first attempt whose answer was lost): that guest is this record.
            found = await self._find(client, center_id, record, everywhere=True, first_only=False)
            if found is None:
                raise ZenotiError(400, "VENDOR_DUPLICATE", "Zenoti reports a duplicate guest no search finds") from None
            return await self._adopt(client, found, record), False
        except ZenotiMalformed:
            raise malformed("the created guest is not JSON") from None
        if not isinstance(created, dict) or not isinstance(created.get("id"), str):
            raise malformed("the created guest has no id")
        return created, True

    async def _update(self, client: ZenotiClient, guest_id: str, record: dict) -> dict:
        """A full replace: every field the PUT omits is cleared, so the body is the guest just read
        with the hub's fields written over it. Two calls; one when nothing changes."""
        current = await self._get(client, guest_id)
        body = schemas.overlay(current, record)
        if body == current:
            return current
        return await self._put(client, guest_id, body)

    async def _adopt(self, client: ZenotiClient, found: dict, record: dict) -> dict:
        """An existing guest becomes this record's: updated only if the hub's fields differ. A search
        result may be abbreviated, so the write starts from a full GET."""
        if schemas.overlay(found, record) == found:
            return found
        return await self._update(client, found["id"], record)

    async def _get(self, client: ZenotiClient, guest_id: str) -> dict:
        try:
            guest = await client.request("GET", f"/v1/guests/{guest_id}")
        except ZenotiMalformed:
            raise malformed("the guest is not JSON") from None
        if not isinstance(guest, dict) or not isinstance(guest.get("id"), str):
            raise malformed("the guest has no id")
        return guest

    async def _put(self, client: ZenotiClient, guest_id: str, body: dict) -> dict:
        try:
            guest = await client.request("PUT", f"/v1/guests/{guest_id}", json=body)
        except ZenotiMalformed:
            raise malformed("the updated guest is not JSON") from None
        return guest if isinstance(guest, dict) and guest.get("id") else body

    async def _find(
        self, client: ZenotiClient, center_id: str, record: dict, *, everywhere: bool, first_only: bool
    ) -> dict | None:
        """The guest with this record's email (else mobile number), in the center (the org when its
        "search across centers" setting is on), then, when ``everywhere``, in every other center.
        ``first_only`` searches by email alone when the record has one, mobile otherwise."""
        email, mobile = schemas.email_of(record), schemas.mobile_of(record)
        criteria = [("email", email), ("phone", mobile)]
        criteria = [(key, value) for key, value in criteria if value]
        if first_only:
            criteria = criteria[:1]
        if not criteria:
            return None
        centers = [center_id] + (await self._other_centers(client, center_id) if everywhere else [])
        for center in centers:
            for key, value in criteria:
                params = {"center_id": center, key: value, "page": 1, "size": 100}
                guests, _ = await _guests(client, "/v1/guests/search", params, "page_Info")
                matches = [g for g in guests if schemas.matches(g, key, value)]
                if matches:
                    # The center's own guest first, then by id: the same choice on every retry.
                    return min(matches, key=lambda g: (g.get("center_id") != center_id, g["id"]))
        return None

    async def _other_centers(self, client: ZenotiClient, center_id: str) -> list[str]:
        try:
            body = await client.request("GET", "/v1/centers", params={"page": 1, "size": 100})
        except ZenotiMalformed:
            raise malformed("the center list is not JSON") from None
        centers = body.get("centers") if isinstance(body, dict) else None
        if not isinstance(centers, list):
            raise malformed("no center list")
        ids = [c.get("id") for c in centers if isinstance(c, dict) and isinstance(c.get("id"), str)]
        return [c for c in ids if c.lower() != center_id.lower()]
