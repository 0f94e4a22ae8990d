"""Deletes and merges as tombstones that follow the merge's rules.

A hub record is never erased: a delete (a user's, or one taken from a vendor) or a merge into
another record marks it deleted at a new version (``sync_records.deleted_at``, ``merged_into``). It
stays encrypted for its history and for retention; it is no longer listed, read, matched (its
blind-index rows go) or pushed, except as a delete to each vendor still linked to it.

- A vendor's delete (a webhook delete event the vendor confirms: the record is missing when read)
  is settled by ``domain.decide_delete``: with no hub change since the last sync it is taken; a hub
  edit the vendor never saw makes it a conflict for the config's policy (hub_wins keeps the record
  and the vendor gets it again; vendor_wins deletes; newest_wins compares; manual_review holds a
  review item of kind ``delete``).
- A user's delete reaches every linked vendor on its next push, through its DeleteRecords where the
  vendor has one (registry definition ``extra.deletes``); a vendor without one keeps its record and
  the link is let go.
- A merge (patients): the merged record's links move to the survivor where the survivor has none for
  that config (the vendor's record now stands for the survivor and gets its values on the next
  push); where both were linked, the merged record's vendor copy is deleted like any tombstone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format

from libs.errors import Aborted, InvalidArgument, NotFound
from libs.protos.concord.audit.v1 import audit_pb2
from services.sync import domain
from services.sync.domain import DeleteResults, PullPage, PushItem
from services.sync.entities import PATIENT, EntityKind, kind_of
from services.sync.repository import now

if TYPE_CHECKING:
    from services.sync.service import SyncService

REVIEW_KIND = "delete"
# The associated-data purpose of every review item's values (part of each ciphertext: never rename).
REVIEW_PURPOSE = "review-item-values"


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


class Tombstones:
    def __init__(self, service: SyncService) -> None:
        self._service = service
        self._repo = service._repo

    async def _mark(
        self,
        session: Any,
        practice_id: str,
        kind: EntityKind,
        row: Any,
        *,
        side: str,
        source: str = "",
        run_id: str = "",
        merged_into: str | None = None,
    ) -> audit_pb2.AuditEvent:
        version = row.version + 1
        if not await self._repo.tombstone(session, row.record_id, version, row.version, merged_into):
            raise Aborted("the record changed concurrently", reason="VERSION_MISMATCH")
        action = "merge" if merged_into else "delete"
        change = self._service._change(
            practice_id, kind, row.record_id, version, side, action, [], source=source, run_id=run_id
        )
        await self._repo.add_history(session, [change])
        return self._service._event(practice_id, action, row.record_id, kind=kind, correlation=run_id)

    # --- a vendor deleted records ------------------------------------------------------------

    async def vendor_deleted(
        self, session: Any, page: PullPage, kind: EntityKind
    ) -> tuple[int, list[audit_pb2.AuditEvent]]:
        """Settles each linked record the vendor no longer has; returns how many it settled and
        the audit events. Unlinked ids are nothing of the hub's."""
        links = await self._repo.links_by_external_id(session, page.config_id, kind.entity_type, page.deleted_ids)
        # A vendor merge deleted the loser: its hub record merges into the survivor's, when linked.
        masters = await self._repo.links_by_external_id(
            session, page.config_id, kind.entity_type, sorted(set(page.merged_into.values()))
        )
        rows = await self._repo.get_records(
            session,
            page.practice_id,
            kind.entity_type,
            [link.record_id for link in [*links.values(), *masters.values()]],
        )
        open_items = await self._repo.open_reviews(
            session, page.config_id, kind.entity_type, sorted(link.record_id for link in links.values())
        )
        events: list[audit_pb2.AuditEvent] = []
        unlink: list[str] = []
        reviews: list[dict[str, Any]] = []
        stamp = datetime.now(UTC)
        for ext, link in links.items():
            row = rows.get(link.record_id)
            if row is None or row.deleted_at is not None:
                unlink.append(link.record_id)  # deleted here too (its own delete's echo): nothing left to link
                continue
            clocks = domain.Clocks(_aware(row.updated_at), stamp, stamp)
            decision = domain.decide_delete(page.conflict_policy, row.version > link.synced_version, clocks)
            master = masters.get(page.merged_into.get(ext, ""))
            survivor = rows.get(master.record_id) if master is not None else None
            if survivor is not None and (survivor.deleted_at is not None or survivor.record_id == row.record_id):
                survivor = None
            if decision == domain.DELETE:
                unlink.append(link.record_id)
                if survivor is not None:
                    merged = await self._merge_rows(
                        session,
                        page.practice_id,
                        kind,
                        row,
                        survivor,
                        side="vendor",
                        source=page.integration_type,
                        run_id=page.run_id,
                    )
                    events.append(merged)
                    continue
                events.append(
                    await self._mark(
                        session,
                        page.practice_id,
                        kind,
                        row,
                        side="vendor",
                        source=page.integration_type,
                        run_id=page.run_id,
                    )
                )
            elif decision == domain.KEEP:
                unlink.append(link.record_id)  # unlinked and live: the next push makes it again
            elif (link.record_id, "") not in open_items:
                held = {"merged_into": survivor.record_id} if survivor is not None else {}  # ids, never values
                sealed = await self._service._cipher.encrypt_json(page.practice_id, held, REVIEW_PURPOSE)
                reviews.append(domain.review_row(page, kind, link.record_id, ext, sealed, stamp, kind_name=REVIEW_KIND))
                events.append(
                    self._service._event(page.practice_id, "review.hold", link.record_id, page=page, kind=kind)
                )
        await self._repo.delete_links(session, page.config_id, kind.entity_type, unlink)
        await self._repo.insert_reviews(session, reviews)
        return len(links), events

    async def settle_review(self, session: Any, practice_id: str, item: Any, kind: EntityKind, choice: str) -> None:
        """A person's answer to a held vendor delete: ``vendor`` takes it, ``hub`` keeps the record
        (unlinked, so the vendor gets it again on the next push)."""
        await self._repo.delete_links(session, item.config_id, kind.entity_type, [item.record_id])
        if choice != "vendor":
            return
        row = await self._repo.get_record(session, practice_id, kind.entity_type, item.record_id, lock=True)
        if row is None or row.deleted_at is not None:
            return
        into = (await self._service._cipher.decrypt_json(practice_id, item.values_enc, REVIEW_PURPOSE)).get(
            "merged_into"
        )
        survivor = (
            await self._repo.get_record(session, practice_id, kind.entity_type, into, lock=True) if into else None
        )
        if survivor is not None and survivor.deleted_at is None:
            event = await self._merge_rows(session, practice_id, kind, row, survivor, side="review", run_id=item.run_id)
        else:
            event = await self._mark(session, practice_id, kind, row, side="review", run_id=item.run_id)
        await self._service._audit([event])

    # --- a user deletes or merges ------------------------------------------------------------

    async def delete(self, practice_id: str, entity_type: str, record_id: str) -> int:
        """A user's delete: the record's tombstone; returns its version. Linked vendors get the
        delete on their next push."""
        kind = kind_of(entity_type)
        async with self._service._sessions() as session, session.begin():
            row = await self._live(session, practice_id, kind, record_id)
            event = await self._mark(session, practice_id, kind, row, side="hub")
        await self._service._audit([event])
        return row.version + 1

    async def merge(self, practice_id: str, record_id: str, into: str) -> int:
        """Merges patient ``record_id`` into ``into`` (the survivor, whose values stand); returns the
        survivor's version."""
        if record_id == into:
            raise InvalidArgument("a patient cannot be merged into itself", field="into", reason="SAME_RECORD")
        kind = kind_of(PATIENT)
        async with self._service._sessions() as session, session.begin():
            merged = await self._live(session, practice_id, kind, record_id)
            survivor = await self._live(session, practice_id, kind, into)
            event = await self._merge_rows(session, practice_id, kind, merged, survivor, side="hub")
        await self._service._audit([event])
        return survivor.version

    async def _merge_rows(
        self,
        session: Any,
        practice_id: str,
        kind: EntityKind,
        merged: Any,
        survivor: Any,
        *,
        side: str,
        source: str = "",
        run_id: str = "",
    ) -> audit_pb2.AuditEvent:
        """``merged``'s tombstone, pointing at ``survivor``; its links move to the survivor where the
        survivor has none for that config (the vendor's record gets the survivor's values on the
        next push), the others stay and carry the tombstone as a delete."""
        into = survivor.record_id
        event = await self._mark(
            session, practice_id, kind, merged, side=side, source=source, run_id=run_id, merged_into=into
        )
        survivor_links = {link.config_id for link in await self._repo.links_of(session, kind.entity_type, into)}
        for link in await self._repo.links_of(session, kind.entity_type, merged.record_id):
            if link.config_id in survivor_links:
                continue  # the survivor has its own record there: this one's copy is deleted
            await self._repo.delete_links(session, link.config_id, kind.entity_type, [merged.record_id])
            moved = {
                "config_id": link.config_id,
                "entity_type": kind.entity_type,
                "record_id": into,
                "practice_id": practice_id,
                "external_id": link.external_id,
                "synced_version": 0,  # the vendor's record gets the survivor's values
                "base_enc": link.base_enc,
                "synced_at": now(),
            }
            await self._repo.insert_links(session, [moved])
        change = self._service._change(
            practice_id, kind, into, survivor.version, side, "merge", [], source=source, run_id=run_id
        )
        await self._repo.add_history(session, [change])
        return event

    async def _live(self, session: Any, practice_id: str, kind: EntityKind, record_id: str) -> Any:
        row = await self._repo.get_record(session, practice_id, kind.entity_type, record_id, lock=True)
        if row is None or row.deleted_at is not None:
            raise not_found(kind)
        return row

    # --- pushing tombstones ------------------------------------------------------------------

    async def push_deletes(
        self, practice_id: str, config_id: str, kind: EntityKind, rows: list[Any], can_delete: bool
    ) -> list[PushItem]:
        """The batch's tombstones as deletes for the vendor; where the vendor has no delete, the
        links are let go (the vendor keeps its record, Concord stops syncing it)."""
        if can_delete:
            return [PushItem(domain.patient_ref(r.record_id, r.version), r.external_id, {}) for r in rows]
        if rows:
            async with self._service._sessions() as session, session.begin():
                await self._repo.delete_links(session, config_id, kind.entity_type, [r.record_id for r in rows])
        return []

    async def record_delete_results(self, results: DeleteResults) -> None:
        kind = kind_of(results.entity_type)
        done = [domain.parse_ref(o.ref)[0] for o in results.outcomes if o.success]
        failures = [
            {
                "record_ref": domain.parse_ref(o.ref)[0],
                "field": "",
                "reason": o.error_reason or "VENDOR_REJECTED",
                "message": o.error_message,
            }
            for o in results.outcomes
            if not o.success
        ]
        async with self._service._sessions() as session, session.begin():
            await self._repo.delete_links(session, results.config_id, kind.entity_type, done)
            counts = {
                "records_processed": len(results.outcomes),
                "records_succeeded": len(done),
                "records_failed": len(failures),
                "records_updated": len(done),
                "vendor_requests": results.vendor_requests,
            }
            await self._repo.add_to_run(session, results.run_id, counts, failures)
            await self._service._park(
                session, results.practice_id, results.config_id, kind, "push", results.run_id, failures
            )
            await self._service._heal(session, results.config_id, kind, "push", done)
        events = [
            self._service._event(
                results.practice_id,
                "delete",
                record_id,
                integration=results.integration_type,
                correlation=results.run_id,
                kind=kind,
            )
            for record_id in done
        ]
        await self._service._audit(events)


def can_delete(definition: Any, entity_type: str) -> bool:
    """Whether Concord can delete the vendor's records of this entity (registry ``extra.deletes``)."""
    extra = json_format.MessageToDict(definition.extra)
    return entity_type in extra.get("deletes", [])


def not_found(kind: EntityKind) -> NotFound:
    """What reading a record that is not there (or is a tombstone) answers."""
    name = kind.resource_type.lower()
    return NotFound(f"{name} not found", reason=f"{name.upper()}_NOT_FOUND")
