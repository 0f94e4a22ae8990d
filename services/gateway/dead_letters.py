"""Dead letters (the sync service's ListDeadLetters, ReplayDeadLetters): ``GET /dead-letters``,
``POST /dead-letters/{id}/replay``, ``POST /dead-letters/replay`` (every open letter of an error
class). A letter names the record and why it could not sync (its error class, the field, a
message without values); replaying is an admin's or provider's act and is audited."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from libs.grpc_client import call
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.sync.v1 import sync_pb2
from services.gateway.auth import require
from services.gateway.deps import BackendsDep, CallerDep, time_or_none

router = APIRouter(tags=["dead letters"])


class ReplayClassIn(BaseModel):
    error_class: str = Field(min_length=1, max_length=64, pattern=r"^[A-Z0-9_]+$")
    config_id: str = Field("", max_length=36)


def letter_json(letter: sync_pb2.DeadLetter) -> dict[str, Any]:
    return {
        "letter_id": letter.letter_id,
        "config_id": letter.config_id,
        "entity": common_pb2.EntityType.Name(letter.entity_type).removeprefix("ENTITY_TYPE_").lower(),
        "direction": letter.direction,
        "record_ref": letter.record_ref,
        "error_class": letter.error_class,
        "field": letter.field or None,
        "message": letter.message,
        "status": letter.status,
        "attempts": letter.attempts,
        "run_id": letter.run_id,
        "first_seen_at": time_or_none(letter, "first_seen_time"),
        "last_seen_at": time_or_none(letter, "last_seen_time"),
        "resolved_at": time_or_none(letter, "resolve_time"),
    }


@router.get("/dead-letters", summary="Records that could not sync, parked with their error class")
async def list_dead_letters(
    caller: CallerDep,
    backends: BackendsDep,
    status: Literal["open", "replaying", "resolved"] | None = None,
    error_class: str = Query("", max_length=64),
    config_id: str = Query("", max_length=36),
    page_size: int = Query(50, ge=1, le=200),
    page_token: str = "",
) -> dict[str, Any]:
    require(caller, "integration.read")
    listed = await call(
        backends.sync.ListDeadLetters,
        sync_pb2.ListDeadLettersRequest(
            practice_id=caller.practice_id,
            config_id=config_id,
            status=status or "",
            error_class=error_class,
            page_size=page_size,
            page_token=page_token,
        ),
    )
    return {"letters": [letter_json(x) for x in listed.letters], "next_page_token": listed.next_page_token}


async def _replay(backends: Any, caller: Any, request: sync_pb2.ReplayDeadLettersRequest) -> dict[str, Any]:
    require(caller, "sync.start")
    replayed = await call(backends.sync.ReplayDeadLetters, request)
    return {"replayed": replayed.replayed, "run_ids": list(replayed.run_ids)}


@router.post("/dead-letters/{letter_id}/replay", status_code=202, summary="Replay one dead letter")
async def replay_one(letter_id: str, caller: CallerDep, backends: BackendsDep) -> dict[str, Any]:
    return await _replay(
        backends, caller, sync_pb2.ReplayDeadLettersRequest(practice_id=caller.practice_id, letter_ids=[letter_id])
    )


@router.post("/dead-letters/replay", status_code=202, summary="Replay every open dead letter of an error class")
async def replay_class(body: ReplayClassIn, caller: CallerDep, backends: BackendsDep) -> dict[str, Any]:
    request = sync_pb2.ReplayDeadLettersRequest(
        practice_id=caller.practice_id, error_class=body.error_class, config_id=body.config_id
    )
    return await _replay(backends, caller, request)
