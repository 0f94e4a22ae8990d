"""Location custom fields (apps/locations.json, Version 2021-07-28) and workflows (GET /workflows/)."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from .contacts import json_body
from .errors import bad_request, forbidden, unprocessable
from .state import Grant, Location, Sandbox

# GHL's field types (simulator-chosen list: the spec's dataType is a free string with example "TEXT").
DATA_TYPES = (
    "TEXT", "LARGE_TEXT", "NUMERICAL", "PHONE", "MONETORY", "CHECKBOX", "SINGLE_OPTIONS", "MULTIPLE_OPTIONS",
    "FLOAT", "TIME", "DATE", "TEXTBOX_LIST", "FILE_UPLOAD", "SIGNATURE", "RADIO", "EMAIL",
)  # fmt: skip
MODELS = ("contact", "opportunity")
_CREATE_FIELDS: dict[str, Any] = {
    "name": str, "dataType": DATA_TYPES, "placeholder": str, "acceptedFormat": list, "isMultipleFile": bool,
    "maxNumberOfFiles": "number", "textBoxListOptions": list, "position": "number", "model": MODELS,
}  # fmt: skip


def _path_location(sb: Sandbox, grant: Grant, location_id: str) -> Location:
    if location_id != grant.location_id:
        raise forbidden()
    return sb.locations[location_id]


def field_key(model: str, name: str) -> str:
    return f"{model}.{re.sub(r'[^a-z0-9]+', '_', name.lower()).strip('_')}"


async def list_custom_fields(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    location = _path_location(sb, grant, request.path_params["locationId"])
    wanted = request.query_params.get("model", "all")
    if wanted not in (*MODELS, "all"):
        raise unprocessable(["model must be one of the following values: contact, opportunity, all"])
    found = [f for f in location.custom_fields.values() if wanted in ("all", f["model"])]
    return JSONResponse({"customFields": found})


def _validate(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("Bad Request")
    errors = [f"property {k} should not exist" for k in body if k not in _CREATE_FIELDS]
    errors += [f"{k} should not be empty" for k in ("name", "dataType") if body.get(k) in (None, "")]
    for key, kind in _CREATE_FIELDS.items():
        value = body.get(key)
        if value is None:
            continue
        if isinstance(kind, tuple) and value not in kind:
            errors.append(f"{key} must be one of the following values: {', '.join(kind)}")
        elif kind is str and not isinstance(value, str):
            errors.append(f"{key} must be a string")
        elif kind is bool and not isinstance(value, bool):
            errors.append(f"{key} must be a boolean value")
        elif kind is list and not isinstance(value, list):
            errors.append(f"{key} must be an array")
        elif kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
            errors.append(f"{key} must be a number")
    if errors:
        raise unprocessable(errors)
    return body


def create_definition(sb: Sandbox, location: Location, values: dict[str, Any]) -> dict[str, Any]:
    model = values.get("model") or "contact"
    key = field_key(model, values["name"])
    if any(f["fieldKey"] == key for f in location.custom_fields.values()):
        raise bad_request(f"A custom field with the key {key} already exists")
    definition = {
        "id": sb.new_id(),
        "name": values["name"],
        "fieldKey": key,
        "placeholder": values.get("placeholder") or "",
        "dataType": values["dataType"],
        "position": values.get("position") or 0,
        "picklistOptions": [],
        "picklistImageOptions": [],
        "isAllowedCustomOption": False,
        "isMultiFileAllowed": bool(values.get("isMultipleFile")),
        "maxFileLimit": values.get("maxNumberOfFiles") or 0,
        "locationId": location.id,
        "model": model,
    }
    location.custom_fields[definition["id"]] = definition
    return definition


async def create_custom_field(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    location = _path_location(sb, grant, request.path_params["locationId"])
    definition = create_definition(sb, location, _validate(await json_body(request)))
    return JSONResponse({"customField": definition}, status_code=201)


async def list_workflows(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    location_id = request.query_params.get("locationId")
    if not location_id:
        raise unprocessable(["locationId must be a string", "locationId should not be empty"])
    location = _path_location(sb, grant, location_id)
    return JSONResponse({"workflows": list(location.workflows.values())})
