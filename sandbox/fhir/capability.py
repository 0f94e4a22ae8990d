"""GET [base]/metadata (CapabilityStatement with the SMART oauth-uris extension) and
GET [base]/.well-known/smart-configuration."""

from __future__ import annotations

from typing import Any

from . import search
from .settings import FhirSandboxSettings
from .store import instant
from .validation import RESOURCE_TYPES

SOFTWARE = {"name": "Concord FHIR R4 sandbox", "version": "1.0.0"}
_INTERACTIONS = ("read", "vread", "update", "delete", "history-instance", "create", "search-type")
_SCOPES = [f"system/{t}.{p}" for t in ("*", *RESOURCE_TYPES) for p in ("read", "write", "cruds", "rs")]


def capability_statement(base: str, root: str, settings: FhirSandboxSettings, stamp_ms: int) -> dict[str, Any]:
    resources = []
    for kind in RESOURCE_TYPES:
        params = search.params_for(kind)
        includes = [f"{kind}:{p.name}" for p in params.values() if p.type == "reference"]
        entry: dict[str, Any] = {
            "type": kind,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{kind}",
            "interaction": [{"code": code} for code in _INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": settings.allow_update_create,
            "conditionalCreate": True,
            "conditionalRead": "not-supported",
            "conditionalUpdate": False,
            "conditionalDelete": "not-supported",
            "searchParam": [
                {
                    "name": p.name,
                    "definition": f"http://hl7.org/fhir/SearchParameter/{_definition(kind, p.name)}",
                    "type": p.type,
                    "documentation": p.expression.replace("{t}", kind),
                }
                for p in params.values()
            ],
        }
        if includes:
            entry["searchInclude"] = includes
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "id": "sandbox",
        "status": "active",
        "date": instant(stamp_ms),
        "publisher": "Concord",
        "kind": "instance",
        "software": SOFTWARE,
        "implementation": {"description": "Concord FHIR R4 EMR sandbox", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "extension": [
                        {
                            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                            "extension": [
                                {"url": "token", "valueUri": f"{root}/auth/token"},
                                {"url": "authorize", "valueUri": f"{root}/auth/authorize"},
                            ],
                        }
                    ],
                    "cors": True,
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ],
                            "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
                        }
                    ],
                },
                "resource": resources,
            }
        ],
    }


def _definition(kind: str, name: str) -> str:
    if name.startswith("_"):
        return f"Resource-{name[1:]}"
    shared = {"identifier", "family", "given", "name", "gender", "phone", "email", "telecom"}
    if kind in ("Patient", "Practitioner") and name in shared:
        return f"individual-{name}"
    return f"{kind}-{name}"


def smart_configuration(root: str) -> dict[str, Any]:
    return {
        "issuer": root,
        "token_endpoint": f"{root}/auth/token",
        "authorization_endpoint": f"{root}/auth/authorize",
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": _SCOPES,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
    }
