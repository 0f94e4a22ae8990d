"""Connection domain <-> protobuf, pure functions."""

from __future__ import annotations

from libs.errors import InvalidArgument
from libs.proto_convert import timestamp
from libs.protos.concord.connection.v1 import connection_pb2 as pb
from services.connection import domain
from services.connection.domain import Credential, StoredConnection


def credential_from_proto(request: pb.ConnectWithCredentialsRequest) -> Credential:
    """The request's credential, validated; INVALID_ARGUMENT names the field at fault."""
    kind = request.WhichOneof("credential")
    if kind == "password":
        c = request.password
        return domain.password_credential(c.username, c.password, c.security_token)
    if kind == "jwt_bearer":
        return domain.jwt_bearer_credential(request.jwt_bearer.username, request.jwt_bearer.private_key_pem)
    if kind == "api_key":
        return domain.api_key_credential(request.api_key.api_key)
    if kind == "client_assertion":
        c = request.client_assertion
        return domain.client_assertion_credential(c.private_key_pem, c.key_id, c.algorithm, list(c.scopes))
    raise InvalidArgument("credential is required", field="credential", reason="REQUIRED_FIELD_MISSING")


def connection_to_proto(connection: StoredConnection) -> pb.Connection:
    return pb.Connection(
        config_id=connection.config_id,
        practice_id=connection.practice_id,
        integration_type=connection.integration_type,
        status=pb.ConnectionStatus.Value(f"CONNECTION_STATUS_{connection.status.value}"),
        external_account_id=connection.external_account_id,
        scopes=connection.scopes,
        access_token_expire_time=timestamp(connection.expires_at),
        connect_time=timestamp(connection.connected_at),
        last_refresh_time=timestamp(connection.last_refresh_at),
    )
