"""Per-tenant resource storage: every resource keeps all its versions (vread, _history, 410 after delete),
plus the search snapshots that back paging."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from .search import Query
from .validation import RESOURCE_TYPES


def instant(stamp_ms: int) -> str:
    """FHIR instant with millisecond precision, as HAPI writes meta.lastUpdated."""
    return datetime.fromtimestamp(stamp_ms / 1000, UTC).isoformat(timespec="milliseconds")


def http_date(stamp_ms: int) -> str:
    return format_datetime(datetime.fromtimestamp(stamp_ms / 1000, UTC), usegmt=True)


@dataclass
class Version:
    vid: int
    stamp_ms: int
    resource: dict[str, Any] | None  # None: this version is a deletion
    method: str


@dataclass
class Record:
    type: str
    id: str
    versions: list[Version] = field(default_factory=list)

    @property
    def current(self) -> Version:
        return self.versions[-1]

    @property
    def deleted(self) -> bool:
        return self.current.resource is None

    def etag(self, vid: int | None = None) -> str:
        return f'W/"{vid or self.current.vid}"'


@dataclass
class Snapshot:
    """A search's result ids, fixed when the search ran (HAPI pages through stored results)."""

    id: str
    resource_type: str
    ids: list[str]
    query: Query
    created: float
    self_url: str
    # When the search ran: every page's Bundle.meta.lastUpdated (a safe cursor for the next _lastUpdated=gt).
    stamp_ms: int


class Tenant:
    def __init__(self, name: str) -> None:
        self.name = name
        self.records: dict[str, dict[str, Record]] = {t: {} for t in RESOURCE_TYPES}
        self.searches: OrderedDict[str, Snapshot] = OrderedDict()

    def get(self, resource_type: str, resource_id: str) -> Record | None:
        return self.records[resource_type].get(resource_id)

    def live(self, resource_type: str) -> Iterator[dict[str, Any]]:
        """Current versions of the resources not deleted, in creation order."""
        for record in self.records[resource_type].values():
            if record.current.resource is not None:
                yield record.current.resource

    def resource(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        record = self.get(resource_type, resource_id)
        return None if record is None else record.current.resource

    def counts(self) -> dict[str, int]:
        return {t: sum(1 for _ in self.live(t)) for t in RESOURCE_TYPES}
