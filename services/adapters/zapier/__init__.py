"""Zapier (REST hooks) adapter: deliveries of the hub's changes to subscribed Zaps."""

from services.adapters.zapier.adapter import ZapierAdapter

ADAPTER = ZapierAdapter
