"""The sObjects the adapter syncs and the fields it reads and writes (docs/vendors/VENDOR_APIS.md §3,
the org's describe). Each entity is one `SObjectResource`; adding an entity is adding one here and
one entity module (patients.py, appointments.py) the adapter dispatches to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SObjectResource:
    sobject: str
    # Selected on reads; Id and SystemModstamp (the cursor) are always added.
    fields: tuple[str, ...]
    # The external id field the hub's own id is written to: upserts on it are idempotent.
    external_id_field: str
    # A SOQL condition every read adds, or "".
    where: str = ""
    # The first three characters of the object's record ids: a cursor names a record of it.
    key_prefix: str = ""

    @property
    def select(self) -> tuple[str, ...]:
        return ("Id", *self.fields, "SystemModstamp")


# Health Cloud patients are Person Accounts; business accounts are never read.
PERSON_ACCOUNTS = SObjectResource(
    sobject="Account",
    fields=(
        "FirstName",
        "LastName",
        "PersonEmail",
        "PersonBirthdate",
        "PersonMobilePhone",
        "PersonHomePhone",
        "PersonMailingStreet",
        "PersonMailingCity",
        "PersonMailingState",
        "PersonMailingPostalCode",
        "PersonMailingCountry",
        "PersonGenderIdentity",
        "Concord_Patient_Id__c",
        "LastModifiedDate",
    ),
    external_id_field="Concord_Patient_Id__c",
    where="IsPersonAccount = true",
    key_prefix="001",
)

# Health Cloud / Scheduler appointments; the parent is the patient's Person Account.
SERVICE_APPOINTMENTS = SObjectResource(
    sobject="ServiceAppointment",
    fields=(
        "ParentRecordId",
        "AccountId",
        "SchedStartTime",
        "SchedEndTime",
        "Status",
        "Subject",
        "Description",
        "AppointmentType",
        "Concord_Appointment_Id__c",
        "LastModifiedDate",
    ),
    external_id_field="Concord_Appointment_Id__c",
    key_prefix="08p",
)

# Lightning calendar Events, for practices that book in the calendar rather than Salesforce
# Scheduler; WhatId is the patient's Person Account.
CALENDAR_EVENTS = SObjectResource(
    sobject="Event",
    fields=(
        "WhatId",
        "Subject",
        "StartDateTime",
        "EndDateTime",
        "IsAllDayEvent",
        "Description",
        "Concord_Appointment_Id__c",
        "LastModifiedDate",
    ),
    external_id_field="Concord_Appointment_Id__c",
    key_prefix="00U",
)
