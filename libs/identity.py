"""The caller's identity as it travels between services in gRPC metadata."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_KEYS = {
    "user_id": "x-concord-user",
    "practice_id": "x-concord-practice",
    "role": "x-concord-role",
    "ip_address": "x-concord-client-ip",
    "user_agent": "x-concord-client-agent",
    "request_id": "x-concord-request-id",
}


@dataclass(frozen=True)
class Caller:
    user_id: str = ""
    practice_id: str = ""
    role: str = ""
    ip_address: str = ""
    user_agent: str = ""
    request_id: str = ""

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return tuple((key, getattr(self, attr)) for attr, key in _KEYS.items() if getattr(self, attr))

    @classmethod
    def from_metadata(cls, metadata: Iterable[tuple[str, str | bytes]] | None) -> Caller:
        values = dict(metadata or ())
        return cls(**{attr: str(values.get(key, "")) for attr, key in _KEYS.items()})


SYSTEM = Caller(user_id="system:concord", role="system")

_ANONYMOUS = Caller()
_current: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("concord_caller", default=None)


def current_caller() -> Caller:
    return _current.get() or _ANONYMOUS


def set_caller(caller: Caller) -> contextvars.Token:
    return _current.set(caller)


def reset_caller(token: contextvars.Token) -> None:
    _current.reset(token)


@contextlib.contextmanager
def acting_as(caller: Caller) -> Iterator[None]:
    """Binds ``caller`` for the block: calls made inside carry it in their gRPC metadata (x-concord-*)."""
    token = set_caller(caller)
    try:
        yield
    finally:
        reset_caller(token)
