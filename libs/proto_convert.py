"""Small protobuf helpers every servicer and converter shares."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from libs.errors import InvalidArgument


def required(value: str, field: str) -> str:
    """A request string field that must be set; INVALID_ARGUMENT naming it otherwise."""
    if not value:
        raise InvalidArgument(f"{field} is required", field=field, reason="REQUIRED_FIELD_MISSING")
    return value


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def enum_name(enum: EnumTypeWrapper, value: int) -> str:
    """The value's name, or "" for the *_UNSPECIFIED zero value."""
    return "" if value == 0 else enum.Name(value)
