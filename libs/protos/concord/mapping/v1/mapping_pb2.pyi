from libs.protos.concord.common.v1 import common_pb2 as _common_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

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
    __slots__ = ("integration_type", "entity_type", "vendor_records")
    INTEGRATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    VENDOR_RECORDS_FIELD_NUMBER: _ClassVar[int]
    integration_type: str
    entity_type: _common_pb2.EntityType
    vendor_records: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    def __init__(self, integration_type: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., vendor_records: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ...) -> None: ...

class HubMappingResult(_message.Message):
    __slots__ = ("resource_json", "errors", "external_id")
    RESOURCE_JSON_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    resource_json: str
    errors: _containers.RepeatedCompositeFieldContainer[FieldError]
    external_id: str
    def __init__(self, resource_json: _Optional[str] = ..., errors: _Optional[_Iterable[_Union[FieldError, _Mapping]]] = ..., external_id: _Optional[str] = ...) -> None: ...

class MapToHubResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[HubMappingResult]
    def __init__(self, results: _Optional[_Iterable[_Union[HubMappingResult, _Mapping]]] = ...) -> None: ...

class MapToVendorRequest(_message.Message):
    __slots__ = ("integration_type", "entity_type", "resource_jsons")
    INTEGRATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_JSONS_FIELD_NUMBER: _ClassVar[int]
    integration_type: str
    entity_type: _common_pb2.EntityType
    resource_jsons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, integration_type: _Optional[str] = ..., entity_type: _Optional[_Union[_common_pb2.EntityType, str]] = ..., resource_jsons: _Optional[_Iterable[str]] = ...) -> None: ...

class VendorMappingResult(_message.Message):
    __slots__ = ("vendor_record", "errors")
    VENDOR_RECORD_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    vendor_record: _struct_pb2.Struct
    errors: _containers.RepeatedCompositeFieldContainer[FieldError]
    def __init__(self, vendor_record: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., errors: _Optional[_Iterable[_Union[FieldError, _Mapping]]] = ...) -> None: ...

class MapToVendorResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[VendorMappingResult]
    def __init__(self, results: _Optional[_Iterable[_Union[VendorMappingResult, _Mapping]]] = ...) -> None: ...
