"""OperationOutcome bodies and the error every FHIR handler raises (http.html#summary, operationoutcome.html)."""

from __future__ import annotations

from typing import Any


def issue(
    code: str, diagnostics: str, *, severity: str = "error", expression: list[str] | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        entry["expression"] = expression
    return entry


def outcome(*issues: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


class FhirError(Exception):
    """Rendered as an OperationOutcome with ``status``; diagnostics never carry record values."""

    def __init__(self, status: int, *issues: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.issues = list(issues)
        self.headers = headers or {}

    @property
    def body(self) -> dict[str, Any]:
        return outcome(*self.issues)


def error(status: int, code: str, diagnostics: str, **kwargs: Any) -> FhirError:
    headers = kwargs.pop("headers", None)
    return FhirError(status, issue(code, diagnostics, **kwargs), headers=headers)


def bad_request(diagnostics: str, code: str = "invalid", **kwargs: Any) -> FhirError:
    return error(400, code, diagnostics, **kwargs)


def not_found(diagnostics: str) -> FhirError:
    return error(404, "not-found", diagnostics)


class OAuthError(Exception):
    """RFC 6749 §5.2 error from the token endpoint."""

    def __init__(self, error_code: str, description: str, status: int = 400) -> None:
        super().__init__(error_code)
        self.status = status
        self.body = {"error": error_code, "error_description": description}
