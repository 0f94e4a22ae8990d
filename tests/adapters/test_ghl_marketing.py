"""GoHighLevel marketing switches acted on by the push, against the sandbox over real HTTP:
campaign tags while the contact is not DND, removed when the switch goes off; a second push
changes nothing; a failed marketing step fails that record alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.registry.v1 import registry_pb2 as rpb
from libs.settings import Settings
from services.adapters.ghl.marketing import EMAIL_TAG, SMS_TAG, campaign_tags, dnd, lead_score
from tests.adapters.conftest import GhlHarness
from tests.adapters.test_ghl_appointments import MONDAY, NOTES, Calendars, _open, _slot, _write

BOTH = rpb.VendorOptions(marketing=rpb.MarketingOptions(email_campaigns=True, sms_campaigns=True))
OFF = rpb.VendorOptions()


def _written(response: pb.UpsertBatchResponse) -> list[str]:
    assert all(r.success for r in response.results), [(r.error_reason, r.error_message) for r in response.results]
    return [r.external_id for r in response.results]


def test_dnd_is_all_channels_or_the_channels_own_status() -> None:
    assert dnd({"dnd": True}, "Email") and dnd({"dnd": True}, "SMS")
    assert dnd({"dndSettings": {"SMS": {"status": "permanent"}}}, "SMS")
    assert not dnd({"dndSettings": {"SMS": {"status": "active"}}}, "Email")
    assert not dnd({"dndSettings": {"Email": {"status": "inactive"}}}, "Email")
    assert not dnd({"dnd": False, "dndSettings": "junk"}, "Email")


def test_campaign_tags_are_only_the_change() -> None:
    marketing = BOTH.marketing
    assert campaign_tags(marketing, {"tags": ["vip"]}) == ([EMAIL_TAG, SMS_TAG], [])
    assert campaign_tags(marketing, {"tags": [EMAIL_TAG, SMS_TAG]}) == ([], [])
    sms_dnd = {"tags": [EMAIL_TAG, SMS_TAG], "dndSettings": {"SMS": {"status": "active"}}}
    assert campaign_tags(marketing, sms_dnd) == ([], [SMS_TAG])
    assert campaign_tags(OFF.marketing, {"tags": [EMAIL_TAG, "vip"]}) == ([], [EMAIL_TAG])
    assert campaign_tags(OFF.marketing, {}) == ([], [])


async def test_switches_on_tag_the_contact_once_and_off_removes_the_tags(ghl: GhlHarness) -> None:
    record = ghl.new_records(1)[0]
    first = await ghl.upsert([("r", "", record)], BOTH)
    contact_id = _written(first)[0]
    assert first.vendor_requests == 2  # the upsert, one tag call for both tags
    assert {EMAIL_TAG, SMS_TAG} <= set((await ghl.stored())[contact_id]["tags"])
    assert {EMAIL_TAG, SMS_TAG} <= set(first.results[0].record["tags"])

    # A second push with the same switches: the contact update only, no tag call, same tags.
    again = await ghl.upsert([("r", contact_id, record)], BOTH)
    _written(again)
    assert again.vendor_requests == 1
    assert set((await ghl.stored())[contact_id]["tags"]) == set(first.results[0].record["tags"])

    # Switches off: the campaign tags go, once.
    off = await ghl.upsert([("r", contact_id, record)], OFF)
    _written(off)
    assert off.vendor_requests == 2  # the update, one tag removal
    assert not set((await ghl.stored())[contact_id].get("tags") or []) & {EMAIL_TAG, SMS_TAG}
    still_off = await ghl.upsert([("r", contact_id, record)], OFF)
    assert still_off.vendor_requests == 1


async def test_a_contact_dnd_for_sms_gets_the_email_tag_only(ghl: GhlHarness) -> None:
    record = {**ghl.new_records(1)[0], "dndSettings": {"SMS": {"status": "active"}}}
    contact_id = _written(await ghl.upsert([("r", "", record)], BOTH))[0]
    tags = set((await ghl.stored())[contact_id].get("tags") or [])
    assert EMAIL_TAG in tags and SMS_TAG not in tags


async def test_switches_off_tag_nothing(ghl: GhlHarness) -> None:
    contact_id = _written(await ghl.upsert([("r", "", ghl.new_records(1)[0])], OFF))[0]
    assert not set((await ghl.stored())[contact_id].get("tags") or []) & {EMAIL_TAG, SMS_TAG}


# --- appointments: reminder and follow-up enrolment, the lead score -------------------------------

NOW = MONDAY.timestamp()


def _event(days: float, status: str) -> dict:
    start = datetime.fromtimestamp(NOW + days * 86_400, UTC)
    return {"startTime": start.isoformat(), "appointmentStatus": status}


def test_lead_score_rewards_kept_recent_visits_and_bookings_and_docks_no_shows() -> None:
    assert lead_score([], NOW) == 0
    assert lead_score([_event(-1, "showed")], NOW) == 40  # one visit, within 30 days
    assert lead_score([_event(-100, "showed")], NOW) == 20  # one visit, within 180 days
    assert lead_score([_event(-400, "showed")], NOW) == 0  # older than a year: nothing
    assert lead_score([_event(-d, "showed") for d in range(1, 8)], NOW) == 80  # visits capped at 50
    assert lead_score([_event(-1, "showed"), _event(3, "confirmed")], NOW) == 60
    assert lead_score([_event(-1, "showed"), _event(-5, "noshow")], NOW) == 30
    assert lead_score([_event(-5, "noshow"), _event(-6, "noshow"), _event(-7, "cancelled")], NOW) == 0
    assert lead_score([{"startTime": "soon", "appointmentStatus": "showed"}, {}], NOW) == 0
    assert lead_score([_event(-d, "showed") for d in range(1, 30)] + [_event(2, "new")], NOW) == 100


@pytest.fixture
async def cal(settings: Settings) -> AsyncIterator[Calendars]:
    async with _open(settings) as opened:
        yield opened


async def _workflow_ids(cal: Calendars) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {cal.token}", "Version": "2021-07-28"}
    listed = await cal.ghl.http.get(
        f"{cal.ghl.sandbox_url}/workflows/", params={"locationId": cal.ghl.location_id}, headers=headers
    )
    assert listed.status_code == 200, listed.text
    return {w["name"]: w["id"] for w in listed.json()["workflows"]}


async def _enrolments(cal: Calendars) -> list[tuple[str, str, str]]:
    listed = await cal.admin("GET", "/enrollments", params={"locationId": cal.ghl.location_id})
    return sorted((e["contactId"], e["workflowId"], e["enrolledAt"]) for e in listed["enrollments"])


def _enrolling(reminder: str = "", follow_up: str = "") -> rpb.VendorOptions:
    return rpb.VendorOptions(
        marketing=rpb.MarketingOptions(
            appointment_reminders=bool(reminder),
            reminder_workflow_id=reminder,
            follow_up_sequences=bool(follow_up),
            follow_up_workflow_id=follow_up,
        )
    )


ENROL = "POST /contacts/{contactId}/workflow/{workflowId}"


async def test_a_booked_appointment_enrols_its_contact_in_the_reminder_workflow_once(cal: Calendars) -> None:
    workflows = await _workflow_ids(cal)
    options = _enrolling(reminder=workflows["Appointment reminders"], follow_up=workflows["Post-visit follow-up"])
    contact = (await cal.contacts(1))[0]
    booking = _write(contact, _slot(1, 15))
    first = await cal.upsert([("ref-0", "", booking)], options)
    assert first.results[0].success, first.results[0].error_message
    enrolled = await _enrolments(cal)
    assert [(c, w) for c, w, _ in enrolled] == [(contact, workflows["Appointment reminders"])]

    await cal.admin("POST", "/stats/reset")
    again = await cal.upsert([("ref-0", first.results[0].external_id, booking)], options)
    assert again.results[0].success
    assert await cal.calls(ENROL) == 0
    assert await _enrolments(cal) == enrolled  # not enrolled again: enrolledAt unchanged

    # Fulfilled: the follow-up sequence, once; the reminder stays as it was.
    kept = {**booking, "appointmentStatus": "showed"}
    done = await cal.upsert([("ref-0", first.results[0].external_id, kept)], options)
    assert done.results[0].success, done.results[0].error_message
    after = await _enrolments(cal)
    assert {(c, w) for c, w, _ in after} == {
        (contact, workflows["Appointment reminders"]),
        (contact, workflows["Post-visit follow-up"]),
    }
    await cal.admin("POST", "/stats/reset")
    await cal.upsert([("ref-0", first.results[0].external_id, kept)], options)
    assert await cal.calls(ENROL) == 0
    assert await _enrolments(cal) == after


async def test_switches_off_enrol_and_look_up_nothing(cal: Calendars) -> None:
    contact = (await cal.contacts(1))[0]
    await cal.admin("POST", "/stats/reset")
    written = await cal.upsert([("ref-0", "", _write(contact, _slot(1, 15)))], rpb.VendorOptions())
    assert written.results[0].success
    assert await _enrolments(cal) == []
    assert await cal.calls("GET /contacts/{contactId}") == 0


async def test_an_unknown_workflow_fails_that_record_alone(cal: Calendars) -> None:
    contacts = await cal.contacts(2)
    options = _enrolling(reminder="no-such-workflow")
    good = _write(contacts[0], _slot(1, 15), status="cancelled")  # no reminder for a cancellation
    bad = _write(contacts[1], _slot(1, 16), description=NOTES)
    written = await cal.upsert([("ref-0", "", good), ("ref-1", "", bad)], options)
    assert written.results[0].success
    assert not written.results[1].success
    assert written.results[1].error_reason == "MARKETING_FAILED"
    assert "not found" in written.results[1].error_message
    assert "Zyxwvut" not in written.results[1].error_message  # PHI canary


async def _score_field(cal: Calendars) -> str:
    headers = {"Authorization": f"Bearer {cal.token}", "Version": "2021-07-28"}
    created = await cal.ghl.http.post(
        f"{cal.ghl.sandbox_url}/locations/{cal.ghl.location_id}/customFields",
        json={"name": "Lead score", "dataType": "NUMERICAL"},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    return created.json()["customField"]["id"]


def _scoring(field: str) -> rpb.VendorOptions:
    return rpb.VendorOptions(marketing=rpb.MarketingOptions(lead_scoring=True, lead_score_field=field))


async def _score(cal: Calendars, contact_id: str, field_id: str) -> object:
    contact = (await cal.ghl.stored())[contact_id]
    return {c["id"]: c["value"] for c in contact.get("customFields") or []}.get(field_id)


async def test_the_lead_score_field_is_written_from_the_appointments_and_only_when_it_changes(
    cal: Calendars,
) -> None:
    field_id = await _score_field(cal)
    contact = (await cal.contacts(1))[0]
    visit = _write(contact, _slot(-7, 15), status="fulfilled")
    first = await cal.upsert([("ref-0", "", visit)], _scoring("lead_score"))  # by key, without "contact."
    assert first.results[0].success, first.results[0].error_message
    assert await _score(cal, contact, field_id) == "40"

    await cal.admin("POST", "/stats/reset")
    again = await cal.upsert([("ref-0", first.results[0].external_id, visit)], _scoring(field_id))  # by id
    assert again.results[0].success
    assert await cal.calls("PUT /contacts/{contactId}") == 0

    booked = await cal.upsert([("ref-1", "", _write(contact, _slot(3, 15)))], _scoring("contact.lead_score"))
    assert booked.results[0].success
    assert await _score(cal, contact, field_id) == "60"


async def test_an_undefined_score_field_fails_the_record_with_a_reason(cal: Calendars) -> None:
    contact = (await cal.contacts(1))[0]
    written = await cal.upsert([("ref-0", "", _write(contact, _slot(1, 15)))], _scoring("no_such_field"))
    assert not written.results[0].success
    assert written.results[0].error_reason == "LEAD_SCORE_FIELD_NOT_FOUND"
