"""Registry gRPC servicer: protobuf in, use case, protobuf out."""

from __future__ import annotations

from libs.paging import decode_token, next_token, page_size
from libs.proto_convert import required
from libs.protos.concord.registry.v1 import registry_pb2 as pb
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from services.registry import convert
from services.registry.service import RegistryService


class RegistryServicer(registry_pb2_grpc.RegistryServiceServicer):
    def __init__(self, service: RegistryService) -> None:
        self._service = service

    async def CreatePractice(self, request: pb.CreatePracticeRequest, context) -> pb.CreatePracticeResponse:  # noqa: ANN001
        required(request.practice_id, "practice_id")
        practice = await self._service.create_practice(request.practice_id, request.name)
        return pb.CreatePracticeResponse(practice=convert.practice_to_proto(practice))

    async def GetPractice(self, request: pb.GetPracticeRequest, context) -> pb.GetPracticeResponse:  # noqa: ANN001
        practice = await self._service.get_practice(required(request.practice_id, "practice_id"))
        return pb.GetPracticeResponse(practice=convert.practice_to_proto(practice))

    async def GetIntegrationDefinition(self, request, context) -> pb.GetIntegrationDefinitionResponse:  # noqa: ANN001
        document = await self._service.get_definition(required(request.integration_type, "integration_type"))
        return pb.GetIntegrationDefinitionResponse(definition=convert.definition_to_proto(document))

    async def ListIntegrationDefinitions(self, request, context) -> pb.ListIntegrationDefinitionsResponse:  # noqa: ANN001
        limit = page_size(request.page_size)
        documents = await self._service.list_definitions(decode_token(request.page_token), limit)
        return pb.ListIntegrationDefinitionsResponse(
            definitions=[convert.definition_to_proto(d) for d in documents],
            next_page_token=next_token([d["integration_type"] for d in documents], limit),
        )

    async def UpsertIntegrationDefinition(self, request, context) -> pb.UpsertIntegrationDefinitionResponse:  # noqa: ANN001
        document = await self._service.upsert_definition(convert.definition_from_proto(request.definition))
        return pb.UpsertIntegrationDefinitionResponse(definition=convert.definition_to_proto(document))

    async def CreateIntegrationConfig(self, request, context) -> pb.CreateIntegrationConfigResponse:  # noqa: ANN001
        required(request.config.practice_id, "config.practice_id")
        required(request.config.integration_type, "config.integration_type")
        config = await self._service.create_config(convert.config_from_proto(request.config))
        return pb.CreateIntegrationConfigResponse(config=convert.config_to_proto(config))

    async def GetIntegrationConfig(self, request, context) -> pb.GetIntegrationConfigResponse:  # noqa: ANN001
        config = await self._service.get_config(required(request.config_id, "config_id"))
        return pb.GetIntegrationConfigResponse(config=convert.config_to_proto(config))

    async def FindIntegrationConfig(self, request, context) -> pb.FindIntegrationConfigResponse:  # noqa: ANN001
        config = await self._service.find_config(
            required(request.practice_id, "practice_id"), required(request.integration_type, "integration_type")
        )
        return pb.FindIntegrationConfigResponse(config=convert.config_to_proto(config))

    async def ListIntegrationConfigs(self, request, context) -> pb.ListIntegrationConfigsResponse:  # noqa: ANN001
        limit = page_size(request.page_size)
        configs = await self._service.list_configs(
            required(request.practice_id, "practice_id"), decode_token(request.page_token), limit
        )
        return pb.ListIntegrationConfigsResponse(
            configs=[convert.config_to_proto(c) for c in configs],
            next_page_token=next_token([c.config_id for c in configs], limit),
        )

    async def UpdateIntegrationConfig(self, request, context) -> pb.UpdateIntegrationConfigResponse:  # noqa: ANN001
        required(request.config.config_id, "config.config_id")
        changes = convert.config_from_proto(request.config)
        config = await self._service.update_config(changes, list(request.update_mask.paths))
        return pb.UpdateIntegrationConfigResponse(config=convert.config_to_proto(config))

    async def RecordBusinessAssociateAgreement(self, request, context) -> pb.RecordBusinessAssociateAgreementResponse:  # noqa: ANN001
        agreement = await self._service.record_agreement(
            required(request.practice_id, "practice_id"),
            required(request.integration_type, "integration_type"),
            required(request.effective_date, "effective_date"),
        )
        return pb.RecordBusinessAssociateAgreementResponse(agreement=convert.agreement_to_proto(agreement))
