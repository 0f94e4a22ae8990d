"""DML: field coercion and validation in Salesforce's order, derived fields (Person Account name and
contact, Event times, Service Appointment number and status category), writes with an undo log for
allOrNone, cascade delete, and the list of changes that CDC publishes at commit."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import cdc, ids, schema, timefmt
from .errors import RecordError
from .schema import ACCOUNT, CONTACT, EVENT, SERVICE_APPOINTMENT, WORK_TYPE, Field, SObject

if TYPE_CHECKING:
    from .state import Org, Sandbox

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_JAVA_TYPE = {
    "id": "id",
    "reference": "reference",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
    "int": "int",
    "double": "double",
}
_MAX_EVENT_MINUTES = 14 * 24 * 60
_READ_ONLY_HINT = (
    "Please check the security settings of this field and verify that it is read/write for your profile or "
    "permission set."
)


def _token(value: Any) -> str:
    if value is True:
        return "VALUE_TRUE"
    if value is False:
        return "VALUE_FALSE"
    if isinstance(value, int):
        return "VALUE_NUMBER_INT"
    if isinstance(value, float):
        return "VALUE_NUMBER_FLOAT"
    if isinstance(value, dict):
        return "START_OBJECT"
    if isinstance(value, list):
        return "START_ARRAY"
    return "VALUE_STRING"


def _parser_error(f: Field, value: Any) -> RecordError:
    shown = "{" if isinstance(value, dict) else "[" if isinstance(value, list) else json.dumps(value).strip('"')
    return RecordError(
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {_JAVA_TYPE.get(f.type, 'string')} from {_token(value)} value {shown} "
        "or request may be missing a required field",
    )


def _wrong_type(f: Field, value: Any) -> RecordError:
    return RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{f.label}: value not of required type: {value}", [f.name])


def coerce_value(f: Field, value: Any) -> Any:
    """A JSON value as stored for the field, or the error Salesforce gives for it."""
    if value is None:
        return False if f.type == "boolean" else None
    if isinstance(value, dict | list):
        raise _parser_error(f, value)
    kind = f.type
    if f.text:
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if text == "":
            return None  # Salesforce stores an empty string as null
        if len(text) > f.length:
            raise RecordError(
                "STRING_TOO_LONG", f"{f.label}: data value too large: {text} (max length={f.length})", [f.name]
            )
        if kind == "email" and not _EMAIL.match(text):
            raise RecordError("INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {text}", [f.name])
        if f.restricted and text not in f.picklist:
            raise RecordError(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{f.label}: bad value for restricted picklist field: {text}",
                [f.name],
            )
        return text
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _parser_error(f, value)
    if kind in ("int", "double"):
        if isinstance(value, bool):
            raise _parser_error(f, value)
        number = value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise _parser_error(f, value) from None
        return int(round(number)) if kind == "int" else float(number)
    if kind in ("date", "datetime"):
        if not isinstance(value, str):
            raise _wrong_type(f, value)
        parsed = timefmt.parse_date(value) if kind == "date" else timefmt.parse_datetime(value)
        if parsed is None:
            raise _parser_error(f, value)
        return parsed
    if kind in ("id", "reference"):
        if not isinstance(value, str):
            raise _wrong_type(f, value)
        canonical = ids.to18(value)
        if canonical is None:
            raise RecordError("MALFORMED_ID", f"{f.label}: id value of incorrect type: {value}", [f.name])
        return canonical
    return value


def coerce(obj: SObject, body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """Deserializes a record body: unknown fields and wrong types first, then read-only fields."""
    values: dict[str, Any] = {}
    blocked: list[str] = []
    for key, raw in body.items():
        if key == "attributes":
            continue
        f = obj.field(key)
        if f is None:
            raise RecordError("INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}", [])
        if f.name == "Id":
            if creating:
                raise RecordError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE", f"{obj.label} ID: cannot specify Id in an insert call", ["Id"]
                )
            continue
        values[f.name] = coerce_value(f, raw)
        if not (f.createable if creating else f.updateable):
            blocked.append(f.name)
    if blocked:
        raise RecordError(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            f"Unable to create/update fields: {', '.join(blocked)}. {_READ_ONLY_HINT}",
            blocked,
        )
    return values


def full_name(record: dict[str, Any]) -> str:
    return " ".join(p for p in (record.get("FirstName"), record.get("MiddleName"), record.get("LastName")) if p)


@dataclass
class Change:
    kind: str  # CREATE, UPDATE, DELETE, UNDELETE
    obj: SObject
    record_id: str
    old: dict[str, Any] | None
    new: dict[str, Any]


def resolve_id(obj: SObject, raw: str) -> str:
    """A URL record id: malformed -> 404 NOT_FOUND; another object's id -> 400 MALFORMED_ID."""
    canonical = ids.to18(raw)
    if canonical is None:
        raise RecordError("NOT_FOUND", "The requested resource does not exist", status=404)
    if not canonical.startswith(obj.key_prefix):
        raise RecordError("MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {raw}", ["Id"])
    return canonical


class Txn:
    """One Salesforce transaction: writes apply at once (later reads see them), ``rollback`` undoes them,
    ``commit`` publishes their change events."""

    def __init__(self, sb: Sandbox, org: Org, user_id: str, origin: str, *, publish: bool = True) -> None:
        self.sb, self.org, self.user_id, self.origin, self.publish = sb, org, user_id, origin, publish
        self.now = sb.now_ms()
        self.undo: list[tuple[SObject, str, dict[str, Any] | None]] = []
        self.changes: list[Change] = []

    # -- transaction control ---------------------------------------------------------------------

    def savepoint(self) -> tuple[int, int]:
        return len(self.undo), len(self.changes)

    def rollback_to(self, point: tuple[int, int]) -> None:
        n_undo, n_changes = point
        while len(self.undo) > n_undo:
            obj, record_id, previous = self.undo.pop()
            table = self.org.table(obj.name)
            current = table.get(record_id)
            if current is not None:
                self.org.index(obj, current, add=False)
            if previous is None:
                table.pop(record_id, None)
            else:
                table[record_id] = previous
                self.org.index(obj, previous, add=True)
        del self.changes[n_changes:]

    def rollback(self) -> None:
        self.rollback_to((0, 0))

    def commit(self) -> None:
        if self.publish:
            cdc.publish(self.sb, self.org, self.changes, self.origin, self.user_id, self.now)
        self.undo.clear()
        self.changes.clear()

    def _put(self, obj: SObject, record: dict[str, Any]) -> None:
        """Stored dicts are never changed in place: the undo log keeps the previous one."""
        table = self.org.table(obj.name)
        previous = table.get(record["Id"])
        self.undo.append((obj, record["Id"], previous))
        if previous is not None:
            self.org.index(obj, previous, add=False)
        table[record["Id"]] = record
        self.org.index(obj, record, add=True)

    # -- reads -----------------------------------------------------------------------------------

    def live(self, obj: SObject, raw_id: str) -> dict[str, Any]:
        record_id = resolve_id(obj, raw_id)
        record = self.org.table(obj.name).get(record_id)
        if record is None:
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", status=404)
        if record.get("IsDeleted"):
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", status=404)
        return record

    # -- writes ----------------------------------------------------------------------------------

    def insert(self, obj: SObject, body: dict[str, Any]) -> str:
        if not obj.createable:
            raise RecordError("INVALID_TYPE_FOR_OPERATION", f"entity type cannot be inserted: {obj.label}")
        values = coerce(obj, body, creating=True)
        record: dict[str, Any] = {name: (False if f.type == "boolean" else None) for name, f in obj.fields.items()}
        record.update(
            Id=self.sb.ids.new(obj.key_prefix),
            OwnerId=self.user_id,
            CreatedDate=self.now,
            CreatedById=self.user_id,
            LastModifiedDate=self.now,
            LastModifiedById=self.user_id,
            SystemModstamp=self.now,
        )
        record.update(values)
        self._derive(obj, record, values, None)
        self._check(obj, record, values)
        if obj is ACCOUNT and record["IsPersonAccount"]:
            record["PersonContactId"] = self.sb.ids.new(CONTACT.key_prefix)
        self._put(obj, record)
        self.changes.append(Change("CREATE", obj, record["Id"], None, record))
        if obj is ACCOUNT and record["IsPersonAccount"]:
            self._sync_person_contact(record, None)
        return record["Id"]

    def update(self, obj: SObject, raw_id: str, body: dict[str, Any]) -> str:
        old = self.live(obj, raw_id)
        if not obj.updateable:
            raise RecordError("INVALID_TYPE_FOR_OPERATION", f"entity type cannot be updated: {obj.label}")
        if obj is CONTACT and old["IsPersonAccount"]:
            raise RecordError(
                "INVALID_PERSON_ACCOUNT_OPERATION", "The contact of a person account is edited through its account"
            )
        values = coerce(obj, body, creating=False)
        record = dict(old)
        record.update(values)
        record.update(LastModifiedDate=self.now, LastModifiedById=self.user_id, SystemModstamp=self.now)
        self._derive(obj, record, values, old)
        self._check(obj, record, values)
        self._put(obj, record)
        self.changes.append(Change("UPDATE", obj, record["Id"], old, record))
        if obj is ACCOUNT and record["IsPersonAccount"]:
            self._sync_person_contact(record, old)
        return record["Id"]

    def delete(self, obj: SObject | None, raw_id: str) -> str:
        if obj is None:
            canonical = ids.to18(raw_id)
            if canonical is None:
                raise RecordError("MALFORMED_ID", f"malformed id {raw_id}", status=400)
            obj = schema.BY_PREFIX.get(ids.prefix_of(canonical))
            if obj is None:
                raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", status=404)
        record = self.live(obj, raw_id)
        if not obj.deletable:
            raise RecordError("INVALID_TYPE_FOR_OPERATION", f"entity type cannot be deleted: {obj.label}")
        if obj is CONTACT and record["IsPersonAccount"]:
            raise RecordError(
                "INVALID_PERSON_ACCOUNT_OPERATION", "The contact of a person account is deleted with its account"
            )
        victims = [(obj, record), *self._cascade(obj, record)]
        for victim_obj, victim in victims:
            deleted = dict(victim, IsDeleted=True, SystemModstamp=self.now, _deleted_ms=self.now)
            deleted["_cascade_of"] = None if victim is record else record["Id"]
            self._put(victim_obj, deleted)
            if not (victim_obj is CONTACT and victim["IsPersonAccount"]):
                self.changes.append(Change("DELETE", victim_obj, victim["Id"], victim, deleted))
        return record["Id"]

    def merge(self, obj: SObject, master_id: str, victim_ids: list[str]) -> str:
        """Salesforce's merge of one or two records into a master (Account, Contact): the victims'
        appointments and activities move to the master, each victim goes to the recycle bin with
        MasterRecordId set to it (a DELETE event; the event carries no MasterRecordId: queryAll
        reads it), and the master is touched (an UPDATE event)."""
        if obj not in (ACCOUNT, CONTACT):
            raise RecordError("INVALID_TYPE_FOR_OPERATION", f"entity type cannot be merged: {obj.label}")
        master = self.live(obj, master_id)
        if not 1 <= len(victim_ids) <= 2:
            raise RecordError("INVALID_OPERATION", "A single merge request must contain at most 3 records to merge")
        for raw in victim_ids:
            victim = self.live(obj, raw)
            if victim["Id"] == master["Id"] or victim.get("IsPersonAccount") != master.get("IsPersonAccount"):
                raise RecordError("INVALID_OPERATION", "Cannot merge a record with itself or one of another type")
            parents = {victim["Id"]: master["Id"]}
            if victim.get("PersonContactId") and master.get("PersonContactId"):
                parents[victim["PersonContactId"]] = master["PersonContactId"]
            for child_obj, reference in ((SERVICE_APPOINTMENT, "ParentRecordId"), (EVENT, "WhatId"), (EVENT, "WhoId")):
                for child in list(self.org.table(child_obj.name).values()):
                    if child["IsDeleted"] or child.get(reference) not in parents:
                        continue
                    moved = dict(
                        child, LastModifiedDate=self.now, LastModifiedById=self.user_id, SystemModstamp=self.now
                    )
                    moved[reference] = parents[child[reference]]
                    self._put(child_obj, moved)
                    self.changes.append(Change("UPDATE", child_obj, child["Id"], child, moved))
            for victim_obj, gone in [(obj, victim), *self._cascade(obj, victim)]:
                deleted = dict(gone, IsDeleted=True, SystemModstamp=self.now, _deleted_ms=self.now)
                deleted["_cascade_of"] = None if gone is victim else victim["Id"]
                if gone is victim:
                    deleted["MasterRecordId"] = master["Id"]
                self._put(victim_obj, deleted)
                if not (victim_obj is CONTACT and gone["IsPersonAccount"]):
                    self.changes.append(Change("DELETE", victim_obj, gone["Id"], gone, deleted))
        touched = dict(master, LastModifiedDate=self.now, LastModifiedById=self.user_id, SystemModstamp=self.now)
        self._put(obj, touched)
        self.changes.append(Change("UPDATE", obj, master["Id"], master, touched))
        return master["Id"]

    def undelete(self, obj: SObject, raw_id: str) -> str:
        record_id = resolve_id(obj, raw_id)
        record = self.org.table(obj.name).get(record_id)
        if record is None:
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", status=404)
        if not record["IsDeleted"]:
            raise RecordError("UNDELETE_FAILED", "Entity is not in the recycle bin")
        restored = [(obj, record)]
        for child_obj in schema.SOBJECTS.values():
            for child in self.org.table(child_obj.name).values():
                if child.get("_cascade_of") == record_id and child["IsDeleted"]:
                    restored.append((child_obj, child))
        for victim_obj, victim in restored:
            back = {k: v for k, v in victim.items() if k not in ("_deleted_ms", "_cascade_of")}
            back.update(
                IsDeleted=False, SystemModstamp=self.now, LastModifiedDate=self.now, LastModifiedById=self.user_id
            )
            self._check_unique(victim_obj, back)
            self._put(victim_obj, back)
            if not (victim_obj is CONTACT and victim["IsPersonAccount"]):
                self.changes.append(Change("UNDELETE", victim_obj, back["Id"], victim, back))
        return record_id

    # -- rules -----------------------------------------------------------------------------------

    def _derive(self, obj: SObject, record: dict[str, Any], values: dict[str, Any], old: dict[str, Any] | None) -> None:
        if obj is ACCOUNT:
            self._derive_account(record, values, old)
        elif obj is CONTACT:
            record["Name"] = full_name(record) or None
            if old is None:
                record["IsPersonAccount"] = False
        elif obj is EVENT:
            self._derive_event(record, values, old)
        elif obj is SERVICE_APPOINTMENT:
            self._derive_service_appointment(record, values, old)
        elif obj is WORK_TYPE and record["DurationType"] is None:
            record["DurationType"] = "Hours"

    def _record_type(self, rt_id: str) -> dict[str, Any]:
        rt = self.org.table("RecordType").get(rt_id)
        if rt is None or rt["SobjectType"] != "Account":
            raise RecordError(
                "INVALID_CROSS_REFERENCE_KEY",
                f"Record Type ID: this ID value isn't valid for the user: {rt_id}",
                ["RecordTypeId"],
            )
        return rt

    def _derive_account(self, record: dict[str, Any], values: dict[str, Any], old: dict[str, Any] | None) -> None:
        if old is None:
            if values.get("RecordTypeId") is not None:
                person = self._record_type(values["RecordTypeId"])["IsPersonType"]
            else:
                # simulator-chosen: without a record type, person-account fields make a Person Account
                person = any(ACCOUNT.fields[name].person for name in values)
                record["RecordTypeId"] = self.org.person_record_type if person else self.org.business_record_type
            record["IsPersonAccount"] = person
        else:
            person = old["IsPersonAccount"]
            if values.get("RecordTypeId") not in (None, old["RecordTypeId"]):
                if self._record_type(values["RecordTypeId"])["IsPersonType"] != person:
                    raise RecordError(
                        "INVALID_PERSON_ACCOUNT_OPERATION",
                        "A business account and a person account can't be converted by changing the record type",
                        ["RecordTypeId"],
                    )
            if "RecordTypeId" in values and values["RecordTypeId"] is None:
                record["RecordTypeId"] = old["RecordTypeId"]
        wrong = [
            n for n in values if (ACCOUNT.fields[n].person and not person) or (ACCOUNT.fields[n].business and person)
        ]
        if wrong:
            raise RecordError(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(wrong)}. {_READ_ONLY_HINT}",
                wrong,
            )
        if person:
            record["Name"] = full_name(record) or None

    def _derive_event(self, record: dict[str, Any], values: dict[str, Any], old: dict[str, Any] | None) -> None:
        if old is None and record["ShowAs"] is None:
            record["ShowAs"] = "Busy"
        if "ActivityDateTime" in values and "StartDateTime" not in values:
            record["StartDateTime"] = values["ActivityDateTime"]
        if record["IsAllDayEvent"]:
            day = record["ActivityDate"] or (
                timefmt.date_of(record["StartDateTime"]) if record["StartDateTime"] else None
            )
            if day is None:
                raise RecordError(
                    "REQUIRED_FIELD_MISSING", "Required fields are missing: [ActivityDate]", ["ActivityDate"]
                )
            record["StartDateTime"] = timefmt.midnight_ms(day)
            record["DurationInMinutes"] = 1440
            record["EndDateTime"] = record["StartDateTime"] + 1440 * 60_000
        start = record["StartDateTime"]
        if start is None:
            raise RecordError(
                "REQUIRED_FIELD_MISSING", "Required fields are missing: [StartDateTime]", ["StartDateTime"]
            )
        if not record["IsAllDayEvent"]:
            if values.get("EndDateTime") is not None:
                record["DurationInMinutes"] = (record["EndDateTime"] - start) // 60_000
            elif values.get("DurationInMinutes") is not None:
                record["EndDateTime"] = start + record["DurationInMinutes"] * 60_000
            elif old is not None and old["DurationInMinutes"] is not None:
                record["EndDateTime"] = start + old["DurationInMinutes"] * 60_000
            elif record["EndDateTime"] is not None:
                record["DurationInMinutes"] = (record["EndDateTime"] - start) // 60_000
            else:
                raise RecordError(
                    "REQUIRED_FIELD_MISSING", "Required fields are missing: [DurationInMinutes]", ["DurationInMinutes"]
                )
        if record["EndDateTime"] < start:
            raise RecordError(
                "FIELD_INTEGRITY_EXCEPTION",
                "End Date Time: End Date Time can't be earlier than Start Date Time",
                ["EndDateTime"],
            )
        if record["DurationInMinutes"] > _MAX_EVENT_MINUTES:
            raise RecordError(
                "FIELD_INTEGRITY_EXCEPTION", "Duration: Event duration can't exceed 14 days", ["DurationInMinutes"]
            )
        record["ActivityDateTime"] = start
        record["ActivityDate"] = timefmt.date_of(start)

    def _derive_service_appointment(
        self, record: dict[str, Any], values: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        if old is None:
            self.org.appointment_number += 1
            record["AppointmentNumber"] = f"SA-{self.org.appointment_number:04d}"
            if record["Status"] is None:
                record["Status"] = "None"
            parent = record["ParentRecordId"]
            if parent is not None:
                parent_obj = schema.BY_PREFIX.get(parent[:3])
                record["ParentRecordType"] = parent_obj.name if parent_obj else None
                if record["AccountId"] is None and parent_obj is ACCOUNT:
                    record["AccountId"] = parent  # simulator-chosen: the parent account is the appointment's account
            if record["EarliestStartTime"] is None:
                record["EarliestStartTime"] = record["SchedStartTime"] or self.now
            if record["DueDate"] is None:
                record["DueDate"] = record["EarliestStartTime"] + 7 * 86_400_000
        record["StatusCategory"] = schema.SA_STATUS_CATEGORY.get(record["Status"])
        start, end = record["SchedStartTime"], record["SchedEndTime"]
        if start is not None and end is not None and end < start:
            raise RecordError(
                "FIELD_INTEGRITY_EXCEPTION",
                "Scheduled End: Scheduled End can't be earlier than Scheduled Start",
                ["SchedEndTime"],
            )
        if record["DueDate"] is not None and record["EarliestStartTime"] is not None:
            if record["DueDate"] < record["EarliestStartTime"]:
                raise RecordError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "Due Date: Due Date can't be earlier than Earliest Start Permitted",
                    ["DueDate"],
                )

    def _check(self, obj: SObject, record: dict[str, Any], values: dict[str, Any]) -> None:
        missing = [
            f.name
            for f in obj.fields.values()
            if (f.required or (not f.nillable and f.createable)) and record.get(f.name) is None
        ]
        if obj is ACCOUNT:
            needed = "LastName" if record["IsPersonAccount"] else "Name"
            if record[needed] is None:
                missing.append(needed)
        if missing:
            raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing)
        for name, value in values.items():
            f = obj.fields[name]
            if f.type == "reference" and value is not None:
                self._check_reference(f, value)
        self._check_unique(obj, record)

    def _check_reference(self, f: Field, value: str) -> None:
        target = schema.BY_PREFIX.get(ids.prefix_of(value))
        if target is None or target.name not in f.reference_to:
            raise RecordError("FIELD_INTEGRITY_EXCEPTION", f"{f.label}: id value of incorrect type: {value}", [f.name])
        referenced = self.org.table(target.name).get(value)
        if referenced is None:
            raise RecordError(
                "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
                f"insufficient access rights on cross-reference id: {value}",
            )
        if referenced.get("IsDeleted"):
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted")

    def _check_unique(self, obj: SObject, record: dict[str, Any]) -> None:
        for f in obj.external_ids:
            if not f.unique or record.get(f.name) is None:
                continue
            others = [i for i in self.org.by_external_id(obj, f.name, record[f.name]) if i != record["Id"]]
            if others:
                raise RecordError(
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {f.name} duplicates value on record with id: {others[0]}",
                    [],
                )

    def _sync_person_contact(self, account: dict[str, Any], old: dict[str, Any] | None) -> None:
        mirrored = {c: account[a] for c, a in schema.PERSON_CONTACT_FIELDS.items()}
        if old is None:
            contact: dict[str, Any] = {n: (False if f.type == "boolean" else None) for n, f in CONTACT.fields.items()}
            contact.update(
                Id=account["PersonContactId"],
                CreatedDate=self.now,
                CreatedById=self.user_id,
                IsPersonAccount=True,
                AccountId=account["Id"],
            )
        else:
            contact = dict(self.org.table("Contact")[account["PersonContactId"]])
        contact.update(mirrored)
        contact.update(
            Name=full_name(contact) or None,
            LastModifiedDate=self.now,
            LastModifiedById=self.user_id,
            SystemModstamp=self.now,
        )
        self._put(CONTACT, contact)

    def _cascade(self, obj: SObject, record: dict[str, Any]) -> list[tuple[SObject, dict[str, Any]]]:
        """Children deleted with a record: an account's contacts (its person contact too), appointments
        and activities; a contact's activities and appointments; an appointment's activities."""
        out: list[tuple[SObject, dict[str, Any]]] = []
        parents = {record["Id"]}
        if obj is ACCOUNT:
            contacts = [
                c for c in self.org.table("Contact").values() if c["AccountId"] == record["Id"] and not c["IsDeleted"]
            ]
            out += [(CONTACT, c) for c in contacts]
            parents |= {c["Id"] for c in contacts}
        if obj in (ACCOUNT, CONTACT):
            appointments = [
                a
                for a in self.org.table("ServiceAppointment").values()
                if a["ParentRecordId"] in parents and not a["IsDeleted"]
            ]
            out += [(SERVICE_APPOINTMENT, a) for a in appointments]
            parents |= {a["Id"] for a in appointments}
        if obj in (ACCOUNT, CONTACT, SERVICE_APPOINTMENT):
            out += [
                (EVENT, e)
                for e in self.org.table("Event").values()
                if not e["IsDeleted"] and (e["WhatId"] in parents or e["WhoId"] in parents)
            ]
        return out
