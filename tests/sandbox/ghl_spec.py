"""Checks the GoHighLevel sandbox's answers against GoHighLevel's published specs.

- `check(spec, response)`: the response (status and body) against the operation the request hit, in the
  official OpenAPI files copied to docs/vendors/gohighlevel/apps/ (openapi-core).
- `check_schema(name, body)`: for the APIs whose spec is not in docs/vendors (conversations, workflows),
  against DTOs transcribed below from GoHighLevel/highlevel-api-docs `apps/conversations.json` and
  `apps/workflows.json` (CC0), descriptions and examples left out.
- `check_webhook(body)`: a webhook body against the JSON schema of its event in
  docs/vendors/gohighlevel/docs/webhook events/<type>.md.

docs/vendors is committed data and is never modified: where a spec contradicts its own examples the
correction is applied in memory here, and listed in CORRECTIONS (and in sandbox/ghl/README.md).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jsonschema
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_schema_validator import OAS30Validator
from werkzeug.datastructures import Headers, ImmutableMultiDict

GHL_DOCS = Path(__file__).resolve().parents[2] / "docs" / "vendors" / "gohighlevel"
SERVER = "https://services.leadconnectorhq.com"

# (spec file, JSON path to a schema, keys to replace in it, why)
CORRECTIONS: list[tuple[str, tuple[str, ...], dict[str, Any], str]] = [
    (
        "calendars.json",
        ("components", "schemas", "CalendarEventDTO", "properties", field_name),
        {"type": "string"},
        f"CalendarEventDTO.{field_name} is typed `object` but its example (and every GHL answer) is an ISO string",
    )
    for field_name in ("startTime", "endTime", "dateAdded", "dateUpdated")
]


@functools.cache
def _api(spec: str) -> OpenAPI:
    path = GHL_DOCS / "apps" / spec
    data = json.loads(path.read_text(encoding="utf-8"))
    for name, keys, replacement, _ in CORRECTIONS:
        if name == spec:
            node = data
            for key in keys:
                node = node[key]
            node.update(replacement)
    # The upstream files use `examples` inside 3.0 schemas, which the spec validator rejects; the
    # schemas themselves are usable, so only the whole-document check is skipped.
    return OpenAPI.from_dict(data, config=Config(spec_validator_cls=None), base_uri=path.as_uri())


@dataclass
class _Request:
    method: str
    path: str
    parameters: RequestParameters
    body: bytes | None = None
    content_type: str = "application/json"
    host_url: str = SERVER


@dataclass
class _Response:
    status_code: int
    data: bytes
    content_type: str = "application/json"
    headers: Headers = field(default_factory=Headers)


def check(spec: str, response: httpx.Response) -> httpx.Response:
    """Validates `response` against apps/<spec>; raises (openapi-core's error) if it does not conform."""
    request = response.request
    parameters = RequestParameters(
        query=ImmutableMultiDict(parse_qsl(request.url.query.decode())),
        header=Headers(dict(request.headers)),
    )
    sent = _Request(request.method.lower(), request.url.path, parameters, request.content or None)
    answer = _Response(
        response.status_code,
        response.content,
        response.headers.get("content-type", "application/json").split(";")[0],
        Headers(dict(response.headers)),
    )
    _api(spec).validate_response(sent, answer)
    return response


_STR, _NUM, _BOOL = {"type": "string"}, {"type": "number"}, {"type": "boolean"}
_STRS = {"type": "array", "items": _STR}
_MESSAGE_STATUS = [
    "connected", "delivered", "failed", "opened", "pending", "read", "scheduled", "sent", "undelivered", "clicked",
    "opt_out",
]  # fmt: skip
SCHEMAS: dict[str, dict[str, Any]] = {
    "SendMessageResponseDto": {
        "type": "object",
        "properties": {
            "conversationId": _STR,
            "emailMessageId": _STR,
            "messageId": _STR,
            "messageIds": _STRS,
            "msg": _STR,
        },  # fmt: skip
        "required": ["conversationId", "messageId"],
    },
    "GetMessageResponseDto": {
        "type": "object",
        "properties": {
            "id": _STR,
            "altId": _STR,
            "type": _NUM,
            "messageType": {"type": "string", "pattern": "^TYPE_"},
            "locationId": _STR,
            "contactId": _STR,
            "conversationId": _STR,
            "dateAdded": _STR,
            "body": _STR,
            "direction": {"type": "string", "enum": ["inbound", "outbound"]},
            "status": {"type": "string", "enum": _MESSAGE_STATUS},
            "contentType": _STR,
            "attachments": _STRS,
            "meta": {
                "type": "object",
                "properties": {"callDuration": _STR, "callStatus": _STR, "email": {"type": "object"}},
            },
            "source": {"type": "string", "enum": ["workflow", "bulk_actions", "campaign", "api", "app"]},
            "userId": _STR,
            "conversationProviderId": _STR,
        },  # fmt: skip
        "required": [
            "id",
            "type",
            "messageType",
            "locationId",
            "contactId",
            "conversationId",
            "dateAdded",
            "direction",
            "contentType",
        ],  # fmt: skip
    },
    "GetEmailMessageResponseDto": {
        "type": "object",
        "properties": {
            "id": _STR,
            "altId": _STR,
            "threadId": _STR,
            "locationId": _STR,
            "contactId": _STR,
            "conversationId": _STR,
            "dateAdded": _STR,
            "subject": _STR,
            "body": _STR,
            "direction": {"type": "string", "enum": ["inbound", "outbound"]},
            "status": {"type": "string", "enum": [s for s in _MESSAGE_STATUS if s not in ("clicked", "opt_out")]},
            "contentType": _STR,
            "attachments": _STRS,
            "provider": _STR,
            "from": _STR,
            "to": _STRS,
            "cc": _STRS,
            "bcc": _STRS,
            "replyToMessageId": _STR,
            "source": {"type": "string", "enum": ["workflow", "bulk_actions", "campaign", "api", "app"]},
            "conversationProviderId": _STR,
        },  # fmt: skip
        "required": [
            "id",
            "threadId",
            "locationId",
            "contactId",
            "conversationId",
            "dateAdded",
            "body",
            "direction",
            "contentType",
            "from",
            "to",
        ],  # fmt: skip
    },
    "GetWorkflowSuccessfulResponseDto": {
        "type": "object",
        "properties": {
            "workflows": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": _STR,
                        "name": _STR,
                        "status": _STR,
                        "version": _NUM,
                        "createdAt": _STR,
                        "updatedAt": _STR,
                        "locationId": _STR,
                    },  # fmt: skip
                },
            }
        },
    },
    "BadRequestDTO": {"type": "object", "properties": {"statusCode": _NUM, "message": _STR}},
}


def check_schema(name: str, body: Any) -> Any:
    OAS30Validator(SCHEMAS[name]).validate(body)
    return body


@functools.cache
def _webhook_schema(event: str) -> dict[str, Any]:
    text = (GHL_DOCS / "docs" / "webhook events" / f"{event}.md").read_text(encoding="utf-8")
    block = re.search(r"```json json_schema\n(.*?)```", text, re.DOTALL)
    assert block, f"no JSON schema in {event}.md"
    return json.loads(block.group(1))


def check_webhook(body: dict[str, Any]) -> dict[str, Any]:
    jsonschema.validate(body, _webhook_schema(body["type"]))
    return body
