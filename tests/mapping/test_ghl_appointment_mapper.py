"""GoHighLevel calendar event <-> FHIR Appointment: the status table, times, service, patient,
description; field errors that name the GHL field and never a value; round trips both ways."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs import fhir_appointment as fa
from services.mapping.domain import RecordInvalid
from services.mapping.mappers import default_mappers
from services.mapping.mappers.ghl_appointments import (
    APPOINTMENT_ID_SYSTEM,
    CALENDAR_ID_SYSTEM,
    TO_GHL_STATUS,
    TO_HUB_STATUS,
    USER_ID_SYSTEM,
    GhlAppointmentMapper,
)
from services.mapping.service import MappingService
from tests.mapping.strategies import words

MAPPER = GhlAppointmentMapper()
NEW_YORK = ZoneInfo("America/New_York")
NOTES = "Follow-up on Zyxwvut's biopsy"  # PHI canary
EVENT = {
    "id": "evt0000000000000001",
    "title": "Annual physical",
    "calendarId": "cal00000000000000001",
    "calendarName": "Annual physical",
    "locationId": "loc1",
    "contactId": "con00000000000000001",
    "groupId": "grp1",
    "appointmentStatus": "confirmed",
    "assignedUserId": "usr00000000000000001",
    "users": [],
    "notes": NOTES,
    "startTime": "2026-03-02T09:00:00-05:00",
    "endTime": "2026-03-02T09:45:00-05:00",
    "dateAdded": "2026-02-01T12:00:00.000Z",
    "dateUpdated": "2026-02-01T12:00:00.000Z",
}


def test_an_event_maps_to_a_booked_appointment_of_the_contact_in_the_calendars_service() -> None:
    result = MAPPER.to_hub(EVENT)

    appointment = result.resource
    assert result.external_id == EVENT["id"]
    assert appointment["identifier"] == [{"system": APPOINTMENT_ID_SYSTEM, "value": EVENT["id"]}]
    assert fa.project(appointment) == {
        "status": "booked",
        "start": "2026-03-02T14:00:00Z",
        "end": "2026-03-02T14:45:00Z",
        "service_code": EVENT["calendarId"],
        "service_name": "Annual physical",
        "patient": f"external:{EVENT['contactId']}",
        "description": NOTES,
    }
    assert appointment["start"] == "2026-03-02T09:00:00-05:00"  # GHL's offset kept
    assert appointment["serviceType"][0]["coding"] == [{"system": CALENDAR_ID_SYSTEM, "code": EVENT["calendarId"]}]
    practitioner = appointment["participant"][1]["actor"]
    assert practitioner == {
        "type": "Practitioner",
        "identifier": {"system": USER_ID_SYSTEM, "value": EVENT["assignedUserId"]},
    }


@pytest.mark.parametrize(
    ("ghl", "fhir"),
    [
        ("new", "proposed"),
        ("confirmed", "booked"),
        ("cancelled", "cancelled"),
        ("showed", "fulfilled"),
        ("noshow", "noshow"),
        ("invalid", "entered-in-error"),
    ],
)
def test_status_table_both_ways(ghl: str, fhir: str) -> None:
    appointment = MAPPER.to_hub({**EVENT, "appointmentStatus": ghl}).resource
    assert appointment["status"] == fhir
    assert MAPPER.to_vendor(appointment)["appointmentStatus"] == ghl


def test_fhir_statuses_ghl_lacks_go_to_the_nearest_one() -> None:
    assert set(TO_GHL_STATUS) == set(fa.STATUSES)
    appointment = MAPPER.to_hub(EVENT).resource
    for fhir, ghl in [("pending", "new"), ("waitlist", "new"), ("arrived", "showed"), ("checked-in", "showed")]:
        assert MAPPER.to_vendor({**appointment, "status": fhir})["appointmentStatus"] == ghl


@pytest.mark.parametrize(
    ("fields", "description"),
    [
        ({"description": "Bring the forms", "notes": NOTES}, "Bring the forms"),
        ({"notes": NOTES}, NOTES),
        ({"notes": None, "title": "Consult with Dr. Kay"}, "Consult with Dr. Kay"),
        ({"notes": None}, None),  # the title is the calendar's name: GHL's default, not a description
        ({"notes": None, "title": "Consult with Dr. Kay", "calendarName": None}, None),  # unknowable: left alone
    ],
)
def test_description_comes_from_description_notes_or_a_title_of_the_users_own(
    fields: dict, description: str | None
) -> None:
    event = {k: v for k, v in {**EVENT, **fields}.items() if v is not None}
    assert MAPPER.to_hub(event).resource.get("description") == description


@pytest.mark.parametrize(
    ("change", "field", "reason", "value"),
    [
        ({"appointmentStatus": "maybe-later"}, "appointmentStatus", "INVALID_CODE", "maybe-later"),
        ({"startTime": "tomorrow at Zyxwvut"}, "startTime", "INVALID_DATE", "tomorrow at Zyxwvut"),
        ({"endTime": "2026-03-02T09:45:00"}, "endTime", "INVALID_DATE", "2026-03-02T09:45:00"),
        ({"startTime": None}, "startTime", "MISSING_TIME", None),
        ({"contactId": None}, "contactId", "MISSING_PATIENT", None),
        ({"notes": ["Zyxwvut"]}, "notes", "INVALID_TYPE", "Zyxwvut"),
    ],
)
def test_invalid_events_name_the_ghl_field_never_the_value(
    change: dict, field: str, reason: str, value: str | None
) -> None:
    event = {k: v for k, v in {**EVENT, **change}.items() if v is not None}
    with pytest.raises(RecordInvalid) as invalid:
        MAPPER.to_hub(event)
    assert [(e.field, e.reason) for e in invalid.value.errors] == [(field, reason)]
    assert invalid.value.external_id == EVENT["id"]
    if value:
        assert value not in repr(invalid.value.errors)
    assert NOTES not in repr(invalid.value.errors)


def _hub(**changes: object) -> dict:
    appointment = {
        "resourceType": "Appointment",
        "status": "booked",
        "start": "2026-03-02T14:00:00Z",
        "end": "2026-03-02T14:45:00Z",
        "serviceType": [
            {"coding": [{"system": "urn:practice:services", "code": "physical"}], "text": "Annual physical"}
        ],
        "participant": [{"actor": fa.external_actor("con1"), "status": "accepted"}],
    }
    return {**appointment, **changes}


def test_a_hub_service_goes_as_a_hint_unless_it_is_a_ghl_calendar() -> None:
    hinted = MAPPER.to_vendor(_hub())
    assert "calendarId" not in hinted
    assert hinted["service"] == {"code": "physical", "name": "Annual physical"}
    assert hinted == {
        "contactId": "con1",
        "startTime": "2026-03-02T14:00:00Z",
        "endTime": "2026-03-02T14:45:00Z",
        "appointmentStatus": "confirmed",
        "service": {"code": "physical", "name": "Annual physical"},
    }
    coded = _hub(serviceType=[{"coding": [{"system": CALENDAR_ID_SYSTEM, "code": "cal9"}], "text": "Peel"}])
    assert MAPPER.to_vendor(coded)["calendarId"] == "cal9"
    assert "service" not in MAPPER.to_vendor(coded)


@pytest.mark.parametrize(
    ("resource", "field", "reason"),
    [
        (fa.set_patient_reference(_hub(), "Patient/hub-1"), "participant", "PATIENT_NOT_LINKED"),
        (_hub(participant=[{"actor": {"display": "Dr. Kay"}, "status": "accepted"}]), "participant", "MISSING_PATIENT"),
        ({k: v for k, v in _hub(status="proposed").items() if k not in ("start", "end")}, "start", "MISSING_TIME"),
        ({k: v for k, v in _hub().items() if k != "serviceType"}, "serviceType", "MISSING_SERVICE"),
        (_hub(status="maybe"), "status", "INVALID_CODE"),
    ],
)
def test_appointments_ghl_cannot_book_fail_naming_the_fhir_field(resource: dict, field: str, reason: str) -> None:
    with pytest.raises(RecordInvalid) as invalid:
        MAPPER.to_vendor(resource)
    assert [(e.field, e.reason) for e in invalid.value.errors] == [(field, reason)]


def _as_ghl_lists_it(body: dict, calendar_id: str, calendar_name: str | None) -> dict:
    """What GHL stores and lists for a write body: times in the location's zone, the calendar's
    name as the default title; the adapter adds calendarName."""
    event = {k: v for k, v in body.items() if k != "service"}
    for name in ("startTime", "endTime"):
        moment = datetime.fromisoformat(event[name].replace("Z", "+00:00"))
        event[name] = moment.astimezone(NEW_YORK).isoformat(timespec="seconds")
    event.update(id="evt-round-trip", calendarId=calendar_id, title=calendar_name or "Booking")
    if calendar_name is not None:
        event["calendarName"] = calendar_name
    return event


service_names = st.sampled_from(["Annual physical", "Hydrating facial", "Botox treatment"])


@st.composite
def hub_appointments(draw: st.DrawFn) -> dict:
    start = datetime(2026, 1, 5, tzinfo=UTC) + timedelta(minutes=15 * draw(st.integers(0, 40_000)))
    zone = timezone(timedelta(hours=draw(st.sampled_from([0, -5, -4, 2, 5.5]))))
    end = start + timedelta(minutes=draw(st.sampled_from([20, 30, 45, 60])))
    name = draw(service_names)
    coding = draw(
        st.sampled_from(
            [
                [{"system": CALENDAR_ID_SYSTEM, "code": "cal-" + name.split()[0].lower()}],
                [{"system": "urn:practice:services", "code": name.split()[0].lower()}],
                [],
            ]
        )
    )
    appointment = {
        "resourceType": "Appointment",
        "status": draw(st.sampled_from(fa.STATUSES)),
        "start": start.astimezone(zone).isoformat(timespec="seconds"),
        "end": end.astimezone(zone).isoformat(timespec="seconds"),
        "serviceType": [{"text": name, **({"coding": coding} if coding else {})}],
        "participant": [
            {"actor": fa.external_actor(draw(st.from_regex(r"[A-Za-z0-9]{20}", fullmatch=True))), "status": "accepted"}
        ],
    }
    if description := draw(st.none() | words):
        appointment["description"] = description
    return fa.parse_appointment(appointment)


@given(appointment=hub_appointments())
def test_hub_to_ghl_to_hub_keeps_every_canonical_field(appointment: dict) -> None:
    body = MAPPER.to_vendor(appointment)
    before = fa.project(appointment)
    # The adapter resolves a hinted service to its calendar; GHL stores the calendar's name.
    calendar_id = body.get("calendarId") or "cal-resolved"
    after = fa.project(MAPPER.to_hub(_as_ghl_lists_it(body, calendar_id, before["service_name"])).resource)
    assert after == {
        **before,
        "status": TO_HUB_STATUS[TO_GHL_STATUS[before["status"]]],
        "service_code": calendar_id,
    }
    if before["status"] in TO_HUB_STATUS.values() and body.get("calendarId"):
        assert after == before  # a GHL calendar and one of GHL's six statuses: nothing is lost


@given(
    status=st.sampled_from(sorted(set(TO_HUB_STATUS) - {"active", "completed"})),
    notes=st.none() | words,
    user=st.none() | st.just("usr00000000000000002"),
)
def test_ghl_to_hub_to_ghl_gives_back_the_fields_ghl_lets_us_write(
    status: str, notes: str | None, user: str | None
) -> None:
    event = {
        k: v for k, v in {**EVENT, "appointmentStatus": status, "notes": notes, "assignedUserId": user}.items() if v
    }
    body = MAPPER.to_vendor(MAPPER.to_hub(event).resource)
    expected = {k: event[k] for k in ("contactId", "startTime", "endTime", "appointmentStatus", "calendarId")}
    expected |= {"description": notes} if notes else {}
    expected |= {"assignedUserId": user} if user else {}
    assert body == expected


async def test_the_mapping_service_serves_it_and_logs_no_notes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    service = MappingService(default_mappers())
    results = await service.map_to_hub("ghl", "ENTITY_TYPE_APPOINTMENT", [EVENT, {**EVENT, "startTime": NOTES}])
    assert results[0].resource["description"] == NOTES
    assert [(e.field, e.reason) for e in results[1].errors] == [("startTime", "INVALID_DATE")]
    assert NOTES not in caplog.text and "Zyxwvut" not in caplog.text
