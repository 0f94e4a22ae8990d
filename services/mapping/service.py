"""Mapping use cases: pick the mapper, map a batch record by record."""

from __future__ import annotations

import asyncio
import json
import logging

from libs.errors import InvalidArgument, NotFound
from services.adapters.declarative.catalog import DefinitionCatalog
from services.adapters.declarative.definition import Declarative
from services.mapping.declarative import DeclarativePatientMapper
from services.mapping.domain import FieldError, HubResult, Mapper, RecordInvalid, VendorResult, check_batch
from services.mapping.mappers import default_mappers

log = logging.getLogger("concord.mapping")


class MappingService:
    """Hand-written mappers first; an integration with none is mapped from its declarative
    definition in the registry (``definitions``), when the service has one."""

    def __init__(
        self, mappers: dict[tuple[str, str], Mapper] | None = None, definitions: DefinitionCatalog | None = None
    ) -> None:
        self._mappers = mappers if mappers is not None else default_mappers()
        self._definitions = definitions
        self._declarative: dict[tuple[str, str], tuple[Declarative, Mapper]] = {}

    async def mapper(self, integration_type: str, entity_type: str) -> Mapper:
        mapper = self._mappers.get((integration_type, entity_type))
        if mapper is not None:
            return mapper
        if not any(key[0] == integration_type for key in self._mappers):
            definition = await self._definition(integration_type)
            if definition is None:
                raise InvalidArgument(
                    "no mapping for this integration_type", field="integration_type", reason="UNSUPPORTED_INTEGRATION"
                )
            resource = definition.resource(entity_type)
            if resource is not None and entity_type == DeclarativePatientMapper.entity_type:
                cached = self._declarative.get((integration_type, entity_type))
                if cached is None or cached[0] is not definition:  # built again when the definition changed
                    cached = (definition, DeclarativePatientMapper(integration_type, resource))
                    self._declarative[(integration_type, entity_type)] = cached
                return cached[1]
        raise InvalidArgument(
            f"{integration_type} has no mapping for this entity_type", field="entity_type", reason="UNSUPPORTED_ENTITY"
        )

    async def _definition(self, integration_type: str) -> Declarative | None:
        if self._definitions is None:
            return None
        try:
            return await self._definitions.by_type(integration_type)
        except NotFound:
            return None

    async def map_to_hub(self, integration_type: str, entity_type: str, records: list[dict]) -> list[HubResult]:
        mapper = await self.mapper(integration_type, entity_type)
        check_batch(len(records), "vendor_records")
        # FHIR validation is CPU work: off the event loop, so the server keeps answering.
        results = await asyncio.to_thread(lambda: [_to_hub(mapper, record) for record in records])
        _log_counts("to_hub", integration_type, entity_type, [r.errors for r in results])
        return results

    async def map_to_vendor(self, integration_type: str, entity_type: str, documents: list[str]) -> list[VendorResult]:
        mapper = await self.mapper(integration_type, entity_type)
        check_batch(len(documents), "resource_jsons")
        results = await asyncio.to_thread(lambda: [_to_vendor(mapper, document) for document in documents])
        _log_counts("to_vendor", integration_type, entity_type, [r.errors for r in results])
        return results


def _to_hub(mapper: Mapper, record: dict) -> HubResult:
    try:
        return mapper.to_hub(record)
    except RecordInvalid as invalid:
        return HubResult(external_id=invalid.external_id, errors=invalid.errors)
    except Exception as exc:  # one broken record must not fail the batch
        return HubResult(errors=[_unexpected(exc)])


def _to_vendor(mapper: Mapper, document: str) -> VendorResult:
    try:
        resource = json.loads(document)
    except ValueError:
        resource = None
    if not isinstance(resource, dict):
        return VendorResult(errors=[FieldError("", "INVALID_RESOURCE", "the resource is not a JSON object")])
    try:
        return VendorResult(record=mapper.to_vendor(resource))
    except RecordInvalid as invalid:
        return VendorResult(errors=invalid.errors)
    except Exception as exc:  # one broken record must not fail the batch
        return VendorResult(errors=[_unexpected(exc)])


def _unexpected(exc: Exception) -> FieldError:
    # The exception text may quote the record: log its type only.
    log.error("mapper raised %s", type(exc).__name__)
    return FieldError("", "MAPPING_FAILED", "the record could not be mapped")


def _log_counts(direction: str, integration_type: str, entity_type: str, errors: list[list[FieldError]]) -> None:
    failed = sum(1 for e in errors if e)
    log.info("%s %s %s: %d records, %d failed", direction, integration_type, entity_type, len(errors), failed)
