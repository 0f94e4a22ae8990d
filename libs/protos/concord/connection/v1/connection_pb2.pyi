import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConnectionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONNECTION_STATUS_UNSPECIFIED: _ClassVar[ConnectionStatus]
    CONNECTION_STATUS_PENDING: _ClassVar[ConnectionStatus]
    CONNECTION_STATUS_CONNECTED: _ClassVar[ConnectionStatus]
    CONNECTION_STATUS_EXPIRED: _ClassVar[ConnectionStatus]
    CONNECTION_STATUS_DISCONNECTED: _ClassVar[ConnectionStatus]
CONNECTION_STATUS_UNSPECIFIED: ConnectionStatus
CONNECTION_STATUS_PENDING: ConnectionStatus
CONNECTION_STATUS_CONNECTED: ConnectionStatus
CONNECTION_STATUS_EXPIRED: ConnectionStatus
CONNECTION_STATUS_DISCONNECTED: ConnectionStatus

class Connection(_message.Message):
    __slots__ = ("config_id", "practice_id", "integration_type", "status", "external_account_id", "scopes", "access_token_expire_time", "connect_time", "last_refresh_time")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    INTEGRATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    ACCESS_TOKEN_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    CONNECT_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_REFRESH_TIME_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    practice_id: str
    integration_type: str
    status: ConnectionStatus
    external_account_id: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    access_token_expire_time: _timestamp_pb2.Timestamp
    connect_time: _timestamp_pb2.Timestamp
    last_refresh_time: _timestamp_pb2.Timestamp
    def __init__(self, config_id: _Optional[str] = ..., practice_id: _Optional[str] = ..., integration_type: _Optional[str] = ..., status: _Optional[_Union[ConnectionStatus, str]] = ..., external_account_id: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ..., access_token_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., connect_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_refresh_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StartAuthorizationRequest(_message.Message):
    __slots__ = ("config_id", "redirect_uri")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_URI_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    redirect_uri: str
    def __init__(self, config_id: _Optional[str] = ..., redirect_uri: _Optional[str] = ...) -> None: ...

class StartAuthorizationResponse(_message.Message):
    __slots__ = ("authorization_url", "state")
    AUTHORIZATION_URL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    authorization_url: str
    state: str
    def __init__(self, authorization_url: _Optional[str] = ..., state: _Optional[str] = ...) -> None: ...

class CompleteAuthorizationRequest(_message.Message):
    __slots__ = ("state", "code")
    STATE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    state: str
    code: str
    def __init__(self, state: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class CompleteAuthorizationResponse(_message.Message):
    __slots__ = ("connection",)
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    connection: Connection
    def __init__(self, connection: _Optional[_Union[Connection, _Mapping]] = ...) -> None: ...

class GetConnectionRequest(_message.Message):
    __slots__ = ("config_id",)
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    def __init__(self, config_id: _Optional[str] = ...) -> None: ...

class GetConnectionResponse(_message.Message):
    __slots__ = ("connection",)
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    connection: Connection
    def __init__(self, connection: _Optional[_Union[Connection, _Mapping]] = ...) -> None: ...

class ShredPracticeRequest(_message.Message):
    __slots__ = ("practice_id",)
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    practice_id: str
    def __init__(self, practice_id: _Optional[str] = ...) -> None: ...

class ShredPracticeResponse(_message.Message):
    __slots__ = ("keys_destroyed",)
    KEYS_DESTROYED_FIELD_NUMBER: _ClassVar[int]
    keys_destroyed: int
    def __init__(self, keys_destroyed: _Optional[int] = ...) -> None: ...

class FindConnectionsRequest(_message.Message):
    __slots__ = ("integration_type", "external_account_id")
    INTEGRATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    integration_type: str
    external_account_id: str
    def __init__(self, integration_type: _Optional[str] = ..., external_account_id: _Optional[str] = ...) -> None: ...

class FindConnectionsResponse(_message.Message):
    __slots__ = ("connections",)
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    connections: _containers.RepeatedCompositeFieldContainer[Connection]
    def __init__(self, connections: _Optional[_Iterable[_Union[Connection, _Mapping]]] = ...) -> None: ...

class GetAccessTokenRequest(_message.Message):
    __slots__ = ("config_id", "force_refresh")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_REFRESH_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    force_refresh: bool
    def __init__(self, config_id: _Optional[str] = ..., force_refresh: _Optional[bool] = ...) -> None: ...

class GetAccessTokenResponse(_message.Message):
    __slots__ = ("access_token", "expire_time", "external_account_id", "api_base_url", "token_type")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    API_BASE_URL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_TYPE_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    expire_time: _timestamp_pb2.Timestamp
    external_account_id: str
    api_base_url: str
    token_type: str
    def __init__(self, access_token: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., external_account_id: _Optional[str] = ..., api_base_url: _Optional[str] = ..., token_type: _Optional[str] = ...) -> None: ...

class PasswordGrant(_message.Message):
    __slots__ = ("username", "password", "security_token")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    SECURITY_TOKEN_FIELD_NUMBER: _ClassVar[int]
    username: str
    password: str
    security_token: str
    def __init__(self, username: _Optional[str] = ..., password: _Optional[str] = ..., security_token: _Optional[str] = ...) -> None: ...

class JwtBearerGrant(_message.Message):
    __slots__ = ("username", "private_key_pem")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    username: str
    private_key_pem: str
    def __init__(self, username: _Optional[str] = ..., private_key_pem: _Optional[str] = ...) -> None: ...

class ApiKeyCredential(_message.Message):
    __slots__ = ("api_key",)
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    api_key: str
    def __init__(self, api_key: _Optional[str] = ...) -> None: ...

class ClientAssertionGrant(_message.Message):
    __slots__ = ("private_key_pem", "key_id", "algorithm", "scopes")
    PRIVATE_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    private_key_pem: str
    key_id: str
    algorithm: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, private_key_pem: _Optional[str] = ..., key_id: _Optional[str] = ..., algorithm: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ...) -> None: ...

class ConnectWithCredentialsRequest(_message.Message):
    __slots__ = ("config_id", "password", "jwt_bearer", "api_key", "client_assertion", "external_account_id")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    JWT_BEARER_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ASSERTION_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    password: PasswordGrant
    jwt_bearer: JwtBearerGrant
    api_key: ApiKeyCredential
    client_assertion: ClientAssertionGrant
    external_account_id: str
    def __init__(self, config_id: _Optional[str] = ..., password: _Optional[_Union[PasswordGrant, _Mapping]] = ..., jwt_bearer: _Optional[_Union[JwtBearerGrant, _Mapping]] = ..., api_key: _Optional[_Union[ApiKeyCredential, _Mapping]] = ..., client_assertion: _Optional[_Union[ClientAssertionGrant, _Mapping]] = ..., external_account_id: _Optional[str] = ...) -> None: ...

class ConnectWithCredentialsResponse(_message.Message):
    __slots__ = ("connection",)
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    connection: Connection
    def __init__(self, connection: _Optional[_Union[Connection, _Mapping]] = ...) -> None: ...

class DisconnectRequest(_message.Message):
    __slots__ = ("config_id",)
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    def __init__(self, config_id: _Optional[str] = ...) -> None: ...

class DisconnectResponse(_message.Message):
    __slots__ = ("connection", "revoked_at_vendor")
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_VENDOR_FIELD_NUMBER: _ClassVar[int]
    connection: Connection
    revoked_at_vendor: bool
    def __init__(self, connection: _Optional[_Union[Connection, _Mapping]] = ..., revoked_at_vendor: _Optional[bool] = ...) -> None: ...

class SetOAuthClientRequest(_message.Message):
    __slots__ = ("integration_type", "client_id", "client_secret")
    INTEGRATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_FIELD_NUMBER: _ClassVar[int]
    integration_type: str
    client_id: str
    client_secret: str
    def __init__(self, integration_type: _Optional[str] = ..., client_id: _Optional[str] = ..., client_secret: _Optional[str] = ...) -> None: ...

class SetOAuthClientResponse(_message.Message):
    __slots__ = ("integration_type", "client_id")
    INTEGRATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    integration_type: str
    client_id: str
    def __init__(self, integration_type: _Optional[str] = ..., client_id: _Optional[str] = ...) -> None: ...

class InboundKey(_message.Message):
    __slots__ = ("key_id", "config_id", "practice_id", "label", "create_time", "last_use_time")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_USE_TIME_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    config_id: str
    practice_id: str
    label: str
    create_time: _timestamp_pb2.Timestamp
    last_use_time: _timestamp_pb2.Timestamp
    def __init__(self, key_id: _Optional[str] = ..., config_id: _Optional[str] = ..., practice_id: _Optional[str] = ..., label: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_use_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateInboundKeyRequest(_message.Message):
    __slots__ = ("config_id", "label")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    label: str
    def __init__(self, config_id: _Optional[str] = ..., label: _Optional[str] = ...) -> None: ...

class CreateInboundKeyResponse(_message.Message):
    __slots__ = ("key", "api_key")
    KEY_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    key: InboundKey
    api_key: str
    def __init__(self, key: _Optional[_Union[InboundKey, _Mapping]] = ..., api_key: _Optional[str] = ...) -> None: ...

class RevokeInboundKeyRequest(_message.Message):
    __slots__ = ("config_id", "key_id")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    key_id: str
    def __init__(self, config_id: _Optional[str] = ..., key_id: _Optional[str] = ...) -> None: ...

class RevokeInboundKeyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AuthenticateInboundKeyRequest(_message.Message):
    __slots__ = ("api_key",)
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    api_key: str
    def __init__(self, api_key: _Optional[str] = ...) -> None: ...

class AuthenticateInboundKeyResponse(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: InboundKey
    def __init__(self, key: _Optional[_Union[InboundKey, _Mapping]] = ...) -> None: ...

class HookSubscription(_message.Message):
    __slots__ = ("subscription_id", "config_id", "event", "target_url", "signing_secret", "create_time")
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    TARGET_URL_FIELD_NUMBER: _ClassVar[int]
    SIGNING_SECRET_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    subscription_id: str
    config_id: str
    event: str
    target_url: str
    signing_secret: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, subscription_id: _Optional[str] = ..., config_id: _Optional[str] = ..., event: _Optional[str] = ..., target_url: _Optional[str] = ..., signing_secret: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateHookSubscriptionRequest(_message.Message):
    __slots__ = ("config_id", "event", "target_url")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    TARGET_URL_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    event: str
    target_url: str
    def __init__(self, config_id: _Optional[str] = ..., event: _Optional[str] = ..., target_url: _Optional[str] = ...) -> None: ...

class CreateHookSubscriptionResponse(_message.Message):
    __slots__ = ("subscription",)
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: HookSubscription
    def __init__(self, subscription: _Optional[_Union[HookSubscription, _Mapping]] = ...) -> None: ...

class DeleteHookSubscriptionRequest(_message.Message):
    __slots__ = ("config_id", "subscription_id")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    subscription_id: str
    def __init__(self, config_id: _Optional[str] = ..., subscription_id: _Optional[str] = ...) -> None: ...

class DeleteHookSubscriptionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListHookSubscriptionsRequest(_message.Message):
    __slots__ = ("config_id", "event", "include_secrets", "page_size", "page_token")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SECRETS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    event: str
    include_secrets: bool
    page_size: int
    page_token: str
    def __init__(self, config_id: _Optional[str] = ..., event: _Optional[str] = ..., include_secrets: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListHookSubscriptionsResponse(_message.Message):
    __slots__ = ("subscriptions", "next_page_token")
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subscriptions: _containers.RepeatedCompositeFieldContainer[HookSubscription]
    next_page_token: str
    def __init__(self, subscriptions: _Optional[_Iterable[_Union[HookSubscription, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class IssuedOAuthClient(_message.Message):
    __slots__ = ("client_id", "config_id", "practice_id", "redirect_uri", "create_time")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_URI_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    config_id: str
    practice_id: str
    redirect_uri: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, client_id: _Optional[str] = ..., config_id: _Optional[str] = ..., practice_id: _Optional[str] = ..., redirect_uri: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateIssuedOAuthClientRequest(_message.Message):
    __slots__ = ("config_id", "redirect_uri")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_URI_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    redirect_uri: str
    def __init__(self, config_id: _Optional[str] = ..., redirect_uri: _Optional[str] = ...) -> None: ...

class CreateIssuedOAuthClientResponse(_message.Message):
    __slots__ = ("client", "client_secret")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_FIELD_NUMBER: _ClassVar[int]
    client: IssuedOAuthClient
    client_secret: str
    def __init__(self, client: _Optional[_Union[IssuedOAuthClient, _Mapping]] = ..., client_secret: _Optional[str] = ...) -> None: ...

class RevokeIssuedOAuthClientRequest(_message.Message):
    __slots__ = ("config_id", "client_id")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    client_id: str
    def __init__(self, config_id: _Optional[str] = ..., client_id: _Optional[str] = ...) -> None: ...

class RevokeIssuedOAuthClientResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateOAuthConsentTicketRequest(_message.Message):
    __slots__ = ("config_id", "client_id")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    client_id: str
    def __init__(self, config_id: _Optional[str] = ..., client_id: _Optional[str] = ...) -> None: ...

class CreateOAuthConsentTicketResponse(_message.Message):
    __slots__ = ("ticket",)
    TICKET_FIELD_NUMBER: _ClassVar[int]
    ticket: str
    def __init__(self, ticket: _Optional[str] = ...) -> None: ...

class AuthorizeIssuedOAuthRequest(_message.Message):
    __slots__ = ("ticket", "client_id", "redirect_uri", "code_challenge", "code_challenge_method")
    TICKET_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_URI_FIELD_NUMBER: _ClassVar[int]
    CODE_CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    CODE_CHALLENGE_METHOD_FIELD_NUMBER: _ClassVar[int]
    ticket: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    code_challenge_method: str
    def __init__(self, ticket: _Optional[str] = ..., client_id: _Optional[str] = ..., redirect_uri: _Optional[str] = ..., code_challenge: _Optional[str] = ..., code_challenge_method: _Optional[str] = ...) -> None: ...

class AuthorizeIssuedOAuthResponse(_message.Message):
    __slots__ = ("code",)
    CODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    def __init__(self, code: _Optional[str] = ...) -> None: ...

class ExchangeIssuedOAuthTokenRequest(_message.Message):
    __slots__ = ("grant_type", "client_id", "client_secret", "code", "redirect_uri", "code_verifier", "refresh_token")
    GRANT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_URI_FIELD_NUMBER: _ClassVar[int]
    CODE_VERIFIER_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    grant_type: str
    client_id: str
    client_secret: str
    code: str
    redirect_uri: str
    code_verifier: str
    refresh_token: str
    def __init__(self, grant_type: _Optional[str] = ..., client_id: _Optional[str] = ..., client_secret: _Optional[str] = ..., code: _Optional[str] = ..., redirect_uri: _Optional[str] = ..., code_verifier: _Optional[str] = ..., refresh_token: _Optional[str] = ...) -> None: ...

class ExchangeIssuedOAuthTokenResponse(_message.Message):
    __slots__ = ("access_token", "refresh_token", "expires_in")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    refresh_token: str
    expires_in: int
    def __init__(self, access_token: _Optional[str] = ..., refresh_token: _Optional[str] = ..., expires_in: _Optional[int] = ...) -> None: ...

class AuthenticateIssuedAccessTokenRequest(_message.Message):
    __slots__ = ("access_token",)
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    def __init__(self, access_token: _Optional[str] = ...) -> None: ...

class AuthenticateIssuedAccessTokenResponse(_message.Message):
    __slots__ = ("client_id", "config_id", "practice_id")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    config_id: str
    practice_id: str
    def __init__(self, client_id: _Optional[str] = ..., config_id: _Optional[str] = ..., practice_id: _Optional[str] = ...) -> None: ...

class ListInboundKeysRequest(_message.Message):
    __slots__ = ("config_id", "page_size", "page_token")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    page_size: int
    page_token: str
    def __init__(self, config_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListInboundKeysResponse(_message.Message):
    __slots__ = ("keys", "next_page_token")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[InboundKey]
    next_page_token: str
    def __init__(self, keys: _Optional[_Iterable[_Union[InboundKey, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class IssuedOAuthGrant(_message.Message):
    __slots__ = ("grant_id", "client_id", "config_id", "practice_id", "scopes", "create_time", "last_use_time", "last_refresh_time", "expire_time")
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    PRACTICE_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_USE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_REFRESH_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    grant_id: str
    client_id: str
    config_id: str
    practice_id: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    last_use_time: _timestamp_pb2.Timestamp
    last_refresh_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, grant_id: _Optional[str] = ..., client_id: _Optional[str] = ..., config_id: _Optional[str] = ..., practice_id: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_use_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_refresh_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListIssuedOAuthGrantsRequest(_message.Message):
    __slots__ = ("config_id", "page_size", "page_token")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    page_size: int
    page_token: str
    def __init__(self, config_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListIssuedOAuthGrantsResponse(_message.Message):
    __slots__ = ("grants", "next_page_token")
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    grants: _containers.RepeatedCompositeFieldContainer[IssuedOAuthGrant]
    next_page_token: str
    def __init__(self, grants: _Optional[_Iterable[_Union[IssuedOAuthGrant, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RevokeIssuedOAuthGrantRequest(_message.Message):
    __slots__ = ("config_id", "grant_id")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    grant_id: str
    def __init__(self, config_id: _Optional[str] = ..., grant_id: _Optional[str] = ...) -> None: ...

class RevokeIssuedOAuthGrantResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
