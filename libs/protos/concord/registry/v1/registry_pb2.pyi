import datetime

from libs.protos.concord.common.v1 import common_pb2 as _common_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuthKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUTH_KIND_UNSPECIFIED: _ClassVar[AuthKind]
    AUTH_KIND_OAUTH2_AUTHORIZATION_CODE: _ClassVar[AuthKind]
    AUTH_KIND_API_KEY: _ClassVar[AuthKind]
    AUTH_KIND_OAUTH2_CLIENT_CREDENTIALS: _ClassVar[AuthKind]
    AUTH_KIND_OAUTH2_PASSWORD: _ClassVar[AuthKind]
    AUTH_KIND_OAUTH2_JWT_BEARER: _ClassVar[AuthKind]
    AUTH_KIND_SMART_BACKEND_SERVICES: _ClassVar[AuthKind]

class SalesforceAppointmentObject(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SALESFORCE_APPOINTMENT_OBJECT_UNSPECIFIED: _ClassVar[SalesforceAppointmentObject]
    SALESFORCE_APPOINTMENT_OBJECT_SERVICE_APPOINTMENT: _ClassVar[SalesforceAppointmentObject]
    SALESFORCE_APPOINTMENT_OBJECT_EVENT: _ClassVar[SalesforceAppointmentObject]
AUTH_KIND_UNSPECIFIED: AuthKind
AUTH_KIND_OAUTH2_AUTHORIZATION_CODE: AuthKind
AUTH_KIND_API_KEY: AuthKind
AUTH_KIND_OAUTH2_CLIENT_CREDENTIALS: AuthKind
AUTH_KIND_OAUTH2_PASSWORD: AuthKind
AUTH_KIND_OAUTH2_JWT_BEARER: AuthKind
AUTH_KIND_SMART_BACKEND_SERVICES: AuthKind
SALESFORCE_APPOINTMENT_OBJECT_UNSPECIFIED: SalesforceAppointmentObject
SALESFORCE_APPOINTMENT_OBJECT_SERVICE_APPOINTMENT: SalesforceAppointmentObject
SALESFORCE_APPOINTMENT_OBJECT_EVENT: SalesforceAppointmentObject

class Practice(_message.Message):
    __slots__ = ("practice_id", "name", "create_time", "business_associate_agreements")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_ASSOCIATE_AGREEMENTS_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    name: str
    create_time: _timestamp_pb2.Timestamp
    business_associate_agreements: _containers.RepeatedCompositeFieldContainer[BusinessAssociateAgreement]
    def __init__(self, practice_id: _Optional[str] = ..., name: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., business_associate_agreements: _Optional[_Iterable[_Union[BusinessAssociateAgreement, _Mapping]]] = ...) -> None: ...

class BusinessAssociateAgreement(_message.Message):
    __slots__ = ("integration_type", "effective_date", "record_time", "recorded_by")
    INTEGRATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_DATE_FIELD_NUMBER: _ClassVar[int]
    RECORD_TIME_FIELD_NUMBER: _ClassVar[int]
    RECORDED_BY_FIELD_NUMBER: _ClassVar[int]
    integration_type: str
    effective_date: str
    record_time: _timestamp_pb2.Timestamp
    recorded_by: str
    def __init__(self, integration_type: _Optional[str] = ..., effective_date: _Optional[str] = ..., record_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recorded_by: _Optional[str] = ...) -> None: ...

class Endpoints(_message.Message):
    __slots__ = ("api_base_url", "authorize_url", "token_url", "revocation_url")
    API_BASE_URL_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZE_URL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_URL_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_URL_FIELD_NUMBER: _ClassVar[int]
    api_base_url: str
    authorize_url: str
    token_url: str
    revocation_url: str
    def __init__(self, api_base_url: _Optional[str] = ..., authorize_url: _Optional[str] = ..., token_url: _Optional[str] = ..., revocation_url: _Optional[str] = ...) -> None: ...

class IntegrationDefinition(_message.Message):
    __slots__ = ("integration_type", "name", "category", "version", "capabilities", "auth_kind", "pkce_supported", "scopes", "endpoints", "baa_required", "extra", "supported_auth_kinds")
    INTEGRATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    AUTH_KIND_FIELD_NUMBER: _ClassVar[int]
    PKCE_SUPPORTED_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    BAA_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    SUPPORTED_AUTH_KINDS_FIELD_NUMBER: _ClassVar[int]
    integration_type: str
    name: str
    category: str
    version: str
    capabilities: _containers.RepeatedScalarFieldContainer[_common_pb2.EntityType]
    auth_kind: AuthKind
    pkce_supported: bool
    scopes: _containers.RepeatedScalarFieldContainer[str]
    endpoints: Endpoints
    baa_required: bool
    extra: _struct_pb2.Struct
    supported_auth_kinds: _containers.RepeatedScalarFieldContainer[AuthKind]
    def __init__(self, integration_type: _Optional[str] = ..., name: _Optional[str] = ..., category: _Optional[str] = ..., version: _Optional[str] = ..., capabilities: _Optional[_Iterable[_Union[_common_pb2.EntityType, str]]] = ..., auth_kind: _Optional[_Union[AuthKind, str]] = ..., pkce_supported: _Optional[bool] = ..., scopes: _Optional[_Iterable[str]] = ..., endpoints: _Optional[_Union[Endpoints, _Mapping]] = ..., baa_required: _Optional[bool] = ..., extra: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., supported_auth_kinds: _Optional[_Iterable[_Union[AuthKind, str]]] = ...) -> None: ...

class IntegrationConfig(_message.Message):
    __slots__ = ("config_id", "practice_id", "integration_type", "sync_direction", "sync_frequency", "conflict_policy", "active", "enabled_entities", "create_time", "update_time", "options", "field_conflict_policies", "field_allow_list", "baa_effective_date")
    class FieldConflictPoliciesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.ConflictPolicy
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.ConflictPolicy, str]] = ...) -> None: ...
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    INTEGRATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    SYNC_DIRECTION_FIELD_NUMBER: _ClassVar[int]
    SYNC_FREQUENCY_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_POLICY_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    ENABLED_ENTITIES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    FIELD_CONFLICT_POLICIES_FIELD_NUMBER: _ClassVar[int]
    FIELD_ALLOW_LIST_FIELD_NUMBER: _ClassVar[int]
    BAA_EFFECTIVE_DATE_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    practice_id: str
    integration_type: str
    sync_direction: _common_pb2.SyncDirection
    sync_frequency: _common_pb2.SyncFrequency
    conflict_policy: _common_pb2.ConflictPolicy
    active: bool
    enabled_entities: _containers.RepeatedScalarFieldContainer[_common_pb2.EntityType]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    options: VendorOptions
    field_conflict_policies: _containers.ScalarMap[str, _common_pb2.ConflictPolicy]
    field_allow_list: _containers.RepeatedScalarFieldContainer[str]
    baa_effective_date: str
    def __init__(self, config_id: _Optional[str] = ..., practice_id: _Optional[str] = ..., integration_type: _Optional[str] = ..., sync_direction: _Optional[_Union[_common_pb2.SyncDirection, str]] = ..., sync_frequency: _Optional[_Union[_common_pb2.SyncFrequency, str]] = ..., conflict_policy: _Optional[_Union[_common_pb2.ConflictPolicy, str]] = ..., active: _Optional[bool] = ..., enabled_entities: _Optional[_Iterable[_Union[_common_pb2.EntityType, str]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., options: _Optional[_Union[VendorOptions, _Mapping]] = ..., field_conflict_policies: _Optional[_Mapping[str, _common_pb2.ConflictPolicy]] = ..., field_allow_list: _Optional[_Iterable[str]] = ..., baa_effective_date: _Optional[str] = ...) -> None: ...

class VendorOptions(_message.Message):
    __slots__ = ("marketing", "booking", "salesforce")
    MARKETING_FIELD_NUMBER: _ClassVar[int]
    BOOKING_FIELD_NUMBER: _ClassVar[int]
    SALESFORCE_FIELD_NUMBER: _ClassVar[int]
    marketing: MarketingOptions
    booking: BookingOptions
    salesforce: SalesforceOptions
    def __init__(self, marketing: _Optional[_Union[MarketingOptions, _Mapping]] = ..., booking: _Optional[_Union[BookingOptions, _Mapping]] = ..., salesforce: _Optional[_Union[SalesforceOptions, _Mapping]] = ...) -> None: ...

class BookingOptions(_message.Message):
    __slots__ = ("center_time_zone",)
    CENTER_TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    center_time_zone: str
    def __init__(self, center_time_zone: _Optional[str] = ...) -> None: ...

class MarketingOptions(_message.Message):
    __slots__ = ("email_campaigns", "sms_campaigns", "appointment_reminders", "reminder_workflow_id", "follow_up_sequences", "follow_up_workflow_id", "lead_scoring", "lead_score_field")
    EMAIL_CAMPAIGNS_FIELD_NUMBER: _ClassVar[int]
    SMS_CAMPAIGNS_FIELD_NUMBER: _ClassVar[int]
    APPOINTMENT_REMINDERS_FIELD_NUMBER: _ClassVar[int]
    REMINDER_WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_UP_SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_UP_WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    LEAD_SCORING_FIELD_NUMBER: _ClassVar[int]
    LEAD_SCORE_FIELD_FIELD_NUMBER: _ClassVar[int]
    email_campaigns: bool
    sms_campaigns: bool
    appointment_reminders: bool
    reminder_workflow_id: str
    follow_up_sequences: bool
    follow_up_workflow_id: str
    lead_scoring: bool
    lead_score_field: str
    def __init__(self, email_campaigns: _Optional[bool] = ..., sms_campaigns: _Optional[bool] = ..., appointment_reminders: _Optional[bool] = ..., reminder_workflow_id: _Optional[str] = ..., follow_up_sequences: _Optional[bool] = ..., follow_up_workflow_id: _Optional[str] = ..., lead_scoring: _Optional[bool] = ..., lead_score_field: _Optional[str] = ...) -> None: ...

class SalesforceOptions(_message.Message):
    __slots__ = ("appointment_object",)
    APPOINTMENT_OBJECT_FIELD_NUMBER: _ClassVar[int]
    appointment_object: SalesforceAppointmentObject
    def __init__(self, appointment_object: _Optional[_Union[SalesforceAppointmentObject, str]] = ...) -> None: ...

class CreatePracticeRequest(_message.Message):
    __slots__ = ("practice_id", "name")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    name: str
    def __init__(self, practice_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class CreatePracticeResponse(_message.Message):
    __slots__ = ("practice",)
    PRACTICE_FIELD_NUMBER: _ClassVar[int]
    practice: Practice
    def __init__(self, practice: _Optional[_Union[Practice, _Mapping]] = ...) -> None: ...

class GetPracticeRequest(_message.Message):
    __slots__ = ("practice_id",)
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    def __init__(self, practice_id: _Optional[str] = ...) -> None: ...

class GetPracticeResponse(_message.Message):
    __slots__ = ("practice",)
    PRACTICE_FIELD_NUMBER: _ClassVar[int]
    practice: Practice
    def __init__(self, practice: _Optional[_Union[Practice, _Mapping]] = ...) -> None: ...

class GetIntegrationDefinitionRequest(_message.Message):
    __slots__ = ("integration_type",)
    INTEGRATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    integration_type: str
    def __init__(self, integration_type: _Optional[str] = ...) -> None: ...

class GetIntegrationDefinitionResponse(_message.Message):
    __slots__ = ("definition",)
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    definition: IntegrationDefinition
    def __init__(self, definition: _Optional[_Union[IntegrationDefinition, _Mapping]] = ...) -> None: ...

class ListIntegrationDefinitionsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListIntegrationDefinitionsResponse(_message.Message):
    __slots__ = ("definitions", "next_page_token")
    DEFINITIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    definitions: _containers.RepeatedCompositeFieldContainer[IntegrationDefinition]
    next_page_token: str
    def __init__(self, definitions: _Optional[_Iterable[_Union[IntegrationDefinition, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpsertIntegrationDefinitionRequest(_message.Message):
    __slots__ = ("definition",)
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    definition: IntegrationDefinition
    def __init__(self, definition: _Optional[_Union[IntegrationDefinition, _Mapping]] = ...) -> None: ...

class UpsertIntegrationDefinitionResponse(_message.Message):
    __slots__ = ("definition",)
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    definition: IntegrationDefinition
    def __init__(self, definition: _Optional[_Union[IntegrationDefinition, _Mapping]] = ...) -> None: ...

class CreateIntegrationConfigRequest(_message.Message):
    __slots__ = ("config",)
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: IntegrationConfig
    def __init__(self, config: _Optional[_Union[IntegrationConfig, _Mapping]] = ...) -> None: ...

class CreateIntegrationConfigResponse(_message.Message):
    __slots__ = ("config",)
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: IntegrationConfig
    def __init__(self, config: _Optional[_Union[IntegrationConfig, _Mapping]] = ...) -> None: ...

class GetIntegrationConfigRequest(_message.Message):
    __slots__ = ("config_id",)
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    def __init__(self, config_id: _Optional[str] = ...) -> None: ...

class GetIntegrationConfigResponse(_message.Message):
    __slots__ = ("config",)
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: IntegrationConfig
    def __init__(self, config: _Optional[_Union[IntegrationConfig, _Mapping]] = ...) -> None: ...

class FindIntegrationConfigRequest(_message.Message):
    __slots__ = ("practice_id", "integration_type")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    INTEGRATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    integration_type: str
    def __init__(self, practice_id: _Optional[str] = ..., integration_type: _Optional[str] = ...) -> None: ...

class FindIntegrationConfigResponse(_message.Message):
    __slots__ = ("config",)
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: IntegrationConfig
    def __init__(self, config: _Optional[_Union[IntegrationConfig, _Mapping]] = ...) -> None: ...

class ListIntegrationConfigsRequest(_message.Message):
    __slots__ = ("practice_id", "page_size", "page_token")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    page_size: int
    page_token: str
    def __init__(self, practice_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListIntegrationConfigsResponse(_message.Message):
    __slots__ = ("configs", "next_page_token")
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    configs: _containers.RepeatedCompositeFieldContainer[IntegrationConfig]
    next_page_token: str
    def __init__(self, configs: _Optional[_Iterable[_Union[IntegrationConfig, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateIntegrationConfigRequest(_message.Message):
    __slots__ = ("config", "update_mask")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    config: IntegrationConfig
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, config: _Optional[_Union[IntegrationConfig, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateIntegrationConfigResponse(_message.Message):
    __slots__ = ("config",)
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: IntegrationConfig
    def __init__(self, config: _Optional[_Union[IntegrationConfig, _Mapping]] = ...) -> None: ...

class RecordBusinessAssociateAgreementRequest(_message.Message):
    __slots__ = ("practice_id", "integration_type", "effective_date")
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    INTEGRATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_DATE_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    integration_type: str
    effective_date: str
    def __init__(self, practice_id: _Optional[str] = ..., integration_type: _Optional[str] = ..., effective_date: _Optional[str] = ...) -> None: ...

class RecordBusinessAssociateAgreementResponse(_message.Message):
    __slots__ = ("agreement",)
    AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    agreement: BusinessAssociateAgreement
    def __init__(self, agreement: _Optional[_Union[BusinessAssociateAgreement, _Mapping]] = ...) -> None: ...
