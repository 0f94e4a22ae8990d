"""The hub's memberships (FHIR R4 Coverage, libs/fhir_membership.py) and their syncs:
``GET /memberships``, ``GET /memberships/{id}``, ``POST /integrations/{slug}/memberships/sync``.
A membership names its patient (PHI): read with ``patient.read``; the routes are catalog.py's."""

from __future__ import annotations

from libs.protos.concord.common.v1 import common_pb2
from services.gateway.catalog import records_router

router = records_router(common_pb2.ENTITY_TYPE_MEMBERSHIP, "memberships", "memberships", "a membership", "memberships")
