"""App definitions: the simulator's stand-in for a Zapier Platform app (index.js), as JSON.

Shape (README "App definition"): ``{app_id, base_url, auth, triggers, actions}``. Strings in templates
may use Zapier's curlies: ``{{bundle.targetUrl}}``, ``{{bundle.inputData.<key>}}``,
``{{bundle.subscribeData.<key>}}``, ``{{bundle.meta.zap.id}}``, ``{{bundle.authData.<key>}}``; paths
also take ``{id}`` for ``bundle.subscribeData.id``. A string that is one placeholder keeps the
value's JSON type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
_CURLY = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


class DefinitionError(ValueError):
    pass


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body_template: Any = None


@dataclass(frozen=True)
class Auth:
    type: str  # "api_key" | "oauth2" | "none"
    header: str = "X-API-Key"
    key: str = ""
    authorize_url: str = ""
    token_url: str = ""
    client_id: str = ""
    client_secret: str = ""
    scopes: str = ""
    pkce: bool = False
    test: Request | None = None


@dataclass(frozen=True)
class Trigger:
    key: str
    subscribe: Request | None
    unsubscribe: Request | None
    perform_list: Request | None

    @property
    def is_hook(self) -> bool:
        return self.subscribe is not None


@dataclass(frozen=True)
class Action:
    key: str
    method: str
    path: str


@dataclass(frozen=True)
class AppDefinition:
    app_id: str
    base_url: str
    auth: Auth
    triggers: dict[str, Trigger] = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    def url(self, path_or_url: str) -> str:
        """Absolute URLs pass through; paths are appended to base_url."""
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return urljoin(self.base_url.rstrip("/") + "/", path_or_url.lstrip("/"))


def _object(value: Any, where: str, known: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DefinitionError(f"{where} must be an object")
    if unknown := set(value) - known:
        raise DefinitionError(f"{where}: unknown fields {sorted(unknown)}")
    if missing := sorted(k for k in required if value.get(k) in (None, "")):
        raise DefinitionError(f"{where}: missing {missing}")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise DefinitionError(f"{where} must be a non-empty string")
    return value


def _method(value: Any, where: str, default: str) -> str:
    method = str(value or default).upper()
    if method not in METHODS:
        raise DefinitionError(f"{where}.method must be one of {sorted(METHODS)}")
    return method


def _request(value: Any, where: str, *, path_key: str = "path", default: str = "GET", body: bool = False) -> Request:
    known = {"method", path_key} | ({"body_template"} if body else set())
    spec = _object(value, where, known, {path_key})
    return Request(
        _method(spec.get("method"), where, default),
        _string(spec[path_key], f"{where}.{path_key}"),
        spec.get("body_template"),
    )


def _test_of(spec: dict[str, Any]) -> Request | None:
    return _request(spec["test"], "auth.test") if spec.get("test") else None


def _auth(value: Any) -> Auth:
    if value is None:
        return Auth(type="none")
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "api_key":
        spec = _object(value, "auth", {"type", "header", "key", "test"}, {"key"})
        return Auth(
            "api_key",
            header=_string(spec.get("header", "X-API-Key"), "auth.header"),
            key=spec["key"],
            test=_test_of(spec),
        )
    if kind == "oauth2":
        known = {"type", "authorize_url", "token_url", "client_id", "client_secret", "scopes", "pkce", "test"}
        spec = _object(value, "auth", known, {"authorize_url", "token_url", "client_id", "client_secret"})
        scopes = spec.get("scopes") or []
        if isinstance(scopes, list) and all(isinstance(s, str) for s in scopes):
            scopes = " ".join(scopes)
        if not isinstance(scopes, str):
            raise DefinitionError("auth.scopes must be a list of strings or a space-separated string")
        return Auth(
            "oauth2",
            authorize_url=_string(spec["authorize_url"], "auth.authorize_url"),
            token_url=_string(spec["token_url"], "auth.token_url"),
            client_id=_string(spec["client_id"], "auth.client_id"),
            client_secret=_string(spec["client_secret"], "auth.client_secret"),
            scopes=scopes,
            pkce=bool(spec.get("pkce", False)),
            test=_test_of(spec),
        )
    raise DefinitionError('auth.type must be "api_key" or "oauth2"')


def _trigger(value: Any, n: int) -> Trigger:
    where = f"triggers[{n}]"
    spec = _object(value, where, {"key", "subscribe", "unsubscribe", "perform_list"}, {"key"})
    subscribe = (
        _request(spec["subscribe"], f"{where}.subscribe", default="POST", body=True) if spec.get("subscribe") else None
    )
    unsubscribe = (
        _request(spec["unsubscribe"], f"{where}.unsubscribe", path_key="path_template", default="DELETE", body=True)
        if spec.get("unsubscribe")
        else None
    )
    perform_list = _request(spec["perform_list"], f"{where}.perform_list") if spec.get("perform_list") else None
    if (subscribe is None) != (unsubscribe is None):
        raise DefinitionError(f"{where}: a REST hook trigger needs both subscribe and unsubscribe")
    if subscribe is None and perform_list is None:
        raise DefinitionError(f"{where}: a polling trigger needs perform_list")
    return Trigger(_string(spec["key"], f"{where}.key"), subscribe, unsubscribe, perform_list)


def _action(value: Any, n: int) -> Action:
    where = f"actions[{n}]"
    spec = _object(value, where, {"key", "method", "path"}, {"key", "path"})
    return Action(
        _string(spec["key"], f"{where}.key"),
        _method(spec.get("method"), where, "POST"),
        _string(spec["path"], f"{where}.path"),
    )


def parse(body: Any) -> AppDefinition:
    spec = _object(body, "app", {"app_id", "base_url", "auth", "triggers", "actions"}, {"app_id", "base_url"})
    base_url = _string(spec["base_url"], "base_url")
    if not base_url.startswith(("http://", "https://")):
        raise DefinitionError("base_url must be an http(s) URL")
    triggers, actions = spec.get("triggers") or [], spec.get("actions") or []
    if not isinstance(triggers, list) or not isinstance(actions, list):
        raise DefinitionError("triggers and actions must be lists")
    parsed_triggers = [_trigger(t, n) for n, t in enumerate(triggers)]
    parsed_actions = [_action(a, n) for n, a in enumerate(actions)]
    for kind, items in (("trigger", parsed_triggers), ("action", parsed_actions)):
        keys = [item.key for item in items]
        if len(keys) != len(set(keys)):
            raise DefinitionError(f"duplicate {kind} keys")
    return AppDefinition(
        app_id=_string(spec["app_id"], "app_id"),
        base_url=base_url,
        auth=_auth(spec.get("auth")),
        triggers={t.key: t for t in parsed_triggers},
        actions={a.key: a for a in parsed_actions},
        raw=dict(spec),
    )


def _lookup(bundle: dict[str, Any], name: str) -> Any:
    value: Any = {"bundle": bundle}
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def render(template: Any, bundle: dict[str, Any]) -> Any:
    """Fills curlies in every string of a JSON template; missing values render empty, as Zapier does."""
    if isinstance(template, dict):
        return {k: render(v, bundle) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, bundle) for v in template]
    if not isinstance(template, str):
        return template
    whole = _CURLY.fullmatch(template.strip())
    if whole:
        return _lookup(bundle, whole.group(1))
    return _CURLY.sub(lambda m: _text(_lookup(bundle, m.group(1))), template)


def render_path(template: str, bundle: dict[str, Any]) -> str:
    """A path template: ``{id}`` is ``bundle.subscribeData.id``; curlies are URL-quoted."""
    subscribe_id = (bundle.get("subscribeData") or {}).get("id")
    path = template.replace("{id}", quote(_text(subscribe_id), safe=""))
    return _CURLY.sub(lambda m: quote(_text(_lookup(bundle, m.group(1))), safe=""), path)


def _text(value: Any) -> str:
    return "" if value is None else str(value)
