"""Every request is confined to its caller's practice, in every service, before and after the
servicer runs (libs/grpc_server.py).

A caller whose signed identity (libs/service_auth.py) names a practice — a user through the
gateway, a vendor's key, a Zapier grant — may name no other practice anywhere in a request, and
receives no answer that carries another practice's id: a request naming one is refused
(PermissionDenied OTHER_PRACTICE), and a response that would disclose one is NotFound (a config, patient or run found by an id of another practice's
record). A request that leaves its top-level ``practice_id`` empty is scoped to the caller's.
System callers (a token naming no practice: workflows, schedules, adapters) are not confined.

This is the floor under each service's own checks, which stay where they give a better answer
(NotFound for another practice's id, as if it did not exist).
"""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from libs.errors import NotFound, PermissionDenied
from libs.identity import Caller

FIELD = "practice_id"
# How deep into nested messages practice ids are looked for: a request's config, a response's
# list of configs or runs and their parts.
_DEPTH = 3


def confine_request(caller: Caller, request: Message) -> None:
    """Refuses a request that names another practice; scopes one that names none to the caller's."""
    if not caller.practice_id:
        return
    field = request.DESCRIPTOR.fields_by_name.get(FIELD)
    if field is not None and field.type == FieldDescriptor.TYPE_STRING and not field.is_repeated:
        if not getattr(request, FIELD):
            setattr(request, FIELD, caller.practice_id)
    if _other_practice(request, caller.practice_id, _DEPTH):
        raise PermissionDenied("the request names another practice", reason="OTHER_PRACTICE")


def confine_response(caller: Caller, response: Message) -> None:
    """Refuses to return another practice's records: NotFound, as for a record that does not
    exist and named as the service names one it does not have (GetIntegrationConfig's ``config``:
    CONFIG_NOT_FOUND), so an id of another practice's tells its caller nothing."""
    if not caller.practice_id:
        return
    for field, value in response.ListFields():
        if _names_other(field, value, caller.practice_id, _DEPTH):
            raise NotFound(f"{field.name.replace('_', ' ')} not found", reason=f"{field.name.upper()}_NOT_FOUND")


def _other_practice(message: Message, practice_id: str, depth: int) -> bool:
    return any(_names_other(field, value, practice_id, depth) for field, value in message.ListFields())


def _names_other(field: FieldDescriptor, value: object, practice_id: str, depth: int) -> bool:
    """Whether this field of a message is, or holds within ``depth`` levels, another practice's id."""
    if field.name == FIELD and field.type == FieldDescriptor.TYPE_STRING:
        return bool(value) and value != practice_id
    if (
        field.type != FieldDescriptor.TYPE_MESSAGE
        or depth <= 0
        or field.message_type.full_name.startswith("google.protobuf.")
    ):
        # google.protobuf.Struct and friends carry records' contents, never a practice reference.
        return False
    if field.message_type.GetOptions().map_entry:
        items = list(value.values())  # type: ignore[attr-defined]
        if not items or not isinstance(items[0], Message):
            return False
    else:
        items = list(value) if field.is_repeated else [value]  # type: ignore[call-overload]
    return any(_other_practice(item, practice_id, depth - 1) for item in items)
