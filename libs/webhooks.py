"""Vendors' webhook signatures, checked in process: pure functions of the delivery's headers and
exact body bytes and the vendor's published key, shared by the sync service (which checks each
delivery as it arrives, before anything is stored) and the adapters' verify_webhook capability. A
check costs well under a millisecond; a Temporal round trip to the adapter worker per delivery cost
tens, and every write Concord makes to GHL comes back as a webhook.

GoHighLevel (docs/vendors/gohighlevel: WebhookAuthentication.md): the body signed with GHL's RSA
key, base64 RSA-SHA256 (PKCS#1 v1.5) over the exact body bytes in ``x-wh-signature``. GHL publishes
the public key; Concord is given it as the setting ``ghl_webhook_public_key`` (PEM). Replays are
dropped by GHL's ``webhookId`` where the events are stored (the sync service's inbox); the
``timestamp`` is not used to refuse old deliveries, because GHL's own retries (after a 429) resend
the same signed bytes up to an hour later.

Contact events say which contact changed; the inbox reads the contact as it is now (get_records),
so duplicated and out-of-order deliveries change nothing: only the current record is applied."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2

SIGNATURE = "x-wh-signature"
CONTACT_EVENTS = {"ContactCreate": False, "ContactUpdate": False, "ContactDelete": True, "ContactDndUpdate": False}
APPOINTMENT_EVENTS = {"AppointmentCreate": False, "AppointmentUpdate": False, "AppointmentDelete": True}
MAX_BODY = 256 * 1024


@functools.cache
def _key(pem: str) -> rsa.RSAPublicKey | None:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError:
        return None
    return key if isinstance(key, rsa.RSAPublicKey) else None


def _refused(reason: str) -> pb.VerifyWebhookResponse:
    return pb.VerifyWebhookResponse(valid=False, reason=reason)


def verify_ghl(public_key_pem: str, request: pb.VerifyWebhookRequest) -> pb.VerifyWebhookResponse:
    key = _key(public_key_pem) if public_key_pem else None
    if key is None:
        return _refused("WEBHOOK_KEY_NOT_CONFIGURED")
    if len(request.body) > MAX_BODY:
        return _refused("BODY_TOO_LARGE")
    try:
        signature = base64.b64decode(request.headers.get(SIGNATURE, ""), validate=True)
        key.verify(signature, request.body, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return _refused("BAD_SIGNATURE")
    try:
        event = json.loads(request.body)
    except ValueError:
        return _refused("MALFORMED_BODY")
    if not isinstance(event, dict) or not all(isinstance(event.get(k), str) for k in ("type", "webhookId")):
        return _refused("MALFORMED_BODY")
    response = pb.VerifyWebhookResponse(valid=True, external_account_id=str(event.get("locationId") or ""))
    kind = event["type"]
    if kind in CONTACT_EVENTS or kind in APPOINTMENT_EVENTS:
        record_id = event.get("id") or (event.get("appointment") or {}).get("id")
        if isinstance(record_id, str) and record_id:
            entity = common_pb2.ENTITY_TYPE_PATIENT if kind in CONTACT_EVENTS else common_pb2.ENTITY_TYPE_APPOINTMENT
            deleted = CONTACT_EVENTS.get(kind, APPOINTMENT_EVENTS.get(kind, False))
            response.events.append(
                pb.WebhookEvent(
                    event_id=event["webhookId"], entity_type=entity, external_id=record_id, deleted=deleted, type=kind
                )
            )
    return response


# Zenoti (guides/webhooks-event-response-structure.md): an envelope {id, event_id, event_type,
# event_timestamp, data}; the docs say only that a header carries a signature, the sandbox's is
# X-Zenoti-Signature = hex HMAC-SHA256 of the exact body with the webhook's secret. The secret is
# per config, derived by Concord (zenoti_secret) and entered where the practice registers the
# webhook in Zenoti; the delivery URL names the config. Guest events name the guest; Guest.Deleted
# is Zenoti's only sign of a delete (its API has none).
ZENOTI_SIGNATURE = "x-zenoti-signature"
ZENOTI_GUEST_EVENTS = {"Guest.Created": False, "Guest.Updated": False, "Guest.Deleted": True}


def zenoti_secret(key: bytes, config_id: str) -> str:
    """The signing secret of one config's Zenoti webhook (from a key of Concord's own)."""
    digest = hmac.new(key, f"zenoti-webhook:{config_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def verify_zenoti(secret: str, request: pb.VerifyWebhookRequest) -> pb.VerifyWebhookResponse:
    if len(request.body) > MAX_BODY:
        return _refused("BODY_TOO_LARGE")
    expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get(ZENOTI_SIGNATURE, "").strip().lower()):
        return _refused("BAD_SIGNATURE")
    try:
        event = json.loads(request.body)
    except ValueError:
        return _refused("MALFORMED_BODY")
    if not isinstance(event, dict) or not all(isinstance(event.get(k), str) for k in ("event_type", "event_id")):
        return _refused("MALFORMED_BODY")
    response = pb.VerifyWebhookResponse(valid=True)
    kind, data = event["event_type"], event.get("data")
    guest_id = data.get("id") if isinstance(data, dict) else None
    if kind in ZENOTI_GUEST_EVENTS and isinstance(guest_id, str) and guest_id:
        response.events.append(
            pb.WebhookEvent(
                event_id=event["event_id"],
                entity_type=common_pb2.ENTITY_TYPE_PATIENT,
                external_id=guest_id,
                deleted=ZENOTI_GUEST_EVENTS[kind],
                type=kind,
            )
        )
    return response


# Vendors whose webhooks are signed with a secret of each config's: the check, given that secret.
PER_CONFIG = {"zenoti": verify_zenoti}

# The vendors whose deliveries are checked in process, and the setting holding each one's key.
VERIFIERS = {"ghl": (verify_ghl, "ghl_webhook_public_key")}


def verify(
    integration_type: str, settings: object, request: pb.VerifyWebhookRequest
) -> pb.VerifyWebhookResponse | None:
    """The delivery checked with the vendor's key from ``settings``; None for a vendor whose check
    is not here (its adapter's verify_webhook capability answers instead)."""
    found = VERIFIERS.get(integration_type)
    if found is None:
        return None
    check, setting = found
    return check(getattr(settings, setting, ""), request)
