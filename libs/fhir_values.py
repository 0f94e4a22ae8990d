"""Small element helpers the hub's FHIR modules share (fhir_patient, fhir_appointment,
fhir_service, fhir_membership): setting or dropping an element, reading and writing an extension,
canonical decimal amounts."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any


def set_or_drop(target: dict, key: str, value: Any) -> None:
    """``target[key] = value``, or no ``key`` at all when the value is None (FHIR has no nulls)."""
    if value is None:
        target.pop(key, None)
    else:
        target[key] = value


def extension(resource: dict, url: str) -> dict | None:
    return next((e for e in resource.get("extension", []) if e.get("url") == url), None)


def set_extension(resource: dict, url: str, kind: str, element: str, value: Any) -> None:
    """Sets ``element`` of the ``kind`` value (``valueMoney``...) of the extension ``url``; an
    extension left empty is removed, and so is an empty extension list."""
    found = extension(resource, url)
    if found is None:
        if value is None:
            return
        found = {"url": url, kind: {}}
        resource.setdefault("extension", []).append(found)
    set_or_drop(found.setdefault(kind, {}), element, value)
    if not found[kind]:
        resource["extension"].remove(found)
        if not resource["extension"]:
            del resource["extension"]


def amount(value: Any) -> str | None:
    """A decimal as a canonical string (``45`` and ``45.00`` compare equal), None if not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    return format(number.quantize(Decimal("0.01")), "f")
