"""GoHighLevel contact wire shapes (docs/vendors/gohighlevel/apps/contacts.json)."""

from datetime import datetime
from typing import Any

# UpsertContactDto fields that UpdateContactDto (PUT /contacts/{id}) lacks: GHL refuses them there
# with 422, so gender and companyName change only when a contact is created or upserted.
NOT_UPDATABLE = frozenset({"companyName", "gender", "locationId", "createNewIfDuplicateAllowed"})


def update_body(record: dict) -> dict:
    """The record as a PUT body. Any other field GHL does not know is sent, so GHL refuses the
    record rather than the adapter silently dropping what the hub meant to write."""
    return {key: value for key, value in record.items() if key not in NOT_UPDATABLE}


# --- appointments (docs/vendors/gohighlevel/apps/calendars.json, Version 2021-04-15) ---------------

APPOINTMENT_STATUSES = ("new", "confirmed", "cancelled", "showed", "noshow", "invalid")
# Statuses that hold no slot at GHL.
FREEING_STATUSES = ("cancelled", "invalid")
# What the mapper adds for the adapter and the adapter strips before sending: the hub's service
# ({"code", "name"}), resolved to a calendarId when the record names none.
SERVICE_HINT = "service"
# What the adapter adds to every event it returns: its calendar's name (GHL events carry only the id).
CALENDAR_NAME = "calendarName"
# AppointmentCreateSchema fields that AppointmentEditSchema (PUT) lacks.
CREATE_ONLY = frozenset({"locationId", "contactId"})
SLOT_TAKEN = "the slot you have selected is no longer available"


def appointment_body(record: dict, calendar_id: str, location_id: str) -> dict:
    """A create body (AppointmentCreateSchema). Booked in the hub already, so GHL's booking window
    (a rule for self-booking) is lifted; a cancelled booking holds no slot, so none is checked.
    Unknown fields are sent, so GHL refuses the record rather than the adapter dropping them unseen."""
    body = {key: value for key, value in record.items() if key != SERVICE_HINT and key != CALENDAR_NAME}
    body.update(calendarId=calendar_id, locationId=location_id, ignoreDateRange=True)
    if body.get("appointmentStatus") in FREEING_STATUSES:
        body["ignoreFreeSlotValidation"] = True
    return body


def edit_body(create: dict) -> dict:
    """The same write as an update by id (AppointmentEditSchema): contact and location are fixed."""
    return {key: value for key, value in create.items() if key not in CREATE_ONLY}


def epoch_ms(value: Any) -> int | None:
    """A GHL timestamp (ISO 8601 with an offset, e.g. startTime) in epoch ms; None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int(moment.timestamp() * 1000) if moment.tzinfo else None
