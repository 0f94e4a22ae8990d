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

class MappingDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MAPPING_DIRECTION_UNSPECIFIED: _ClassVar[MappingDirection]
    MAPPING_DIRECTION_TO_HUB: _ClassVar[MappingDirection]
    MAPPING_DIRECTION_TO_VENDOR: _ClassVar[MappingDirection]
    MAPPING_DIRECTION_BOTH: _ClassVar[MappingDirection]
    MAPPING_DIRECTION_NONE: _ClassVar[MappingDirection]

class MappingSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MAPPING_SOURCE_UNSPECIFIED: _ClassVar[MappingSource]
    MAPPING_SOURCE_DEFAULT: _ClassVar[MappingSource]
    MAPPING_SOURCE_OVERRIDE: _ClassVar[MappingSource]
MAPPING_DIRECTION_UNSPECIFIED: MappingDirection
MAPPING_DIRECTION_TO_HUB: MappingDirection
MAPPING_DIRECTION_TO_VENDOR: MappingDirection
MAPPING_DIRECTION_BOTH: MappingDirection
MAPPING_DIRECTION_NONE: MappingDirection
MAPPING_SOURCE_UNSPECIFIED: MappingSource
MAPPING_SOURCE_DEFAULT: MappingSource
MAPPING_SOURCE_OVERRIDE: MappingSource

class FieldError(_message.Message):
    __slots__ = ("field", "reason", "message")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    field: str
    reason: str
    message: str
    def __init__(self, field: _Optional[str] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class MapToHubRequest(_message.Message):
    __slots__ = ("integration_type", "entity_type", "vendor_records", "config_id", "options")
    INTEGRATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    VENDOR_RECORDS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    integration_type: str
    entity_type: _common_pb2.EntityType
    vendor_records: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    config_id: str
    options: _registry_pb2.VendorOptions
    def __init__(self, integration_type: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., vendor_records: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ..., config_id: _Optional[str] = ..., options: _Optional[_Union[_registry_pb2.VendorOptions, _Mapping]] = ...) -> None: ...

class HubMappingResult(_message.Message):
    __slots__ = ("resource_json", "errors", "external_id", "modified_time")
    RESOURCE_JSON_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_TIME_FIELD_NUMBER: _ClassVar[int]
    resource_json: str
    errors: _containers.RepeatedCompositeFieldContainer[FieldError]
    external_id: str
    modified_time: _timestamp_pb2.Timestamp
    def __init__(self, resource_json: _Optional[str] = ..., errors: _Optional[_Iterable[_Union[FieldError, _Mapping]]] = ..., external_id: _Optional[str] = ..., modified_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MapToHubResponse(_message.Message):
    __slots__ = ("results", "mapping_version")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MAPPING_VERSION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[HubMappingResult]
    mapping_version: int
    def __init__(self, results: _Optional[_Iterable[_Union[HubMappingResult, _Mapping]]] = ..., mapping_version: _Optional[int] = ...) -> None: ...

class MapToVendorRequest(_message.Message):
    __slots__ = ("integration_type", "entity_type", "resource_jsons", "config_id", "options")
    INTEGRATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_JSONS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    integration_type: str
    entity_type: _common_pb2.EntityType
    resource_jsons: _containers.RepeatedScalarFieldContainer[str]
    config_id: str
    options: _registry_pb2.VendorOptions
    def __init__(self, integration_type: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., resource_jsons: _Optional[_Iterable[str]] = ..., config_id: _Optional[str] = ..., options: _Optional[_Union[_registry_pb2.VendorOptions, _Mapping]] = ...) -> None: ...

class VendorMappingResult(_message.Message):
    __slots__ = ("vendor_record", "errors", "withheld_fields", "withheld", "disclosed_fields")
    VENDOR_RECORD_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_FIELDS_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_FIELD_NUMBER: _ClassVar[int]
    DISCLOSED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    vendor_record: _struct_pb2.Struct
    errors: _containers.RepeatedCompositeFieldContainer[FieldError]
    withheld_fields: _containers.RepeatedScalarFieldContainer[str]
    withheld: bool
    disclosed_fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, vendor_record: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., errors: _Optional[_Iterable[_Union[FieldError, _Mapping]]] = ..., withheld_fields: _Optional[_Iterable[str]] = ..., withheld: _Optional[bool] = ..., disclosed_fields: _Optional[_Iterable[str]] = ...) -> None: ...

class MapToVendorResponse(_message.Message):
    __slots__ = ("results", "mapping_version")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MAPPING_VERSION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[VendorMappingResult]
    mapping_version: int
    def __init__(self, results: _Optional[_Iterable[_Union[VendorMappingResult, _Mapping]]] = ..., mapping_version: _Optional[int] = ...) -> None: ...

class Transform(_message.Message):
    __slots__ = ("name", "params")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    name: str
    params: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class FieldMapping(_message.Message):
    __slots__ = ("entity_type", "hub_field", "vendor_field", "transform", "direction", "source")
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    HUB_FIELD_FIELD_NUMBER: _ClassVar[int]
    VENDOR_FIELD_FIELD_NUMBER: _ClassVar[int]
    TRANSFORM_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    entity_type: _common_pb2.EntityType
    hub_field: str
    vendor_field: str
    transform: Transform
    direction: MappingDirection
    source: MappingSource
    def __init__(self, entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., hub_field: _Optional[str] = ..., vendor_field: _Optional[str] = ..., transform: _Optional[_Union[Transform, _Mapping]] = ..., direction: _Optional[_Union[MappingDirection, str]] = ..., source: _Optional[_Union[MappingSource, str]] = ...) -> None: ...

class ListFieldMappingsRequest(_message.Message):
    __slots__ = ("config_id", "integration_type", "entity_type", "page_size", "page_token")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    INTEGRATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    integration_type: str
    entity_type: _common_pb2.EntityType
    page_size: int
    page_token: str
    def __init__(self, config_id: _Optional[str] = ..., integration_type: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListFieldMappingsResponse(_message.Message):
    __slots__ = ("field_mappings", "next_page_token", "mapping_version")
    FIELD_MAPPINGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MAPPING_VERSION_FIELD_NUMBER: _ClassVar[int]
    field_mappings: _containers.RepeatedCompositeFieldContainer[FieldMapping]
    next_page_token: str
    mapping_version: int
    def __init__(self, field_mappings: _Optional[_Iterable[_Union[FieldMapping, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., mapping_version: _Optional[int] = ...) -> None: ...

class ReplaceFieldMappingsRequest(_message.Message):
    __slots__ = ("config_id", "integration_type", "entity_type", "overrides", "expected_version")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    INTEGRATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    integration_type: str
    entity_type: _common_pb2.EntityType
    overrides: _containers.RepeatedCompositeFieldContainer[FieldMapping]
    expected_version: int
    def __init__(self, config_id: _Optional[str] = ..., integration_type: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., overrides: _Optional[_Iterable[_Union[FieldMapping, _Mapping]]] = ..., expected_version: _Optional[int] = ...) -> None: ...

class ReplaceFieldMappingsResponse(_message.Message):
    __slots__ = ("field_mappings", "mapping_version")
    FIELD_MAPPINGS_FIELD_NUMBER: _ClassVar[int]
    MAPPING_VERSION_FIELD_NUMBER: _ClassVar[int]
    field_mappings: _containers.RepeatedCompositeFieldContainer[FieldMapping]
    mapping_version: int
    def __init__(self, field_mappings: _Optional[_Iterable[_Union[FieldMapping, _Mapping]]] = ..., mapping_version: _Optional[int] = ...) -> None: ...

class DeleteFieldMappingRequest(_message.Message):
    __slots__ = ("config_id", "integration_type", "entity_type", "hub_field")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    INTEGRATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    HUB_FIELD_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    integration_type: str
    entity_type: _common_pb2.EntityType
    hub_field: str
    def __init__(self, config_id: _Optional[str] = ..., integration_type: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., hub_field: _Optional[str] = ...) -> None: ...

class DeleteFieldMappingResponse(_message.Message):
    __slots__ = ("mapping_version",)
    MAPPING_VERSION_FIELD_NUMBER: _ClassVar[int]
    mapping_version: int
    def __init__(self, mapping_version: _Optional[int] = ...) -> None: ...

class PreviewMappingRequest(_message.Message):
    __slots__ = ("config_id", "integration_type", "entity_type", "direction", "vendor_record", "resource_json")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    INTEGRATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    VENDOR_RECORD_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_JSON_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    integration_type: str
    entity_type: _common_pb2.EntityType
    direction: MappingDirection
    vendor_record: _struct_pb2.Struct
    resource_json: str
    def __init__(self, config_id: _Optional[str] = ..., integration_type: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., direction: _Optional[_Union[MappingDirection, str]] = ..., vendor_record: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., resource_json: _Optional[str] = ...) -> None: ...

class PreviewMappingResponse(_message.Message):
    __slots__ = ("resource_json", "vendor_record", "errors", "mapping_version")
    RESOURCE_JSON_FIELD_NUMBER: _ClassVar[int]
    VENDOR_RECORD_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    MAPPING_VERSION_FIELD_NUMBER: _ClassVar[int]
    resource_json: str
    vendor_record: _struct_pb2.Struct
    errors: _containers.RepeatedCompositeFieldContainer[FieldError]
    mapping_version: int
    def __init__(self, resource_json: _Optional[str] = ..., vendor_record: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., errors: _Optional[_Iterable[_Union[FieldError, _Mapping]]] = ..., mapping_version: _Optional[int] = ...) -> None: ...
