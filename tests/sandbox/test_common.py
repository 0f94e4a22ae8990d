"""The toolkit every sandbox shares: faults, stats, synthetic data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sandbox.common import synthetic
from sandbox.common.faults import FaultError, FaultGate, Faults, apply_patch


def test_fault_patch_validates_and_reports_actions() -> None:
    faults = Faults()
    actions = apply_patch(faults, {"status_5xx_rate": 2, "latency_ms": -5, "expire_all_tokens": True})
    assert (faults.status_5xx_rate, faults.latency_ms, actions) == (1.0, 0, {"expire_all_tokens"})
    with pytest.raises(FaultError):
        apply_patch(faults, {"no_such_fault": 1})
    apply_patch(faults, {"outage_until": "2026-01-01T00:00:00Z"})
    assert faults.outage_until == datetime(2026, 1, 1, tzinfo=UTC).timestamp()


async def test_gate_storm_outage_and_seeded_5xx() -> None:
    now = [100.0]
    faults = Faults(rate_limit_storm=2)
    gate = FaultGate(faults, lambda: now[0], seed=7)
    assert [await gate.before_request() for _ in range(3)] == ["rate_limit", "rate_limit", None]
    faults.outage_until = 150.0
    assert await gate.before_request() == "outage"
    now[0] = 151.0
    faults.status_5xx_rate = 0.5
    first = [await FaultGate(faults, lambda: now[0], seed=7).before_request() for _ in range(1)]
    again = [await FaultGate(faults, lambda: now[0], seed=7).before_request() for _ in range(1)]
    assert first == again  # seeded: runs repeat
    faults.malformed_page = True
    assert gate.take_malformed_page() and not gate.take_malformed_page()


def test_synthetic_set_and_future_visits_are_deterministic() -> None:
    data = synthetic.load()
    assert len(data.patients) == 60
    assert data.past_visits and all(v.status == "fulfilled" for v in data.past_visits)
    now = datetime(2026, 11, 23, tzinfo=UTC)
    one = synthetic.future_visits(data, seed=3, now=now)
    two = synthetic.future_visits(data, seed=3, now=now)
    assert one == two
    assert all(v.start > now and v.end > v.start and v.status == "booked" for v in one)
    living = [p for p in data.patients if not p.get("deceasedDateTime")]
    assert len(one) == len(living)
