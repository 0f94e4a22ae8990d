"""Salesforce error shapes: REST bodies are JSON arrays of ``{message, errorCode, fields?}``; per-record
results (sObject Collections) carry ``{statusCode, message, fields}``; OAuth errors are
``{error, error_description}``."""

from __future__ import annotations

from typing import Any

NOT_FOUND_MESSAGE = "The requested resource does not exist"
INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
LIMIT_EXCEEDED = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]


class SfError(Exception):
    """An error response of the REST API: status and the JSON array body."""

    def __init__(self, status: int, body: list[dict[str, Any]], headers: dict[str, str] | None = None) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = headers or {}


def sf_error(status: int, code: str, message: str, fields: list[str] | None = None) -> SfError:
    entry: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        entry["fields"] = fields
    return SfError(status, [entry])


def not_found(message: str = NOT_FOUND_MESSAGE) -> SfError:
    return SfError(404, [{"errorCode": "NOT_FOUND", "message": message}])


class RecordError(Exception):
    """A DML failure of one record. ``status`` is what a single-record REST call answers."""

    def __init__(self, code: str, message: str, fields: list[str] | None = None, status: int = 400) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.fields = fields
        self.status = status

    def rest(self) -> SfError:
        if self.code == "NOT_FOUND":
            return not_found(self.message)
        return sf_error(self.status, self.code, self.message, self.fields)

    def result(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields or []}


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(error, description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}
