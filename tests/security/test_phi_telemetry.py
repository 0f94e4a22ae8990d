"""PHI-free telemetry: canary PHI planted in log messages, arguments, extras and exceptions, in
span attributes, events, links, status descriptions and URLs, and in a real flow through the
whole stack (gateway, gRPC services, Temporal, the GHL adapter and sandbox); none of it may come
out in a log line, a span, a metric or an error response."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid

import httpx
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_http_instrumentation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from libs import phi_telemetry
from libs.phi_telemetry import SanitizingSpanProcessor, log_filter, log_filter_installed, metric_views
from libs.settings import Settings
from libs.telemetry import memory_exporter
from services.demo import connect_ghl, run_sync
from services.supervisor import start_stack

NAME = "Zyxwquorth"
GIVEN = "Quillabette"
EMAIL = "zyxw.canary@example.org"
PHONES = ["+1 415 555 0199", "(415) 555-0199", "415.555.0199", "4155550199", "+14155550199"]
ADDRESS = "77 Canary Lane"
CITY = "Zyxwville"
BIRTH_DATE = "1961-07-04"
NOTE = "Zyxw biopsy pending"
# A statement that carries its literals instead of binding them: the exporter must not see them.
CARELESS_SQL = f"SELECT * FROM sync_patients WHERE family = '{NAME}' AND dob = '{BIRTH_DATE}' AND n = {PHONES[3]}"  # noqa: S608
CANARIES = [NAME, GIVEN, EMAIL, "zyxw.canary", ADDRESS, CITY, BIRTH_DATE, NOTE]


def leaks(text: str) -> list[str]:
    """The canaries in ``text``, case-insensitive; the phone in any punctuation."""
    lowered = text.lower()
    found = [c for c in CANARIES if c.lower() in lowered]
    if "4155550199" in re.sub(r"[\s().+\-]", "", text):
        found.append("phone")
    return found


def _logger() -> tuple[logging.Logger, io.StringIO, list[logging.LogRecord]]:
    """A logger of its own whose one handler carries the installed filter and keeps its records."""
    stream = io.StringIO()
    records: list[logging.LogRecord] = []
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handler.addFilter(log_filter)
    handler.addFilter(lambda record: records.append(record) or True)
    logger = logging.getLogger(f"tests.phi.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    return logger, stream, records


def _everything(record: logging.LogRecord) -> str:
    return repr(vars(record))


# -- logs -----------------------------------------------------------------------------------------


def test_setup_telemetry_installed_the_scrubbing() -> None:
    assert log_filter_installed()


def test_log_messages_and_arguments_lose_phi_shapes() -> None:
    logger, stream, records = _logger()
    for phone in PHONES:
        logger.info(f"calling {phone} for {EMAIL}")
        logger.info("calling %s for %s", phone, EMAIL)
    logger.warning("patient at %(street)s born %(born)s", {"street": ADDRESS, "born": BIRTH_DATE})
    logger.info("contact %s", {"telecom": [EMAIL, PHONES[1]]})  # a non-string argument, shown by str()
    logger.info("run %s: %d records at %s", "48f3a2c1-5550-4199-8a1e-123456789012", 3, "2026-12-07T14:19:18Z")
    output = stream.getvalue()
    assert leaks(output) == [], output
    assert leaks("".join(map(_everything, records))) == []
    assert "[email]" in output and "[phone]" in output and "[address]" in output and "[date]" in output
    # Ids, counts and event timestamps are not PHI-shaped: kept.
    assert "run 48f3a2c1-5550-4199-8a1e-123456789012: 3 records at 2026-12-07T14:19:18Z" in output


def test_extras_pass_only_when_allow_listed() -> None:
    logger, stream, records = _logger()
    logger.info(
        "pushed",
        extra={
            "run_id": "r-1",
            "config_id": "c-1",
            "status": f"failed for {EMAIL}",
            "records_count": 7,
            "family_name": NAME,
            "note": NOTE,
            "patient": {"name": GIVEN, "birthDate": BIRTH_DATE},
            "phone_count": PHONES[0],  # a count's name, a string's value: dropped
        },
    )
    (record,) = records
    assert leaks(_everything(record)) == []
    assert (record.run_id, record.config_id, record.records_count) == ("r-1", "c-1", 7)
    assert record.status == "failed for [email]"
    for dropped in ("family_name", "note", "patient", "phone_count"):
        assert not hasattr(record, dropped)


def test_exceptions_keep_type_and_place_not_message() -> None:
    logger, stream, records = _logger()
    try:
        try:
            raise ValueError(f"bad patient {NAME}\n{GIVEN}\n{NOTE}: x\n  input_value='{EMAIL}' {PHONES[0]}")
        except ValueError as inner:
            raise RuntimeError(f"while saving {ADDRESS}") from inner
    except RuntimeError as error:
        logger.exception("save failed for %s", EMAIL)
        logger.warning("push failed: %s", error)  # an exception as an argument: its type only
    output = stream.getvalue()
    assert leaks(output) == [], output
    assert leaks("".join(map(_everything, records))) == []
    assert "ValueError: [redacted]" in output and "RuntimeError: [redacted]" in output
    assert 'test_phi_telemetry.py", line' in output and "raise ValueError(" in output  # the place
    assert "push failed: builtins.RuntimeError" in output
    assert all(record.exc_info is None for record in records)


def test_a_handler_without_the_filter_still_gets_scrubbed_messages() -> None:
    """uvicorn configures handlers of its own (propagation off) and pytest adds its own: records
    are scrubbed as they are made, whichever handler gets them."""
    stream = io.StringIO()
    logger = logging.getLogger(f"tests.phi.bare.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(logging.StreamHandler(stream))
    logger.setLevel(logging.DEBUG)
    try:
        raise KeyError(f"{NAME} {EMAIL}")
    except KeyError:
        logger.exception("lookup of %s at %s failed", EMAIL, PHONES[1])
    assert leaks(stream.getvalue()) == [], stream.getvalue()
    assert "KeyError: [redacted]" in stream.getvalue()


# -- spans ----------------------------------------------------------------------------------------


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SanitizingSpanProcessor(SimpleSpanProcessor(exporter)))
    return provider, exporter


def _span_text(span) -> str:  # noqa: ANN001
    return repr(
        (
            span.name,
            dict(span.attributes),
            [(e.name, dict(e.attributes)) for e in span.events],
            [dict(link.attributes) for link in span.links],
            span.status.description,
        )
    )


def test_spans_keep_only_allow_listed_attributes_scrubbed() -> None:
    provider, exporter = _provider()
    tracer = provider.get_tracer("tests.phi")
    with tracer.start_as_current_span("seed") as seed:
        link = Link(seed.get_span_context(), {"patient.name": NAME, "rpc.method": "Upsert"})
    span = tracer.start_span(
        f"GET /contacts/search?query={EMAIL}",
        links=[link],
        attributes={
            "http.method": "GET",
            "http.status_code": 200,
            "http.route": "/patients/{patient_id}",
            "http.url": f"https://user:secret@vendor.example:8701/contacts/?email={EMAIL}&query={NAME}#{GIVEN}",
            "http.target": f"/patients?name={NAME}",
            "url.full": f"https://vendor.example/contacts/search?phone={PHONES[3]}",
            "http.user_agent": f"agent of {NAME}",
            "net.peer.ip": "203.0.113.7",
            "rpc.service": "concord.sync.v1.SyncService",
            "db.system": "sqlite",
            "db.statement": CARELESS_SQL,
            "concord.run_id": "run-1",
            "patient.family": NAME,
            "patient.telecom": [EMAIL, PHONES[0]],
            "note": NOTE,
        },
    )
    span.add_event("contact", {"email": EMAIL, "address": ADDRESS, "concord.record_id": "rec-1"})
    try:
        raise ValueError(f"birthDate {BIRTH_DATE} of {NAME} at {ADDRESS}, {CITY}")
    except ValueError as error:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"ValueError: {NAME} {EMAIL}"))
    span.end()

    exported = exporter.get_finished_spans()
    assert [leaks(_span_text(s)) for s in exported] == [[], []], [_span_text(s) for s in exported]
    (out,) = [s for s in exported if s.name != "seed"]
    assert out.name == "GET /contacts/search"
    assert dict(out.attributes) == {
        "http.method": "GET",
        "http.status_code": 200,
        "http.route": "/patients/{patient_id}",
        "http.url": "https://vendor.example:8701/contacts/",
        "http.target": "/patients",
        "url.full": "https://vendor.example/contacts/search",
        "rpc.service": "concord.sync.v1.SyncService",
        "db.system": "sqlite",
        "db.statement": "SELECT * FROM sync_patients WHERE family = ? AND dob = ? AND n = ?",
        "concord.run_id": "run-1",
    }
    contact, exception = out.events
    assert dict(contact.attributes) == {"concord.record_id": "rec-1"}
    assert exception.attributes["exception.type"] == "ValueError"
    assert exception.attributes["exception.message"] == "[redacted]"
    assert "ValueError: [redacted]" in exception.attributes["exception.stacktrace"]
    assert "test_phi_telemetry.py" in exception.attributes["exception.stacktrace"]
    assert out.status.status_code is StatusCode.ERROR and out.status.description == "ValueError: [redacted]"
    assert dict(out.links[0].attributes) == {"rpc.method": "Upsert"}


def test_a_status_description_of_concord_s_own_keeps_its_words_not_shapes() -> None:
    provider, exporter = _provider()
    with provider.get_tracer("tests.phi").start_as_current_span("/concord.sync.v1.SyncService/CreatePatient") as span:
        span.set_status(Status(StatusCode.ERROR, f"gender is not a code ({EMAIL})"))
    (out,) = exporter.get_finished_spans()
    assert out.status.description == "gender is not a code ([email])"


def test_every_exporter_of_the_process_sits_behind_the_sanitizer() -> None:
    provider = trace.get_tracer_provider()
    processors = provider._active_span_processor._span_processors  # type: ignore[attr-defined]
    assert processors and all(isinstance(p, SanitizingSpanProcessor) for p in processors)
    assert any(getattr(p.inner, "span_exporter", None) is memory_exporter for p in processors)


def test_metric_views_keep_only_allow_listed_attributes() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader], views=metric_views()).get_meter("tests.phi")
    meter.create_counter("concord.tests").add(1, {"outcome": "accepted", "email": EMAIL, "name": NAME})
    points = [
        point
        for resource in reader.get_metrics_data().resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
    ]
    assert [dict(p.attributes) for p in points] == [{"outcome": "accepted"}]


# -- the whole stack ------------------------------------------------------------------------------


def _patient() -> dict:
    return {
        "resourceType": "Patient",
        "name": [{"family": NAME, "given": [GIVEN]}],
        "birthDate": BIRTH_DATE,
        "telecom": [
            {"system": "email", "value": EMAIL},
            {"system": "phone", "value": PHONES[1], "use": "mobile"},
        ],
        "address": [{"line": [ADDRESS], "city": CITY, "state": "OR", "postalCode": "97477"}],
    }


async def _flow(stack, headers: dict[str, str], errors: list[str]) -> None:  # noqa: ANN001
    """Creates, pushes, pulls, reads and searches a canary patient, then sends bad input quoting
    it; the error bodies go to ``errors``."""
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as http:
        assert (await http.post("/practice", json={"name": "Telemetry Clinic"}, headers=headers)).status_code == 201
        await connect_ghl(http, headers)
        created = await http.post("/patients", json=_patient(), headers=headers)
        assert created.status_code == 201, created.text
        patient_id = created.json()["id"]
        assert (await run_sync(http, headers, "push"))["records_created"] == 1
        assert (await run_sync(http, headers, "pull"))["status"] == "succeeded"
        read = await http.get(f"/patients/{patient_id}", headers=headers)
        assert read.json()["name"][0]["family"] == NAME
        listed = await http.get("/patients", params={"email": EMAIL, "name": NAME}, headers=headers)
        assert listed.status_code == 200
        for method, path, kwargs in [
            ("POST", "/patients", {"json": {**_patient(), "gender": NAME}}),
            ("POST", "/patients", {"json": {**_patient(), "birthDate": f"{EMAIL}-01"}}),
            ("POST", "/patients", {"content": f'{{"name": "{NAME} {EMAIL}",'.encode()}),
            ("PUT", f"/patients/{patient_id}", {"json": _patient(), "headers": {"If-Match": PHONES[0]}}),
            ("GET", f"/patients?page_token={ADDRESS}%25", {}),
            ("GET", f"/integrations/{EMAIL}/status", {}),  # a name in a path has no shape: not here
        ]:
            sent = {**headers, "Content-Type": "application/json", **kwargs.pop("headers", {})}
            response = await http.request(method, path, headers=sent, **kwargs)
            assert response.status_code >= 400, (path, response.text)
            body = response.json()
            # ``instance`` is the route's template, never the path as sent: the leak check covers it.
            errors.append(json.dumps(body))


async def test_no_canary_phi_leaves_a_real_flow(tmp_path, temporal_binary, caplog) -> None:  # noqa: ANN001
    """Creates a canary patient through the gateway, pushes it to the GHL sandbox and pulls it
    back (Temporal, the adapter, vendor HTTP), reads and searches it, and sends bad input quoting
    it; then looks for the canaries in every log record, every new span and every error body."""
    assert log_filter_installed()
    caplog.set_level(logging.DEBUG)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.addFilter(log_filter)  # the instance setup_telemetry installed
    handler.emit = records.append  # type: ignore[method-assign]
    root = logging.getLogger()
    root.addHandler(handler)
    # httpx's request lines quote whole URLs, queries too; setup_telemetry quiets them, an
    # operator chasing a problem may not: here they log the searches that carry the canaries.
    httpx_logger = logging.getLogger("httpx")
    httpx_level = httpx_logger.level
    httpx_logger.setLevel(logging.DEBUG)
    spans_before = len(memory_exporter.get_finished_spans())
    errors: list[str] = []
    try:
        stack = await start_stack(Settings(data_dir=tmp_path, otel_exporter="memory"), ephemeral_ports=True)
        try:
            practice = f"p-{uuid.uuid4().hex[:10]}"
            headers = {"Authorization": f"Bearer {stack.gateway.issuer.mint('phi-admin', practice, 'admin')}"}
            # The test's client is the user's browser, not Concord: its own spans are not looked at.
            with suppress_http_instrumentation():
                await _flow(stack, headers, errors)
        finally:
            await stack.stop()
    finally:
        root.removeHandler(handler)
        httpx_logger.setLevel(httpx_level)

    assert records and errors
    assert any(r.name == "httpx" and "/patients?" in r.getMessage() for r in records)  # the search was logged
    assert [leaks(body) for body in errors] == [[] for _ in errors], errors
    logged = [(r.name, leaks(handler.format(r) + _everything(r))) for r in records]
    assert [entry for entry in logged if entry[1]] == []
    assert leaks(caplog.text) == []
    spans = memory_exporter.get_finished_spans()[spans_before:]
    names = {s.name for s in spans}
    assert {"POST /patients", "RunActivity:upsert_batch", "RunActivity:fetch_changes"} <= names
    # Vendor calls keep their URL (no query); the gateway's server spans keep their route only.
    assert any(
        s.kind is SpanKind.CLIENT and s.attributes.get("http.url", "").endswith("/contacts/upsert") for s in spans
    )
    assert all("http.url" not in s.attributes for s in spans if s.kind is SpanKind.SERVER)
    assert [(s.name, found) for s in spans if (found := leaks(_span_text(s)))] == []
    assert phi_telemetry.REDACTED in repr([dict(e.attributes) for s in spans for e in s.events])


def test_a_huge_value_is_cut_before_it_is_scanned() -> None:
    dump = f"call {PHONES[1]} " + "digits 12 34 56 78 90 " * 50_000
    redacted = phi_telemetry.redact(dump)
    assert len(redacted) < phi_telemetry.MAX_SCANNED + 40
    assert leaks(redacted) == [] and "characters cut]" in redacted
