"""Checks a definition's ``extra.declarative`` before the registry stores it, so an adapter or
mapper never meets a document it cannot read. The document's shape is
services/adapters/declarative/README.md; its parser is shared with the adapter and the mapping
service (services/adapters/declarative/definition.py)."""

from __future__ import annotations

from services.adapters.declarative import definition


def validate(document: dict) -> None:
    """InvalidArgument (reason INVALID_DECLARATIVE_DEFINITION) naming the offending key, if any."""
    if definition.has_declarative(document):
        definition.parse(document)
