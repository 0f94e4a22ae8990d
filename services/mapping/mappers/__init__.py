"""Mapper registry keyed by (integration_type, entity_type). Per-config rules, when they come,
are applied by the service around these defaults."""

from __future__ import annotations

from services.mapping.domain import Mapper
from services.mapping.mappers.ghl import GhlPatientMapper


def default_mappers() -> dict[tuple[str, str], Mapper]:
    mappers: list[Mapper] = [GhlPatientMapper()]
    return {(m.integration_type, m.entity_type): m for m in mappers}
