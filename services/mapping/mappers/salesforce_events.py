"""Salesforce Lightning calendar Event <-> FHIR R4 Appointment, the calendar counterpart of
salesforce_appointments.py (same identifier systems, same canonical fields in libs.fhir_appointment).

- Id <-> identifier[EVENT_ID_SYSTEM] (and the external id); Concord_Appointment_Id__c: out the hub
  id (idempotent upserts), in identifier[CONCORD_ID_SYSTEM].
- WhatId (the patient's Person Account) <-> the patient participant, a logical reference.
- StartDateTime / EndDateTime <-> start / end (UTC instants); an all-day Event spans its day(s)
  from midnight UTC, as Salesforce stores it; Concord writes timed Events only.
- Subject <-> serviceType[0].text; Description <-> description (PHI: never logged).
- An Event has no status: every Event is `booked`. A calendar cancellation is a deleted Event,
  so Concord refuses to write a cancelled (or untimed) appointment as an Event with a clear reason
  rather than write something a user would read as still booked.
"""

from __future__ import annotations

from typing import Any

from libs.errors import InvalidArgument
from services.mapping.domain import FieldError, HubResult, RecordInvalid
from services.mapping.mappers.salesforce_appointments import EXTERNAL_ID_FIELD, _instant, _text, inbound, outbound
from services.mapping.rules import FieldRule, rules_from

EVENT_ID_SYSTEM = "https://salesforce.com/event-id"
WRITABLE_STATUSES = ("booked", "arrived", "checked-in", "fulfilled", "noshow")


class SalesforceEventMapper:
    """Registered as the variant a config with appointment_object EVENT chooses (mappers/__init__.py)."""

    integration_type = "salesforce"
    entity_type = "ENTITY_TYPE_APPOINTMENT"
    modified_field = "LastModifiedDate"  # the vendor's modification time (newest_wins)
    # Event fields an override may write: the mapped ones, Location, and any custom field (…__c).
    vendor_fields = frozenset({"StartDateTime", "EndDateTime", "Subject", "Description", "Location"})
    custom_field_suffix = "__c"

    def default_field_mappings(self) -> list[FieldRule]:
        """The fields the code maps one to one; an Event has no status (every one reads booked)."""
        utc = ("datetime_zone", {"zone": "UTC"})
        fields = {
            "StartDateTime": "start",
            "EndDateTime": "end",
            "Subject": "service_name",
            "Description": "description",
        }
        return rules_from(self.entity_type, fields, {"start": utc, "end": utc})

    def to_hub(self, record: dict) -> HubResult:
        """An Event (query, collection or change-event shape) as a booked FHIR Appointment."""
        record_id = record.get("Id") if isinstance(record.get("Id"), str) else ""
        errors: list[FieldError] = []
        texts = {f: _text(record, f, errors) for f in ("WhatId", "Subject", "Description", EXTERNAL_ID_FIELD)}
        if texts["WhatId"] is None and not any(e.field == "WhatId" for e in errors):
            errors.append(FieldError("WhatId", "MISSING_PATIENT", "the Event is related to no patient"))
        times: dict[str, str] = {}
        for sf_field, fhir_field in (("StartDateTime", "start"), ("EndDateTime", "end")):
            raw = _text(record, sf_field, errors)
            if raw is None:
                if not any(e.field == sf_field for e in errors):
                    errors.append(FieldError(sf_field, "MISSING_TIME", f"an Event needs {sf_field}"))
                continue
            try:
                times[fhir_field] = _instant(raw, sf_field)
            except InvalidArgument as error:
                errors.append(FieldError.of(error))
        if errors:
            raise RecordInvalid(errors, record_id)
        appointment: dict[str, Any] = {"resourceType": "Appointment", "status": "booked", **times}
        return inbound(appointment, record_id, EVENT_ID_SYSTEM, texts, texts["WhatId"])

    def to_vendor(self, resource: dict) -> dict:
        """A FHIR Appointment as a timed Event write body, the hub id in Concord_Appointment_Id__c."""
        appointment, view, account_id, errors = outbound(resource)
        if view["status"] not in WRITABLE_STATUSES:
            errors.append(
                FieldError(
                    "status", "UNSUPPORTED_STATUS", "a calendar Event has no cancelled, proposed or pending state"
                )
            )
        for field in ("start", "end"):
            if view[field] is None:
                errors.append(FieldError(field, "MISSING_TIME", f"a calendar Event needs the appointment's {field}"))
        if errors:
            raise RecordInvalid(errors)
        record: dict[str, Any] = {
            "WhatId": account_id,
            "IsAllDayEvent": False,
            "StartDateTime": view["start"],
            "EndDateTime": view["end"],
        }
        if view["service_name"] is not None:
            record["Subject"] = view["service_name"]
        if view["description"] is not None:
            record["Description"] = view["description"]
        if isinstance(appointment.get("id"), str):
            record[EXTERNAL_ID_FIELD] = appointment["id"]
        return record
