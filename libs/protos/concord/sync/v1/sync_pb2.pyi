import datetime

from libs.protos.concord.adapter.v1 import adapter_pb2 as _adapter_pb2
from libs.protos.concord.common.v1 import common_pb2 as _common_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReconciliationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECONCILIATION_STATUS_UNSPECIFIED: _ClassVar[ReconciliationStatus]
    RECONCILIATION_STATUS_RUNNING: _ClassVar[ReconciliationStatus]
    RECONCILIATION_STATUS_SUCCEEDED: _ClassVar[ReconciliationStatus]
    RECONCILIATION_STATUS_FAILED: _ClassVar[ReconciliationStatus]

class ReviewStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_STATUS_UNSPECIFIED: _ClassVar[ReviewStatus]
    REVIEW_STATUS_OPEN: _ClassVar[ReviewStatus]
    REVIEW_STATUS_RESOLVED: _ClassVar[ReviewStatus]

class ReviewChoice(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_CHOICE_UNSPECIFIED: _ClassVar[ReviewChoice]
    REVIEW_CHOICE_HUB: _ClassVar[ReviewChoice]
    REVIEW_CHOICE_VENDOR: _ClassVar[ReviewChoice]
    REVIEW_CHOICE_VALUE: _ClassVar[ReviewChoice]
    REVIEW_CHOICE_SAME: _ClassVar[ReviewChoice]
    REVIEW_CHOICE_DIFFERENT: _ClassVar[ReviewChoice]

class ReviewKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_KIND_UNSPECIFIED: _ClassVar[ReviewKind]
    REVIEW_KIND_CONFLICT: _ClassVar[ReviewKind]
    REVIEW_KIND_IDENTITY: _ClassVar[ReviewKind]
    REVIEW_KIND_MISSING: _ClassVar[ReviewKind]
    REVIEW_KIND_DELETE: _ClassVar[ReviewKind]

class SyncRunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SYNC_RUN_STATUS_UNSPECIFIED: _ClassVar[SyncRunStatus]
    SYNC_RUN_STATUS_RUNNING: _ClassVar[SyncRunStatus]
    SYNC_RUN_STATUS_SUCCEEDED: _ClassVar[SyncRunStatus]
    SYNC_RUN_STATUS_PARTIAL: _ClassVar[SyncRunStatus]
    SYNC_RUN_STATUS_FAILED: _ClassVar[SyncRunStatus]

class ChangeEventOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_EVENT_OUTCOME_UNSPECIFIED: _ClassVar[ChangeEventOutcome]
    CHANGE_EVENT_OUTCOME_RECORDED: _ClassVar[ChangeEventOutcome]
    CHANGE_EVENT_OUTCOME_DUPLICATE: _ClassVar[ChangeEventOutcome]
    CHANGE_EVENT_OUTCOME_PULL_STARTED: _ClassVar[ChangeEventOutcome]
    CHANGE_EVENT_OUTCOME_PULL_PENDING: _ClassVar[ChangeEventOutcome]
    CHANGE_EVENT_OUTCOME_QUEUED: _ClassVar[ChangeEventOutcome]
RECONCILIATION_STATUS_UNSPECIFIED: ReconciliationStatus
RECONCILIATION_STATUS_RUNNING: ReconciliationStatus
RECONCILIATION_STATUS_SUCCEEDED: ReconciliationStatus
RECONCILIATION_STATUS_FAILED: ReconciliationStatus
REVIEW_STATUS_UNSPECIFIED: ReviewStatus
REVIEW_STATUS_OPEN: ReviewStatus
REVIEW_STATUS_RESOLVED: ReviewStatus
REVIEW_CHOICE_UNSPECIFIED: ReviewChoice
REVIEW_CHOICE_HUB: ReviewChoice
REVIEW_CHOICE_VENDOR: ReviewChoice
REVIEW_CHOICE_VALUE: ReviewChoice
REVIEW_CHOICE_SAME: ReviewChoice
REVIEW_CHOICE_DIFFERENT: ReviewChoice
REVIEW_KIND_UNSPECIFIED: ReviewKind
REVIEW_KIND_CONFLICT: ReviewKind
REVIEW_KIND_IDENTITY: ReviewKind
REVIEW_KIND_MISSING: ReviewKind
REVIEW_KIND_DELETE: ReviewKind
SYNC_RUN_STATUS_UNSPECIFIED: SyncRunStatus
SYNC_RUN_STATUS_RUNNING: SyncRunStatus
SYNC_RUN_STATUS_SUCCEEDED: SyncRunStatus
SYNC_RUN_STATUS_PARTIAL: SyncRunStatus
SYNC_RUN_STATUS_FAILED: SyncRunStatus
CHANGE_EVENT_OUTCOME_UNSPECIFIED: ChangeEventOutcome
CHANGE_EVENT_OUTCOME_RECORDED: ChangeEventOutcome
CHANGE_EVENT_OUTCOME_DUPLICATE: ChangeEventOutcome
CHANGE_EVENT_OUTCOME_PULL_STARTED: ChangeEventOutcome
CHANGE_EVENT_OUTCOME_PULL_PENDING: ChangeEventOutcome
CHANGE_EVENT_OUTCOME_QUEUED: ChangeEventOutcome

class Reconciliation(_message.Message):
    __slots__ = ("reconciliation_id", "practice_id", "config_id", "entity_type", "run_id", "status", "start_time", "end_time", "hub_count", "vendor_count", "hub_checksum", "vendor_checksum", "matched", "drifted", "healed", "unlinked", "missing_at_vendor", "pending_push", "review_items_opened", "error_message")
    RECONCILIATION_ID_FIELD_NUMBER: _ClassVar[int]
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    HUB_COUNT_FIELD_NUMBER: _ClassVar[int]
    VENDOR_COUNT_FIELD_NUMBER: _ClassVar[int]
    HUB_CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    VENDOR_CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    DRIFTED_FIELD_NUMBER: _ClassVar[int]
    HEALED_FIELD_NUMBER: _ClassVar[int]
    UNLINKED_FIELD_NUMBER: _ClassVar[int]
    MISSING_AT_VENDOR_FIELD_NUMBER: _ClassVar[int]
    PENDING_PUSH_FIELD_NUMBER: _ClassVar[int]
    REVIEW_ITEMS_OPENED_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reconciliation_id: str
    practice_id: str
    config_id: str
    entity_type: _common_pb2.EntityType
    run_id: str
    status: ReconciliationStatus
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    hub_count: int
    vendor_count: int
    hub_checksum: str
    vendor_checksum: str
    matched: int
    drifted: int
    healed: int
    unlinked: int
    missing_at_vendor: int
    pending_push: int
    review_items_opened: int
    error_message: str
    def __init__(self, reconciliation_id: _Optional[str] = ..., practice_id: _Optional[str] = ..., config_id: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., run_id: _Optional[str] = ..., status: _Optional[_Union[ReconciliationStatus, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., hub_count: _Optional[int] = ..., vendor_count: _Optional[int] = ..., hub_checksum: _Optional[str] = ..., vendor_checksum: _Optional[str] = ..., matched: _Optional[int] = ..., drifted: _Optional[int] = ..., healed: _Optional[int] = ..., unlinked: _Optional[int] = ..., missing_at_vendor: _Optional[int] = ..., pending_push: _Optional[int] = ..., review_items_opened: _Optional[int] = ..., error_message: _Optional[str] = ...) -> None: ...

class StartReconciliationRequest(_message.Message):
    __slots__ = ("practice_id", "config_id", "entity_type")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    config_id: str
    entity_type: _common_pb2.EntityType
    def __init__(self, practice_id: _Optional[str] = ..., config_id: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ...) -> None: ...

class StartReconciliationResponse(_message.Message):
    __slots__ = ("reconciliation",)
    RECONCILIATION_FIELD_NUMBER: _ClassVar[int]
    reconciliation: Reconciliation
    def __init__(self, reconciliation: _Optional[_Union[Reconciliation, _Mapping]] = ...) -> None: ...

class ListReconciliationsRequest(_message.Message):
    __slots__ = ("practice_id", "config_id", "entity_type", "limit")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    config_id: str
    entity_type: _common_pb2.EntityType
    limit: int
    def __init__(self, practice_id: _Optional[str] = ..., config_id: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., limit: _Optional[int] = ...) -> None: ...

class ListReconciliationsResponse(_message.Message):
    __slots__ = ("reconciliations",)
    RECONCILIATIONS_FIELD_NUMBER: _ClassVar[int]
    reconciliations: _containers.RepeatedCompositeFieldContainer[Reconciliation]
    def __init__(self, reconciliations: _Optional[_Iterable[_Union[Reconciliation, _Mapping]]] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("letter_id", "config_id", "entity_type", "direction", "record_ref", "error_class", "field", "message", "status", "attempts", "run_id", "first_seen_time", "last_seen_time", "resolve_time")
    LETTER_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    RECORD_REF_FIELD_NUMBER: _ClassVar[int]
    ERROR_CLASS_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_TIME_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_TIME_FIELD_NUMBER: _ClassVar[int]
    letter_id: str
    config_id: str
    entity_type: _common_pb2.EntityType
    direction: str
    record_ref: str
    error_class: str
    field: str
    message: str
    status: str
    attempts: int
    run_id: str
    first_seen_time: _timestamp_pb2.Timestamp
    last_seen_time: _timestamp_pb2.Timestamp
    resolve_time: _timestamp_pb2.Timestamp
    def __init__(self, letter_id: _Optional[str] = ..., config_id: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., direction: _Optional[str] = ..., record_ref: _Optional[str] = ..., error_class: _Optional[str] = ..., field: _Optional[str] = ..., message: _Optional[str] = ..., status: _Optional[str] = ..., attempts: _Optional[int] = ..., run_id: _Optional[str] = ..., first_seen_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolve_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("practice_id", "config_id", "status", "error_class", "page_size", "page_token")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_CLASS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    config_id: str
    status: str
    error_class: str
    page_size: int
    page_token: str
    def __init__(self, practice_id: _Optional[str] = ..., config_id: _Optional[str] = ..., status: _Optional[str] = ..., error_class: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ("letters", "next_page_token")
    LETTERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    next_page_token: str
    def __init__(self, letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReplayDeadLettersRequest(_message.Message):
    __slots__ = ("practice_id", "letter_ids", "error_class", "config_id")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    LETTER_IDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_CLASS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    letter_ids: _containers.RepeatedScalarFieldContainer[str]
    error_class: str
    config_id: str
    def __init__(self, practice_id: _Optional[str] = ..., letter_ids: _Optional[_Iterable[str]] = ..., error_class: _Optional[str] = ..., config_id: _Optional[str] = ...) -> None: ...

class ReplayDeadLettersResponse(_message.Message):
    __slots__ = ("replayed", "run_ids")
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    replayed: int
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, replayed: _Optional[int] = ..., run_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RecordChange(_message.Message):
    __slots__ = ("version", "side", "source", "action", "fields", "run_id", "change_time")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CHANGE_TIME_FIELD_NUMBER: _ClassVar[int]
    version: int
    side: str
    source: str
    action: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    run_id: str
    change_time: _timestamp_pb2.Timestamp
    def __init__(self, version: _Optional[int] = ..., side: _Optional[str] = ..., source: _Optional[str] = ..., action: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., run_id: _Optional[str] = ..., change_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetRecordHistoryRequest(_message.Message):
    __slots__ = ("practice_id", "entity_type", "record_id", "page_size")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    entity_type: _common_pb2.EntityType
    record_id: str
    page_size: int
    def __init__(self, practice_id: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., record_id: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class GetRecordHistoryResponse(_message.Message):
    __slots__ = ("changes",)
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[RecordChange]
    def __init__(self, changes: _Optional[_Iterable[_Union[RecordChange, _Mapping]]] = ...) -> None: ...

class AcceptWebhookRequest(_message.Message):
    __slots__ = ("integration_type", "headers", "body", "config_id")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INTEGRATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    integration_type: str
    headers: _containers.ScalarMap[str, str]
    body: bytes
    config_id: str
    def __init__(self, integration_type: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., body: _Optional[bytes] = ..., config_id: _Optional[str] = ...) -> None: ...

class ShredPracticeRequest(_message.Message):
    __slots__ = ("practice_id",)
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    def __init__(self, practice_id: _Optional[str] = ...) -> None: ...

class ShredPracticeResponse(_message.Message):
    __slots__ = ("keys_destroyed", "indexes_deleted")
    KEYS_DESTROYED_FIELD_NUMBER: _ClassVar[int]
    INDEXES_DELETED_FIELD_NUMBER: _ClassVar[int]
    keys_destroyed: int
    indexes_deleted: int
    def __init__(self, keys_destroyed: _Optional[int] = ..., indexes_deleted: _Optional[int] = ...) -> None: ...

class GetWebhookSecretRequest(_message.Message):
    __slots__ = ("practice_id", "config_id")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    config_id: str
    def __init__(self, practice_id: _Optional[str] = ..., config_id: _Optional[str] = ...) -> None: ...

class GetWebhookSecretResponse(_message.Message):
    __slots__ = ("secret",)
    SECRET_FIELD_NUMBER: _ClassVar[int]
    secret: str
    def __init__(self, secret: _Optional[str] = ...) -> None: ...

class AcceptWebhookResponse(_message.Message):
    __slots__ = ("events", "accepted", "duplicates", "ignored")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    IGNORED_FIELD_NUMBER: _ClassVar[int]
    events: int
    accepted: int
    duplicates: int
    ignored: int
    def __init__(self, events: _Optional[int] = ..., accepted: _Optional[int] = ..., duplicates: _Optional[int] = ..., ignored: _Optional[int] = ...) -> None: ...

class SyncSchedule(_message.Message):
    __slots__ = ("schedule_id", "entity_type", "every", "next_run_time")
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    EVERY_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    schedule_id: str
    entity_type: _common_pb2.EntityType
    every: _duration_pb2.Duration
    next_run_time: _timestamp_pb2.Timestamp
    def __init__(self, schedule_id: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., every: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., next_run_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ApplySchedulesRequest(_message.Message):
    __slots__ = ("practice_id", "config_id")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    config_id: str
    def __init__(self, practice_id: _Optional[str] = ..., config_id: _Optional[str] = ...) -> None: ...

class ApplySchedulesResponse(_message.Message):
    __slots__ = ("schedules", "reconciliation_schedules")
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    RECONCILIATION_SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    schedules: _containers.RepeatedCompositeFieldContainer[SyncSchedule]
    reconciliation_schedules: _containers.RepeatedCompositeFieldContainer[SyncSchedule]
    def __init__(self, schedules: _Optional[_Iterable[_Union[SyncSchedule, _Mapping]]] = ..., reconciliation_schedules: _Optional[_Iterable[_Union[SyncSchedule, _Mapping]]] = ...) -> None: ...

class ReviewItem(_message.Message):
    __slots__ = ("review_id", "config_id", "entity_type", "record_id", "external_id", "field", "status", "run_id", "create_time", "update_time", "resolve_time", "resolved_by", "resolution", "kind", "reasons")
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_TIME_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_BY_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    review_id: str
    config_id: str
    entity_type: _common_pb2.EntityType
    record_id: str
    external_id: str
    field: str
    status: ReviewStatus
    run_id: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    resolve_time: _timestamp_pb2.Timestamp
    resolved_by: str
    resolution: ReviewChoice
    kind: ReviewKind
    reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, review_id: _Optional[str] = ..., config_id: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., record_id: _Optional[str] = ..., external_id: _Optional[str] = ..., field: _Optional[str] = ..., status: _Optional[_Union[ReviewStatus, str]] = ..., run_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolve_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolved_by: _Optional[str] = ..., resolution: _Optional[_Union[ReviewChoice, str]] = ..., kind: _Optional[_Union[ReviewKind, str]] = ..., reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class ReviewValues(_message.Message):
    __slots__ = ("base", "hub", "vendor", "hub_modify_time", "vendor_modify_time", "vendor_record")
    class VendorRecordEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BASE_FIELD_NUMBER: _ClassVar[int]
    HUB_FIELD_NUMBER: _ClassVar[int]
    VENDOR_FIELD_NUMBER: _ClassVar[int]
    HUB_MODIFY_TIME_FIELD_NUMBER: _ClassVar[int]
    VENDOR_MODIFY_TIME_FIELD_NUMBER: _ClassVar[int]
    VENDOR_RECORD_FIELD_NUMBER: _ClassVar[int]
    base: str
    hub: str
    vendor: str
    hub_modify_time: _timestamp_pb2.Timestamp
    vendor_modify_time: _timestamp_pb2.Timestamp
    vendor_record: _containers.ScalarMap[str, str]
    def __init__(self, base: _Optional[str] = ..., hub: _Optional[str] = ..., vendor: _Optional[str] = ..., hub_modify_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., vendor_modify_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., vendor_record: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListReviewItemsRequest(_message.Message):
    __slots__ = ("practice_id", "config_id", "status", "page_size", "page_token")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    config_id: str
    status: ReviewStatus
    page_size: int
    page_token: str
    def __init__(self, practice_id: _Optional[str] = ..., config_id: _Optional[str] = ..., status: _Optional[_Union[ReviewStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListReviewItemsResponse(_message.Message):
    __slots__ = ("items", "next_page_token")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ReviewItem]
    next_page_token: str
    def __init__(self, items: _Optional[_Iterable[_Union[ReviewItem, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetReviewItemRequest(_message.Message):
    __slots__ = ("practice_id", "review_id")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    review_id: str
    def __init__(self, practice_id: _Optional[str] = ..., review_id: _Optional[str] = ...) -> None: ...

class GetReviewItemResponse(_message.Message):
    __slots__ = ("item", "values")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    item: ReviewItem
    values: ReviewValues
    def __init__(self, item: _Optional[_Union[ReviewItem, _Mapping]] = ..., values: _Optional[_Union[ReviewValues, _Mapping]] = ...) -> None: ...

class ResolveReviewItemRequest(_message.Message):
    __slots__ = ("practice_id", "review_id", "choice", "value")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    CHOICE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    review_id: str
    choice: ReviewChoice
    value: str
    def __init__(self, practice_id: _Optional[str] = ..., review_id: _Optional[str] = ..., choice: _Optional[_Union[ReviewChoice, str]] = ..., value: _Optional[str] = ...) -> None: ...

class ResolveReviewItemResponse(_message.Message):
    __slots__ = ("item",)
    ITEM_FIELD_NUMBER: _ClassVar[int]
    item: ReviewItem
    def __init__(self, item: _Optional[_Union[ReviewItem, _Mapping]] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("record_id", "practice_id", "entity_type", "resource_json", "version", "create_time", "update_time")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    practice_id: str
    entity_type: _common_pb2.EntityType
    resource_json: str
    version: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, record_id: _Optional[str] = ..., practice_id: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., resource_json: _Optional[str] = ..., version: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateRecordRequest(_message.Message):
    __slots__ = ("practice_id", "entity_type", "resource_json")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_JSON_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    entity_type: _common_pb2.EntityType
    resource_json: str
    def __init__(self, practice_id: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., resource_json: _Optional[str] = ...) -> None: ...

class CreateRecordResponse(_message.Message):
    __slots__ = ("record",)
    RECORD_FIELD_NUMBER: _ClassVar[int]
    record: Record
    def __init__(self, record: _Optional[_Union[Record, _Mapping]] = ...) -> None: ...

class GetRecordRequest(_message.Message):
    __slots__ = ("practice_id", "entity_type", "record_id")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    entity_type: _common_pb2.EntityType
    record_id: str
    def __init__(self, practice_id: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., record_id: _Optional[str] = ...) -> None: ...

class GetRecordResponse(_message.Message):
    __slots__ = ("record",)
    RECORD_FIELD_NUMBER: _ClassVar[int]
    record: Record
    def __init__(self, record: _Optional[_Union[Record, _Mapping]] = ...) -> None: ...

class ListRecordsRequest(_message.Message):
    __slots__ = ("practice_id", "entity_type", "page_size", "page_token")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    entity_type: _common_pb2.EntityType
    page_size: int
    page_token: str
    def __init__(self, practice_id: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRecordsResponse(_message.Message):
    __slots__ = ("records", "next_page_token")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[Record]
    next_page_token: str
    def __init__(self, records: _Optional[_Iterable[_Union[Record, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Patient(_message.Message):
    __slots__ = ("patient_id", "practice_id", "resource_json", "version", "create_time", "update_time")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    practice_id: str
    resource_json: str
    version: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, patient_id: _Optional[str] = ..., practice_id: _Optional[str] = ..., resource_json: _Optional[str] = ..., version: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordError(_message.Message):
    __slots__ = ("record_ref", "field", "reason", "message")
    RECORD_REF_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    record_ref: str
    field: str
    reason: str
    message: str
    def __init__(self, record_ref: _Optional[str] = ..., field: _Optional[str] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class SyncRun(_message.Message):
    __slots__ = ("run_id", "config_id", "practice_id", "integration_type", "entity_type", "direction", "status", "records_processed", "records_succeeded", "records_failed", "records_created", "records_updated", "vendor_requests", "errors", "trace_id", "workflow_id", "start_time", "end_time", "error_message")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    INTEGRATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RECORDS_PROCESSED_FIELD_NUMBER: _ClassVar[int]
    RECORDS_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FAILED_FIELD_NUMBER: _ClassVar[int]
    RECORDS_CREATED_FIELD_NUMBER: _ClassVar[int]
    RECORDS_UPDATED_FIELD_NUMBER: _ClassVar[int]
    VENDOR_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    config_id: str
    practice_id: str
    integration_type: str
    entity_type: _common_pb2.EntityType
    direction: _common_pb2.SyncDirection
    status: SyncRunStatus
    records_processed: int
    records_succeeded: int
    records_failed: int
    records_created: int
    records_updated: int
    vendor_requests: int
    errors: _containers.RepeatedCompositeFieldContainer[RecordError]
    trace_id: str
    workflow_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    error_message: str
    def __init__(self, run_id: _Optional[str] = ..., config_id: _Optional[str] = ..., practice_id: _Optional[str] = ..., integration_type: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., direction: _Optional[_Union[_common_pb2.SyncDirection, str]] = ..., status: _Optional[_Union[SyncRunStatus, str]] = ..., records_processed: _Optional[int] = ..., records_succeeded: _Optional[int] = ..., records_failed: _Optional[int] = ..., records_created: _Optional[int] = ..., records_updated: _Optional[int] = ..., vendor_requests: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[RecordError, _Mapping]]] = ..., trace_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error_message: _Optional[str] = ...) -> None: ...

class PatientLink(_message.Message):
    __slots__ = ("patient_id", "config_id", "external_id", "synced_version", "sync_time")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    SYNCED_VERSION_FIELD_NUMBER: _ClassVar[int]
    SYNC_TIME_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    config_id: str
    external_id: str
    synced_version: int
    sync_time: _timestamp_pb2.Timestamp
    def __init__(self, patient_id: _Optional[str] = ..., config_id: _Optional[str] = ..., external_id: _Optional[str] = ..., synced_version: _Optional[int] = ..., sync_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreatePatientRequest(_message.Message):
    __slots__ = ("practice_id", "resource_json")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_JSON_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    resource_json: str
    def __init__(self, practice_id: _Optional[str] = ..., resource_json: _Optional[str] = ...) -> None: ...

class CreatePatientResponse(_message.Message):
    __slots__ = ("patient",)
    PATIENT_FIELD_NUMBER: _ClassVar[int]
    patient: Patient
    def __init__(self, patient: _Optional[_Union[Patient, _Mapping]] = ...) -> None: ...

class GetPatientRequest(_message.Message):
    __slots__ = ("practice_id", "patient_id")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    patient_id: str
    def __init__(self, practice_id: _Optional[str] = ..., patient_id: _Optional[str] = ...) -> None: ...

class GetPatientResponse(_message.Message):
    __slots__ = ("patient",)
    PATIENT_FIELD_NUMBER: _ClassVar[int]
    patient: Patient
    def __init__(self, patient: _Optional[_Union[Patient, _Mapping]] = ...) -> None: ...

class UpdatePatientRequest(_message.Message):
    __slots__ = ("practice_id", "patient_id", "resource_json", "expected_version")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_JSON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    patient_id: str
    resource_json: str
    expected_version: int
    def __init__(self, practice_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., resource_json: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class UpdatePatientResponse(_message.Message):
    __slots__ = ("patient",)
    PATIENT_FIELD_NUMBER: _ClassVar[int]
    patient: Patient
    def __init__(self, patient: _Optional[_Union[Patient, _Mapping]] = ...) -> None: ...

class DeleteRecordRequest(_message.Message):
    __slots__ = ("practice_id", "entity_type", "record_id")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    entity_type: _common_pb2.EntityType
    record_id: str
    def __init__(self, practice_id: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., record_id: _Optional[str] = ...) -> None: ...

class DeleteRecordResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class MergePatientsRequest(_message.Message):
    __slots__ = ("practice_id", "patient_id", "into_patient_id")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    INTO_PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    patient_id: str
    into_patient_id: str
    def __init__(self, practice_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., into_patient_id: _Optional[str] = ...) -> None: ...

class MergePatientsResponse(_message.Message):
    __slots__ = ("patient",)
    PATIENT_FIELD_NUMBER: _ClassVar[int]
    patient: Patient
    def __init__(self, patient: _Optional[_Union[Patient, _Mapping]] = ...) -> None: ...

class ListPatientsRequest(_message.Message):
    __slots__ = ("practice_id", "page_size", "page_token")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    page_size: int
    page_token: str
    def __init__(self, practice_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPatientsResponse(_message.Message):
    __slots__ = ("patients", "next_page_token")
    PATIENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    patients: _containers.RepeatedCompositeFieldContainer[Patient]
    next_page_token: str
    def __init__(self, patients: _Optional[_Iterable[_Union[Patient, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ImportPatientsRequest(_message.Message):
    __slots__ = ("practice_id", "bundle_json")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_JSON_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    bundle_json: str
    def __init__(self, practice_id: _Optional[str] = ..., bundle_json: _Optional[str] = ...) -> None: ...

class ImportPatientsResponse(_message.Message):
    __slots__ = ("patient_ids",)
    PATIENT_IDS_FIELD_NUMBER: _ClassVar[int]
    patient_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, patient_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class StartSyncRequest(_message.Message):
    __slots__ = ("config_id", "entity_type", "direction", "practice_id", "start_delay")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    START_DELAY_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    entity_type: _common_pb2.EntityType
    direction: _common_pb2.SyncDirection
    practice_id: str
    start_delay: _duration_pb2.Duration
    def __init__(self, config_id: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., direction: _Optional[_Union[_common_pb2.SyncDirection, str]] = ..., practice_id: _Optional[str] = ..., start_delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class StartSyncResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: SyncRun
    def __init__(self, run: _Optional[_Union[SyncRun, _Mapping]] = ...) -> None: ...

class GetSyncRunRequest(_message.Message):
    __slots__ = ("run_id", "practice_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    practice_id: str
    def __init__(self, run_id: _Optional[str] = ..., practice_id: _Optional[str] = ...) -> None: ...

class GetSyncRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: SyncRun
    def __init__(self, run: _Optional[_Union[SyncRun, _Mapping]] = ...) -> None: ...

class WaitSyncRunRequest(_message.Message):
    __slots__ = ("run_id", "practice_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    practice_id: str
    def __init__(self, run_id: _Optional[str] = ..., practice_id: _Optional[str] = ...) -> None: ...

class WaitSyncRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: SyncRun
    def __init__(self, run: _Optional[_Union[SyncRun, _Mapping]] = ...) -> None: ...

class ListSyncRunsRequest(_message.Message):
    __slots__ = ("practice_id", "config_id", "page_size", "page_token")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    config_id: str
    page_size: int
    page_token: str
    def __init__(self, practice_id: _Optional[str] = ..., config_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSyncRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[SyncRun]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[SyncRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetPatientLinkRequest(_message.Message):
    __slots__ = ("practice_id", "patient_id", "config_id")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    patient_id: str
    config_id: str
    def __init__(self, practice_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., config_id: _Optional[str] = ...) -> None: ...

class GetPatientLinkResponse(_message.Message):
    __slots__ = ("link",)
    LINK_FIELD_NUMBER: _ClassVar[int]
    link: PatientLink
    def __init__(self, link: _Optional[_Union[PatientLink, _Mapping]] = ...) -> None: ...

class ApplyVendorRecordsRequest(_message.Message):
    __slots__ = ("practice_id", "config_id", "entity_type", "records")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    config_id: str
    entity_type: _common_pb2.EntityType
    records: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    def __init__(self, practice_id: _Optional[str] = ..., config_id: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., records: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ...) -> None: ...

class AppliedRecord(_message.Message):
    __slots__ = ("external_id", "record_id", "created", "review_id")
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    external_id: str
    record_id: str
    created: bool
    review_id: str
    def __init__(self, external_id: _Optional[str] = ..., record_id: _Optional[str] = ..., created: _Optional[bool] = ..., review_id: _Optional[str] = ...) -> None: ...

class ApplyVendorRecordsResponse(_message.Message):
    __slots__ = ("run", "records")
    RUN_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    run: SyncRun
    records: _containers.RepeatedCompositeFieldContainer[AppliedRecord]
    def __init__(self, run: _Optional[_Union[SyncRun, _Mapping]] = ..., records: _Optional[_Iterable[_Union[AppliedRecord, _Mapping]]] = ...) -> None: ...

class SendMessageRequest(_message.Message):
    __slots__ = ("practice_id", "config_id", "patient_id", "channel", "subject", "body", "idempotency_key")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    config_id: str
    patient_id: str
    channel: _adapter_pb2.MessageChannel
    subject: str
    body: str
    idempotency_key: str
    def __init__(self, practice_id: _Optional[str] = ..., config_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., channel: _Optional[_Union[_adapter_pb2.MessageChannel, str]] = ..., subject: _Optional[str] = ..., body: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class SendMessageResponse(_message.Message):
    __slots__ = ("message_id", "conversation_id", "idempotency_key")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    conversation_id: str
    idempotency_key: str
    def __init__(self, message_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class GetAvailabilityRequest(_message.Message):
    __slots__ = ("practice_id", "config_id", "patient_id", "service_id", "provider_id", "date", "days")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    DATE_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    config_id: str
    patient_id: str
    service_id: str
    provider_id: str
    date: str
    days: int
    def __init__(self, practice_id: _Optional[str] = ..., config_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., service_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., date: _Optional[str] = ..., days: _Optional[int] = ...) -> None: ...

class GetAvailabilityResponse(_message.Message):
    __slots__ = ("slots",)
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    slots: _containers.RepeatedCompositeFieldContainer[_adapter_pb2.AvailableSlot]
    def __init__(self, slots: _Optional[_Iterable[_Union[_adapter_pb2.AvailableSlot, _Mapping]]] = ...) -> None: ...

class AcceptChangeEventRequest(_message.Message):
    __slots__ = ("practice_id", "config_id", "replay_id", "entity_type", "commit_time", "settle", "deleted_ids")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    REPLAY_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    COMMIT_TIME_FIELD_NUMBER: _ClassVar[int]
    SETTLE_FIELD_NUMBER: _ClassVar[int]
    DELETED_IDS_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    config_id: str
    replay_id: str
    entity_type: _common_pb2.EntityType
    commit_time: _timestamp_pb2.Timestamp
    settle: _duration_pb2.Duration
    deleted_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, practice_id: _Optional[str] = ..., config_id: _Optional[str] = ..., replay_id: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., commit_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., settle: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., deleted_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class AcceptChangeEventResponse(_message.Message):
    __slots__ = ("outcome", "run")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    outcome: ChangeEventOutcome
    run: SyncRun
    def __init__(self, outcome: _Optional[_Union[ChangeEventOutcome, str]] = ..., run: _Optional[_Union[SyncRun, _Mapping]] = ...) -> None: ...

class GetChangeEventPositionRequest(_message.Message):
    __slots__ = ("practice_id", "config_id")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    config_id: str
    def __init__(self, practice_id: _Optional[str] = ..., config_id: _Optional[str] = ...) -> None: ...

class GetChangeEventPositionResponse(_message.Message):
    __slots__ = ("replay_id", "accept_time")
    REPLAY_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_TIME_FIELD_NUMBER: _ClassVar[int]
    replay_id: str
    accept_time: _timestamp_pb2.Timestamp
    def __init__(self, replay_id: _Optional[str] = ..., accept_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ResyncChangeEventsRequest(_message.Message):
    __slots__ = ("practice_id", "config_id", "entity_types", "settle")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPES_FIELD_NUMBER: _ClassVar[int]
    SETTLE_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    config_id: str
    entity_types: _containers.RepeatedScalarFieldContainer[_common_pb2.EntityType]
    settle: _duration_pb2.Duration
    def __init__(self, practice_id: _Optional[str] = ..., config_id: _Optional[str] = ..., entity_types: _Optional[_Iterable[_Union[_common_pb2.EntityType, str]]] = ..., settle: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ResyncChangeEventsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[SyncRun]
    def __init__(self, runs: _Optional[_Iterable[_Union[SyncRun, _Mapping]]] = ...) -> None: ...
