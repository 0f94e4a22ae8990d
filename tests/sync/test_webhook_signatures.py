"""The in-process webhook checks (libs/webhooks.py): Zenoti's HMAC over the exact body bytes."""

from __future__ import annotations

import hashlib
import hmac
import json

from libs import webhooks
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2


def _signed(secret: str, body: bytes) -> pb.VerifyWebhookRequest:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return pb.VerifyWebhookRequest(headers={"x-zenoti-signature": signature}, body=body)


def test_each_config_has_its_own_secret_and_only_its_signature_verifies() -> None:
    key = bytes(range(32))
    mine, theirs = webhooks.zenoti_secret(key, "config-a"), webhooks.zenoti_secret(key, "config-b")
    assert mine != theirs and mine == webhooks.zenoti_secret(key, "config-a")
    body = json.dumps({"event_id": "e-1", "event_type": "Guest.Deleted", "data": {"id": "g-1"}}).encode()
    checked = webhooks.verify_zenoti(mine, _signed(mine, body))
    assert checked.valid and [(e.event_id, e.external_id, e.deleted, e.entity_type) for e in checked.events] == [
        ("e-1", "g-1", True, common_pb2.ENTITY_TYPE_PATIENT)
    ]
    assert webhooks.verify_zenoti(mine, _signed(theirs, body)).reason == "BAD_SIGNATURE"
    tampered = _signed(mine, body)
    tampered.body = body.replace(b"g-1", b"g-2")
    assert webhooks.verify_zenoti(mine, tampered).reason == "BAD_SIGNATURE"
    assert webhooks.verify_zenoti(mine, pb.VerifyWebhookRequest(body=body)).reason == "BAD_SIGNATURE"


def test_a_signed_delivery_that_is_not_an_event_is_refused_and_other_events_carry_nothing() -> None:
    secret = webhooks.zenoti_secret(b"k" * 32, "config-a")
    assert webhooks.verify_zenoti(secret, _signed(secret, b"not json")).reason == "MALFORMED_BODY"
    assert webhooks.verify_zenoti(secret, _signed(secret, b'{"event_type": 1}')).reason == "MALFORMED_BODY"
    invoice = json.dumps({"event_id": "e-2", "event_type": "Invoice.Closed", "data": {"id": "i-1"}}).encode()
    checked = webhooks.verify_zenoti(secret, _signed(secret, invoice))
    assert checked.valid and not checked.events
    assert webhooks.verify_zenoti(secret, _signed(secret, b"{" * (webhooks.MAX_BODY + 1))).reason == "BODY_TOO_LARGE"
