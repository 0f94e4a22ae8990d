"""The FHIR R4 elements a FHIR EMR config's field mappings name, and how an override reads and
writes them.

An EMR's record is itself a FHIR resource, so its "vendor fields" are the elements the hub's
canonical projection reads (libs.fhir_patient / libs.fhir_appointment), written FHIRPath-style:
``name.given`` is the given name of the primary name (official, else usual, else one with no use),
``telecom.where(system='phone').value`` the first phone, ``address.city`` the first address's
city. Plain dotted paths cannot say "the primary name" or "the first phone", so the FHIR mappers
read and write through this table (``read_vendor_field`` / ``write_vendor_field``) instead of
services.mapping.transforms.read_field / write_field.

Reads take the element as the EMR wrote it (not normalised, so an override's transform sees the
EMR's own form); writes put the override's value in as it made it. They work on the record as it
is (validating a large resource once per override would multiply the cost of a batch; the mapper
validates it anyway); a record whose shape they cannot walk is validated as FHIR R4 then, and
RecordInvalid names the element, never its value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from libs.errors import InvalidArgument
from services.mapping.domain import FieldError, RecordInvalid
from services.mapping.schema import VendorField, VendorSchema

# What walking a record that is not shaped like FHIR raises (a name that is a string, ...).
_SHAPE_ERRORS = (AttributeError, TypeError, KeyError, IndexError)
_SEGMENT = re.compile(r"^(?P<key>[A-Za-z_]\w*)(?:\[(?P<index>\d+)\])?$")
# Elements FHIR holds as lists of strings; the canonical field is their text joined.
_JOINED = {"given": " ", "line": ", "}


@dataclass(frozen=True)
class Elements:
    """One resource type's addressable elements: element path -> canonical field, and their types."""

    fields: dict[str, str]  # element path -> canonical hub field
    types: dict[str, VendorField]  # element path -> its FHIR R4 type
    parse: Callable[[dict], dict]  # validates as FHIR R4 (InvalidArgument naming the element)
    apply: Callable[[dict, dict[str, str | None]], dict]  # canonical changes -> a new resource
    leaves: Callable[[dict], dict[str, str]]  # canonical field -> its concrete path, e.g. name[1].given

    @property
    def schema(self) -> VendorSchema:
        return VendorSchema(self.types)

    def read(self, record: dict, path: str) -> Any:
        try:
            return _get(record, self.leaves(record)[self.fields[path]])
        except _SHAPE_ERRORS:
            resource = self._parsed(record)
            return _get(resource, self.leaves(resource)[self.fields[path]])

    def write(self, record: dict, path: str, value: Any) -> None:
        """Sets (None: removes) the element in place, as the override made the value."""
        hub_field = self.fields[path]
        try:
            updated = self._applied(record, hub_field, value, path)
        except _SHAPE_ERRORS:
            updated = self._applied(self._parsed(record), hub_field, value, path)
        record.clear()
        record.update(updated)

    def _applied(self, resource: dict, hub_field: str, value: Any, path: str) -> dict:
        try:
            # apply builds the element (a primary name, a phone entry) where it is missing.
            updated = self.apply(resource, {hub_field: value})
        except InvalidArgument as error:
            raise RecordInvalid([FieldError.of(error, path)], _id(resource)) from None
        if value is not None:
            _set(updated, self.leaves(updated)[hub_field], value)
        return updated

    def _parsed(self, record: dict) -> dict:
        try:
            return self.parse(record)
        except InvalidArgument as error:
            raise RecordInvalid([FieldError.of(error)], _id(record)) from None


def _id(record: dict) -> str:
    value = record.get("id")
    return value if isinstance(value, str) else ""


def _walk(resource: dict, leaf: str) -> tuple[Any, str] | None:
    """The container of the leaf's last segment and that segment's key, or None when a step is missing."""
    *parents, last = leaf.split(".")
    target: Any = resource
    for segment in parents:
        match = _SEGMENT.match(segment)
        if match is None or not isinstance(target, dict):
            return None
        target = target.get(match["key"])
        if match["index"] is not None:
            index = int(match["index"])
            target = target[index] if isinstance(target, list) and index < len(target) else None
        if not isinstance(target, dict):
            return None  # absent, or a list the concrete path did not index (the element is missing)
    return (target, last) if _SEGMENT.match(last) else None


def _get(resource: dict, leaf: str) -> Any:
    found = _walk(resource, leaf)
    if found is None:
        return None
    container, key = found
    value = container.get(key)
    if key in _JOINED and isinstance(value, list):
        return _JOINED[key].join(str(v).strip() for v in value if str(v).strip()) or None
    return value


def _set(resource: dict, leaf: str, value: Any) -> None:
    found = _walk(resource, leaf)
    if found is None:
        return
    container, key = found
    if key == "given":
        container[key] = str(value).split()
    elif key == "line":
        container[key] = [str(value)]
    else:
        container[key] = value
