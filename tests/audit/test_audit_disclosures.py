"""mapping_version on audit events, action patterns in Query and the accounting of disclosures
(ListDisclosures), over real gRPC on each database backend."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from libs.errors import InvalidArgument
from libs.grpc_client import call
from libs.protos.concord.audit.v1 import audit_pb2 as pb
from libs.service import open_database
from services.audit import domain, models
from services.audit.domain import AuditEvent
from tests.audit.test_audit_service import (
    T0,
    database,
    event,
    query_all,
    recomputed_hash,
    record,
    serving,
    stamp,
    stub,  # noqa: F401 (the fixture)
    verify,
)

MIGRATIONS = Path(__file__).parents[2] / "services" / "audit" / "migrations"


def pre_mapping_version_hash(event: AuditEvent) -> str:
    """The hash as the service computed it before mapping_version existed (domain.py at 0001)."""
    document = dict(vars(event))
    for name in ("hash", "mapping_version"):
        del document[name]
    document["timestamp"] = domain.rfc3339(event.timestamp)
    document["data_accessed"] = list(event.data_accessed)
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def test_mapping_version_is_hashed_only_when_set() -> None:
    plain = AuditEvent("p1", "patient.read", event_id="e1", timestamp=T0, data_accessed=("name.family",))
    assert domain.event_hash(plain) == pre_mapping_version_hash(plain)
    assert b"mapping_version" not in domain.canonical(plain)
    disclosed = replace(plain, action="patient.disclose", mapping_version=3)
    assert b'"mapping_version":3' in domain.canonical(disclosed)
    assert domain.event_hash(disclosed) != domain.event_hash(replace(disclosed, mapping_version=4))
    linked, _ = domain.link([disclosed, plain], {})
    assert domain.verify(linked).intact
    # Changing the version afterwards is an edit.
    assert domain.verify([replace(linked[0], mapping_version=0), linked[1]]).problem == "EDITED"


def test_action_filters() -> None:
    for good in ("", "patient.read", "*.disclose", "patient.*", "dead_letter.*", "*.review_read"):
        domain.validate_action_filter(good)
    for bad in ("*", "*.*", "patient*", "*.dis*", "patient.%", "%.disclose", "a.*.b", "*disclose"):
        with pytest.raises(InvalidArgument) as error:
            domain.validate_action_filter(bad)
        assert (error.value.field, error.value.reason) == ("action", "INVALID_ACTION")
    assert domain.is_disclosure("appointment.disclose") and not domain.is_disclosure("patient.disclosed")


async def test_mapping_version_round_trips_and_the_chain_verifies(stub) -> None:  # noqa: ANN001, F811
    stored = await record(
        stub,
        event(action="patient.read", patient_id="a", data_accessed=["name.family"]),
        event(
            action="patient.disclose",
            patient_id="a",
            resource="Patient/a",
            integration_type="ghl",
            data_accessed=["name.family", "telecom[0].value"],
            correlation_id="run-1",
            mapping_version=7,
        ),
    )
    assert [e.mapping_version for e in stored] == [0, 7]
    assert [recomputed_hash(e) for e in stored] == [e.hash for e in stored]
    assert [e.mapping_version for e in await query_all(stub, practice_id="p1")] == [0, 7]
    result = await verify(stub)
    assert (result.intact, result.events_checked) == (True, 2)

    with pytest.raises(InvalidArgument) as error:
        await record(stub, event(action="patient.disclose", mapping_version=-1))
    assert (error.value.field, error.value.reason) == ("events[0].mapping_version", "INVALID_MAPPING_VERSION")


async def test_verify_sees_an_edited_mapping_version(stub, settings) -> None:  # noqa: ANN001, F811
    stored = await record(stub, event(action="patient.disclose", mapping_version=2), event())
    async with database(settings) as conn:
        c = models.events.c
        await conn.execute(update(models.events).where(c.event_id == stored[0].event_id).values(mapping_version=1))
    result = await verify(stub)
    assert (result.intact, result.first_broken_sequence, result.problem) == (False, 1, "EDITED")


async def test_query_takes_action_patterns(stub) -> None:  # noqa: ANN001, F811
    actions = [
        "patient.read",
        "patient.disclose",
        "appointment.disclose",
        "patient_x.disclose",  # '_' is not a LIKE wildcard here
        "patient.update",
        "review.read",
        "patientxdisclose",
    ]
    await record(stub, *[event(action=a) for a in actions])

    async def matching(action: str) -> list[str]:
        return [e.action for e in await query_all(stub, practice_id="p1", action=action)]

    assert await matching("*.disclose") == ["patient.disclose", "appointment.disclose", "patient_x.disclose"]
    assert await matching("patient.*") == ["patient.read", "patient.disclose", "patient.update"]
    assert await matching("*.read") == ["patient.read", "review.read"]
    assert await matching("patient.read") == ["patient.read"]
    with pytest.raises(InvalidArgument) as error:
        await call(stub.Query, pb.QueryRequest(practice_id="p1", action="%disclose"))
    assert (error.value.field, error.value.reason) == ("action", "INVALID_ACTION")


async def test_list_disclosures_is_the_patients_accounting(stub) -> None:  # noqa: ANN001, F811
    def disclose(patient_id: str, minute: int, **fields) -> pb.AuditEvent:  # noqa: ANN003
        return event(
            action=fields.pop("action", "patient.disclose"),
            patient_id=patient_id,
            resource=fields.pop("resource", f"Patient/{patient_id}"),
            integration_type=fields.pop("vendor", "ghl"),
            data_accessed=fields.pop("fields", ["name.family", "birthDate"]),
            correlation_id=fields.pop("run", f"run-{minute}"),
            mapping_version=fields.pop("version", 1),
            timestamp=stamp(T0 + timedelta(minutes=minute)),
            user_id="system:sync",
        )

    await record(
        stub,
        disclose("a", 0),
        event(action="patient.read", patient_id="a", data_accessed=["name.family"]),
        disclose("b", 1),
        disclose("a", 2, vendor="zenoti", fields=["telecom[0].value"], version=0),
        disclose("a", 3, action="appointment.disclose", resource="Appointment/x", fields=["start"], version=4),
    )
    elsewhere = disclose("b", 4)
    elsewhere.practice_id = "p2"
    await record(stub, elsewhere)

    listed = await call(stub.ListDisclosures, pb.ListDisclosuresRequest(practice_id="p1", patient_id="a"))
    assert [
        (d.action, d.resource, d.integration_type, list(d.data_accessed), d.run_id, d.mapping_version)
        for d in listed.disclosures
    ] == [
        ("patient.disclose", "Patient/a", "ghl", ["name.family", "birthDate"], "run-0", 1),
        ("patient.disclose", "Patient/a", "zenoti", ["telecom[0].value"], "run-2", 0),
        ("appointment.disclose", "Appointment/x", "ghl", ["start"], "run-3", 4),
    ]
    first = listed.disclosures[0]
    assert first.event_id and first.sequence == 1 and first.user_id == "system:sync" and first.patient_id == "a"
    assert first.timestamp.ToDatetime(tzinfo=UTC) == T0
    assert not listed.next_page_token

    paged = await call(stub.ListDisclosures, pb.ListDisclosuresRequest(practice_id="p1", patient_id="a", page_size=2))
    assert len(paged.disclosures) == 2 and paged.next_page_token
    rest = await call(
        stub.ListDisclosures,
        pb.ListDisclosuresRequest(practice_id="p1", patient_id="a", page_size=2, page_token=paged.next_page_token),
    )
    assert [d.run_id for d in rest.disclosures] == ["run-3"]

    window = pb.ListDisclosuresRequest(
        practice_id="p1",
        patient_id="a",
        start_time=stamp(T0 + timedelta(minutes=1)),
        end_time=stamp(T0 + timedelta(minutes=3)),
    )
    assert [d.run_id for d in (await call(stub.ListDisclosures, window)).disclosures] == ["run-2"]

    other = await call(stub.ListDisclosures, pb.ListDisclosuresRequest(practice_id="p2", patient_id="a"))
    assert list(other.disclosures) == []
    theirs = await call(stub.ListDisclosures, pb.ListDisclosuresRequest(practice_id="p2", patient_id="b"))
    assert [d.run_id for d in theirs.disclosures] == ["run-4"]
    for request, field in (
        (pb.ListDisclosuresRequest(practice_id="p1"), "patient_id"),
        (pb.ListDisclosuresRequest(patient_id="a"), "practice_id"),
    ):
        with pytest.raises(InvalidArgument) as error:
            await call(stub.ListDisclosures, request)
        assert (error.value.field, error.value.reason) == (field, "REQUIRED_FIELD_MISSING")


async def test_a_chain_written_before_the_migration_still_verifies(settings) -> None:  # noqa: ANN001
    """Rows stored by 0001 (no mapping_version column, hashes without it) verify after 0002."""
    from alembic import command
    from alembic.config import Config

    db = await open_database("audit", settings, MIGRATIONS)
    old = [
        AuditEvent("p1", "patient.read", event_id=f"e{i}", timestamp=T0 + timedelta(seconds=i), data_accessed=("name",))
        for i in range(3)
    ]
    linked, _ = domain.link(old, {})
    assert [e.hash for e in linked] == [pre_mapping_version_hash(e) for e in linked]

    def at_0001(connection) -> None:  # noqa: ANN001
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
        columns = [c for c in models.events.c if c.name != "mapping_version"]
        rows = [{c.name: getattr(e, c.name) for c in columns} for e in linked]
        for row in rows:
            row["data_accessed"] = list(row["data_accessed"])
        connection.execute(_insert_0001(columns), rows)
        command.upgrade(config, "head")

    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(at_0001)
    finally:
        await db.engine.dispose()

    async with serving(settings) as audit:
        result = await verify(audit)
        assert (result.intact, result.events_checked, result.head_hash) == (True, 3, linked[-1].hash)
        later = await record(audit, event(action="patient.disclose", mapping_version=5))
        assert later[0].sequence == 4 and later[0].previous_hash == linked[-1].hash
        stored = await query_all(audit, practice_id="p1")
        assert [e.mapping_version for e in stored] == [0, 0, 0, 5]
        assert (await verify(audit)).intact


def _insert_0001(columns: list) -> object:  # noqa: ANN401
    """An INSERT naming only 0001's columns (the table has no mapping_version yet)."""
    from sqlalchemy import Table

    from libs.db import make_metadata

    return Table("audit_events", make_metadata(), *[c.copy() for c in columns]).insert()
