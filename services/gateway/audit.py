"""The audit log (the audit service's Query, ListDisclosures): ``GET /audit/events`` (JSON pages),
``GET /audit/events.csv`` (every page, streamed), ``GET /audit/events/fhir`` (a FHIR R4 searchset
Bundle of AuditEvent resources, validated with fhir.resources) and a patient's accounting of
disclosures, ``GET /patients/{patient_id}/disclosures`` (HIPAA 45 CFR 164.528: which PHI fields went
to which vendor, when, by which sync run and under which field-mapping version).

The log holds field names and ids, never a PHI value, so neither does anything here. Reading it is
itself audited (``audit.query``, ``audit.export``, ``audit.disclosures``; the patient id when the
read was about one patient), as ATNA's "Audit Log Used": who looked at whose trail is part of the
trail. Only a successful read is recorded, once per request (a CSV export of many pages is one
event), after its first page was read. The practice is always the caller's; nothing in the query
can name another. ``GET /audit/verify`` stays where it is (app.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from fhir.resources.R4B.bundle import Bundle

from libs.errors import InvalidArgument
from libs.grpc_client import call
from libs.identity import Caller
from libs.proto_convert import timestamp
from libs.protos.concord.audit.v1 import audit_pb2
from services.gateway.auth import require
from services.gateway.deps import Backends, BackendsDep, CallerDep, time_or_none

router = APIRouter(tags=["audit"])

MAX_PAGE_SIZE = 500
EXPORT_PAGE_SIZE = 500
FHIR_JSON = "application/fhir+json"
# The seed's HIPAAAuditLog fields, then the chain's and the run's.
CSV_COLUMNS = [
    "timestamp",
    "user_id",
    "action",
    "resource",
    "patient_id",
    "integration_type",
    "data_accessed",
    "success",
    "ip_address",
    "user_agent",
    "sequence",
    "hash",
    "correlation_id",
    "mapping_version",
]
# A spreadsheet runs a cell starting with one of these as a formula (OWASP CSV injection): the
# user agent, at least, is whatever the caller sent.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

PatientFilter = Annotated[str, Query(max_length=64, description="Only events about this patient (its hub id)")]
UserFilter = Annotated[str, Query(max_length=128, description="Only events by this user")]
ActionFilter = Annotated[
    str,
    Query(
        max_length=64, description="An action (patient.read), every kind's verb (*.disclose) or a kind's (patient.*)"
    ),
]
Since = Annotated[datetime | None, Query(description="From this time (inclusive, RFC 3339; no offset = UTC)")]
Until = Annotated[datetime | None, Query(description="Before this time (exclusive, RFC 3339; no offset = UTC)")]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
PageToken = Annotated[str, Query(max_length=200)]


def _utc(value: datetime) -> datetime:
    """No offset means UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _stamp(value: datetime | None):  # noqa: ANN202
    return timestamp(_utc(value)) if value else None


def _window(since: datetime | None, until: datetime | None) -> None:
    """The range named by this API's parameters (the audit service would name its own fields)."""
    if since and until and _utc(until) <= _utc(since):
        raise InvalidArgument("until must be after since", field="until", reason="INVALID_TIME_RANGE")


def _query(
    caller: CallerDep,
    patient_id: PatientFilter = "",
    user_id: UserFilter = "",
    action: ActionFilter = "",
    since: Since = None,
    until: Until = None,
) -> audit_pb2.QueryRequest:
    """The filters every listing and export of the log takes, as the audit service's query of the
    caller's practice (never a practice the query names)."""
    _window(since, until)
    return audit_pb2.QueryRequest(
        practice_id=caller.practice_id,
        patient_id=patient_id,
        user_id=user_id,
        action=action,
        start_time=_stamp(since),
        end_time=_stamp(until),
    )


QueryDep = Annotated[audit_pb2.QueryRequest, Depends(_query)]


async def _audited(backends: Backends, caller: Caller, action: str, patient_id: str = "") -> None:
    """Records this read of the audit log; user, address, agent and request id come from the caller."""
    event = audit_pb2.AuditEvent(
        practice_id=caller.practice_id,
        action=action,
        resource="AuditEvent",
        patient_id=patient_id,
        success=True,
    )
    await call(backends.audit.Record, audit_pb2.RecordRequest(events=[event]))


def event_json(event: audit_pb2.AuditEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "sequence": event.sequence,
        "timestamp": time_or_none(event, "timestamp"),
        "user_id": event.user_id,
        "action": event.action,
        "resource": event.resource,
        "patient_id": event.patient_id or None,
        "integration_type": event.integration_type or None,
        "data_accessed": list(event.data_accessed),
        "success": event.success,
        "ip_address": event.ip_address,
        "user_agent": event.user_agent,
        "correlation_id": event.correlation_id,
        "mapping_version": event.mapping_version,
        "previous_hash": event.previous_hash,
        "hash": event.hash,
    }


@router.get("/audit/events", summary="The practice's audit log, in chain order, one page")
async def list_events(
    caller: CallerDep,
    backends: BackendsDep,
    query: QueryDep,
    page_size: PageSize = 100,
    page_token: PageToken = "",
) -> dict[str, Any]:
    require(caller, "audit.read")
    query.page_size, query.page_token = page_size, page_token
    page = await call(backends.audit.Query, query)
    await _audited(backends, caller, "audit.query", query.patient_id)
    return {"events": [event_json(e) for e in page.events], "next_page_token": page.next_page_token or None}


def _cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_START) else value


def csv_row(event: audit_pb2.AuditEvent) -> list[str]:
    return [
        time_or_none(event, "timestamp") or "",
        _cell(event.user_id),
        event.action,
        _cell(event.resource),
        _cell(event.patient_id),
        event.integration_type,
        ";".join(event.data_accessed),  # field names: letters, digits, '_', '.', '[]' only
        "true" if event.success else "false",
        _cell(event.ip_address),
        _cell(event.user_agent),
        str(event.sequence),
        event.hash,
        _cell(event.correlation_id),
        str(event.mapping_version),
    ]


def _csv_lines(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


@router.get(
    "/audit/events.csv",
    summary="The practice's audit log as CSV (every matching event, streamed)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_csv(
    caller: CallerDep,
    backends: BackendsDep,
    query: QueryDep,
) -> StreamingResponse:
    require(caller, "audit.read")
    query.page_size = EXPORT_PAGE_SIZE
    # The first page is read here, so a bad filter is a problem response, not a broken stream.
    first = await call(backends.audit.Query, query)
    await _audited(backends, caller, "audit.export", query.patient_id)

    async def lines() -> AsyncIterator[str]:
        page = first
        yield _csv_lines([CSV_COLUMNS, *(csv_row(e) for e in page.events)])
        while page.next_page_token:
            query.page_token = page.next_page_token
            page = await call(backends.audit.Query, query)
            yield _csv_lines([csv_row(e) for e in page.events])

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit-events.csv"'},
    )


# --- FHIR R4 AuditEvent ---------------------------------------------------------------------------

DCM = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
LIFECYCLE = "http://terminology.hl7.org/CodeSystem/dicom-audit-lifecycle"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
NETWORK_TYPE_IP = "2"
CONCORD = "https://concord.health/fhir"
ACTION_SYSTEM = f"{CONCORD}/CodeSystem/audit-action"
USER_SYSTEM = f"{CONCORD}/sid/user"
VENDOR_SYSTEM = f"{CONCORD}/sid/integration-type"
USER_AGENT_EXTENSION = f"{CONCORD}/StructureDefinition/audit-user-agent"
CHAIN_EXTENSION = f"{CONCORD}/StructureDefinition/audit-chain"

# An action's verb (after its last dot) -> AuditEvent.action (Create, Read, Update, Delete, Execute)
# and its FHIR RESTful interaction, when it is one.
VERBS: dict[str, tuple[str, str | None]] = {
    "create": ("C", "create"),
    "import": ("C", "create"),
    "read": ("R", "read"),
    "search": ("R", "search-type"),
    "query": ("R", "search-type"),
    "export": ("R", None),
    "disclosures": ("R", None),
    "disclose": ("R", None),  # DICOM's Export event is a read by the exporter
    "match": ("R", None),
    "update": ("U", "update"),
    "merge": ("U", None),
    "resolve": ("U", None),
    "hold": ("U", None),
    "change": ("U", None),
    "delete": ("D", "delete"),
}


def _event_type(event: audit_pb2.AuditEvent, verb: str) -> dict[str, str]:
    if verb == "disclose":
        return {"system": DCM, "code": "110106", "display": "Export"}
    if event.action.startswith("audit."):
        return {"system": DCM, "code": "110101", "display": "Audit Log Used"}
    if event.patient_id or event.resource.startswith("Patient/"):
        return {"system": DCM, "code": "110110", "display": "Patient Record"}
    if VERBS.get(verb, ("E", None))[1]:
        return {"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"}
    return {"system": DCM, "code": "110100", "display": "Application Activity"}


def _reference(resource: str) -> dict[str, str]:
    kind, _, ident = resource.partition("/")
    return {"reference": resource} if kind and ident and kind[0].isupper() else {"display": resource}


def fhir_audit_event(event: audit_pb2.AuditEvent) -> dict[str, Any]:
    """One audit event as a FHIR R4 AuditEvent (plain JSON; the Bundle validates it)."""
    verb = event.action.rsplit(".", 1)[-1]
    code, interaction = VERBS.get(verb, ("E", None))
    disclosure = verb == "disclose"
    subtype = [{"system": ACTION_SYSTEM, "code": event.action}]
    if interaction:
        subtype.append({"system": RESTFUL_INTERACTION, "code": interaction})
    requestor: dict[str, Any] = {
        "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]} if disclosure else None,
        "who": {"identifier": {"system": USER_SYSTEM, "value": event.user_id}, "display": event.user_id},
        "requestor": True,
        "network": {"address": event.ip_address, "type": NETWORK_TYPE_IP} if event.ip_address else None,
        "extension": [{"url": USER_AGENT_EXTENSION, "valueString": event.user_agent}] if event.user_agent else None,
    }
    agents = [requestor]
    if disclosure and event.integration_type:
        agents.append(
            {
                "type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
                "who": {
                    "identifier": {"system": VENDOR_SYSTEM, "value": event.integration_type},
                    "display": event.integration_type,
                },
                "requestor": False,
            }
        )
    details = [{"type": "field", "valueString": name} for name in event.data_accessed]
    if event.correlation_id:
        details.append({"type": "correlation_id", "valueString": event.correlation_id})
    if event.mapping_version:
        details.append({"type": "mapping_version", "valueString": str(event.mapping_version)})
    patient_ref = f"Patient/{event.patient_id}" if event.patient_id else ""
    entities: list[dict[str, Any]] = []
    lifecycle = {"system": LIFECYCLE, "code": "11", "display": "Disclosure"} if disclosure else None
    if event.resource and event.resource != patient_ref:
        entities.append(
            {
                "what": _reference(event.resource),
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
                "lifecycle": lifecycle,
                "detail": details or None,
            }
        )
        details = []
    if patient_ref:
        entities.insert(
            0,
            {
                "what": {"reference": patient_ref},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
                "lifecycle": lifecycle,
                "detail": details or None,
            },
        )
    purpose = None
    if disclosure:
        # Sync to the practice's own vendor: healthcare operations (its business associate).
        purpose = [
            {
                "coding": [{"system": ACT_REASON, "code": "HOPERAT", "display": "healthcare operations"}],
                "text": f"disclosure to {event.integration_type or 'a vendor'}"
                + (f" by sync run {event.correlation_id}" if event.correlation_id else ""),
            }
        ]
    return {
        "resourceType": "AuditEvent",
        "id": event.event_id,
        "extension": [
            {
                "url": CHAIN_EXTENSION,
                "extension": [
                    {"url": url, "valueString": value}
                    for url, value in (
                        ("sequence", str(event.sequence)),
                        ("previousHash", event.previous_hash),
                        ("hash", event.hash),
                    )
                    if value
                ],
            }
        ],
        "type": _event_type(event, verb),
        "subtype": subtype,
        "action": code,
        "recorded": time_or_none(event, "timestamp"),
        "outcome": "0" if event.success else "4",
        "purposeOfEvent": purpose,
        "agent": agents,
        "source": {
            "site": "concord",
            "observer": {"display": "Concord audit service"},
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
        "entity": entities or None,
    }


def fhir_bundle(events: list[audit_pb2.AuditEvent], self_url: str, next_url: str | None) -> dict[str, Any]:
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    bundle = Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "timestamp": datetime.now(UTC).isoformat(),
            "link": links,
            "entry": [
                {
                    "fullUrl": f"urn:uuid:{e.event_id}",
                    "resource": _pruned(fhir_audit_event(e)),
                    "search": {"mode": "match"},
                }
                for e in events
            ]
            or None,
        }
    )
    return bundle.model_dump(mode="json", exclude_none=True, by_alias=True)


def _pruned(value: Any) -> Any:
    """Drops what the builder leaves for absent elements: None, "" and emptied objects and lists
    (FHIR has no nulls and no empty strings)."""
    if isinstance(value, dict):
        value = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in value.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [v for v in (_pruned(v) for v in value) if v not in (None, "", [], {})]
    return value


@router.get(
    "/audit/events/fhir",
    summary="The practice's audit log as a FHIR R4 Bundle (searchset) of AuditEvent, one page",
    response_class=JSONResponse,
    responses={200: {"content": {FHIR_JSON: {}}}},
)
async def export_fhir(
    http: Request,
    caller: CallerDep,
    backends: BackendsDep,
    query: QueryDep,
    page_size: PageSize = 100,
    page_token: PageToken = "",
) -> JSONResponse:
    require(caller, "audit.read")
    query.page_size, query.page_token = page_size, page_token
    page = await call(backends.audit.Query, query)
    await _audited(backends, caller, "audit.export", query.patient_id)
    next_url = str(http.url.include_query_params(page_token=page.next_page_token)) if page.next_page_token else None
    return JSONResponse(fhir_bundle(list(page.events), str(http.url), next_url), media_type=FHIR_JSON)


# --- The accounting of disclosures -------------------------------------------------------------------


def disclosure_json(disclosure: audit_pb2.Disclosure) -> dict[str, Any]:
    return {
        "event_id": disclosure.event_id,
        "disclosed_at": time_or_none(disclosure, "timestamp"),
        "vendor": disclosure.integration_type,
        "action": disclosure.action,
        "resource": disclosure.resource,
        "fields": list(disclosure.data_accessed),
        "run_id": disclosure.run_id or None,
        "mapping_version": disclosure.mapping_version,
        "user_id": disclosure.user_id,
        "sequence": disclosure.sequence,
    }


@router.get(
    "/patients/{patient_id}/disclosures",
    summary="A patient's accounting of disclosures: which PHI fields went to which vendor, when, by which run",
)
async def list_disclosures(
    caller: CallerDep,
    backends: BackendsDep,
    patient_id: Annotated[str, Path(min_length=1, max_length=64)],
    since: Since = None,
    until: Until = None,
    page_size: PageSize = 100,
    page_token: PageToken = "",
) -> dict[str, Any]:
    """Oldest first. Read from the audit log, not the patient record: a deleted patient's accounting
    is still there (and a patient the practice does not have simply has none)."""
    require(caller, "disclosure.read")
    _window(since, until)
    request = audit_pb2.ListDisclosuresRequest(
        practice_id=caller.practice_id,
        patient_id=patient_id,
        start_time=_stamp(since),
        end_time=_stamp(until),
        page_size=page_size,
        page_token=page_token,
    )
    page = await call(backends.audit.ListDisclosures, request)
    await _audited(backends, caller, "audit.disclosures", patient_id)
    return {
        "patient_id": patient_id,
        "disclosures": [disclosure_json(d) for d in page.disclosures],
        "next_page_token": page.next_page_token or None,
    }
