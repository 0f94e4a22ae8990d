"""Email and SMS through the real stack: gateway -> sync service (SendMessage) -> Temporal ->
the GHL adapter worker's send_message -> the GoHighLevel sandbox over HTTP. The recipient is the
patient's linked contact; DND and unlinked patients are clear problems; a retried request sends
once; the body (PHI) stays out of logs, spans and errors; staff may not send."""

from __future__ import annotations

import logging

import httpx

from libs.grpc_client import call, open_channel
from libs.protos.concord.audit.v1 import audit_pb2, audit_pb2_grpc
from libs.telemetry import memory_exporter
from services.demo import connect_ghl, run_sync
from tests.e2e.conftest import ok

PRACTICE_ID = "messages-e2e"
CANARY = "Zyxwvut-Qorbel biopsy results"  # PHI planted in every body


def _patient(given: str, email: str, phone: str) -> dict:
    return {
        "resourceType": "Patient",
        "name": [{"given": [given], "family": "Messenger"}],
        "birthDate": "1975-04-03",
        "telecom": [{"system": "email", "value": email}, {"system": "phone", "value": phone, "use": "mobile"}],
    }


def _no_canary(text: str) -> None:
    assert "Zyxwvut" not in text and "Qorbel" not in text


async def test_email_and_sms_reach_the_linked_contact_once_and_refusals_are_clear(stack, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    sandbox = stack.sandboxes["ghl"].url
    mint = stack.gateway.issuer.mint
    admin = {"Authorization": f"Bearer {mint('msg-admin', PRACTICE_ID, 'admin')}"}
    provider = {"Authorization": f"Bearer {mint('msg-provider', PRACTICE_ID, 'provider')}"}
    staff = {"Authorization": f"Bearer {mint('msg-staff', PRACTICE_ID, 'staff')}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=300) as http:
        ok(await http.post("/practice", json={"name": "Messages Clinic"}, headers=admin), 201)
        await connect_ghl(http, admin)
        location = ok(await http.get("/integrations/hl/status", headers=admin))["account_id"]
        ann = ok(
            await http.post("/patients", json=_patient("Ann", "ann.m@example.com", "+16175550171"), headers=admin), 201
        )["id"]
        dan = ok(
            await http.post("/patients", json=_patient("Dan", "dan.m@example.com", "+16175550172"), headers=admin), 201
        )["id"]
        assert (await run_sync(http, admin, "push"))["records_created"] == 2
        lee = ok(
            await http.post("/patients", json=_patient("Lee", "lee.m@example.com", "+16175550173"), headers=admin), 201
        )["id"]
        contacts = ok(await http.get(f"{sandbox}/_sandbox/contacts", params={"locationId": location}))["contacts"]
        contact = {c["firstName"]: c["id"] for c in contacts}

        async def outbox() -> dict:
            return ok(await http.get(f"{sandbox}/_sandbox/messages", params={"locationId": location}))

        # Email through the seed's "hl" slug, SMS through "ghl": both to Ann's contact.
        key = {"Idempotency-Key": "ann-results-1"}
        email_in = {"patient_id": ann, "subject": "Your results", "body": f"Hello Ann, {CANARY}"}
        email = ok(await http.post("/integrations/hl/email/send", json=email_in, headers=admin | key))
        sms = ok(
            await http.post(
                "/integrations/ghl/sms/send", json={"patient_id": ann, "body": f"SMS {CANARY}"}, headers=provider
            )
        )
        assert email["status"] == sms["status"] == "sent"
        assert email["idempotency_key"] == "ann-results-1"
        sent = {m["id"]: m for m in (await outbox())["messages"]}
        assert set(sent) == {email["message_id"], sms["message_id"]}
        assert (sent[email["message_id"]]["to"], sent[email["message_id"]]["subject"]) == (
            "ann.m@example.com",
            "Your results",
        )
        assert sent[email["message_id"]]["body"] == f"Hello Ann, {CANARY}"
        assert (sent[sms["message_id"]]["to"], sent[sms["message_id"]]["messageType"]) == ("+16175550171", "TYPE_SMS")
        assert {m["contactId"] for m in sent.values()} == {contact["Ann"]}

        # The same request again (a client retry): the first send's answer, nothing sent twice.
        again = ok(await http.post("/integrations/hl/email/send", json=email_in, headers=admin | key))
        assert again == email
        assert len((await outbox())["messages"]) == 2

        # DND at GHL: 409 with a reason, nothing sent, the refusal is the sandbox's.
        ok(await http.patch(f"{sandbox}/_sandbox/contacts/{contact['Dan']}", json={"dnd": True}))
        refused = await http.post(
            "/integrations/hl/sms/send", json={"patient_id": dan, "body": f"Hi {CANARY}"}, headers=admin
        )
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["reason"] == "DND_ACTIVE"
        _no_canary(refused.text)
        box = await outbox()
        assert len(box["messages"]) == 2
        assert box["refused"] == [{"contactId": contact["Dan"], "locationId": location, "type": "SMS", "reason": "dnd"}]

        # A patient GHL has no contact for: 409 PATIENT_NOT_LINKED, the vendor is not called.
        unlinked = await http.post(
            "/integrations/hl/email/send", json={"patient_id": lee, "subject": "Hi", "body": CANARY}, headers=admin
        )
        assert (unlinked.status_code, unlinked.json()["reason"]) == (409, "PATIENT_NOT_LINKED")
        missing = await http.post(
            "/integrations/hl/email/send",
            json={"patient_id": "no-such", "subject": "Hi", "body": CANARY},
            headers=admin,
        )
        assert (missing.status_code, missing.json()["reason"]) == (404, "PATIENT_NOT_FOUND")
        bad = await http.post("/integrations/hl/email/send", json={"patient_id": ann, "body": CANARY}, headers=admin)
        assert (bad.status_code, bad.json()["field"]) == (422, "subject")
        _no_canary(bad.text)

        # Front-desk staff may not send; nothing reaches GHL.
        forbidden = await http.post(
            "/integrations/hl/sms/send", json={"patient_id": ann, "body": CANARY}, headers=staff
        )
        assert (forbidden.status_code, forbidden.json()["reason"]) == (403, "ROLE_FORBIDDEN")
        assert len((await outbox())["messages"]) == 2

    # Each send that reached GHL is audited once as a disclosure of that patient (the retry is not).
    async with open_channel(stack.settings.audit_address) as channel:
        audit = audit_pb2_grpc.AuditServiceStub(channel)
        found = await call(
            audit.Query, audit_pb2.QueryRequest(practice_id=PRACTICE_ID, action="patient.disclose", page_size=100)
        )
    messages = [e for e in found.events if e.correlation_id.startswith("message:")]
    assert sorted((e.patient_id, e.success) for e in messages) == sorted([(ann, True), (ann, True), (dan, False)])
    assert all("message.body" in e.data_accessed for e in messages)

    _no_canary(caplog.text)
    spans = memory_exporter.get_finished_spans()
    assert any(s.name == "RunActivity:send_message" for s in spans)
    for span in spans:
        _no_canary(repr(dict(span.attributes or {})))
        for event in span.events:
            _no_canary(repr(dict(event.attributes or {})))


async def test_marketing_switches_are_set_read_and_validated_through_the_gateway(stack) -> None:  # noqa: ANN001
    mint = stack.gateway.issuer.mint
    admin = {"Authorization": f"Bearer {mint('mkt-admin', 'marketing-e2e', 'admin')}"}
    provider = {"Authorization": f"Bearer {mint('mkt-provider', 'marketing-e2e', 'provider')}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        ok(await http.post("/practice", json={"name": "Marketing Clinic"}, headers=admin), 201)
        await connect_ghl(http, admin)
        off = ok(await http.get("/integrations/hl/marketing", headers=provider))
        assert {k: v for k, v in off.items() if k != "config_id"} == {
            "email_campaigns": False,
            "sms_campaigns": False,
            "appointment_reminders": False,
            "reminder_workflow_id": "",
            "follow_up_sequences": False,
            "follow_up_workflow_id": "",
            "lead_scoring": False,
            "lead_score_field": "",
        }
        on = {"sms_campaigns": True, "follow_up_sequences": True, "follow_up_workflow_id": "wf-follow"}
        put = ok(await http.put("/integrations/ghl/marketing", json=on, headers=admin))
        assert ok(await http.get("/integrations/hl/marketing", headers=admin)) == put
        assert (put["sms_campaigns"], put["follow_up_workflow_id"], put["email_campaigns"]) == (
            True,
            "wf-follow",
            False,
        )

        unknown = await http.put("/integrations/hl/marketing", json={"push_notifications": True}, headers=admin)
        assert (unknown.status_code, unknown.json()["field"]) == (422, "push_notifications")
        needs = await http.put("/integrations/hl/marketing", json={"lead_scoring": True}, headers=admin)
        assert (needs.status_code, needs.json()["field"]) == (400, "options.marketing.lead_score_field")
        denied = await http.put("/integrations/hl/marketing", json=on, headers=provider)
        assert (denied.status_code, denied.json()["reason"]) == (403, "ROLE_FORBIDDEN")
        assert ok(await http.get("/integrations/hl/marketing", headers=admin)) == put
