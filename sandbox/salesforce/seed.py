"""Seed an org from the project's synthetic data: Person Accounts from the Synthea patients, Work
Types from the service catalog, and a Service Appointment plus a calendar Event for each past visit
(Encounter) and each generated future visit. Seeding is a data load: no change events, no API calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sandbox.common import synthetic

from . import schema, timefmt
from .dml import Txn

if TYPE_CHECKING:
    from .state import Org, Sandbox

UI_ORIGIN = "com/salesforce/api/soap/{version}.0;client=SfdcInternalAPI/"
_MAX_EVENT = timedelta(days=14)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def patient_account(patient: dict[str, Any], *, link_concord_ids: bool) -> dict[str, Any]:
    name = synthetic.official_name(patient)
    given = (name.get("given") or [None])[0]
    prefix = (name.get("prefix") or [None])[0]
    phones = {t.get("use"): t.get("value") for t in patient.get("telecom", []) if t.get("system") == "phone"}
    address = (patient.get("address") or [{}])[0]
    family = name.get("family") or "Unknown"
    email = f"{(given or 'patient').lower()}.{family.lower()}@example.com".replace(" ", "")
    gender = {"male": "Male", "female": "Female"}.get(patient.get("gender", ""))
    return {
        "Salutation": prefix if prefix in schema.SALUTATIONS else None,
        "FirstName": given,
        "LastName": family,
        "PersonEmail": email,
        "PersonBirthdate": patient.get("birthDate"),
        "PersonHomePhone": phones.get("home") or next(iter(phones.values()), None),
        "PersonMobilePhone": phones.get("mobile"),
        "PersonMailingStreet": "\n".join(address.get("line") or []) or None,
        "PersonMailingCity": address.get("city"),
        "PersonMailingState": address.get("state"),
        "PersonMailingPostalCode": address.get("postalCode"),
        "PersonMailingCountry": address.get("country"),
        "PersonGenderIdentity": gender,
        "HealthCloudGA__SourceSystemId__c": patient["id"],
        "Concord_Patient_Id__c": patient["id"] if link_concord_ids else None,
    }


def seed_org(sb: Sandbox, org: Org, *, future_per_patient: int = 1, link_concord_ids: bool = False) -> dict[str, Any]:
    user = sb.first_user(org)
    origin = UI_ORIGIN.format(version=sb.settings.max_api_version)
    txn = Txn(sb, org, user.id, origin, publish=False)
    try:
        counts = _load(sb, org, txn, future_per_patient, link_concord_ids)
    except BaseException:
        txn.rollback()
        raise
    txn.commit()
    return {**counts, "seededAt": timefmt.rest(sb.now_ms())}


def _load(sb: Sandbox, org: Org, txn: Txn, future_per_patient: int, link_concord_ids: bool) -> dict[str, int]:
    data = synthetic.load(sb.settings.synthea_dir)
    services = {code: (label, minutes) for code, label, minutes, _ in synthetic.SERVICES}
    work_types = {}
    for code, label, minutes, price in synthetic.SERVICES:
        work_types[code] = txn.insert(
            schema.WORK_TYPE,
            {
                "Name": label,
                "EstimatedDuration": minutes,
                "DurationType": "Minutes",
                "Description": f"{synthetic.CATEGORIES[code]} - ${price:.2f}",
            },
        )
    accounts: dict[str, tuple[str, str]] = {}
    for patient in data.patients:
        account_id = txn.insert(schema.ACCOUNT, patient_account(patient, link_concord_ids=link_concord_ids))
        accounts[patient["id"]] = (account_id, org.table("Account")[account_id]["PersonContactId"])
    now = datetime.fromtimestamp(sb.clock(), UTC)
    visits = [
        *data.past_visits,
        *synthetic.future_visits(data, seed=sb.settings.seed, now=now, per_patient=future_per_patient),
    ]
    appointments = events = 0
    for visit in visits:
        if visit.patient_id not in accounts:
            continue
        account_id, contact_id = accounts[visit.patient_id]
        label, _ = services[visit.service_code]
        end = max(visit.end, visit.start)
        past = visit.status == "fulfilled"
        appointment = {
            "ParentRecordId": account_id,
            "ContactId": contact_id,
            "WorkTypeId": work_types[visit.service_code],
            "Subject": label,
            "SchedStartTime": _iso(visit.start),
            "SchedEndTime": _iso(end),
            "Status": "Completed" if past else "Scheduled",
            "AppointmentType": "In Person",
            "Comments": visit.reason,
            "Description": f"With {visit.practitioner_name}" if visit.practitioner_name else None,
            "Concord_Appointment_Id__c": visit.visit_id if link_concord_ids else None,
        }
        if past:
            appointment.update(ActualStartTime=_iso(visit.start), ActualEndTime=_iso(end))
        txn.insert(schema.SERVICE_APPOINTMENT, appointment)
        appointments += 1
        txn.insert(
            schema.EVENT,
            {
                "WhoId": contact_id,
                "WhatId": account_id,
                "Subject": label,
                "StartDateTime": _iso(visit.start),
                "EndDateTime": _iso(min(end, visit.start + _MAX_EVENT)),
                "Location": visit.practitioner_name,
                "Description": visit.reason,
            },
        )
        events += 1
    return {"WorkType": len(work_types), "Account": len(accounts), "ServiceAppointment": appointments, "Event": events}
