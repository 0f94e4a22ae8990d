"""The gRPC server factory every service uses: health, reflection, OpenTelemetry, identity and
the one mapping from domain errors to gRPC status."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from libs import service_auth, tls
from libs.confinement import confine_request, confine_response
from libs.errors import ERROR_DOMAIN, ConcordError
from libs.identity import Caller, reset_caller, set_caller

log = logging.getLogger("concord.grpc")


@dataclass(frozen=True)
class ServiceBinding:
    """One servicer and how to add it: ``add`` is the generated ``add_XServicer_to_server``."""

    name: str
    add: Callable[[Any, grpc.aio.Server], None]
    servicer: Any


def status_for(error: ConcordError) -> status_pb2.Status:
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata)
    details = [_pack(info)]
    if error.field:
        violation = error_details_pb2.BadRequest.FieldViolation(field=error.field, description=error.message)
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[violation])))
    return status_pb2.Status(code=error.code.value[0], message=error.message, details=details)


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


# Health checks and reflection answer without identity (load balancers, grpcurl); nothing else does.
_PUBLIC = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _identity(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == service_auth.METADATA_KEY:
            return value if isinstance(value, str) else value.decode()
    return None


class _ErrorAndIdentityInterceptor(grpc.aio.ServerInterceptor):
    """Binds the caller its signed identity names (refusing a call without one) and turns domain
    errors into rich statuses."""

    def __init__(self) -> None:
        # Method -> (its handler, that handler wrapped): wrapped once per method, not per call.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        inner = handler.unary_unary

        public = method.startswith(_PUBLIC)

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                caller = Caller() if public else service_auth.caller_from(_identity(context))
            except ConcordError as error:
                await context.abort_with_status(rpc_status.to_status(status_for(error)))
            token = set_caller(caller)
            try:
                confine_request(caller, request)
                response = await inner(request, context)
                confine_response(caller, response)
                return response
            except ConcordError as error:
                await context.abort_with_status(rpc_status.to_status(status_for(error)))
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                # The exception text may quote record contents: log its type and place only.
                tb = exc.__traceback__
                while tb and tb.tb_next:
                    tb = tb.tb_next
                where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
                log.error("unhandled %s in %s at %s", type(exc).__name__, method, where)
                status = status_pb2.Status(
                    code=code_pb2.INTERNAL,
                    message="internal error",
                    details=[_pack(error_details_pb2.ErrorInfo(reason="INTERNAL", domain=ERROR_DOMAIN))],
                )
                await context.abort_with_status(rpc_status.to_status(status))
            finally:
                reset_caller(token)

        wrapped = grpc.unary_unary_rpc_method_handler(
            unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._wrapped[method] = (handler, wrapped)
        return wrapped


async def create_server(
    address: str, bindings: Sequence[ServiceBinding]
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Builds and starts a server on ``address`` ("127.0.0.1:0" picks a free port)."""
    server = grpc.aio.server(interceptors=[aio_server_interceptor(), _ErrorAndIdentityInterceptor()])
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for binding in bindings:
        binding.add(binding.servicer, server)
    names = [b.name for b in bindings]
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    material = tls.installed()
    if material is not None:  # mutual TLS: a client without a certificate from the CA is not served
        port = server.add_secure_port(address, material.server_credentials())
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"could not bind {address}")
    await server.start()
    for name in [*names, ""]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer
