"""Sync gRPC servicer: protobuf in, use case, protobuf out."""

from __future__ import annotations

from datetime import UTC, date

from google.protobuf import json_format

from libs.errors import InvalidArgument
from libs.paging import decode_token, encode_token, next_token, page_size
from libs.proto_convert import enum_name, required, timestamp
from libs.protos.concord.adapter.v1 import adapter_pb2
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.sync.v1 import sync_pb2 as pb
from libs.protos.concord.sync.v1 import sync_pb2_grpc
from services.sync import convert, reconciliation
from services.sync.messaging import MessageInput
from services.sync.service import SyncService

# A run is started, not scheduled: a longer wait belongs in a Temporal Schedule.
MAX_START_DELAY_SECONDS = 60.0


class SyncServicer(sync_pb2_grpc.SyncServiceServicer):
    def __init__(self, service: SyncService) -> None:
        self._service = service

    async def CreatePatient(self, request: pb.CreatePatientRequest, context) -> pb.CreatePatientResponse:  # noqa: ANN001
        resource, row = await self._service.create_patient(
            request.practice_id, required(request.resource_json, "resource_json")
        )
        return pb.CreatePatientResponse(patient=convert.patient_to_proto(resource, row))

    async def GetPatient(self, request: pb.GetPatientRequest, context) -> pb.GetPatientResponse:  # noqa: ANN001
        resource, row = await self._service.get_patient(request.practice_id, required(request.patient_id, "patient_id"))
        return pb.GetPatientResponse(patient=convert.patient_to_proto(resource, row))

    async def UpdatePatient(self, request: pb.UpdatePatientRequest, context) -> pb.UpdatePatientResponse:  # noqa: ANN001
        resource, row = await self._service.update_patient(
            request.practice_id,
            required(request.patient_id, "patient_id"),
            required(request.resource_json, "resource_json"),
            request.expected_version,
        )
        return pb.UpdatePatientResponse(patient=convert.patient_to_proto(resource, row))

    async def DeleteRecord(self, request: pb.DeleteRecordRequest, context) -> pb.DeleteRecordResponse:  # noqa: ANN001
        version = await self._service.delete_record(
            request.practice_id,
            common_pb2.EntityType.Name(request.entity_type or common_pb2.ENTITY_TYPE_PATIENT),
            required(request.record_id, "record_id"),
        )
        return pb.DeleteRecordResponse(version=version)

    async def MergePatients(self, request: pb.MergePatientsRequest, context) -> pb.MergePatientsResponse:  # noqa: ANN001
        resource, row = await self._service.merge_patients(
            request.practice_id,
            required(request.patient_id, "patient_id"),
            required(request.into_patient_id, "into_patient_id"),
        )
        return pb.MergePatientsResponse(patient=convert.patient_to_proto(resource, row))

    async def ListPatients(self, request: pb.ListPatientsRequest, context) -> pb.ListPatientsResponse:  # noqa: ANN001
        limit = page_size(request.page_size)
        found = await self._service.list_patients(request.practice_id, decode_token(request.page_token), limit)
        return pb.ListPatientsResponse(
            patients=[convert.patient_to_proto(resource, row) for resource, row in found],
            next_page_token=next_token([row.record_id for _, row in found], limit),
        )

    async def ImportPatients(self, request: pb.ImportPatientsRequest, context) -> pb.ImportPatientsResponse:  # noqa: ANN001
        ids = await self._service.import_patients(request.practice_id, required(request.bundle_json, "bundle_json"))
        return pb.ImportPatientsResponse(patient_ids=ids)

    async def StartSync(self, request: pb.StartSyncRequest, context) -> pb.StartSyncResponse:  # noqa: ANN001
        row = await self._service.start_sync(
            request.practice_id,
            request.config_id,
            enum_name(common_pb2.EntityType, request.entity_type),
            enum_name(common_pb2.SyncDirection, request.direction),
            min(request.start_delay.ToTimedelta().total_seconds(), MAX_START_DELAY_SECONDS),
        )
        return pb.StartSyncResponse(run=convert.run_to_proto(row))

    async def GetSyncRun(self, request: pb.GetSyncRunRequest, context) -> pb.GetSyncRunResponse:  # noqa: ANN001
        row = await self._service.get_run(request.practice_id, required(request.run_id, "run_id"))
        return pb.GetSyncRunResponse(run=convert.run_to_proto(row))

    async def WaitSyncRun(self, request: pb.WaitSyncRunRequest, context) -> pb.WaitSyncRunResponse:  # noqa: ANN001
        row = await self._service.wait_run(request.practice_id, required(request.run_id, "run_id"))
        return pb.WaitSyncRunResponse(run=convert.run_to_proto(row))

    async def ListSyncRuns(self, request: pb.ListSyncRunsRequest, context) -> pb.ListSyncRunsResponse:  # noqa: ANN001
        limit = page_size(request.page_size)
        rows = await self._service.list_runs(
            request.practice_id, request.config_id, decode_token(request.page_token), limit
        )
        token = encode_token(f"{rows[-1].started_at.isoformat()}|{rows[-1].run_id}") if len(rows) == limit else ""
        return pb.ListSyncRunsResponse(runs=[convert.run_to_proto(r) for r in rows], next_page_token=token)

    async def ListReviewItems(self, request: pb.ListReviewItemsRequest, context) -> pb.ListReviewItemsResponse:  # noqa: ANN001
        limit = page_size(request.page_size)
        status = pb.ReviewStatus.Name(request.status).removeprefix("REVIEW_STATUS_") if request.status else ""
        rows = await self._service.list_reviews(
            request.practice_id, request.config_id, status, decode_token(request.page_token), limit
        )
        token = encode_token(f"{rows[-1].created_at.isoformat()}|{rows[-1].review_id}") if len(rows) == limit else ""
        return pb.ListReviewItemsResponse(items=[convert.review_to_proto(r) for r in rows], next_page_token=token)

    async def GetReviewItem(self, request: pb.GetReviewItemRequest, context) -> pb.GetReviewItemResponse:  # noqa: ANN001
        item, values = await self._service.get_review(request.practice_id, required(request.review_id, "review_id"))
        return pb.GetReviewItemResponse(
            item=convert.review_to_proto(item),
            values=convert.review_values_to_proto(values, values.get("vendor_record")),
        )

    async def ResolveReviewItem(self, request: pb.ResolveReviewItemRequest, context) -> pb.ResolveReviewItemResponse:  # noqa: ANN001
        choice = pb.ReviewChoice.Name(request.choice).removeprefix("REVIEW_CHOICE_").lower() if request.choice else ""
        item = await self._service.resolve_review(
            request.practice_id,
            required(request.review_id, "review_id"),
            choice,
            request.value if request.HasField("value") else None,
        )
        return pb.ResolveReviewItemResponse(item=convert.review_to_proto(item))

    async def ListDeadLetters(self, request: pb.ListDeadLettersRequest, context) -> pb.ListDeadLettersResponse:  # noqa: ANN001
        limit = page_size(request.page_size)
        rows = await self._service.list_dead_letters(
            request.practice_id,
            request.config_id,
            request.status,
            request.error_class,
            decode_token(request.page_token),
            limit,
        )
        token = encode_token(rows[-1].letter_id) if len(rows) == limit else ""
        return pb.ListDeadLettersResponse(letters=[convert.letter_to_proto(r) for r in rows], next_page_token=token)

    async def ReplayDeadLetters(self, request: pb.ReplayDeadLettersRequest, context) -> pb.ReplayDeadLettersResponse:  # noqa: ANN001
        replayed, runs = await self._service.replay_dead_letters(
            request.practice_id, list(request.letter_ids), request.error_class, request.config_id
        )
        return pb.ReplayDeadLettersResponse(replayed=replayed, run_ids=runs)

    async def GetRecordHistory(self, request: pb.GetRecordHistoryRequest, context) -> pb.GetRecordHistoryResponse:  # noqa: ANN001
        rows = await self._service.record_history(
            request.practice_id,
            enum_name(common_pb2.EntityType, request.entity_type) or "ENTITY_TYPE_PATIENT",
            required(request.record_id, "record_id"),
            page_size(request.page_size),
        )
        return pb.GetRecordHistoryResponse(
            changes=[
                pb.RecordChange(
                    version=r.version,
                    side=r.side,
                    source=r.source,
                    action=r.action,
                    fields=list(r.fields),
                    run_id=r.run_id,
                    change_time=timestamp(r.changed_at),
                )
                for r in rows
            ]
        )

    async def AcceptWebhook(self, request: pb.AcceptWebhookRequest, context) -> pb.AcceptWebhookResponse:  # noqa: ANN001
        counts = await self._service.accept_webhook(
            required(request.integration_type, "integration_type"),
            dict(request.headers),
            request.body,
            request.config_id,
        )
        return pb.AcceptWebhookResponse(**counts)

    async def GetWebhookSecret(self, request: pb.GetWebhookSecretRequest, context) -> pb.GetWebhookSecretResponse:  # noqa: ANN001
        secret = await self._service.webhook_secret(request.practice_id, required(request.config_id, "config_id"))
        return pb.GetWebhookSecretResponse(secret=secret)

    async def ShredPractice(self, request: pb.ShredPracticeRequest, context) -> pb.ShredPracticeResponse:  # noqa: ANN001
        destroyed, deleted = await self._service.shred_practice(request.practice_id)
        return pb.ShredPracticeResponse(keys_destroyed=destroyed, indexes_deleted=deleted)

    async def ApplySchedules(self, request: pb.ApplySchedulesRequest, context) -> pb.ApplySchedulesResponse:  # noqa: ANN001
        described = await self._service.apply_schedules(request.practice_id, required(request.config_id, "config_id"))
        schedules, reconciling = [], []
        for entity_type, every, description in described:
            schedule = pb.SyncSchedule(schedule_id=description.id, entity_type=common_pb2.EntityType.Value(entity_type))
            schedule.every.FromTimedelta(every)
            upcoming = description.info.next_action_times
            if upcoming:
                schedule.next_run_time.FromDatetime(upcoming[0])
            (reconciling if reconciliation.is_schedule(description.id) else schedules).append(schedule)
        return pb.ApplySchedulesResponse(schedules=schedules, reconciliation_schedules=reconciling)

    async def StartReconciliation(  # noqa: N802
        self,
        request: pb.StartReconciliationRequest,
        context,  # noqa: ANN001
    ) -> pb.StartReconciliationResponse:
        report = await self._service.reconciliations.start(
            request.practice_id,
            required(request.config_id, "config_id"),
            enum_name(common_pb2.EntityType, request.entity_type),
        )
        return pb.StartReconciliationResponse(reconciliation=reconciliation.to_proto(report))

    async def ListReconciliations(  # noqa: N802
        self,
        request: pb.ListReconciliationsRequest,
        context,  # noqa: ANN001
    ) -> pb.ListReconciliationsResponse:
        rows = await self._service.reconciliations.list_reports(
            request.practice_id,
            required(request.config_id, "config_id"),
            enum_name(common_pb2.EntityType, request.entity_type),
            request.limit,
        )
        return pb.ListReconciliationsResponse(reconciliations=[reconciliation.to_proto(r) for r in rows])

    async def GetPatientLink(self, request: pb.GetPatientLinkRequest, context) -> pb.GetPatientLinkResponse:  # noqa: ANN001
        link = await self._service.get_link(
            request.practice_id, required(request.patient_id, "patient_id"), required(request.config_id, "config_id")
        )
        return pb.GetPatientLinkResponse(link=convert.link_to_proto(link))

    async def CreateRecord(self, request: pb.CreateRecordRequest, context) -> pb.CreateRecordResponse:  # noqa: ANN001
        resource, row = await self._service.create_record(
            request.practice_id,
            enum_name(common_pb2.EntityType, request.entity_type),
            required(request.resource_json, "resource_json"),
        )
        return pb.CreateRecordResponse(record=convert.record_to_proto(resource, row))

    async def GetRecord(self, request: pb.GetRecordRequest, context) -> pb.GetRecordResponse:  # noqa: ANN001
        resource, row = await self._service.get_record(
            request.practice_id,
            enum_name(common_pb2.EntityType, request.entity_type),
            required(request.record_id, "record_id"),
        )
        return pb.GetRecordResponse(record=convert.record_to_proto(resource, row))

    async def ListRecords(self, request: pb.ListRecordsRequest, context) -> pb.ListRecordsResponse:  # noqa: ANN001
        limit = page_size(request.page_size)
        found = await self._service.list_records(
            request.practice_id,
            enum_name(common_pb2.EntityType, request.entity_type),
            decode_token(request.page_token),
            limit,
        )
        return pb.ListRecordsResponse(
            records=[convert.record_to_proto(resource, row) for resource, row in found],
            next_page_token=next_token([row.record_id for _, row in found], limit),
        )

    async def ApplyVendorRecords(self, request: pb.ApplyVendorRecordsRequest, context) -> pb.ApplyVendorRecordsResponse:  # noqa: ANN001
        run, applied = await self._service.apply_vendor_records(
            request.practice_id,
            request.config_id,
            enum_name(common_pb2.EntityType, request.entity_type),
            [json_format.MessageToDict(record) for record in request.records],
        )
        return pb.ApplyVendorRecordsResponse(
            run=convert.run_to_proto(run),
            records=[
                pb.AppliedRecord(external_id=ext, record_id=record_id, created=created, review_id=review_id)
                for ext, record_id, created, review_id in applied
            ],
        )

    async def GetAvailability(self, request: pb.GetAvailabilityRequest, context) -> pb.GetAvailabilityResponse:  # noqa: ANN001
        try:
            date.fromisoformat(required(request.date, "date"))
        except ValueError:
            raise InvalidArgument("date must be YYYY-MM-DD", field="date", reason="INVALID_DATE") from None
        days = request.days or 1
        if not 1 <= days <= 7:
            raise InvalidArgument("days must be 1 to 7", field="days", reason="INVALID_DAYS")
        found = await self._service.get_availability(
            request.practice_id,
            required(request.config_id, "config_id"),
            required(request.patient_id, "patient_id"),
            required(request.service_id, "service_id"),
            request.provider_id,
            request.date,
            days,
        )
        return pb.GetAvailabilityResponse(slots=found.slots)

    async def SendMessage(self, request: pb.SendMessageRequest, context) -> pb.SendMessageResponse:  # noqa: ANN001
        if request.channel not in (adapter_pb2.MESSAGE_CHANNEL_EMAIL, adapter_pb2.MESSAGE_CHANNEL_SMS):
            raise InvalidArgument("channel must be email or sms", field="channel", reason="INVALID_CHANNEL")
        message = MessageInput(
            integration_type="",
            config_id=required(request.config_id, "config_id"),
            external_id="",
            channel=request.channel,
            subject=request.subject,
            body=required(request.body, "body"),
            idempotency_key=required(request.idempotency_key, "idempotency_key"),
        )
        sent, _ = await self._service.send_message(
            request.practice_id, message, required(request.patient_id, "patient_id")
        )
        return pb.SendMessageResponse(
            message_id=sent.message_id, conversation_id=sent.conversation_id, idempotency_key=request.idempotency_key
        )

    async def AcceptChangeEvent(self, request: pb.AcceptChangeEventRequest, context) -> pb.AcceptChangeEventResponse:  # noqa: ANN001
        entity = request.entity_type
        outcome, run = await self._service.change_events.accept(
            request.practice_id,
            request.config_id,
            request.replay_id,
            enum_name(common_pb2.EntityType, entity) if entity else "",
            request.commit_time.ToDatetime(tzinfo=UTC) if request.HasField("commit_time") else None,
            min(request.settle.ToTimedelta().total_seconds(), MAX_START_DELAY_SECONDS),
            list(request.deleted_ids),
        )
        response = pb.AcceptChangeEventResponse(outcome=pb.ChangeEventOutcome.Value(f"CHANGE_EVENT_OUTCOME_{outcome}"))
        if run is not None:
            response.run.CopyFrom(convert.run_to_proto(run))
        return response

    async def GetChangeEventPosition(  # noqa: N802
        self,
        request: pb.GetChangeEventPositionRequest,
        context,  # noqa: ANN001
    ) -> pb.GetChangeEventPositionResponse:
        replay_id, accepted = await self._service.change_events.position(request.practice_id, request.config_id)
        response = pb.GetChangeEventPositionResponse(replay_id=replay_id)
        if accepted is not None:
            response.accept_time.FromDatetime(accepted)
        return response

    async def ResyncChangeEvents(self, request: pb.ResyncChangeEventsRequest, context) -> pb.ResyncChangeEventsResponse:  # noqa: ANN001
        runs = await self._service.change_events.resync(
            request.practice_id,
            request.config_id,
            [enum_name(common_pb2.EntityType, e) for e in request.entity_types],
            min(request.settle.ToTimedelta().total_seconds(), MAX_START_DELAY_SECONDS),
        )
        return pb.ResyncChangeEventsResponse(runs=[convert.run_to_proto(r) for r in runs])
