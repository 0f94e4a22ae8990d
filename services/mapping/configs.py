"""Whose config is this: the mapping service asks the registry (GetIntegrationConfig) before it
stores, lists, previews or applies a config's overrides, so a direct gRPC caller cannot file
overrides under another practice's config or under the wrong vendor.

A config never changes practice or vendor, and the registry deletes none, so an answer is kept for
the life of the process: one registry call per config, not one per batch. Unknown configs are
asked again each time (they may be created meanwhile). A config's vendor options do change: they
are read each time they are asked for (``options``; the field-mapping RPCs only), and so is what
the config may disclose (``disclosure_policy``: its field allow-list, its vendor's baa_required and
the practice's BAA date), once per MapToVendor batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import json_format

from libs.errors import InvalidArgument, NotFound
from libs.grpc_client import call
from libs.identity import current_caller
from libs.minimum_necessary import Policy, config_policy
from libs.protos.concord.registry.v1 import registry_pb2 as pb
from libs.protos.concord.registry.v1 import registry_pb2_grpc


@dataclass(frozen=True)
class ConfigRef:
    config_id: str
    practice_id: str
    integration_type: str


class ConfigDirectory:
    def __init__(self, registry: registry_pb2_grpc.RegistryServiceStub) -> None:
        self._registry = registry
        self._known: dict[str, ConfigRef] = {}

    async def check(self, config_id: str, integration_type: str) -> ConfigRef:
        """The config, when it exists, belongs to the caller's practice (a caller that names one)
        and is of ``integration_type``. NotFound CONFIG_NOT_FOUND otherwise (another practice's
        config is not told apart from a missing one), InvalidArgument INTEGRATION_TYPE_MISMATCH
        for the wrong vendor."""
        ref = self._known.get(config_id)
        if ref is None:
            try:
                config = (
                    await call(self._registry.GetIntegrationConfig, pb.GetIntegrationConfigRequest(config_id=config_id))
                ).config
            except NotFound:  # missing, or another practice's (the registry does not tell them apart)
                raise NotFound("integration config not found", reason="CONFIG_NOT_FOUND") from None
            ref = self._known[config_id] = ConfigRef(config.config_id, config.practice_id, config.integration_type)
        caller = current_caller()
        if caller.practice_id and caller.practice_id != ref.practice_id:
            raise NotFound("integration config not found", reason="CONFIG_NOT_FOUND")
        if ref.integration_type != integration_type:
            raise InvalidArgument(
                "integration_type is not the config's integration type",
                field="integration_type",
                reason="INTEGRATION_TYPE_MISMATCH",
            )
        return ref

    async def options(self, config_id: str) -> dict:
        """The config's VendorOptions as JSON (proto field names), as they are now."""
        response = await call(self._registry.GetIntegrationConfig, pb.GetIntegrationConfigRequest(config_id=config_id))
        return json_format.MessageToDict(response.config.options, preserving_proto_field_name=True)

    async def disclosure_policy(self, config_id: str) -> Policy:
        """What the config may send its vendor now (libs/minimum_necessary.py)."""
        return await config_policy(self._registry, config_id)
