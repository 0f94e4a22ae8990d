"""What Zapier does with a Zap: turn on (subscribe, or the seeding poll), turn off / delete
(unsubscribe), poll with dedupe by id, run actions (throttle retries, autoreplay), and the
clock-driven tick (re-subscribe after ``expiration_date``, scheduled polls)."""

from __future__ import annotations

import email.utils
import logging
from datetime import datetime
from typing import Any

import httpx

from . import client
from .definitions import Action, render, render_path
from .state import Sandbox, Zap

log = logging.getLogger("sandbox.zapier.zaps")
NO_BODY = {"GET", "DELETE"}


def bundle(sb: Sandbox, zap: Zap, input_data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "targetUrl": zap.target_url,
        "inputData": zap.input if input_data is None else input_data,
        "subscribeData": zap.subscribe_data or {},
        "authData": sb.apps[zap.app_id].connection.auth_data,
        "meta": {"zap": {"id": zap.id}},
    }


def _note(sb: Sandbox, zap: Zap, op: str, ok: bool, **extra: Any) -> dict[str, Any]:
    entry = {"at": sb.clock(), "op": op, "ok": ok, **extra}
    zap.history.append(entry)
    return entry


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _expiry(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo else None


async def subscribe(sb: Sandbox, zap: Zap, op: str = "subscribe") -> bool:
    """performSubscribe: 201 with an ``id`` is a subscription (kept as subscribeData); anything else fails."""
    app, spec = sb.apps[zap.app_id], zap.trigger.subscribe
    assert spec is not None
    data = bundle(sb, zap)
    template = (
        spec.body_template
        if spec.body_template is not None
        else {"target_url": "{{bundle.targetUrl}}", "event": zap.trigger.key}
    )
    body = None if spec.method in NO_BODY else render(template, data)
    try:
        response = await client.request(
            sb, app, spec.method, render_path(spec.path, data), purpose=op, zap_id=zap.id, json_body=body
        )
    except client.CallError as exc:
        zap.error = f"{op} failed: {exc}"
        _note(sb, zap, op, False, error=zap.error)
        return False
    result = _json(response)
    if response.status_code != 201 or not isinstance(result, dict) or result.get("id") in (None, ""):
        why = "without an id" if response.status_code == 201 else "instead of 201"
        zap.error = f"{op} answered HTTP {response.status_code} {why}"
        _note(sb, zap, op, False, status=response.status_code, error=zap.error)
        return False
    zap.subscribe_data, zap.expires_at, zap.error = result, _expiry(result.get("expiration_date")), None
    _note(sb, zap, op, True, status=response.status_code, subscribe_id=result["id"], expires_at=zap.expires_at)
    return True


async def unsubscribe(sb: Sandbox, zap: Zap) -> None:
    """performUnsubscribe with the stored id. Its failure is recorded; the Zap turns off regardless."""
    app, spec = sb.apps[zap.app_id], zap.trigger.unsubscribe
    assert spec is not None
    data = bundle(sb, zap)
    body = None if spec.body_template is None or spec.method in NO_BODY else render(spec.body_template, data)
    try:
        response = await client.request(
            sb, app, spec.method, render_path(spec.path, data), purpose="unsubscribe", zap_id=zap.id, json_body=body
        )
    except client.CallError as exc:
        _note(sb, zap, "unsubscribe", False, error=str(exc))
        return
    ok = response.is_success
    _note(
        sb,
        zap,
        "unsubscribe",
        ok,
        status=response.status_code,
        **({} if ok else {"error": f"HTTP {response.status_code}"}),
    )


async def turn_on(sb: Sandbox, zap: Zap) -> bool:
    if zap.state == "on":
        return True
    if zap.trigger.is_hook and not await subscribe(sb, zap):
        return False
    zap.state, zap.error = "on", None
    _note(sb, zap, "on", True)
    if not zap.trigger.is_hook:
        # "When a Zap is turned on, we initialize the list of seen ids with a single poll."
        await poll(sb, zap)
        zap.next_poll_at = sb.clock() + sb.settings.poll_interval
    return True


async def turn_off(sb: Sandbox, zap: Zap, *, delete: bool = False) -> None:
    if zap.state == "on" and zap.trigger.is_hook and zap.subscribe_data is not None:
        await unsubscribe(sb, zap)
    zap.state = "deleted" if delete else "off"
    zap.subscribe_data = zap.expires_at = zap.next_poll_at = None
    zap.seen.clear()  # "When it's turned off, we clear that list."
    zap.seeded = False
    _note(sb, zap, zap.state, True)


async def poll(sb: Sandbox, zap: Zap) -> dict[str, Any]:
    """performList (or a polling perform): an array of objects with ``id``; only unseen ids trigger,
    at most ``poll_new_item_limit`` per poll (the rest are held); the first poll only seeds."""
    app, spec = sb.apps[zap.app_id], zap.trigger.perform_list
    if spec is None:
        return _note(sb, zap, "poll", False, error="the trigger has no perform_list")
    data = bundle(sb, zap)
    try:
        response = await client.request(
            sb, app, spec.method, render_path(spec.path, data), purpose="poll", zap_id=zap.id
        )
    except client.CallError as exc:
        return _note(sb, zap, "poll", False, error=str(exc))
    status = response.status_code
    if status == 429:
        delay = retry_after(sb, response)
        return _note(sb, zap, "poll", False, status=status, error="throttled", retry_after=delay)
    if not response.is_success:
        return _note(sb, zap, "poll", False, status=status, error=f"HTTP {status}")
    items = _json(response)
    if not isinstance(items, list):
        return _note(
            sb, zap, "poll", False, status=status, error=f"Results must be an array, got: {type(items).__name__}"
        )
    if not all(isinstance(item, dict) and item.get("id") not in (None, "") for item in items):
        return _note(sb, zap, "poll", False, status=status, error='Got a result missing the "id" property')
    ids = [str(item["id"]) for item in items]
    if not zap.seeded:
        zap.seen.update(dict.fromkeys(ids))
        zap.seeded = True
        _trim(sb, zap)
        return _note(sb, zap, "poll", True, status=status, items=len(items), seeded=True, triggered=[], held=0)
    fresh: dict[str, dict[str, Any]] = {}
    for key, item in zip(ids, items, strict=True):
        if key not in zap.seen and key not in fresh:
            fresh[key] = item
    zap.seen.update(dict.fromkeys(fresh))
    _trim(sb, zap)
    limit = sb.settings.poll_new_item_limit
    triggered = [_run(sb, zap, "poll", item) for item in list(fresh.values())[:limit]]
    held = max(len(fresh) - limit, 0)
    return _note(sb, zap, "poll", True, status=status, items=len(items), seeded=False, triggered=triggered, held=held)


def _trim(sb: Sandbox, zap: Zap) -> None:
    while len(zap.seen) > sb.settings.dedupe_table_limit:
        del zap.seen[next(iter(zap.seen))]


def _run(sb: Sandbox, zap: Zap, source: str, data: Any, delivery_id: str | None = None) -> str:
    run_id = sb.new_uuid()
    zap.runs.append({"id": run_id, "at": sb.clock(), "source": source, "delivery_id": delivery_id, "data": data})
    return run_id


def hook_runs(sb: Sandbox, zap: Zap, payload: Any, delivery_id: str) -> list[str]:
    """One trigger run per object; an array is one run per element."""
    items = payload if isinstance(payload, list) else [payload]
    return [_run(sb, zap, "hook", item, delivery_id) for item in items]


def retry_after(sb: Sandbox, response: httpx.Response) -> float:
    """Retry-After in seconds or as an HTTP date; absent or unreadable = 60 s; never more than 300 s."""
    value, settings = response.headers.get("retry-after", "").strip(), sb.settings
    delay: float | None = None
    if value.isdigit():
        delay = float(value)
    elif value:
        try:
            delay = email.utils.parsedate_to_datetime(value).timestamp() - sb.clock()
        except (TypeError, ValueError):
            delay = None
    if delay is None:
        delay = settings.throttle_default_delay
    return min(max(delay, 0.0), settings.throttle_max_delay)


async def run_action(sb: Sandbox, zap: Zap, action: Action, input_data: dict[str, Any]) -> dict[str, Any]:
    """One action step: 2xx succeeds; 429 waits Retry-After and retries; other 4xx errors the run;
    5xx and network errors are replayed on the autoreplay schedule when the Zap has it on."""
    app = sb.apps[zap.app_id]
    path = render_path(action.path, bundle(sb, zap, input_data))
    body = None if action.method in NO_BODY else input_data
    record: dict[str, Any] = {"at": sb.clock(), "op": "action", "ok": False, "id": sb.new_uuid(), "action": action.key}
    attempts: list[dict[str, Any]] = []
    replays = list(sb.settings.autoreplay_delays) if zap.autoreplay else []
    throttled = 0
    while True:
        attempt: dict[str, Any] = {"at": sb.clock()}
        attempts.append(attempt)
        try:
            response = await client.request(
                sb, app, action.method, path, purpose="action", zap_id=zap.id, json_body=body
            )
        except client.ConnectionUnusable as exc:
            attempt["error"] = record["error"] = str(exc)
            break
        except client.CallError as exc:
            attempt["error"] = record["error"] = str(exc)
            response = None
        if response is not None:
            attempt["status"] = record["status"] = response.status_code
            if response.is_success:
                record.update(ok=True, result=_json(response))
                record.pop("error", None)
                break
            record["error"] = f"HTTP {response.status_code}"
            record["response"] = _json(response)
            if response.status_code == 429:
                if throttled >= sb.settings.throttle_max_retries:
                    record["error"] = "throttled: retries exhausted"
                    break
                throttled += 1
                attempt["retry_after"] = delay = retry_after(sb, response)
                await sb.settings.sleep(delay)
                continue
            if response.status_code < 500:
                break  # 4xx (and redirects): the step errors; replaying the same input cannot help
        if not replays:
            break
        attempt["replay_in"] = delay = replays.pop(0)
        await sb.settings.sleep(delay)
    record["attempts"] = attempts
    zap.history.append(record)
    log.info("zap %s action %s ok=%s attempts=%d", zap.id, action.key, record["ok"], len(attempts))
    return record


async def tick(sb: Sandbox) -> dict[str, list[int]]:
    """Re-subscribes Zaps whose subscription expired and polls polling Zaps that are due."""
    now = sb.clock()
    done: dict[str, list[int]] = {"resubscribed": [], "resubscribe_failed": [], "polled": []}
    for zap in list(sb.zaps.values()):
        if zap.state != "on":
            continue
        if zap.trigger.is_hook and zap.expires_at is not None and now >= zap.expires_at:
            if await subscribe(sb, zap, op="resubscribe"):
                done["resubscribed"].append(zap.id)
            else:
                # The old subscription has lapsed and no new one exists: the Zap can no longer trigger.
                zap.state, zap.subscribe_data, zap.expires_at = "off", None, None
                done["resubscribe_failed"].append(zap.id)
        elif not zap.trigger.is_hook and zap.next_poll_at is not None and now >= zap.next_poll_at:
            await poll(sb, zap)
            zap.next_poll_at = now + sb.settings.poll_interval
            done["polled"].append(zap.id)
    return done
