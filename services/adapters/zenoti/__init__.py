"""Zenoti (API v1) adapter."""

from services.adapters.zenoti.adapter import ZenotiAdapter

ADAPTER = ZenotiAdapter
