"""Mapping results and the mapper contract: pure, no gRPC."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from libs.errors import InvalidArgument

# Larger batches belong in several calls: one call's results must fit a gRPC message.
MAX_BATCH = 1000


@dataclass(frozen=True)
class FieldError:
    """Why one record could not be mapped: the field's path and a stable reason, never the value."""

    field: str
    reason: str
    message: str

    @classmethod
    def of(cls, error: InvalidArgument, field: str | None = None) -> FieldError:
        return cls(field if field is not None else error.field or "", error.reason, error.message)


class RecordInvalid(Exception):
    """One record failed to map; the batch goes on."""

    def __init__(self, errors: list[FieldError], external_id: str = "") -> None:
        super().__init__(f"{len(errors)} field error(s)")
        self.errors = errors
        self.external_id = external_id


@dataclass(frozen=True)
class HubResult:
    resource: dict | None = None
    external_id: str = ""
    errors: list[FieldError] = field(default_factory=list)
    # The vendor's modification time of the record (the mapper's ``modified_field``), zone-aware.
    modified_at: datetime | None = None


@dataclass(frozen=True)
class VendorResult:
    record: dict | None = None
    errors: list[FieldError] = field(default_factory=list)
    # Minimum necessary (libs/minimum_necessary.py): canonical fields kept from the vendor, whether
    # the whole record is, and what a restricted record still carries. Names only.
    withheld_fields: tuple[str, ...] = ()
    withheld: bool = False
    disclosed_fields: tuple[str, ...] = ()


class Mapper(Protocol):
    """Maps one entity type of one vendor, both ways. Pure; raises RecordInvalid.

    Optional, read by services.mapping.rules: ``default_field_mappings()`` (what the code does, as
    rules), ``vendor_schema`` (the fields an override may name, typed), ``required_hub_fields``,
    ``read_vendor_field`` / ``write_vendor_field`` (for records a dotted path cannot address),
    ``modified_field`` (the dotted path of the vendor's modification time of a record)."""

    integration_type: str
    entity_type: str

    def to_hub(self, record: dict) -> HubResult: ...

    def to_vendor(self, resource: dict) -> dict: ...


def check_batch(size: int, field: str) -> None:
    if size > MAX_BATCH:
        raise InvalidArgument(f"{field} holds more than {MAX_BATCH} records", field=field, reason="BATCH_TOO_LARGE")
