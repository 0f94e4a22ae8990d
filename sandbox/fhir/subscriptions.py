"""R4 Subscriptions on the rest-hook channel (http://hl7.org/fhir/R4/subscription.html): criteria are searches
applied to each created or updated resource; a match is POSTed to the endpoint without a body (empty payload)
or, with a payload, sent as an update (PUT) to [endpoint]/[type]/[id] (R4 SubscriptionChannelType rest-hook)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from sandbox.common.webhooks import Outgoing

from .outcome import FhirError, issue
from .search import Query, parse
from .validation import RESOURCE_TYPES

log = logging.getLogger("sandbox.fhir.subscriptions")
JSON_PAYLOADS = ("application/fhir+json", "application/json", "application/json+fhir")


@dataclass
class Notification(Outgoing):
    tenant: str = ""
    subscription_id: str = ""


def _invalid(detail: str, where: str) -> FhirError:
    return FhirError(422, issue("invalid", detail, expression=[where]))


def criteria_query(criteria: Any, *, default_count: int, max_count: int) -> Query:
    """The search a criteria string stands for; 422 naming Subscription.criteria when unusable."""
    text = criteria if isinstance(criteria, str) else ""
    resource_type, _, query = text.partition("?")
    if resource_type not in RESOURCE_TYPES or resource_type == "Subscription":
        raise _invalid(
            "Subscription.criteria must be a search on a supported resource type, e.g. Patient?...",
            "Subscription.criteria",
        )
    try:
        return parse(
            resource_type,
            parse_qsl(query, keep_blank_values=True),
            strict=True,
            default_count=default_count,
            max_count=max_count,
        )
    except FhirError as exc:
        detail = exc.issues[0].get("diagnostics", "invalid search") if exc.issues else "invalid search"
        raise _invalid(f"Invalid Subscription.criteria: {detail}", "Subscription.criteria") from None


def check(resource: dict[str, Any], *, default_count: int, max_count: int) -> None:
    """What a server that only runs rest-hook channels with JSON payloads accepts."""
    channel = resource.get("channel") or {}
    if channel.get("type") != "rest-hook":
        raise _invalid("Only the rest-hook channel type is supported", "Subscription.channel.type")
    endpoint = channel.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
        raise _invalid("Subscription.channel.endpoint must be an http(s) URL", "Subscription.channel.endpoint")
    if channel.get("payload") not in (None, *JSON_PAYLOADS):
        raise _invalid(
            "Subscription.channel.payload must be empty or application/fhir+json", "Subscription.channel.payload"
        )
    for i, header in enumerate(channel.get("header") or []):
        name, sep, _ = str(header).partition(":")
        if not sep or not name.strip() or " " in name.strip():
            raise _invalid("Each channel header must be 'Name: value'", f"Subscription.channel.header[{i}]")
    criteria_query(resource.get("criteria"), default_count=default_count, max_count=max_count)


def notification(tenant: str, subscription: dict[str, Any], resource: dict[str, Any]) -> Notification:
    channel = subscription["channel"]
    headers: dict[str, str] = {}
    for header in channel.get("header") or []:
        name, _, value = str(header).partition(":")
        headers[name.strip()] = value.strip()
    kind, rid, vid = resource["resourceType"], resource["id"], resource["meta"]["versionId"]
    event_id = f"{subscription['id']}/{kind}/{rid}/_history/{vid}"
    payload = channel.get("payload")
    if payload:
        headers["Content-Type"] = f"{payload};charset=utf-8"
        url = f"{channel['endpoint'].rstrip('/')}/{kind}/{rid}"
        body = json.dumps(resource, separators=(",", ":"), ensure_ascii=False).encode()
        return Notification(url, body, headers, event_id, kind, "PUT", tenant, subscription["id"])
    return Notification(channel["endpoint"], b"", headers, event_id, kind, "POST", tenant, subscription["id"])
