"""Change Data Capture: a change event per created, updated, deleted or undeleted record, kept for
replay (72 hours) and pushed to the subscriptions registered under /_sandbox/cdc (the stand-in for a
Pub/Sub API or CometD subscriber). A subscription starts where Pub/Sub's Subscribe would: LATEST
(new events only), EARLIEST (every retained event first) or CUSTOM (the retained events after a
replay id, which must be one the bus still holds)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING, Any

from sandbox.common.webhooks import Outgoing

from . import timefmt
from .schema import ACCOUNT, SObject

if TYPE_CHECKING:
    from .dml import Change
    from .state import Org, Sandbox, Subscription

ALL_CHANNEL = "/data/ChangeEvents"
_NOT_IN_EVENTS = {"Id", "IsDeleted", "SystemModstamp"}
REPLAY_PRESETS = ("LATEST", "EARLIEST", "CUSTOM")
# Pub/Sub API's error codes (the error-code trailer of an INVALID_ARGUMENT status) for a replay id
# it will not resume from: not one of a retained event (older than 72 h, never issued), or missing.
REPLAY_ID_CORRUPTED = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
REPLAY_ID_VALIDATION_FAILED = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed"


class ReplayError(Exception):
    """A subscription the bus refuses to start, as Pub/Sub's Subscribe answers it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def as_json(self) -> dict[str, str]:
        return {"status": "INVALID_ARGUMENT", "errorCode": self.code, "message": self.message}


def channel_of(entity: str) -> str:
    return f"/data/{entity}ChangeEvent"


def valid_channel(channel: str) -> bool:
    from .schema import SOBJECTS

    return channel == ALL_CHANNEL or any(channel == channel_of(o.name) for o in SOBJECTS.values() if o.cdc)


def schema_id(entity: str) -> str:
    digest = hashlib.sha256(f"{entity}ChangeEvent/v1".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:22]


def _value(obj: SObject, name: str, value: Any) -> Any:
    kind = obj.fields[name].type
    if kind == "datetime":
        return timefmt.cdc(value)
    return value


def _compounds(obj: SObject, record: dict[str, Any]) -> dict[str, tuple[tuple[str, str], ...]]:
    compounds = dict(obj.compounds)
    if obj is ACCOUNT and not record.get("IsPersonAccount"):
        compounds.pop("Name", None)  # a business account's Name is a plain text field
    return compounds


def event_fields(obj: SObject, record: dict[str, Any], changed: set[str] | None) -> dict[str, Any]:
    """The record part of an event: every field (changed=None) or only the changed ones, compound
    fields (Name, addresses) nested as in Salesforce's change events."""
    compounds = _compounds(obj, record)
    members = {field for parts in compounds.values() for _, field in parts}
    out: dict[str, Any] = {}
    for name in obj.fields:
        if name in _NOT_IN_EVENTS or name in members or name in compounds:
            continue
        if changed is None or name in changed:
            out[name] = _value(obj, name, record.get(name))
    for compound, parts in compounds.items():
        chosen = [(part, field) for part, field in parts if changed is None or field in changed]
        if not chosen:
            continue
        nested = {part: _value(obj, field, record.get(field)) for part, field in chosen}
        out[compound] = nested if changed is not None or any(v is not None for v in nested.values()) else None
    return out


def _field_names(obj: SObject, record: dict[str, Any], names: set[str]) -> list[str]:
    compounds = _compounds(obj, record)
    member_of = {field: f"{compound}.{part}" for compound, parts in compounds.items() for part, field in parts}
    return [member_of.get(name, name) for name in obj.fields if name in names and name not in compounds]


def _transaction_key(sb: Sandbox) -> str:
    raw = sb.rng.randbytes(16).hex()
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def publish(sb: Sandbox, org: Org, changes: list[Change], origin: str, user_id: str, now_ms: int) -> None:
    changes = [c for c in changes if c.obj.cdc]
    if not changes:
        return
    transaction_key = _transaction_key(sb)
    org.commit_number += 1
    commit_number = 10**12 + org.commit_number
    fresh: list[dict[str, Any]] = []
    for sequence, change in enumerate(changes, start=1):
        changed_fields: list[str] = []
        nulled: list[str] = []
        if change.kind in ("CREATE", "UNDELETE"):
            fields = event_fields(change.obj, change.new, None)
        elif change.kind == "UPDATE":
            assert change.old is not None
            names = {
                n for n in change.obj.fields if n not in _NOT_IN_EVENTS and change.old.get(n) != change.new.get(n)
            } | {"LastModifiedDate"}
            fields = event_fields(change.obj, change.new, names)
            changed_fields = _field_names(change.obj, change.new, names)
            nulled = _field_names(change.obj, change.new, {n for n in names if change.new.get(n) is None})
        else:
            fields = {}
        org.replay_id += 1
        header = {
            "entityName": change.obj.name,
            "recordIds": [change.record_id],
            "changeType": change.kind,
            "changeOrigin": origin,
            "transactionKey": transaction_key,
            "sequenceNumber": sequence,
            "commitTimestamp": now_ms,
            "commitNumber": commit_number,
            "commitUser": user_id,
            "nulledFields": nulled,
            "diffFields": [],
            "changedFields": changed_fields,
        }
        event = {
            "schema": schema_id(change.obj.name),
            "payload": {"ChangeEventHeader": header, **fields},
            "event": {"replayId": org.replay_id},
        }
        org.cdc_events.append({"time": sb.clock(), "entity": change.obj.name, "event": event})
        fresh.append(event)
    prune(sb, org)
    deliver(sb, org, fresh)


def prune(sb: Sandbox, org: Org) -> None:
    horizon = sb.clock() - sb.settings.cdc_retention
    while org.cdc_events and org.cdc_events[0]["time"] < horizon:
        org.cdc_events.pop(0)


def matches(channel: str, entity: str) -> bool:
    return channel == ALL_CHANNEL or channel == channel_of(entity)


def deliver(sb: Sandbox, org: Org, events: list[dict[str, Any]], only: Subscription | None = None) -> None:
    for subscription in [only] if only is not None else org.subscriptions.values():
        batch = []
        for event in events:
            entity = event["payload"]["ChangeEventHeader"]["entityName"]
            if not matches(subscription.channel, entity):
                continue
            header = event["payload"]["ChangeEventHeader"]
            batch.append(
                Outgoing(
                    url=subscription.url,
                    body=json.dumps(event, separators=(",", ":")).encode(),
                    headers={
                        "Content-Type": "application/json",
                        "X-Sandbox-Cdc-Channel": subscription.channel,
                        **subscription.headers,
                    },
                    event_id=str(event["event"]["replayId"]),
                    event_type=f"{entity}ChangeEvent/{header['changeType']}",
                )
            )
        if batch:
            sb.sender.send(batch, stream=subscription.id)  # a subscription's events arrive in order


def replay(sb: Sandbox, org: Org, replay_id: int, channel: str) -> list[dict[str, Any]]:
    """Retained events after ``replay_id`` (-2: every retained event; -1: none, only new ones)."""
    prune(sb, org)
    if replay_id == -1:
        return []
    return [
        item["event"]
        for item in org.cdc_events
        if matches(channel, item["entity"]) and (replay_id == -2 or item["event"]["event"]["replayId"] > replay_id)
    ]


def starting_events(sb: Sandbox, org: Org, preset: str, replay_id: int | None, channel: str) -> list[dict[str, Any]]:
    """The retained events a new subscription receives before live ones, or ReplayError."""
    prune(sb, org)
    if preset == "LATEST":
        return []
    if preset == "EARLIEST":
        return replay(sb, org, -2, channel)
    if replay_id is None:
        raise ReplayError(REPLAY_ID_VALIDATION_FAILED, "CUSTOM needs the replay id to resume after")
    if not any(item["event"]["event"]["replayId"] == replay_id for item in org.cdc_events):
        raise ReplayError(
            REPLAY_ID_CORRUPTED,
            "The replay ID validation failed: the replay ID is not within the retention window or not valid",
        )
    return replay(sb, org, replay_id, channel)


def age(sb: Sandbox, org: Org, seconds: float) -> int:
    """Time passes for the bus only (every retained event is older by ``seconds``); returns how many
    events the retention window then drops."""
    for item in org.cdc_events:
        item["time"] -= seconds
    before = len(org.cdc_events)
    prune(sb, org)
    return before - len(org.cdc_events)
