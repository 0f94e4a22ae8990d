"""Appointments as Lightning calendar Events (the second appointment resource, for practices that
book in the calendar instead of Salesforce Scheduler): upserted on Concord_Appointment_Id__c
through sObject Collections, read by the same (SystemModstamp, Id) cursor as ServiceAppointment.
WhatId (the Person Account) may be changed on update, so no create-only field needs dropping."""

from __future__ import annotations

from services.adapters.salesforce import changes, schemas
from services.adapters.salesforce.resource import SObjectEntity


class CalendarEvents(SObjectEntity):
    def __init__(self, settle_seconds: float = changes.SETTLE_SECONDS) -> None:
        super().__init__(schemas.CALENDAR_EVENTS, settle_seconds)
