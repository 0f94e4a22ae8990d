"""The location's calendars, read once per activity: the fetch walks them, and a write resolves
the hub's service to one. At GHL a calendar stands for a service (one per bookable service)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.adapters.ghl.client import CALENDARS_VERSION, GhlClient
from services.adapters.ghl.resource import malformed


class Unresolved(Exception):
    """The hub's service names no calendar, or more than one."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _key(value: Any) -> str:
    return " ".join(value.split()).casefold() if isinstance(value, str) else ""


@dataclass(frozen=True)
class CalendarDirectory:
    names: dict[str, str]  # calendar id -> name
    slugs: dict[str, str]  # calendar id -> slug

    @classmethod
    async def load(cls, client: GhlClient, location_id: str) -> CalendarDirectory:
        """One `GET /calendars/?locationId=`: every calendar of the location, all groups."""
        body = await client.request("GET", "/calendars/", params={"locationId": location_id}, version=CALENDARS_VERSION)
        calendars = body.get("calendars") if isinstance(body, dict) else None
        if not isinstance(calendars, list) or not all(
            isinstance(c, dict) and isinstance(c.get("id"), str) and c["id"] for c in calendars
        ):
            raise malformed("no list of calendars with ids")
        return cls(
            names={c["id"]: str(c.get("name") or "") for c in calendars},
            slugs={c["id"]: str(c.get("widgetSlug") or c.get("slug") or "") for c in calendars},
        )

    @property
    def ids(self) -> list[str]:
        """In id order: the order the fetch walks them, so a cursor can name where it stopped."""
        return sorted(self.names)

    def resolve(self, calendar_id: str | None, service: Any) -> str:
        """The calendar the record names, else the one its service ({"code", "name"}) stands for:
        the code as a calendar id, else the name (case and spacing aside), else the code as a slug."""
        if calendar_id:
            return calendar_id
        service = service if isinstance(service, dict) else {}
        code, name = service.get("code"), _key(service.get("name"))
        if isinstance(code, str) and code in self.names:
            return code
        for wanted, table in ((name, self.names), (_key(code), self.slugs)):
            found = [cid for cid, value in table.items() if wanted and _key(value) == wanted]
            if len(found) > 1:
                raise Unresolved("SERVICE_AMBIGUOUS", "more than one GoHighLevel calendar matches the service")
            if found:
                return found[0]
        raise Unresolved("SERVICE_NOT_FOUND", "no GoHighLevel calendar matches the appointment's service")
