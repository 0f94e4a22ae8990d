"""Salesforce record ids: 15 case-sensitive characters (3-character key prefix, 2-character pod,
one reserved character, 9-character sequence) plus the 3-character case-safe checksum suffix."""

from __future__ import annotations

import random
import re
import string

_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_SHAPE = re.compile(r"^[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?$")

# Key prefixes of the objects the sandbox knows.
ORGANIZATION, USER, RECORD_TYPE = "00D", "005", "012"
ACCOUNT, CONTACT, EVENT = "001", "003", "00U"
SERVICE_APPOINTMENT, WORK_TYPE, QUERY_LOCATOR = "08p", "08q", "01g"


def checksum(id15: str) -> str:
    """The 18-character suffix: per 5-character chunk, a bit per upper-case letter."""
    out = []
    for start in (0, 5, 10):
        bits = sum(1 << i for i, char in enumerate(id15[start : start + 5]) if "A" <= char <= "Z")
        out.append(_SUFFIX[bits])
    return "".join(out)


def to18(value: object) -> str | None:
    """The canonical 18-character id for a 15- or 18-character id, or None when malformed
    (wrong length or characters, or an 18-character id whose suffix does not match)."""
    if not isinstance(value, str) or not _SHAPE.match(value):
        return None
    head = value[:15]
    suffix = checksum(head)
    if len(value) == 18 and value[15:].upper() != suffix:
        return None
    return head + suffix


def prefix_of(record_id: str) -> str:
    return record_id[:3]


class IdFactory:
    """Sequential ids per key prefix (ids sort in creation order, as Salesforce's do)."""

    def __init__(self, seed: int, pod: str = "8c") -> None:
        self._rng = random.Random(seed)
        self._pod = pod
        self._next: dict[str, int] = {}

    def new(self, prefix: str) -> str:
        n = self._next.get(prefix)
        if n is None:
            n = self._rng.randrange(62**5, 62**6)
        self._next[prefix] = n + 1
        digits = []
        for _ in range(9):
            n, rem = divmod(n, 62)
            digits.append(_BASE62[rem])
        id15 = prefix + self._pod + "0" + "".join(reversed(digits))
        return id15 + checksum(id15)
