"""Patients: Health Cloud Person Accounts, upserted on Concord_Patient_Id__c."""

from __future__ import annotations

from services.adapters.salesforce import changes, schemas
from services.adapters.salesforce.resource import SObjectEntity


class Patients(SObjectEntity):
    def __init__(self, settle_seconds: float = changes.SETTLE_SECONDS) -> None:
        super().__init__(schemas.PERSON_ACCOUNTS, settle_seconds)
