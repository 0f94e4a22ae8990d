"""The caller's identity: bound per request, sent to every service called (signed: libs/service_auth.py)."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    user_id: str = ""
    practice_id: str = ""
    role: str = ""
    ip_address: str = ""
    user_agent: str = ""
    request_id: str = ""


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
