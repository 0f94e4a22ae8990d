"""Connection domain -> protobuf, pure functions."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2

from libs.protos.concord.connection.v1 import connection_pb2 as pb
from services.connection.domain import StoredConnection


def ts(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def connection_to_proto(connection: StoredConnection) -> pb.Connection:
    return pb.Connection(
        config_id=connection.config_id,
        practice_id=connection.practice_id,
        integration_type=connection.integration_type,
        status=pb.ConnectionStatus.Value(f"CONNECTION_STATUS_{connection.status.value}"),
        external_account_id=connection.external_account_id,
        scopes=connection.scopes,
        access_token_expire_time=ts(connection.expires_at),
        connect_time=ts(connection.connected_at),
        last_refresh_time=ts(connection.last_refresh_at),
    )
