"""What a practice writes without Concord: a ``sync_patients.py`` in the style of the POPA Health
README, simple-salesforce and one API call per patient (``sf.Contact.create``).

The benchmark runs it against the same Salesforce sandbox Concord pushes to (bench/backfill_salesforce.py).
simple-salesforce always builds ``https://login.salesforce.com`` (login) and ``https://{instance}``
(data) URLs; ``loopback_session`` stands in for DNS and TLS and sends them over plain HTTP to the
sandbox (as tests/sandbox/salesforce_support.py does), everything else is simple-salesforce's own
code, SOAP login included.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce


class LoopbackAdapter(HTTPAdapter):
    """Sends every ``https://`` request, unchanged otherwise, over plain HTTP to ``netloc``."""

    def __init__(self, netloc: str) -> None:
        super().__init__()
        self.netloc = netloc

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url or "")
        request.url = urlunsplit(("http", self.netloc, parts.path, parts.query, ""))
        return super().send(request, **kwargs)


def loopback_session(sandbox_url: str) -> requests.Session:
    session = requests.Session()
    session.mount("https://", LoopbackAdapter(urlsplit(sandbox_url).netloc))
    return session


def login(sandbox_url: str, username: str, password: str, security_token: str) -> Salesforce:
    """The README's login: username, password and security token (SOAP login)."""
    return Salesforce(
        username=username,
        password=password,
        security_token=security_token,
        session=loopback_session(sandbox_url),
        version="60.0",
    )


def to_contact(patient: dict[str, Any]) -> dict[str, Any]:
    """A FHIR Patient as the Contact fields a practice's script fills in."""
    name = (patient.get("name") or [{}])[0]
    address = (patient.get("address") or [{}])[0]
    phones = [t["value"] for t in patient.get("telecom") or [] if t.get("system") == "phone" and t.get("value")]
    emails = [t["value"] for t in patient.get("telecom") or [] if t.get("system") == "email" and t.get("value")]
    contact = {
        "FirstName": " ".join(name.get("given") or [])[:40] or None,
        "LastName": (name.get("family") or "Unknown")[:80],
        "Birthdate": patient.get("birthDate"),
        "HomePhone": phones[0] if phones else None,
        "Email": emails[0] if emails else None,
        "MailingStreet": "\n".join(address.get("line") or []) or None,
        "MailingCity": address.get("city"),
        "MailingState": address.get("state"),
        "MailingPostalCode": address.get("postalCode"),
        "Description": f"hub patient {patient.get('id', '')}",
    }
    return {k: v for k, v in contact.items() if v}


def sync_patients(sf: Salesforce, patients: list[dict[str, Any]]) -> int:
    """One ``Contact.create`` per patient, as the README's script does. Returns how many were created."""
    created = 0
    for patient in patients:
        result = sf.Contact.create(to_contact(patient))
        created += bool(result.get("success"))
    return created
