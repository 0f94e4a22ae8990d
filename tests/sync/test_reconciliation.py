"""Reconciliation's digests, checksums and comparison (pure), and its report as the API gives it."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime

from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.sync.v1 import sync_pb2 as pb
from services.gateway.reconciliations import report_json
from services.sync import reconciliation as rc

ADA = {"family_name": "Okafor", "given_name": "Ada", "birth_date": "1980-02-29", "city": "Providence", "email": None}


def test_a_digest_is_sha256_of_the_canonical_projection_keyed_by_the_vendor_id() -> None:
    canonical = '{"fields":{"birth_date":"1980-02-29","city":"Providence","family_name":"Okafor","given_name":"Ada"},"id":"c-1"}'
    expected = hashlib.sha256(canonical.encode()).digest()
    assert rc.record_digest("c-1", ADA) == int.from_bytes(expected, "big")
    # Key order and a field without a value do not matter (the merge reads null and absent alike) ...
    assert rc.record_digest("c-1", dict(reversed(list(ADA.items())))) == rc.record_digest("c-1", ADA)
    assert rc.record_digest("c-1", {k: v for k, v in ADA.items() if v is not None}) == rc.record_digest("c-1", ADA)
    # ... every value and the vendor id do.
    assert rc.record_digest("c-1", {**ADA, "city": "Pawtucket"}) != rc.record_digest("c-1", ADA)
    assert rc.record_digest("c-2", ADA) != rc.record_digest("c-1", ADA)
    assert rc.record_digest("c-1", {**ADA, "city": ""}) != rc.record_digest("c-1", ADA)


def test_checksums_are_order_independent_sums_that_do_not_cancel() -> None:
    digests = [rc.record_digest(f"c-{i}", {**ADA, "given_name": f"Ada{i}"}) for i in range(50)]
    shuffled = digests[:]
    random.Random(7).shuffle(shuffled)
    whole = rc.add_digests(rc.ZERO, digests)
    assert whole == rc.add_digests(rc.ZERO, shuffled)
    # Page by page (in any split) is the same as all at once.
    assert rc.add_digests(rc.add_digests(rc.ZERO, shuffled[:13]), shuffled[13:]) == whole
    assert len(whole) == 64 and int(whole, 16) == sum(digests) % (1 << 256)
    assert rc.add_digests(rc.ZERO, []) == rc.ZERO == rc.add_digests("", [])
    # A record counted twice is not the same as none (XOR would cancel it).
    assert rc.add_digests(rc.ZERO, [digests[0], digests[0]]) != rc.ZERO
    # It wraps at 2^256.
    assert rc.add_digests("f" * 64, [1]) == rc.ZERO


def test_each_vendor_record_is_matched_drifted_or_unlinked_against_its_links_base() -> None:
    theirs = {
        "same": ADA,
        "edited": {**ADA, "city": "Pawtucket"},
        "unmappable": None,
        "new": {**ADA, "given_name": "Bea"},
    }
    bases = {"same": ADA, "edited": ADA, "unmappable": ADA, "not-listed": ADA}
    tally = rc.compare(theirs, bases)
    assert (tally.vendor_count, tally.hub_count) == (4, 3)
    assert (tally.matched, tally.drifted, tally.unlinked) == (1, 2, 1)
    assert tally.heal == ["edited", "unmappable", "new"]
    # An unmappable record has no digest on the vendor side; every linked one has its base's.
    assert len(tally.vendor_digests) == 3 and len(tally.hub_digests) == 3
    assert tally.counts() == {"vendor_count": 4, "hub_count": 3, "matched": 1, "drifted": 2, "unlinked": 1}


def test_when_both_sides_agree_their_checksums_are_equal() -> None:
    records = {f"c-{i}": {**ADA, "given_name": f"Ada{i}"} for i in range(5)}
    tally = rc.compare(records, dict(reversed(list(records.items()))))
    assert tally.matched == 5 and tally.heal == []
    assert rc.add_digests(rc.ZERO, tally.hub_digests) == rc.add_digests(rc.ZERO, tally.vendor_digests)
    drifted = rc.compare({**records, "c-0": {**ADA, "city": "Pawtucket"}}, records)
    assert rc.add_digests(rc.ZERO, drifted.hub_digests) != rc.add_digests(rc.ZERO, drifted.vendor_digests)


def test_reconciliation_schedules_are_told_apart_from_sync_schedules() -> None:
    assert rc.schedule_id("cfg", "ENTITY_TYPE_PATIENT") == "reconcile:cfg:ENTITY_TYPE_PATIENT"
    assert rc.is_schedule(rc.schedule_id("cfg", "ENTITY_TYPE_PATIENT"))
    assert not rc.is_schedule("sync-schedule:cfg:ENTITY_TYPE_PATIENT")


def test_the_report_carries_counts_and_checksums_only() -> None:
    started = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
    row = {
        "reconciliation_id": "r-1",
        "practice_id": "p-1",
        "config_id": "cfg",
        "entity_type": "ENTITY_TYPE_PATIENT",
        "run_id": "run-1",
        "status": rc.SUCCEEDED,
        "started_at": started,
        "completed_at": started,
        "hub_checksum": "a" * 64,
        "vendor_checksum": "b" * 64,
        "error_message": "",
        **{name: i + 1 for i, name in enumerate(rc.COUNTS)},
    }
    report = rc.to_proto(row)
    assert report.status == pb.RECONCILIATION_STATUS_SUCCEEDED
    assert report.entity_type == common_pb2.ENTITY_TYPE_PATIENT
    assert report.start_time.ToDatetime(UTC) == started
    shown = report_json(report)
    assert {name: shown[name] for name in rc.COUNTS} == {name: i + 1 for i, name in enumerate(rc.COUNTS)}
    assert (shown["entity"], shown["status"], shown["error_message"]) == ("patient", "succeeded", None)
    assert (shown["hub_checksum"], shown["vendor_checksum"]) == ("a" * 64, "b" * 64)
    assert set(shown) == {
        *rc.COUNTS,
        "reconciliation_id",
        "config_id",
        "entity",
        "run_id",
        "status",
        "hub_checksum",
        "vendor_checksum",
        "error_message",
        "started_at",
        "completed_at",
    }
    running = report_json(rc.to_proto({**row, "status": rc.RUNNING, "completed_at": None}))
    assert (running["status"], running["completed_at"]) == ("running", None)
