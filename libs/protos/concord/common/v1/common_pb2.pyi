from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class SyncDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SYNC_DIRECTION_UNSPECIFIED: _ClassVar[SyncDirection]
    SYNC_DIRECTION_PUSH: _ClassVar[SyncDirection]
    SYNC_DIRECTION_PULL: _ClassVar[SyncDirection]
    SYNC_DIRECTION_BIDIRECTIONAL: _ClassVar[SyncDirection]

class SyncFrequency(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SYNC_FREQUENCY_UNSPECIFIED: _ClassVar[SyncFrequency]
    SYNC_FREQUENCY_REAL_TIME: _ClassVar[SyncFrequency]
    SYNC_FREQUENCY_HOURLY: _ClassVar[SyncFrequency]
    SYNC_FREQUENCY_DAILY: _ClassVar[SyncFrequency]
    SYNC_FREQUENCY_MANUAL: _ClassVar[SyncFrequency]

class ConflictPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONFLICT_POLICY_UNSPECIFIED: _ClassVar[ConflictPolicy]
    CONFLICT_POLICY_HUB_WINS: _ClassVar[ConflictPolicy]
    CONFLICT_POLICY_VENDOR_WINS: _ClassVar[ConflictPolicy]
    CONFLICT_POLICY_NEWEST_WINS: _ClassVar[ConflictPolicy]
    CONFLICT_POLICY_MANUAL_REVIEW: _ClassVar[ConflictPolicy]

class EntityType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENTITY_TYPE_UNSPECIFIED: _ClassVar[EntityType]
    ENTITY_TYPE_PATIENT: _ClassVar[EntityType]
    ENTITY_TYPE_APPOINTMENT: _ClassVar[EntityType]
    ENTITY_TYPE_SERVICE: _ClassVar[EntityType]
    ENTITY_TYPE_MEMBERSHIP: _ClassVar[EntityType]
SYNC_DIRECTION_UNSPECIFIED: SyncDirection
SYNC_DIRECTION_PUSH: SyncDirection
SYNC_DIRECTION_PULL: SyncDirection
SYNC_DIRECTION_BIDIRECTIONAL: SyncDirection
SYNC_FREQUENCY_UNSPECIFIED: SyncFrequency
SYNC_FREQUENCY_REAL_TIME: SyncFrequency
SYNC_FREQUENCY_HOURLY: SyncFrequency
SYNC_FREQUENCY_DAILY: SyncFrequency
SYNC_FREQUENCY_MANUAL: SyncFrequency
CONFLICT_POLICY_UNSPECIFIED: ConflictPolicy
CONFLICT_POLICY_HUB_WINS: ConflictPolicy
CONFLICT_POLICY_VENDOR_WINS: ConflictPolicy
CONFLICT_POLICY_NEWEST_WINS: ConflictPolicy
CONFLICT_POLICY_MANUAL_REVIEW: ConflictPolicy
ENTITY_TYPE_UNSPECIFIED: EntityType
ENTITY_TYPE_PATIENT: EntityType
ENTITY_TYPE_APPOINTMENT: EntityType
ENTITY_TYPE_SERVICE: EntityType
ENTITY_TYPE_MEMBERSHIP: EntityType
