"""Registry use cases."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from libs import minimum_necessary
from libs.errors import InvalidArgument, NotFound
from libs.identity import current_caller
from services.registry import declarative, domain
from services.registry.domain import BusinessAssociateAgreement, IntegrationConfig, Practice
from services.registry.repository import RegistryRepository

DEFINITIONS_DIR = Path(__file__).parent / "definitions"


class RegistryService:
    def __init__(self, repository: RegistryRepository, vendor_base_urls: dict[str, str] | None = None) -> None:
        self._repo = repository
        self._vendor_base_urls = vendor_base_urls or {}

    async def seed_definitions(self) -> None:
        """Loads the bundled vendor definitions, pointed at sandboxes where configured."""
        for path in sorted(DEFINITIONS_DIR.glob("*.json")):
            await self.upsert_definition(json.loads(path.read_text()))

    async def upsert_definition(self, document: dict) -> dict:
        integration_type = document.get("integration_type", "")
        if not domain.PRACTICE_ID.match(integration_type):
            raise InvalidArgument("integration_type is required", field="definition.integration_type")
        if not document.get("name"):
            raise InvalidArgument("name is required", field="definition.name")
        base_url = self._vendor_base_urls.get(integration_type)
        if base_url:
            document = {**document, "endpoints": domain.point_at_sandbox(document.get("endpoints", {}), base_url)}
        declarative.validate(document)
        await self._repo.put_definition(integration_type, document)
        return document

    async def get_definition(self, integration_type: str) -> dict:
        document = await self._repo.get_definition(integration_type)
        if document is None:
            raise NotFound(f"no integration definition {integration_type!r}", reason="DEFINITION_NOT_FOUND")
        return document

    async def list_definitions(self, after: str, limit: int) -> list[dict]:
        return await self._repo.list_definitions(after, limit)

    async def create_practice(self, practice_id: str, name: str) -> Practice:
        domain.validate_practice(practice_id, name)
        return await self._repo.add_practice(practice_id, name.strip())

    async def get_practice(self, practice_id: str) -> Practice:
        practice = await self._repo.get_practice(practice_id)
        if practice is None:
            raise NotFound("practice not found", reason="PRACTICE_NOT_FOUND")
        return practice

    async def record_agreement(
        self, practice_id: str, integration_type: str, effective_date: str
    ) -> BusinessAssociateAgreement:
        """The practice's BAA with the vendor from ``effective_date`` on (replacing an earlier one).
        A caller confined to a practice records its own practice's only."""
        caller = current_caller()
        if caller.practice_id and caller.practice_id != practice_id:
            raise NotFound("practice not found", reason="PRACTICE_NOT_FOUND")
        await self.get_practice(practice_id)
        await self.get_definition(integration_type)
        agreement = BusinessAssociateAgreement(
            practice_id=practice_id,
            integration_type=integration_type,
            effective_date=minimum_necessary.validate_effective_date(effective_date),
            recorded_at=datetime.now(UTC),
            recorded_by=current_caller().user_id or "",
        )
        await self._repo.put_agreement(agreement)
        return agreement

    async def create_config(self, config: IntegrationConfig) -> IntegrationConfig:
        await self.get_practice(config.practice_id)
        definition = await self.get_definition(config.integration_type)
        now = datetime.now(UTC)
        capabilities = definition.get("capabilities", [])
        config = domain.with_defaults(
            replace(config, config_id=str(uuid.uuid4()), created_at=now, updated_at=now), capabilities
        )
        domain.validate_config(config, capabilities)
        domain.validate_options(config.options, definition)
        await self._repo.add_config(config)
        return await self.get_config(config.config_id)

    async def get_config(self, config_id: str) -> IntegrationConfig:
        config = await self._repo.get_config(config_id)
        if config is None:
            raise NotFound("integration config not found", reason="CONFIG_NOT_FOUND")
        return config

    async def find_config(self, practice_id: str, integration_type: str) -> IntegrationConfig:
        config = await self._repo.find_config(practice_id, integration_type)
        if config is None:
            raise NotFound(f"the practice has no {integration_type} config", reason="CONFIG_NOT_FOUND")
        return config

    async def list_configs(self, practice_id: str, after: str, limit: int) -> list[IntegrationConfig]:
        return await self._repo.list_configs(practice_id, after, limit)

    async def update_config(self, changes: IntegrationConfig, mask: list[str]) -> IntegrationConfig:
        current = await self.get_config(changes.config_id)
        if changes.practice_id and changes.practice_id != current.practice_id:
            raise NotFound("integration config not found", reason="CONFIG_NOT_FOUND")
        if not mask:
            raise InvalidArgument("update_mask names no field", field="update_mask", reason="EMPTY_UPDATE_MASK")
        unknown = [path for path in mask if path not in domain.MUTABLE_FIELDS]
        if unknown:
            raise InvalidArgument(
                f"update_mask may name only {', '.join(domain.MUTABLE_FIELDS)}",
                field="update_mask",
                reason="IMMUTABLE_FIELD",
            )
        updated = replace(current, **{path: getattr(changes, path) for path in mask}, updated_at=datetime.now(UTC))
        definition = await self.get_definition(updated.integration_type)
        domain.validate_config(updated, definition.get("capabilities", []))
        domain.validate_options(updated.options, definition)
        await self._repo.save_config(updated)
        return await self.get_config(updated.config_id)
