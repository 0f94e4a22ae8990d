"""GoHighLevel (LeadConnector API v2) adapter."""

from services.adapters.ghl.adapter import GhlAdapter

ADAPTER = GhlAdapter
