import datetime

from libs.protos.concord.common.v1 import common_pb2 as _common_pb2
from libs.protos.concord.registry.v1 import registry_pb2 as _registry_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Lane(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LANE_UNSPECIFIED: _ClassVar[Lane]
    LANE_REALTIME: _ClassVar[Lane]
    LANE_USER: _ClassVar[Lane]
    LANE_SCHEDULED: _ClassVar[Lane]
    LANE_BACKFILL: _ClassVar[Lane]

class MessageChannel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_CHANNEL_UNSPECIFIED: _ClassVar[MessageChannel]
    MESSAGE_CHANNEL_EMAIL: _ClassVar[MessageChannel]
    MESSAGE_CHANNEL_SMS: _ClassVar[MessageChannel]
LANE_UNSPECIFIED: Lane
LANE_REALTIME: Lane
LANE_USER: Lane
LANE_SCHEDULED: Lane
LANE_BACKFILL: Lane
MESSAGE_CHANNEL_UNSPECIFIED: MessageChannel
MESSAGE_CHANNEL_EMAIL: MessageChannel
MESSAGE_CHANNEL_SMS: MessageChannel

class GetRecordsRequest(_message.Message):
    __slots__ = ("config_id", "entity_type", "external_ids", "options", "lane")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_IDS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    LANE_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    entity_type: _common_pb2.EntityType
    external_ids: _containers.RepeatedScalarFieldContainer[str]
    options: _registry_pb2.VendorOptions
    lane: Lane
    def __init__(self, config_id: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., external_ids: _Optional[_Iterable[str]] = ..., options: _Optional[_Union[_registry_pb2.VendorOptions, _Mapping]] = ..., lane: _Optional[_Union[Lane, str]] = ...) -> None: ...

class GetRecordsResponse(_message.Message):
    __slots__ = ("records", "missing_ids", "vendor_requests", "merged_into")
    class MergedIntoEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    MISSING_IDS_FIELD_NUMBER: _ClassVar[int]
    VENDOR_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    MERGED_INTO_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    missing_ids: _containers.RepeatedScalarFieldContainer[str]
    vendor_requests: int
    merged_into: _containers.ScalarMap[str, str]
    def __init__(self, records: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ..., missing_ids: _Optional[_Iterable[str]] = ..., vendor_requests: _Optional[int] = ..., merged_into: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DeleteRecordsRequest(_message.Message):
    __slots__ = ("config_id", "entity_type", "external_ids", "options", "lane")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_IDS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    LANE_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    entity_type: _common_pb2.EntityType
    external_ids: _containers.RepeatedScalarFieldContainer[str]
    options: _registry_pb2.VendorOptions
    lane: Lane
    def __init__(self, config_id: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., external_ids: _Optional[_Iterable[str]] = ..., options: _Optional[_Union[_registry_pb2.VendorOptions, _Mapping]] = ..., lane: _Optional[_Union[Lane, str]] = ...) -> None: ...

class DeleteResult(_message.Message):
    __slots__ = ("external_id", "success", "error_reason", "error_message")
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    external_id: str
    success: bool
    error_reason: str
    error_message: str
    def __init__(self, external_id: _Optional[str] = ..., success: _Optional[bool] = ..., error_reason: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class DeleteRecordsResponse(_message.Message):
    __slots__ = ("results", "vendor_requests")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    VENDOR_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[DeleteResult]
    vendor_requests: int
    def __init__(self, results: _Optional[_Iterable[_Union[DeleteResult, _Mapping]]] = ..., vendor_requests: _Optional[int] = ...) -> None: ...

class VerifyWebhookRequest(_message.Message):
    __slots__ = ("headers", "body")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    headers: _containers.ScalarMap[str, str]
    body: bytes
    def __init__(self, headers: _Optional[_Mapping[str, str]] = ..., body: _Optional[bytes] = ...) -> None: ...

class WebhookEvent(_message.Message):
    __slots__ = ("event_id", "entity_type", "external_id", "deleted", "type")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    entity_type: _common_pb2.EntityType
    external_id: str
    deleted: bool
    type: str
    def __init__(self, event_id: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., external_id: _Optional[str] = ..., deleted: _Optional[bool] = ..., type: _Optional[str] = ...) -> None: ...

class VerifyWebhookResponse(_message.Message):
    __slots__ = ("valid", "reason", "external_account_id", "events")
    VALID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    reason: str
    external_account_id: str
    events: _containers.RepeatedCompositeFieldContainer[WebhookEvent]
    def __init__(self, valid: _Optional[bool] = ..., reason: _Optional[str] = ..., external_account_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[WebhookEvent, _Mapping]]] = ...) -> None: ...

class FetchChangesRequest(_message.Message):
    __slots__ = ("config_id", "entity_type", "cursor", "page_size", "options", "lane")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    LANE_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    entity_type: _common_pb2.EntityType
    cursor: str
    page_size: int
    options: _registry_pb2.VendorOptions
    lane: Lane
    def __init__(self, config_id: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., cursor: _Optional[str] = ..., page_size: _Optional[int] = ..., options: _Optional[_Union[_registry_pb2.VendorOptions, _Mapping]] = ..., lane: _Optional[_Union[Lane, str]] = ...) -> None: ...

class FetchChangesResponse(_message.Message):
    __slots__ = ("records", "next_cursor", "has_more", "vendor_requests")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    VENDOR_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    next_cursor: str
    has_more: bool
    vendor_requests: int
    def __init__(self, records: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ..., next_cursor: _Optional[str] = ..., has_more: _Optional[bool] = ..., vendor_requests: _Optional[int] = ...) -> None: ...

class UpsertItem(_message.Message):
    __slots__ = ("ref", "external_id", "record")
    REF_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    ref: str
    external_id: str
    record: _struct_pb2.Struct
    def __init__(self, ref: _Optional[str] = ..., external_id: _Optional[str] = ..., record: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class UpsertBatchRequest(_message.Message):
    __slots__ = ("config_id", "entity_type", "items", "options", "lane")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    LANE_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    entity_type: _common_pb2.EntityType
    items: _containers.RepeatedCompositeFieldContainer[UpsertItem]
    options: _registry_pb2.VendorOptions
    lane: Lane
    def __init__(self, config_id: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., items: _Optional[_Iterable[_Union[UpsertItem, _Mapping]]] = ..., options: _Optional[_Union[_registry_pb2.VendorOptions, _Mapping]] = ..., lane: _Optional[_Union[Lane, str]] = ...) -> None: ...

class UpsertResult(_message.Message):
    __slots__ = ("ref", "external_id", "success", "created", "error_reason", "error_message", "record")
    REF_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    ERROR_REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    ref: str
    external_id: str
    success: bool
    created: bool
    error_reason: str
    error_message: str
    record: _struct_pb2.Struct
    def __init__(self, ref: _Optional[str] = ..., external_id: _Optional[str] = ..., success: _Optional[bool] = ..., created: _Optional[bool] = ..., error_reason: _Optional[str] = ..., error_message: _Optional[str] = ..., record: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class UpsertBatchResponse(_message.Message):
    __slots__ = ("results", "vendor_requests")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    VENDOR_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[UpsertResult]
    vendor_requests: int
    def __init__(self, results: _Optional[_Iterable[_Union[UpsertResult, _Mapping]]] = ..., vendor_requests: _Optional[int] = ...) -> None: ...

class CheckHealthRequest(_message.Message):
    __slots__ = ("config_id",)
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    def __init__(self, config_id: _Optional[str] = ...) -> None: ...

class CheckHealthResponse(_message.Message):
    __slots__ = ("healthy", "detail")
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    healthy: bool
    detail: str
    def __init__(self, healthy: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class SendMessageRequest(_message.Message):
    __slots__ = ("config_id", "external_id", "channel", "subject", "body", "idempotency_key")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    external_id: str
    channel: MessageChannel
    subject: str
    body: str
    idempotency_key: str
    def __init__(self, config_id: _Optional[str] = ..., external_id: _Optional[str] = ..., channel: _Optional[_Union[MessageChannel, str]] = ..., subject: _Optional[str] = ..., body: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class SendMessageResponse(_message.Message):
    __slots__ = ("message_id", "conversation_id", "vendor_requests")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    VENDOR_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    conversation_id: str
    vendor_requests: int
    def __init__(self, message_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., vendor_requests: _Optional[int] = ...) -> None: ...

class GetAvailabilityRequest(_message.Message):
    __slots__ = ("config_id", "patient_external_id", "service_external_id", "provider_external_id", "date", "days", "options")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    DATE_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    patient_external_id: str
    service_external_id: str
    provider_external_id: str
    date: str
    days: int
    options: _registry_pb2.VendorOptions
    def __init__(self, config_id: _Optional[str] = ..., patient_external_id: _Optional[str] = ..., service_external_id: _Optional[str] = ..., provider_external_id: _Optional[str] = ..., date: _Optional[str] = ..., days: _Optional[int] = ..., options: _Optional[_Union[_registry_pb2.VendorOptions, _Mapping]] = ...) -> None: ...

class AvailableSlot(_message.Message):
    __slots__ = ("start", "local_start")
    START_FIELD_NUMBER: _ClassVar[int]
    LOCAL_START_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    local_start: str
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., local_start: _Optional[str] = ...) -> None: ...

class GetAvailabilityResponse(_message.Message):
    __slots__ = ("slots", "vendor_requests")
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    VENDOR_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    slots: _containers.RepeatedCompositeFieldContainer[AvailableSlot]
    vendor_requests: int
    def __init__(self, slots: _Optional[_Iterable[_Union[AvailableSlot, _Mapping]]] = ..., vendor_requests: _Optional[int] = ...) -> None: ...
