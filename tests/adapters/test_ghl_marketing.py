"""GoHighLevel marketing switches acted on by the push, against the sandbox over real HTTP:
campaign tags while the contact is not DND, removed when the switch goes off; a second push
changes nothing; a failed marketing step fails that record alone."""

from __future__ import annotations

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.registry.v1 import registry_pb2 as rpb
from services.adapters.ghl.marketing import EMAIL_TAG, SMS_TAG, campaign_tags, dnd
from tests.adapters.conftest import GhlHarness

BOTH = rpb.VendorOptions(marketing=rpb.MarketingOptions(email_campaigns=True, sms_campaigns=True))
OFF = rpb.VendorOptions()


def _written(response: pb.UpsertBatchResponse) -> list[str]:
    assert all(r.success for r in response.results), [(r.error_reason, r.error_message) for r in response.results]
    return [r.external_id for r in response.results]


def test_dnd_is_all_channels_or_the_channels_own_status() -> None:
    assert dnd({"dnd": True}, "Email") and dnd({"dnd": True}, "SMS")
    assert dnd({"dndSettings": {"SMS": {"status": "permanent"}}}, "SMS")
    assert not dnd({"dndSettings": {"SMS": {"status": "active"}}}, "Email")
    assert not dnd({"dndSettings": {"Email": {"status": "inactive"}}}, "Email")
    assert not dnd({"dnd": False, "dndSettings": "junk"}, "Email")


def test_campaign_tags_are_only_the_change() -> None:
    marketing = BOTH.marketing
    assert campaign_tags(marketing, {"tags": ["vip"]}) == ([EMAIL_TAG, SMS_TAG], [])
    assert campaign_tags(marketing, {"tags": [EMAIL_TAG, SMS_TAG]}) == ([], [])
    sms_dnd = {"tags": [EMAIL_TAG, SMS_TAG], "dndSettings": {"SMS": {"status": "active"}}}
    assert campaign_tags(marketing, sms_dnd) == ([], [SMS_TAG])
    assert campaign_tags(OFF.marketing, {"tags": [EMAIL_TAG, "vip"]}) == ([], [EMAIL_TAG])
    assert campaign_tags(OFF.marketing, {}) == ([], [])


async def test_switches_on_tag_the_contact_once_and_off_removes_the_tags(ghl: GhlHarness) -> None:
    record = ghl.new_records(1)[0]
    first = await ghl.upsert([("r", "", record)], BOTH)
    contact_id = _written(first)[0]
    assert first.vendor_requests == 2  # the upsert, one tag call for both tags
    assert {EMAIL_TAG, SMS_TAG} <= set((await ghl.stored())[contact_id]["tags"])
    assert {EMAIL_TAG, SMS_TAG} <= set(first.results[0].record["tags"])

    # A second push with the same switches: the contact update only, no tag call, same tags.
    again = await ghl.upsert([("r", contact_id, record)], BOTH)
    _written(again)
    assert again.vendor_requests == 1
    assert set((await ghl.stored())[contact_id]["tags"]) == set(first.results[0].record["tags"])

    # Switches off: the campaign tags go, once.
    off = await ghl.upsert([("r", contact_id, record)], OFF)
    _written(off)
    assert off.vendor_requests == 2  # the update, one tag removal
    assert not set((await ghl.stored())[contact_id].get("tags") or []) & {EMAIL_TAG, SMS_TAG}
    still_off = await ghl.upsert([("r", contact_id, record)], OFF)
    assert still_off.vendor_requests == 1


async def test_a_contact_dnd_for_sms_gets_the_email_tag_only(ghl: GhlHarness) -> None:
    record = {**ghl.new_records(1)[0], "dndSettings": {"SMS": {"status": "active"}}}
    contact_id = _written(await ghl.upsert([("r", "", record)], BOTH))[0]
    tags = set((await ghl.stored())[contact_id].get("tags") or [])
    assert EMAIL_TAG in tags and SMS_TAG not in tags


async def test_switches_off_tag_nothing(ghl: GhlHarness) -> None:
    contact_id = _written(await ghl.upsert([("r", "", ghl.new_records(1)[0])], OFF))[0]
    assert not set((await ghl.stored())[contact_id].get("tags") or []) & {EMAIL_TAG, SMS_TAG}
