"""Mapping use cases: pick the mapper, map a batch record by record."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from libs import minimum_necessary
from libs.errors import InvalidArgument, NotFound
from libs.fhir_patient import parse_patient
from services.adapters.declarative.catalog import DefinitionCatalog
from services.adapters.declarative.definition import Declarative
from services.mapping import rules
from services.mapping.audit import MappingAudit, changed_fields
from services.mapping.configs import ConfigDirectory, ConfigRef
from services.mapping.declarative import DeclarativePatientMapper
from services.mapping.domain import FieldError, HubResult, Mapper, RecordInvalid, VendorResult, check_batch
from services.mapping.mappers import default_mappers, default_variants, variant_of
from services.mapping.repository import MappingRepository
from services.mapping.rules import FieldRule

log = logging.getLogger("concord.mapping")
T = TypeVar("T")
# Records a change's audit event (its new version, the hub fields whose mapping changed).
Record = Callable[[int, list[str]], Awaitable[None]]


class MappingService:
    """Hand-written mappers first; an integration with none is mapped from its declarative
    definition in the registry (``definitions``), when the service has one.

    With ``configs``, every call that names a config is checked against the registry first (the
    config exists, is the caller's practice's and of the integration_type given); with ``audit``,
    every change of a config's mappings is audited. The server always has both; without them (a
    mapper test in process) nothing is checked or audited.

    A config's vendor options choose among a vendor's mappers (``variants``: a Salesforce config's
    appointment object). MapToHub/MapToVendor carry the options the sync run gave the adapter, so a
    page is mapped by the same choice it was read or written with; the field-mapping RPCs concern
    the config as it is now and read its options from the registry (``configs``), for vendor
    entities that have variants only."""

    def __init__(
        self,
        mappers: dict[tuple[str, str], Mapper] | None = None,
        definitions: DefinitionCatalog | None = None,
        repository: MappingRepository | None = None,
        configs: ConfigDirectory | None = None,
        audit: MappingAudit | None = None,
        variants: dict[tuple[str, str, str], Mapper] | None = None,
    ) -> None:
        self._mappers = mappers if mappers is not None else default_mappers()
        self._variants = variants if variants is not None else default_variants()
        self._definitions = definitions
        self._repository = repository
        self._configs = configs
        self._audit = audit
        self._declarative: dict[tuple[str, str], tuple[Declarative, Mapper]] = {}

    async def mapper(self, integration_type: str, entity_type: str, options: dict | None = None) -> Mapper:
        variant = variant_of(integration_type, entity_type, options or {})
        chosen = self._variants.get((integration_type, entity_type, variant)) if variant else None
        if chosen is not None:
            return chosen
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

    async def _config_mapper(self, config_id: str, integration_type: str, entity_type: str) -> Mapper:
        """The mapper of a config as it is now (field-mapping RPCs): its options are read from the
        registry only where the vendor entity has variants to choose from."""
        options: dict = {}
        has_variants = any(key[:2] == (integration_type, entity_type) for key in self._variants)
        if config_id and has_variants and self._configs is not None:
            options = await self._configs.options(config_id)
        return await self.mapper(integration_type, entity_type, options)

    async def _definition(self, integration_type: str) -> Declarative | None:
        if self._definitions is None:
            return None
        try:
            return await self._definitions.by_type(integration_type)
        except NotFound:
            return None

    async def map_to_hub(
        self, integration_type: str, entity_type: str, records: list[dict], config_id: str = ""
    ) -> list[HubResult]:
        return (await self.map_to_hub_versioned(integration_type, entity_type, records, config_id))[0]

    async def map_to_hub_versioned(
        self,
        integration_type: str,
        entity_type: str,
        records: list[dict],
        config_id: str = "",
        options: dict | None = None,
    ) -> tuple[list[HubResult], int]:
        """Results in input order and the config's mapping version they were made with; ``options``
        (the config's VendorOptions as JSON) choose among the vendor's mappers."""
        return await self._batch("to_hub", integration_type, entity_type, records, config_id, options)

    async def map_to_vendor(
        self, integration_type: str, entity_type: str, documents: list[str], config_id: str = ""
    ) -> list[VendorResult]:
        return (await self.map_to_vendor_versioned(integration_type, entity_type, documents, config_id))[0]

    async def map_to_vendor_versioned(
        self,
        integration_type: str,
        entity_type: str,
        documents: list[str],
        config_id: str = "",
        options: dict | None = None,
    ) -> tuple[list[VendorResult], int]:
        return await self._batch("to_vendor", integration_type, entity_type, documents, config_id, options)

    async def _batch(
        self, direction: str, integration_type: str, entity_type: str, items: list, config_id: str, options: dict | None
    ) -> tuple[list, int]:
        if config_id:
            await self._config(config_id, integration_type)
        mapper = await self.mapper(integration_type, entity_type, options)
        check_batch(len(items), "vendor_records" if direction == "to_hub" else "resource_jsons")
        defaults, overrides, version = await self._rules(mapper, config_id)
        if direction == "to_vendor" and config_id and self._configs is not None:
            # Minimum necessary: what leaves for the vendor is cut down here, where hub records
            # become vendor payloads (every push, Zapier delivery and Zapier sample maps through it).
            policy = await self._configs.disclosure_policy(config_id)
            writes = _written_fields(defaults, overrides)
            results = await asyncio.to_thread(
                lambda: [_to_vendor_restricted(mapper, item, defaults, overrides, policy, writes) for item in items]
            )
            _log_withheld(config_id, integration_type, entity_type, results)
        else:
            one = _to_hub if direction == "to_hub" else _to_vendor
            # FHIR validation is CPU work: off the event loop, so the server keeps answering.
            results = await asyncio.to_thread(lambda: [one(mapper, item, defaults, overrides) for item in items])
        _log_counts(direction, integration_type, entity_type, [r.errors for r in results])
        return results, version

    async def preview(
        self, config_id: str, integration_type: str, entity_type: str, direction: str, sample: dict | str
    ) -> tuple[HubResult | VendorResult, int]:
        """One sample record through the config's effective mappings. Persists nothing, audits
        nothing, and logs nothing about the record (not even counts: a preview is not a sync)."""
        if config_id:
            await self._config(config_id, integration_type)
        mapper = await self._config_mapper(config_id, integration_type, entity_type)
        defaults, overrides, version = await self._rules(mapper, config_id)
        if direction == "to_hub":
            assert isinstance(sample, dict)
            return await asyncio.to_thread(_to_hub, mapper, sample, defaults, overrides), version
        if direction == "to_vendor":
            assert isinstance(sample, str)
            return await asyncio.to_thread(_sample_to_vendor, mapper, sample, defaults, overrides), version
        raise InvalidArgument("direction must be TO_HUB or TO_VENDOR", field="direction", reason="INVALID_DIRECTION")

    async def list_field_mappings(
        self, config_id: str, integration_type: str, entity_type: str
    ) -> tuple[list[FieldRule], int]:
        """The config's effective mappings (defaults with its overrides applied), by hub field."""
        config = await self._config(_required_config(config_id), integration_type)
        mapper = await self._config_mapper(config.config_id, integration_type, entity_type)
        defaults, overrides, version = await self._rules(mapper, config.config_id)
        return rules.effective(defaults, overrides), version

    async def replace_field_mappings(
        self, config_id: str, integration_type: str, entity_type: str, overrides: list[FieldRule], expected: int
    ) -> tuple[list[FieldRule], int]:
        config = await self._config(_required_config(config_id), integration_type)

        async def change(record: Record) -> tuple[Mapper, int]:
            mapper = await self._config_mapper(config.config_id, integration_type, entity_type)
            rules.validate(mapper, entity_type, overrides)

            async def audited(version: int, previous: list[FieldRule]) -> None:
                await record(version, _changed(previous, overrides))

            store = self._repo()
            return mapper, await store.replace(
                config.config_id, integration_type, entity_type, overrides, expected, audited
            )

        mapper, version = await self._audited(config, entity_type, [r.hub_field for r in overrides], change)
        log.info(
            "mappings of a %s %s config replaced: %d overrides, version %d",
            integration_type,
            entity_type,
            len(overrides),
            version,
        )
        return rules.effective(rules.defaults(mapper), overrides), version

    async def delete_field_mapping(
        self, config_id: str, integration_type: str, entity_type: str, hub_field: str
    ) -> int:
        config = await self._config(_required_config(config_id), integration_type)

        async def change(record: Record) -> int:
            await self._config_mapper(config.config_id, integration_type, entity_type)
            if not hub_field:
                raise InvalidArgument("hub_field is required", field="hub_field", reason="REQUIRED_FIELD_MISSING")

            async def audited(version: int, previous: list[FieldRule]) -> None:
                await record(version, [hub_field])

            return await self._repo().delete(config.config_id, entity_type, hub_field, audited)

        return await self._audited(config, entity_type, [hub_field], change)

    async def _config(self, config_id: str, integration_type: str) -> ConfigRef:
        if self._configs is None:
            return ConfigRef(config_id, "", integration_type)
        return await self._configs.check(config_id, integration_type)

    async def _audited(
        self, config: ConfigRef, entity_type: str, attempted: list[str], change: Callable[[Record], Awaitable[T]]
    ) -> T:
        """Runs a change of the config's mappings. The change records its audit event before it
        commits (a change the audit service did not take is rolled back, so none goes unaudited);
        a change refused after the config was found is audited as failed (success=false)."""
        audit = self._audit
        if audit is None:
            return await change(_unaudited)
        stage = {"recording": False, "recorded": False}

        async def record(version: int, hub_fields: list[str]) -> None:
            stage["recording"] = True
            await audit.record(config, changed_fields(entity_type, hub_fields), version=version, success=True)
            stage["recorded"] = True

        try:
            return await change(record)
        except Exception:
            if stage["recording"] and not stage["recorded"]:
                raise  # the audit service refused the event: nothing was changed
            try:
                await audit.record(config, changed_fields(entity_type, attempted), success=False)
            except Exception as failure:  # the refusal is the answer; its audit's failure is logged
                log.error("could not audit a refused mapping change: %s", type(failure).__name__)
            raise

    async def _rules(self, mapper: Mapper, config_id: str) -> tuple[list[FieldRule], list[FieldRule], int]:
        defaults = rules.defaults(mapper)
        if not config_id or self._repository is None:
            return defaults, [], 0
        overrides, version = await self._repository.overrides(config_id, mapper.entity_type)
        return defaults, overrides, version

    def _repo(self) -> MappingRepository:
        if self._repository is None:
            raise InvalidArgument("this mapping service keeps no per-config mappings", reason="NO_MAPPING_STORE")
        return self._repository


async def _unaudited(version: int, hub_fields: list[str]) -> None:
    return None


def _changed(previous: list[FieldRule], overrides: list[FieldRule]) -> list[str]:
    """The hub fields whose override is new, gone or different."""
    before = {rule.hub_field: rule for rule in previous}
    after = {rule.hub_field: rule for rule in overrides}
    return [field for field in before.keys() | after.keys() if before.get(field) != after.get(field)]


def _required_config(config_id: str) -> str:
    if not config_id:
        raise InvalidArgument("config_id is required", field="config_id", reason="REQUIRED_FIELD_MISSING")
    return config_id


def _to_hub(mapper: Mapper, record: dict, defaults: list[FieldRule], overrides: list[FieldRule]) -> HubResult:
    try:
        result = rules.to_hub(mapper, record, defaults, overrides)
        return dataclasses.replace(result, modified_at=modified_at(mapper, record))
    except RecordInvalid as invalid:
        return HubResult(external_id=invalid.external_id, errors=invalid.errors)
    except Exception as exc:  # one broken record must not fail the batch
        return HubResult(errors=[_unexpected(exc)])


def modified_at(mapper: Mapper, record: dict) -> datetime | None:
    """The record's modification time at the vendor, by the mapper's ``modified_field``; None when
    the mapper names none, or the value is not an ISO 8601 time with a zone (a wall-clock time
    orders nothing across systems)."""
    value: object = record
    for part in getattr(mapper, "modified_field", "").split("."):
        value = value.get(part) if isinstance(value, dict) and part else None
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _resource(document: str) -> dict | None:
    """The hub resource a request carries, or None when it is not a JSON object."""
    try:
        resource = json.loads(document)
    except ValueError:
        return None
    return resource if isinstance(resource, dict) else None


def _to_vendor(mapper: Mapper, document: str, defaults: list[FieldRule], overrides: list[FieldRule]) -> VendorResult:
    resource = _resource(document)
    if resource is None:
        return VendorResult(errors=[FieldError("", "INVALID_RESOURCE", "the resource is not a JSON object")])
    try:
        return VendorResult(record=rules.to_vendor(mapper, resource, defaults, overrides))
    except RecordInvalid as invalid:
        return VendorResult(errors=invalid.errors)
    except Exception as exc:  # one broken record must not fail the batch
        return VendorResult(errors=[_unexpected(exc)])


def _sample_to_vendor(
    mapper: Mapper, sample: str, defaults: list[FieldRule], overrides: list[FieldRule]
) -> VendorResult:
    """A preview's sample is not a hub document: a patient is put in the hub's form first (what
    the hub's write would store), as mappers take hub patients as they are (fhir_patient.hub_patient)."""
    resource = _resource(sample)
    if resource is None or mapper.entity_type != rules.PATIENT:
        return _to_vendor(mapper, sample, defaults, overrides)
    try:
        return _to_vendor(mapper, json.dumps(parse_patient(resource)), defaults, overrides)
    except InvalidArgument as error:
        return VendorResult(errors=[FieldError.of(error)])


def _to_vendor_restricted(
    mapper: Mapper,
    document: str,
    defaults: list[FieldRule],
    overrides: list[FieldRule],
    policy: minimum_necessary.Policy,
    writes: frozenset[str] | None,
) -> VendorResult:
    """``_to_vendor`` of the record as the config's policy lets it go: withheld whole, or rebuilt
    from the fields that may go (``disclosed_fields``: those of them the vendor's mapping writes)."""
    resource = _resource(document)
    if resource is None:
        return VendorResult(errors=[FieldError("", "INVALID_RESOURCE", "the resource is not a JSON object")])
    try:
        cut = minimum_necessary.restrict(mapper.entity_type, resource, policy)
    except Exception as exc:  # a resource the projection cannot read: the mapper's validation reports it
        log.info("minimum necessary could not project a %s record: %s", mapper.entity_type, type(exc).__name__)
        return VendorResult(errors=[FieldError("", "INVALID_RESOURCE", "the resource could not be read")])
    if not cut.restricted:
        return _to_vendor(mapper, document, defaults, overrides)
    if cut.resource is None:
        return VendorResult(withheld=True, withheld_fields=cut.withheld)
    result = _to_vendor(mapper, json.dumps(cut.resource), defaults, overrides)
    # An appointment's or membership's patient goes as the vendor's reference, declared or not.
    disclosed = tuple(f for f in cut.disclosed if writes is None or f in writes or f == "patient")
    return dataclasses.replace(result, withheld_fields=cut.withheld, disclosed_fields=disclosed)


def _written_fields(defaults: list[FieldRule], overrides: list[FieldRule]) -> frozenset[str] | None:
    """The hub fields the config's mapping writes to the vendor; None when the mapper declares none."""
    rules_now = rules.effective(defaults, overrides)
    return frozenset(r.hub_field for r in rules_now if r.writes) if rules_now else None


def _log_withheld(config_id: str, integration_type: str, entity_type: str, results: list[VendorResult]) -> None:
    """One line per batch with what was kept from the vendor: field names and counts, never values."""
    fields = sorted({name for r in results for name in r.withheld_fields})
    if not fields:
        return
    whole = sum(1 for r in results if r.withheld)
    log.info(
        "minimum necessary: config %s (%s %s) withheld fields %s; %d of %d records withheld whole",
        config_id,
        integration_type,
        entity_type,
        ",".join(fields),
        whole,
        len(results),
    )


def _unexpected(exc: Exception) -> FieldError:
    # The exception text may quote the record: log its type only.
    log.error("mapper raised %s", type(exc).__name__)
    return FieldError("", "MAPPING_FAILED", "the record could not be mapped")


def _log_counts(direction: str, integration_type: str, entity_type: str, errors: list[list[FieldError]]) -> None:
    failed = sum(1 for e in errors if e)
    log.info("%s %s %s: %d records, %d failed", direction, integration_type, entity_type, len(errors), failed)
