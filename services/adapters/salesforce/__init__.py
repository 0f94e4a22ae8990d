"""Salesforce Health Cloud adapter (REST API v60.0)."""

from services.adapters.salesforce.adapter import SalesforceAdapter

ADAPTER = SalesforceAdapter
