"""The sObjects the sandbox knows and their fields (a Health Cloud org with Person Accounts and
Salesforce Scheduler), with the metadata describe, DML validation, SOQL and CDC read."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import ids


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # id string textarea email phone picklist combobox boolean date datetime int double reference
    label: str
    length: int = 0
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    required: bool = False  # must be given on create (no default)
    external_id: bool = False
    unique: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    person: bool = False  # Account: only on Person Accounts
    business: bool = False  # Account: only on business accounts

    @property
    def custom(self) -> bool:
        return self.name.endswith("__c")

    @property
    def text(self) -> bool:
        return self.type in ("string", "textarea", "email", "phone", "picklist", "combobox", "url")

    def describe(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "length": self.length,
            "custom": self.custom,
            "createable": self.createable,
            "updateable": self.updateable,
            "nillable": self.nillable,
            "defaultedOnCreate": not self.nillable and not self.required,
            "externalId": self.external_id,
            "unique": self.unique,
            "idLookup": self.type == "id" or self.external_id,
            "filterable": self.type != "textarea" or self.length <= 255,
            "sortable": self.type != "textarea" or self.length <= 255,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "picklistValues": [
                {"active": True, "defaultValue": False, "label": v, "validFor": None, "value": v} for v in self.picklist
            ],
            "restrictedPicklist": self.restricted,
            "calculated": False,
            "caseSensitive": False,
            "soapType": _SOAP_TYPES[self.type],
        }


_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "string": "xsd:string",
    "textarea": "xsd:string",
    "email": "xsd:string",
    "phone": "xsd:string",
    "picklist": "xsd:string",
    "combobox": "xsd:string",
    "url": "xsd:string",
    "boolean": "xsd:boolean",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "int": "xsd:int",
    "double": "xsd:double",
}


@dataclass
class SObject:
    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: dict[str, Field]
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    cdc: bool = True
    # CDC compound fields: event field -> ((component, record field), ...)
    compounds: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    _lower: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._lower = {name.lower(): name for name in self.fields}

    def field(self, name: str) -> Field | None:
        """Field names are case-insensitive in the API, as in Salesforce."""
        canonical = self._lower.get(name.lower())
        return self.fields[canonical] if canonical else None

    def relationship(self, name: str) -> Field | None:
        lowered = name.lower()
        for f in self.fields.values():
            if f.relationship_name and f.relationship_name.lower() == lowered:
                return f
        return None

    @property
    def external_ids(self) -> list[Field]:
        return [f for f in self.fields.values() if f.external_id]


def _f(name: str, type_: str, label: str, length: int = 0, **kw) -> Field:
    if not length:
        length = {"string": 255, "textarea": 32000, "email": 80, "phone": 40, "picklist": 255, "combobox": 255}.get(
            type_, 0
        )
        if type_ in ("id", "reference"):
            length = 18
    return Field(name, type_, label, length, **kw)


def _ro(name: str, type_: str, label: str, **kw) -> Field:
    return _f(name, type_, label, createable=False, updateable=False, **kw)


def _system(owner: bool = True, deletable: bool = True) -> list[Field]:
    out = [_ro("Id", "id", "Record ID", nillable=False)]
    if deletable:
        out.append(_ro("IsDeleted", "boolean", "Deleted", nillable=False))
    if owner:
        out.append(
            _f("OwnerId", "reference", "Owner ID", nillable=False, reference_to=("User",), relationship_name="Owner")
        )
    out += [
        _ro("CreatedDate", "datetime", "Created Date", nillable=False),
        _ro(
            "CreatedById",
            "reference",
            "Created By ID",
            nillable=False,
            reference_to=("User",),
            relationship_name="CreatedBy",
        ),
        _ro("LastModifiedDate", "datetime", "Last Modified Date", nillable=False),
        _ro(
            "LastModifiedById",
            "reference",
            "Last Modified By ID",
            nillable=False,
            reference_to=("User",),
            relationship_name="LastModifiedBy",
        ),
        _ro("SystemModstamp", "datetime", "System Modstamp", nillable=False),
    ]
    return out


def _object(name: str, label: str, plural: str, prefix: str, fields: list[Field], **kw) -> SObject:
    return SObject(name, label, plural, prefix, {f.name: f for f in fields}, **kw)


GENDER_IDENTITIES = ("Male", "Female", "Nonbinary", "Not Listed")
SALUTATIONS = ("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.", "Mx.")
SA_STATUSES = ("None", "Scheduled", "Dispatched", "In Progress", "Cannot Complete", "Completed", "Canceled")
SA_STATUS_CATEGORY = {
    "None": "None",
    "Scheduled": "Scheduled",
    "Dispatched": "Dispatched",
    "In Progress": "InProgress",
    "Cannot Complete": "CannotComplete",
    "Completed": "Completed",
    "Canceled": "Canceled",
}


def _address(prefix: str, label: str, **kw) -> list[Field]:
    return [
        _f(f"{prefix}Street", "textarea", f"{label} Street", 255, **kw),
        _f(f"{prefix}City", "string", f"{label} City", 40, **kw),
        _f(f"{prefix}State", "string", f"{label} State/Province", 80, **kw),
        _f(f"{prefix}PostalCode", "string", f"{label} Zip/Postal Code", 20, **kw),
        _f(f"{prefix}Country", "string", f"{label} Country", 80, **kw),
    ]


def _address_compound(prefix: str) -> tuple[tuple[str, str], ...]:
    return tuple((part, f"{prefix}{part}") for part in ("Street", "City", "State", "PostalCode", "Country"))


_NAME_COMPOUND = (("Salutation", "Salutation"), ("FirstName", "FirstName"), ("LastName", "LastName"))

ACCOUNT = _object(
    "Account",
    "Account",
    "Accounts",
    ids.ACCOUNT,
    [
        *_system(),
        _ro(
            "MasterRecordId",
            "reference",
            "Master Record ID",
            reference_to=("Account",),
            relationship_name="MasterRecord",
        ),
        _f("Name", "string", "Account Name", 255, business=True),
        _f("RecordTypeId", "reference", "Record Type ID", reference_to=("RecordType",), relationship_name="RecordType"),
        _f("Type", "picklist", "Account Type", picklist=("Prospect", "Customer", "Partner", "Other")),
        _f("Phone", "phone", "Account Phone"),
        _f("Industry", "picklist", "Industry", picklist=("Healthcare", "Other")),
        _f("Description", "textarea", "Account Description"),
        *_address("Billing", "Billing"),
        _ro("IsPersonAccount", "boolean", "Is Person Account", nillable=False),
        _ro(
            "PersonContactId",
            "reference",
            "Person Contact ID",
            reference_to=("Contact",),
            relationship_name="PersonContact",
        ),
        _f("Salutation", "picklist", "Salutation", 40, picklist=SALUTATIONS, person=True),
        _f("FirstName", "string", "First Name", 40, person=True),
        _f("MiddleName", "string", "Middle Name", 40, person=True),
        _f("LastName", "string", "Last Name", 80, person=True),
        *_address("PersonMailing", "Mailing", person=True),
        _f("PersonEmail", "email", "Email", person=True),
        _f("PersonBirthdate", "date", "Birthdate", person=True),
        _f("PersonMobilePhone", "phone", "Mobile", person=True),
        _f("PersonHomePhone", "phone", "Home Phone", person=True),
        _f("PersonOtherPhone", "phone", "Other Phone", person=True),
        _f("PersonGenderIdentity", "picklist", "Gender Identity", picklist=GENDER_IDENTITIES, person=True),
        _f("Concord_Patient_Id__c", "string", "Concord Patient Id", 255, external_id=True, unique=True),
        _f("HealthCloudGA__SourceSystemId__c", "string", "Source System ID", 255, external_id=True),
    ],
    compounds={
        "Name": _NAME_COMPOUND,
        "BillingAddress": _address_compound("Billing"),
        "PersonMailingAddress": _address_compound("PersonMailing"),
    },
)

# Fields of a Person Account's contact that mirror the account (contact field -> account field).
PERSON_CONTACT_FIELDS = {
    "Salutation": "Salutation",
    "FirstName": "FirstName",
    "MiddleName": "MiddleName",
    "LastName": "LastName",
    "Email": "PersonEmail",
    "Birthdate": "PersonBirthdate",
    "MobilePhone": "PersonMobilePhone",
    "HomePhone": "PersonHomePhone",
    "OtherPhone": "PersonOtherPhone",
    "GenderIdentity": "PersonGenderIdentity",
    "MailingStreet": "PersonMailingStreet",
    "MailingCity": "PersonMailingCity",
    "MailingState": "PersonMailingState",
    "MailingPostalCode": "PersonMailingPostalCode",
    "MailingCountry": "PersonMailingCountry",
    "OwnerId": "OwnerId",
}

CONTACT = _object(
    "Contact",
    "Contact",
    "Contacts",
    ids.CONTACT,
    [
        *_system(),
        _f("AccountId", "reference", "Account ID", reference_to=("Account",), relationship_name="Account"),
        _f("Salutation", "picklist", "Salutation", 40, picklist=SALUTATIONS),
        _f("FirstName", "string", "First Name", 40),
        _f("MiddleName", "string", "Middle Name", 40),
        _f("LastName", "string", "Last Name", 80, nillable=False, required=True),
        _ro("Name", "string", "Full Name", length=121, nillable=False),
        _f("Title", "string", "Title", 128),
        _f("Email", "email", "Email"),
        _f("Phone", "phone", "Business Phone"),
        _f("MobilePhone", "phone", "Mobile Phone"),
        _f("HomePhone", "phone", "Home Phone"),
        _f("OtherPhone", "phone", "Other Phone"),
        _f("Birthdate", "date", "Birthdate"),
        _f("GenderIdentity", "picklist", "Gender Identity", picklist=GENDER_IDENTITIES),
        *_address("Mailing", "Mailing"),
        _f("Description", "textarea", "Contact Description"),
        _ro("IsPersonAccount", "boolean", "Is Person Account", nillable=False),
    ],
    compounds={"Name": _NAME_COMPOUND, "MailingAddress": _address_compound("Mailing")},
)

EVENT = _object(
    "Event",
    "Event",
    "Events",
    ids.EVENT,
    [
        *_system(),
        _f("WhoId", "reference", "Name ID", reference_to=("Contact",), relationship_name="Who"),
        _f(
            "WhatId",
            "reference",
            "Related To ID",
            reference_to=("Account", "ServiceAppointment", "WorkType"),
            relationship_name="What",
        ),
        _f("Subject", "combobox", "Subject", picklist=("Call", "Email", "Meeting", "Send Letter/Quote", "Other")),
        _f("Location", "string", "Location", 255),
        _f("IsAllDayEvent", "boolean", "All-Day Event", nillable=False),
        _f("ActivityDateTime", "datetime", "Due Date Time"),
        _f("ActivityDate", "date", "Due Date Only"),
        _f("DurationInMinutes", "int", "Duration"),
        _f("StartDateTime", "datetime", "Start Date Time"),
        _f("EndDateTime", "datetime", "End Date Time"),
        _f("Description", "textarea", "Description"),
        _f("ShowAs", "picklist", "Show Time As", 40, picklist=("Busy", "OutOfOffice", "Free"), restricted=True),
        # The custom activity field Concord's package adds, as on ServiceAppointment.
        _f("Concord_Appointment_Id__c", "string", "Concord Appointment Id", 255, external_id=True, unique=True),
    ],
)

SERVICE_APPOINTMENT = _object(
    "ServiceAppointment",
    "Service Appointment",
    "Service Appointments",
    ids.SERVICE_APPOINTMENT,
    [
        *_system(),
        _ro("AppointmentNumber", "string", "Appointment Number", nillable=False),
        _f(
            "ParentRecordId",
            "reference",
            "Parent Record ID",
            reference_to=("Account", "Contact"),
            relationship_name="ParentRecord",
            nillable=False,
            required=True,
            updateable=False,
        ),
        _ro("ParentRecordType", "string", "Parent Record Type", length=50),
        _f("AccountId", "reference", "Account ID", reference_to=("Account",), relationship_name="Account"),
        _f("ContactId", "reference", "Contact ID", reference_to=("Contact",), relationship_name="Contact"),
        _f("WorkTypeId", "reference", "Work Type ID", reference_to=("WorkType",), relationship_name="WorkType"),
        _f("Subject", "string", "Subject", 255),
        _f("Description", "textarea", "Description"),
        _f("Status", "picklist", "Status", picklist=SA_STATUSES, restricted=True, nillable=False),
        _ro("StatusCategory", "picklist", "Status Category", picklist=tuple(SA_STATUS_CATEGORY.values())),
        _f("AppointmentType", "picklist", "Appointment Type", picklist=("In Person", "Video", "Phone")),
        _f("Comments", "textarea", "Comments"),
        _f("SchedStartTime", "datetime", "Scheduled Start"),
        _f("SchedEndTime", "datetime", "Scheduled End"),
        _f("ActualStartTime", "datetime", "Actual Start"),
        _f("ActualEndTime", "datetime", "Actual End"),
        _f("EarliestStartTime", "datetime", "Earliest Start Permitted", nillable=False),
        _f("DueDate", "datetime", "Due Date", nillable=False),
        _f("Duration", "double", "Estimated Duration"),
        _f("DurationType", "picklist", "Duration Type", picklist=("Hours", "Minutes"), restricted=True),
        *_address("", ""),
        _f("Concord_Appointment_Id__c", "string", "Concord Appointment Id", 255, external_id=True, unique=True),
    ],
    compounds={"Address": _address_compound("")},
)

WORK_TYPE = _object(
    "WorkType",
    "Work Type",
    "Work Types",
    ids.WORK_TYPE,
    [
        *_system(),
        _f("Name", "string", "Work Type Name", 255, nillable=False, required=True),
        _f("Description", "textarea", "Description"),
        _f("EstimatedDuration", "double", "Estimated Duration", nillable=False, required=True),
        _f("DurationType", "picklist", "Duration Type", picklist=("Hours", "Minutes"), restricted=True, nillable=False),
    ],
)

RECORD_TYPE = _object(
    "RecordType",
    "Record Type",
    "Record Types",
    ids.RECORD_TYPE,
    [
        *_system(owner=False, deletable=False),
        _ro("Name", "string", "Name", length=80),
        _ro("DeveloperName", "string", "Record Type Name", length=80),
        _ro("SobjectType", "picklist", "SObject Type Name", length=40),
        _ro("IsPersonType", "boolean", "Is Person Type"),
        _ro("IsActive", "boolean", "Active"),
        _ro("Description", "string", "Description", length=255),
    ],
    createable=False,
    updateable=False,
    deletable=False,
    cdc=False,
)

USER = _object(
    "User",
    "User",
    "Users",
    ids.USER,
    [
        *_system(owner=False, deletable=False),
        _ro("Username", "string", "Username", length=80),
        _ro("FirstName", "string", "First Name", length=40),
        _ro("LastName", "string", "Last Name", length=80),
        _ro("Name", "string", "Full Name", length=121),
        _ro("Email", "email", "Email"),
        _ro("IsActive", "boolean", "Active"),
    ],
    createable=False,
    updateable=False,
    deletable=False,
    cdc=False,
)

SOBJECTS: dict[str, SObject] = {
    o.name: o for o in (ACCOUNT, CONTACT, EVENT, SERVICE_APPOINTMENT, WORK_TYPE, RECORD_TYPE, USER)
}
_BY_LOWER = {name.lower(): o for name, o in SOBJECTS.items()}
BY_PREFIX = {o.key_prefix: o for o in SOBJECTS.values()}


def sobject(name: str) -> SObject | None:
    """sObject names are case-insensitive in URLs and SOQL."""
    return _BY_LOWER.get(name.lower())
