"""GoHighLevel marketing switches acted on by the push, against the sandbox over real HTTP:
campaign tags while the hub's patient consents and the contact is not DND, removed when the
switch goes off or the consent is revoked; reminder enrolments followed through cancellations,
no-shows and moves; a second push changes nothing; a failed marketing step fails that record alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.registry.v1 import registry_pb2 as rpb
from libs.settings import Settings
from services.adapters.ghl.marketing import EMAIL_TAG, SMS_TAG, Reminder, campaign_tags, consents, dnd, lead_score
from services.mapping.mappers.ghl import dnd_from_consent
from tests.adapters.harness_ghl import GhlHarness
from tests.adapters.test_ghl_appointments import MONDAY, NOTES, Calendars, _open, _slot, _write

BOTH = rpb.VendorOptions(marketing=rpb.MarketingOptions(email_campaigns=True, sms_campaigns=True))
OFF = rpb.VendorOptions()


def _consent(email: str | None = "permit", sms: str | None = "permit") -> dict:
    """What the GHL mapper writes for a hub patient's marketing consent (dndSettings per channel)."""
    written = dnd_from_consent({"email_marketing_consent": email, "sms_marketing_consent": sms})
    return {"dndSettings": written} if written else {}


def _written(response: pb.UpsertBatchResponse) -> list[str]:
    assert all(r.success for r in response.results), [(r.error_reason, r.error_message) for r in response.results]
    return [r.external_id for r in response.results]


def test_dnd_is_all_channels_or_the_channels_own_status() -> None:
    assert dnd({"dnd": True}, "Email") and dnd({"dnd": True}, "SMS")
    assert dnd({"dndSettings": {"SMS": {"status": "permanent"}}}, "SMS")
    assert not dnd({"dndSettings": {"SMS": {"status": "active"}}}, "Email")
    assert not dnd({"dndSettings": {"Email": {"status": "inactive"}}}, "Email")
    assert not dnd({"dnd": False, "dndSettings": "junk"}, "Email")


def test_the_hub_consent_is_read_from_what_the_mapper_wrote() -> None:
    assert consents(_consent(), "Email") and consents(_consent(), "SMS")
    assert consents(_consent(sms="deny"), "Email") and not consents(_consent(sms="deny"), "SMS")
    assert not consents(_consent(None, None), "Email")
    assert not consents({"dndSettings": "junk"}, "SMS")


def test_campaign_tags_are_only_the_change() -> None:
    marketing = BOTH.marketing
    allowed = _consent()
    assert campaign_tags(marketing, {"tags": ["vip"]}, allowed) == ([EMAIL_TAG, SMS_TAG], [])
    assert campaign_tags(marketing, {"tags": [EMAIL_TAG, SMS_TAG]}, allowed) == ([], [])
    sms_dnd = {"tags": [EMAIL_TAG, SMS_TAG], "dndSettings": {"SMS": {"status": "active"}}}
    assert campaign_tags(marketing, sms_dnd, allowed) == ([], [SMS_TAG])
    assert campaign_tags(OFF.marketing, {"tags": [EMAIL_TAG, "vip"]}, allowed) == ([], [EMAIL_TAG])
    assert campaign_tags(OFF.marketing, {}, allowed) == ([], [])


def test_campaign_tags_need_the_hub_consent_and_no_dnd() -> None:
    marketing = BOTH.marketing
    tagged = {"tags": [EMAIL_TAG, SMS_TAG]}
    assert campaign_tags(marketing, {}, _consent(None, None)) == ([], [])  # nothing recorded allows nothing
    assert campaign_tags(marketing, tagged, _consent(None, None)) == ([], [EMAIL_TAG, SMS_TAG])
    assert campaign_tags(marketing, tagged, _consent(email="deny")) == ([], [EMAIL_TAG])  # revoked
    assert campaign_tags(marketing, {**tagged, "dnd": True}, _consent()) == ([], [EMAIL_TAG, SMS_TAG])


async def test_switches_on_tag_the_contact_once_and_off_removes_the_tags(ghl: GhlHarness) -> None:
    record = {**ghl.new_records(1)[0], **_consent()}
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


async def test_a_patient_who_denied_sms_gets_the_email_tag_only(ghl: GhlHarness) -> None:
    record = {**ghl.new_records(1)[0], **_consent(sms="deny")}
    contact_id = _written(await ghl.upsert([("r", "", record)], BOTH))[0]
    stored = (await ghl.stored())[contact_id]
    tags = set(stored.get("tags") or [])
    assert EMAIL_TAG in tags and SMS_TAG not in tags
    assert stored["dndSettings"] == {"Email": {"status": "inactive"}, "SMS": {"status": "active"}}


async def test_no_consent_tags_nothing_and_a_revoked_consent_removes_its_tag(ghl: GhlHarness) -> None:
    record = ghl.new_records(1)[0]
    first = await ghl.upsert([("r", "", record)], BOTH)
    contact_id = _written(first)[0]
    assert first.vendor_requests == 1  # the upsert: no consent recorded, no tag call
    assert not set((await ghl.stored())[contact_id].get("tags") or []) & {EMAIL_TAG, SMS_TAG}

    _written(await ghl.upsert([("r", contact_id, {**record, **_consent()})], BOTH))
    assert {EMAIL_TAG, SMS_TAG} <= set((await ghl.stored())[contact_id]["tags"])

    # The patient revokes email marketing in the hub: GHL's Email DND comes on, the email tag goes.
    revoked = await ghl.upsert([("r", contact_id, {**record, **_consent(email="deny")})], BOTH)
    _written(revoked)
    assert revoked.vendor_requests == 2  # the update, one tag removal
    stored = (await ghl.stored())[contact_id]
    assert SMS_TAG in stored["tags"] and EMAIL_TAG not in stored["tags"]
    assert stored["dndSettings"]["Email"] == {"status": "active"}


async def test_ghl_dnd_forbids_campaigns_the_hub_consents_to(ghl: GhlHarness) -> None:
    record = {**ghl.new_records(1)[0], **_consent()}
    contact_id = _written(await ghl.upsert([("r", "", record)], BOTH))[0]
    assert {EMAIL_TAG, SMS_TAG} <= set((await ghl.stored())[contact_id]["tags"])
    # GHL staff turn DND on for every channel; the hub's consent does not lift that flag.
    await ghl._admin("PATCH", f"/contacts/{contact_id}", json={"dnd": True})
    _written(await ghl.upsert([("r", contact_id, record)], BOTH))
    assert not set((await ghl.stored())[contact_id]["tags"]) & {EMAIL_TAG, SMS_TAG}


async def test_switches_off_tag_nothing(ghl: GhlHarness) -> None:
    contact_id = _written(await ghl.upsert([("r", "", ghl.new_records(1)[0])], OFF))[0]
    assert not set((await ghl.stored())[contact_id].get("tags") or []) & {EMAIL_TAG, SMS_TAG}


async def test_a_channel_the_hub_has_no_consent_for_keeps_ghls_dnd(ghl: GhlHarness) -> None:
    record = ghl.new_records(1)[0]
    contact_id = _written(await ghl.upsert([("r", "", record)], BOTH))[0]
    await ghl._admin("PATCH", f"/contacts/{contact_id}", json={"dndSettings": {"SMS": {"status": "active"}}})
    _written(await ghl.upsert([("r", contact_id, {**record, **_consent(sms=None)})], BOTH))
    stored = (await ghl.stored())[contact_id]
    assert stored["dndSettings"] == {"SMS": {"status": "active"}, "Email": {"status": "inactive"}}
    assert EMAIL_TAG in stored["tags"] and SMS_TAG not in stored["tags"]


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


# --- the reminder enrolment follows the booking: cancelled, no-show, moved ------------------------

LEAVE = "DELETE /contacts/{contactId}/workflow/{workflowId}"


async def _enrolled(cal: Calendars) -> list[dict]:
    listed = await cal.admin("GET", "/enrollments", params={"locationId": cal.ghl.location_id})
    return listed["enrollments"]


async def _markers(cal: Calendars, contact_id: str) -> list[Reminder]:
    tags = (await cal.ghl.stored())[contact_id].get("tags") or []
    return [r for r in (Reminder.parse(t) for t in tags) if r is not None]


async def _retag(cal: Calendars, method: str, contact_id: str, tag: str) -> None:
    """A tag call as a GHL user (or an earlier, interrupted push) would make it."""
    headers = {"Authorization": f"Bearer {cal.token}", "Version": "2021-07-28"}
    url = f"{cal.ghl.sandbox_url}/contacts/{contact_id}/tags"
    response = await cal.ghl.http.request(method, url, json={"tags": [tag]}, headers=headers)
    assert response.status_code < 300, response.text


def _at(start: datetime) -> int:
    return int(start.timestamp())


def _same(a: str, b: datetime) -> bool:
    return datetime.fromisoformat(a) == b


async def _reminding(cal: Calendars) -> tuple[rpb.VendorOptions, str]:
    reminder = (await _workflow_ids(cal))["Appointment reminders"]
    return _enrolling(reminder=reminder), reminder


async def _booked(cal: Calendars, options: rpb.VendorOptions) -> tuple[str, dict, str]:
    """(contact, the booking as pushed, its GHL event id): a new contact's booking pushed once."""
    contact = (await cal.contacts(1))[0]
    booking = _write(contact, _slot(1, 15))
    written = await cal.upsert([("ref-0", "", booking)], options)
    assert written.results[0].success, written.results[0].error_message
    return contact, booking, written.results[0].external_id


async def test_a_cancelled_booking_leaves_the_reminder_workflow_once(cal: Calendars) -> None:
    options, reminder = await _reminding(cal)
    contact, booking, event_id = await _booked(cal, options)
    assert [(e["contactId"], e["workflowId"]) for e in await _enrolled(cal)] == [(contact, reminder)]
    assert await _markers(cal, contact) == [Reminder(event_id.lower(), reminder, _at(_slot(1, 15)))]

    await cal.admin("POST", "/stats/reset")
    cancelled = {**booking, "appointmentStatus": "cancelled"}
    gone = await cal.upsert([("ref-0", event_id, cancelled)], options)
    assert gone.results[0].success, gone.results[0].error_message
    assert await _enrolled(cal) == []
    assert await _markers(cal, contact) == []
    assert await cal.calls(LEAVE) == 1

    # Pushed again (another change to the cancelled booking): nothing left to leave.
    await cal.admin("POST", "/stats/reset")
    again = await cal.upsert([("ref-0", event_id, {**cancelled, "title": "Annual physical (cancelled)"})], options)
    assert again.results[0].success
    assert await cal.calls(LEAVE) == 0 and await cal.calls(ENROL) == 0

    # A retry after GHL took the removal but before the marker went: removed again, harmlessly, once.
    marker = Reminder(event_id.lower(), reminder, _at(_slot(1, 15)))
    await _retag(cal, "POST", contact, marker.tag)
    await cal.admin("POST", "/stats/reset")
    retried = await cal.upsert([("ref-0", event_id, cancelled)], options)
    assert retried.results[0].success, retried.results[0].error_message
    assert await cal.calls(LEAVE) == 1
    assert await _enrolled(cal) == [] and await _markers(cal, contact) == []


async def test_a_no_show_leaves_the_workflow_even_with_the_switches_off_now(cal: Calendars) -> None:
    contact, booking, event_id = await _booked(cal, (await _reminding(cal))[0])
    assert len(await _enrolled(cal)) == 1
    missed = await cal.upsert([("ref-0", event_id, {**booking, "appointmentStatus": "noshow"})], OFF)
    assert missed.results[0].success, missed.results[0].error_message
    assert await _enrolled(cal) == [] and await _markers(cal, contact) == []


async def test_a_moved_booking_is_enrolled_again_for_its_new_start(cal: Calendars) -> None:
    options, reminder = await _reminding(cal)
    contact, _, event_id = await _booked(cal, options)
    [before] = await _enrolled(cal)

    await cal.admin("POST", "/stats/reset")
    moved = _write(contact, _slot(2, 16))
    done = await cal.upsert([("ref-0", event_id, moved)], options)
    assert done.results[0].success, done.results[0].error_message
    [after] = await _enrolled(cal)
    assert (await cal.calls(LEAVE), await cal.calls(ENROL)) == (1, 1)
    assert _same(after["eventStartTime"], _slot(2, 16)) and after["enrolledAt"] != before["enrolledAt"]
    assert await _markers(cal, contact) == [Reminder(event_id.lower(), reminder, _at(_slot(2, 16)))]

    await cal.admin("POST", "/stats/reset")
    await cal.upsert([("ref-0", event_id, moved)], options)
    assert (await cal.calls(LEAVE), await cal.calls(ENROL)) == (0, 0)


async def test_a_new_reminder_workflow_takes_the_enrolment_from_the_old_one(cal: Calendars) -> None:
    workflows = await _workflow_ids(cal)
    old, new = workflows["Appointment reminders"], workflows["Annual physical recall"]
    _, booking, event_id = await _booked(cal, _enrolling(reminder=old))
    switched = await cal.upsert([("ref-0", event_id, booking)], _enrolling(reminder=new))
    assert switched.results[0].success, switched.results[0].error_message
    assert [e["workflowId"] for e in await _enrolled(cal)] == [new]
    # Cancelled later: it leaves the workflow it is in, the new one.
    await cal.upsert([("ref-0", event_id, {**booking, "appointmentStatus": "cancelled"})], _enrolling(reminder=new))
    assert await _enrolled(cal) == []


async def test_cancelling_one_of_two_bookings_keeps_the_other_reminded(cal: Calendars) -> None:
    options, reminder = await _reminding(cal)
    contact = (await cal.contacts(1))[0]
    sooner, later = _write(contact, _slot(1, 15)), _write(contact, _slot(3, 15))
    written = await cal.upsert([("ref-0", "", sooner)], options)
    sooner_id = written.results[0].external_id
    later_id = (await cal.upsert([("ref-1", "", later)], options)).results[0].external_id
    [enrolment] = await _enrolled(cal)
    assert _same(enrolment["eventStartTime"], _slot(3, 15))  # GHL keeps one enrolment: the last one made

    # The later booking is cancelled: GHL drops the contact from the workflow, which then takes it
    # back for the booking still ahead.
    await cal.upsert([("ref-1", later_id, {**later, "appointmentStatus": "cancelled"})], options)
    [enrolment] = await _enrolled(cal)
    assert (enrolment["workflowId"], _same(enrolment["eventStartTime"], _slot(1, 15))) == (reminder, True)
    assert [m.event_id for m in await _markers(cal, contact)] == [sooner_id.lower()]

    await cal.upsert([("ref-0", sooner_id, {**sooner, "appointmentStatus": "cancelled"})], options)
    assert await _enrolled(cal) == [] and await _markers(cal, contact) == []


async def test_a_workflow_ghl_no_longer_has_counts_as_left(cal: Calendars) -> None:
    options, _ = await _reminding(cal)
    contact, booking, event_id = await _booked(cal, options)
    [marker] = await _markers(cal, contact)
    # As if the reminder workflow had since been deleted at GHL: the marker names one GHL lacks.
    gone = Reminder(marker.event_id, "00000000-0000-4000-8000-000000000000", marker.start)
    await _retag(cal, "DELETE", contact, marker.tag)
    await _retag(cal, "POST", contact, gone.tag)
    cancelled = await cal.upsert([("ref-0", event_id, {**booking, "appointmentStatus": "cancelled"})], options)
    assert cancelled.results[0].success, cancelled.results[0].error_message
    assert await _markers(cal, contact) == []
