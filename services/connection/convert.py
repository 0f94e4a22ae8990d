"""Connection domain -> protobuf, pure functions."""

from __future__ import annotations

from libs.proto_convert import timestamp
from libs.protos.concord.connection.v1 import connection_pb2 as pb
from services.connection.domain import StoredConnection


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
