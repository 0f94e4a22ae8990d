"""Zenoti guest wire shapes (docs/vendors/VENDOR_APIS.md §2, sandbox/zenoti/README.md): pure helpers."""

from __future__ import annotations

import copy
import re
from typing import Any

# Zenoti splits what the hub holds as one value (given names, address lines): while the joined
# value is unchanged, the split a Zenoti user chose is kept.
_SPLITS = (
    ("personal_info", ("first_name", "middle_name"), " "),
    ("address_info", ("address_1", "address_2"), ", "),
)


def whole_numbers(value: Any) -> Any:
    """A record from a protobuf Struct, whose numbers are all doubles, with Zenoti's ints back
    (ids, gender, country codes): its .NET model binder refuses 0.0 where it wants 0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [whole_numbers(item) for item in value]
    return value


def _joined(section: dict, keys: tuple[str, str], separator: str) -> str:
    parts = [" ".join(str(section.get(key) or "").split()) for key in keys]
    return separator.join(part for part in parts if part)


def overlay(current: dict, mapped: dict) -> dict:
    """The PUT body of a full replace: the guest as Zenoti holds it, with the fields the hub owns
    (those in ``mapped``, one level into personal_info / address_info) written over it. Every
    other field goes back as it was read, so nothing Concord does not own is cleared."""
    body = copy.deepcopy(current)
    for key, value in mapped.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **copy.deepcopy(value)}
        else:
            body[key] = copy.deepcopy(value)
    for section, keys, separator in _SPLITS:
        before, after = current.get(section), body.get(section)
        if isinstance(before, dict) and isinstance(after, dict):
            if _joined(before, keys, separator) == _joined(after, keys, separator):
                after.update({key: before.get(key) for key in keys if key in before})
    return body


def _info(record: dict) -> dict:
    info = record.get("personal_info")
    return info if isinstance(info, dict) else {}


def email_of(record: dict) -> str:
    email = _info(record).get("email")
    return email.strip().casefold() if isinstance(email, str) else ""


def mobile_of(record: dict) -> str:
    phone = _info(record).get("mobile_phone")
    number = phone.get("number") if isinstance(phone, dict) else None
    return re.sub(r"\D", "", str(number)) if number else ""


def same_mobile(a: str, b: str) -> bool:
    """Digits equal, or their last ten (the US national number: a leading 1 is a dial code)."""
    if not a or not b:
        return False
    return a == b or (len(a) >= 10 and len(b) >= 10 and a[-10:] == b[-10:])


def matches(guest: dict, key: str, value: str) -> bool:
    """Whether a search result is the guest searched for: same email, or same mobile number
    (Zenoti's phone search also matches home and work numbers and partial digits)."""
    if key == "email":
        return email_of(guest) == value
    return same_mobile(mobile_of(guest), value)


def guest_list(body: Any, key: str, size: int, items: str = "guests") -> tuple[list[dict], int] | None:
    """``{items: [...], key: {"total", ...}}`` checked; None when the page is not of that shape."""
    if not isinstance(body, dict):
        return None
    guests, info = body.get(items), body.get(key)
    if not isinstance(guests, list) or len(guests) > size or not isinstance(info, dict):
        return None
    total = info.get("total")
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        return None
    if not all(isinstance(g, dict) and isinstance(g.get("id"), str) and g["id"] for g in guests):
        return None
    return guests, total
