"""GoHighLevel email and SMS (the send_message capability) against the sandbox over real HTTP:
what arrives in the sandbox's conversations, DND refusals, sends at most once, no PHI in errors."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from tests.adapters.harness_ghl import GhlHarness

CANARY = "Canary-Zyxwvut-4471"  # PHI planted in bodies: must never come back in an error


async def _contact(ghl: GhlHarness, **fields: object) -> str:
    body = {"locationId": ghl.location_id, "firstName": "Msg", "lastName": "Suite", **fields}
    answer = await ghl.http.post(
        f"{ghl.sandbox_url}/_sandbox/tokens",
        json={"client_id": "concord-adapter-tests", "location_id": ghl.location_id},
    )
    token = answer.json()["access_token"]
    created = await ghl.http.post(
        f"{ghl.sandbox_url}/contacts/upsert",
        json=body,
        headers={"Authorization": f"Bearer {token}", "Version": "2021-07-28"},
    )
    assert created.status_code == 200, created.text
    return created.json()["contact"]["id"]


async def _outbox(ghl: GhlHarness, contact_id: str) -> dict:
    listed = await ghl.http.get(
        f"{ghl.sandbox_url}/_sandbox/messages", params={"locationId": ghl.location_id, "contactId": contact_id}
    )
    return listed.json()


def _request(ghl: GhlHarness, contact_id: str, channel: int, body: str, subject: str = "") -> pb.SendMessageRequest:
    return pb.SendMessageRequest(
        config_id=ghl.config_id,
        external_id=contact_id,
        channel=channel,
        subject=subject,
        body=body,
        idempotency_key="k-1",
    )


async def test_email_and_sms_arrive_in_the_contacts_conversation(ghl: GhlHarness) -> None:
    contact = await _contact(ghl, email="msg.suite@example.com", phone="+16175550142")

    email = await ghl.adapter.send_message(
        _request(ghl, contact, pb.MESSAGE_CHANNEL_EMAIL, f"Your results are in {CANARY}", "Results")
    )
    sms = await ghl.adapter.send_message(_request(ghl, contact, pb.MESSAGE_CHANNEL_SMS, "See you Tuesday"))

    outbox = await _outbox(ghl, contact)
    sent = {m["id"]: m for m in outbox["messages"]}
    assert set(sent) == {email.message_id, sms.message_id}
    assert email.conversation_id == sms.conversation_id  # one conversation per contact
    assert sent[email.message_id]["to"] == "msg.suite@example.com"
    assert sent[email.message_id]["subject"] == "Results"
    assert sent[email.message_id]["body"] == f"Your results are in {CANARY}"
    assert sent[sms.message_id]["to"] == "+16175550142"
    assert sent[sms.message_id]["body"] == "See you Tuesday"
    assert email.vendor_requests == 1 and sms.vendor_requests == 1
    assert outbox["refused"] == []


@pytest.mark.parametrize(
    ("dnd", "channel", "blocked"),
    [
        ({"dnd": True}, pb.MESSAGE_CHANNEL_EMAIL, "Email"),
        ({"dndSettings": {"SMS": {"status": "active"}}}, pb.MESSAGE_CHANNEL_SMS, "SMS"),
    ],
)
async def test_dnd_refuses_with_a_stable_reason_and_sends_nothing(
    ghl: GhlHarness, dnd: dict, channel: int, blocked: str
) -> None:
    contact = await _contact(ghl, email="dnd.suite@example.com", phone="+16175550143", **dnd)

    with pytest.raises(ApplicationError) as raised:
        await ghl.adapter.send_message(_request(ghl, contact, channel, f"Hello {CANARY}", "Hi"))

    assert raised.value.type == "MessageRefused" and raised.value.non_retryable
    assert raised.value.message == "DND_ACTIVE"
    assert CANARY not in str(raised.value) and CANARY not in repr(raised.value.details)
    outbox = await _outbox(ghl, contact)
    assert outbox["messages"] == []
    assert [r["type"] for r in outbox["refused"]] == [blocked]


async def test_a_contact_without_the_address_is_a_clear_refusal(ghl: GhlHarness) -> None:
    contact = await _contact(ghl, email="only.email@example.com")

    with pytest.raises(ApplicationError) as raised:
        await ghl.adapter.send_message(_request(ghl, contact, pb.MESSAGE_CHANNEL_SMS, f"Hello {CANARY}"))

    assert raised.value.message == "NO_ADDRESS" and raised.value.non_retryable
    assert (await _outbox(ghl, contact))["messages"] == []


async def test_an_unknown_outcome_is_never_sent_again(ghl: GhlHarness) -> None:
    """Every answer a 500: the client does not replay the send, the activity fails for good."""
    contact = await _contact(ghl, email="five.hundred@example.com")
    await ghl.http.post(f"{ghl.sandbox_url}/_sandbox/stats/reset")
    await ghl.inject(server_error_rate=1.0)
    try:
        with pytest.raises(ApplicationError) as raised:
            await ghl.adapter.send_message(_request(ghl, contact, pb.MESSAGE_CHANNEL_EMAIL, "Hello", "Hi"))
    finally:
        await ghl.clear_faults()

    assert raised.value.type == "SendOutcomeUnknown" and raised.value.non_retryable
    stats = (await ghl.http.get(f"{ghl.sandbox_url}/_sandbox/stats")).json()
    assert stats.get("POST /conversations/messages") == 1


async def test_unknown_channel_is_invalid_argument(ghl: GhlHarness) -> None:
    with pytest.raises(ApplicationError) as raised:
        await ghl.adapter.send_message(_request(ghl, "c-1", pb.MESSAGE_CHANNEL_UNSPECIFIED, "Hello"))
    assert raised.value.type == "InvalidArgument" and raised.value.non_retryable
