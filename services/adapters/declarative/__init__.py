"""The declarative adapter: serves any vendor whose registry definition carries
``extra.declarative`` and that has no ``services/adapters/<vendor>`` package of its own.

``load_adapter`` falls back to ``declarative_adapter(vendor)``; the adapter then reads the
definition from the registry (Settings.registry_address) for each config it is asked about.
"""

from __future__ import annotations

import functools
from collections.abc import Callable


def declarative_adapter(vendor: str) -> Callable:
    """The adapter factory for ``vendor``: ``(AdapterContext) -> DeclarativeAdapter``."""
    from services.adapters.declarative.adapter import DeclarativeAdapter

    return functools.partial(DeclarativeAdapter, vendor=vendor)
