"""The whole demo (services/demo.py run_all: GoHighLevel, conflicts, appointments, FHIR EMR ->
Salesforce and Zenoti, the catalog, booking, Zapier) runs with every log record and span kept, and
none of the PHI of the 60 Synthea patients it syncs (names, birth dates, phones, address lines)
appears in any of them, nor in the audit log's export."""

from __future__ import annotations

import io
import json
import logging
import re

import httpx
import pytest
from opentelemetry.instrumentation.utils import suppress_http_instrumentation
from rich.console import Console

from libs.phi_telemetry import log_filter, log_filter_installed
from libs.settings import Settings
from libs.telemetry import memory_exporter
from services.demo import run_all, synthetic_patients_bundle
from services.supervisor import start_stack
from tests.security.test_phi_telemetry import _everything, _span_text


def _demo_phi() -> tuple[re.Pattern[str], set[str]]:
    """A pattern of the Synthea patients' names (whole words of 4 letters or more), birth dates
    and address lines; and their phone numbers as digits."""
    words: set[str] = set()
    phones: set[str] = set()
    for entry in synthetic_patients_bundle()["entry"]:
        patient = entry["resource"]
        for name in patient.get("name", []):
            words.update(part for part in [name.get("family", ""), *name.get("given", [])] if len(part) >= 4)
        words.add(patient["birthDate"])
        for address in patient.get("address", []):
            words.update(address.get("line", []))
        phones.update(re.sub(r"\D", "", t["value"])[-10:] for t in patient.get("telecom", []) if t["system"] == "phone")
    pattern = re.compile(r"\b(" + "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True)) + r")\b")
    return pattern, phones


def _found(text: str, pattern: re.Pattern[str], phones: set[str]) -> list[str]:
    found = pattern.findall(text)
    digits = re.sub(r"\D", "", text)
    return found + [p for p in phones if p in digits]


# As a practice runs it: the demo records its own Business Associate Agreements (no test fixture's).
@pytest.mark.no_baa
async def test_no_phi_of_the_demo_reaches_a_log_line_a_span_or_the_audit_log(
    tmp_path,
    temporal_binary,
    caplog,  # noqa: ANN001
) -> None:
    assert log_filter_installed()
    caplog.set_level(logging.INFO)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.addFilter(log_filter)  # the instance setup_telemetry installed
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger().addHandler(handler)
    spans_before = len(memory_exporter.get_finished_spans())
    # Rate limits off: the demo's parts, not the vendors' pacing, are under test here.
    settings = Settings(data_dir=tmp_path, otel_exporter="memory", vendor_pacing=False)
    try:
        stack = await start_stack(settings, ephemeral_ports=True, sandbox_rate_limit=False)
        try:
            with suppress_http_instrumentation():  # the demo's own client is the user's browser
                await run_all(stack, Console(file=io.StringIO()))
            practices = [
                "demo-practice",
                "demo-emr-practice",
                "demo-catalog-practice",
                "demo-booking-practice",
                "demo-zapier-practice",
            ]
            exports = []
            async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as http:
                for practice in practices:
                    token = stack.gateway.issuer.mint("auditor", practice, "admin")  # type: ignore[union-attr]
                    answer = await http.get("/audit/events.csv", headers={"Authorization": f"Bearer {token}"})
                    assert answer.status_code == 200
                    exports.append(answer.text)
        finally:
            await stack.stop()
    finally:
        logging.getLogger().removeHandler(handler)

    pattern, phones = _demo_phi()
    assert _found(json.dumps(synthetic_patients_bundle()), pattern, phones)  # the pattern does find PHI
    spans = memory_exporter.get_finished_spans()[spans_before:]
    assert len(records) > 50 and len(spans) > 1000 and sum(len(e.splitlines()) for e in exports) > 100
    logged = [(r.name, found) for r in records if (found := _found(r.getMessage() + _everything(r), pattern, phones))]
    assert logged == []
    assert _found(caplog.text, pattern, phones) == []
    assert [(s.name, found) for s in spans if (found := _found(_span_text(s), pattern, phones))] == []
    assert [_found(export, pattern, phones) for export in exports] == [[] for _ in exports]
