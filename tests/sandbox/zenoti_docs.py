"""JSON Schemas for the Zenoti sandbox tests, built from the fields Zenoti documents.

Webhook envelopes and samples are read from the docs mirror in docs/vendors/zenoti/docs/. The API
response examples of docs.zenoti.com are not in the mirror (VENDOR_APIS.md source ZX): their field names
and value types are transcribed below, with our own values. A ``None`` means the docs show the field with
a value that may be absent, so only its presence is checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[2] / "docs" / "vendors" / "zenoti" / "docs"


def schema_from_example(example: Any) -> dict[str, Any]:
    """Every documented key is required, with the documented JSON type; extra keys are allowed."""
    if example is None:
        return {}
    if isinstance(example, bool):
        return {"type": "boolean"}
    if isinstance(example, int | float):
        return {"type": "number"}
    if isinstance(example, str):
        return {"type": "string"}
    if isinstance(example, list):
        return {"type": "array", "items": schema_from_example(example[0])} if example else {"type": "array"}
    return {
        "type": "object",
        "required": sorted(example),
        "properties": {key: schema_from_example(value) for key, value in example.items()},
    }


def doc_json(relative: str, marker: str = "{") -> Any:
    """The first JSON value in a docs page, starting at the first line that begins with ``marker``."""
    text = (DOCS / relative).read_text(encoding="utf-8")
    start = text.index("\n" + marker) + 1
    value, _ = json.JSONDecoder().raw_decode(text[start:])
    return value


def page_info_example() -> Any:
    text = (DOCS / "guides" / "pagination.md").read_text(encoding="utf-8")
    start = text.index('"page_info": ') + len('"page_info": ')
    return json.JSONDecoder().raw_decode(text[start:])[0]


PHONE = {"country_code": 225, "number": "6175550134"}
TOKEN = {
    "credentials": {
        "access_token": "AN:x|$ARD#x",
        "access_token_expiry": "2022-06-08T11:19:18.7016839Z",
        "refresh_token": "AN:x|$ARD#y",
        "refresh_token_expiry": "2022-09-05T11:19:18.7172608Z",
        "token_type": "bearer",
        "token_id": "b2bf3b23-430a-4aba-bec4-c70c21de733a",
        "app_id": "app",
        "user_type": "Employee",
    },
    "login_policy_evaluation": {
        "allowlogin": True,
        "policyaction": 0,
        "policyactiondata": None,
        "userid": None,
        "passwordexpiryreminder": False,
    },
    "error": None,
}
GUEST = {
    "id": "g",
    "code": "",
    "center_id": "c",
    "personal_info": {
        "user_name": "",
        "first_name": "a",
        "last_name": "b",
        "middle_name": "",
        "email": "",
        "mobile_phone": PHONE,
        "work_phone": None,
        "home_phone": None,
        "gender": 0,
        "date_of_birth": "0001-01-01T00:00:00",
        "is_minor": False,
        "nationality_id": -1,
        "anniversary_date": "0001-01-01T00:00:00",
        "lock_guest_custom_data": False,
        "pan": "",
    },
    "address_info": {
        "address_1": "",
        "address_2": "",
        "city": "",
        "country_id": -1,
        "state_id": -1,
        "state_other": "",
        "zip_code": "",
    },
    "preferences": {
        "receive_transactional_email": False,
        "receive_transactional_sms": False,
        "receive_marketing_email": False,
        "receive_marketing_sms": False,
        "recieve_lp_stmt": True,
        "preferred_therapist": None,
    },
    "tags": None,
    "referral": None,
    "primary_employee": None,
}
CENTER = {
    "center": {"id": "c", "name": "n", "code": "Z", "phone": "0", "time_zone_id": 6, "currency_id": 148, "email": "e"},
    "error": None,
}
PRICE = {"currency_id": 148, "sales": 1, "tax": 0, "final": 1}
SERVICE = {
    "id": "s",
    "code": "Z",
    "name": "n",
    "description": "",
    "duration": 0,
    "recovery_time": 0,
    "is_couple_service": False,
    "price_info": {
        "currency_id": 148,
        "sale_price": 100,
        "tax_id": "",
        "ssg": 0,
        "include_tax": False,
        "demand_group_id": "",
        "tax": 0,
        "price_without_tax": 100,
        "final_price": 100,
    },
    "additional_info": None,
    "catalog_info": None,
    "variants_info": None,
    "add_ons_info": None,
    "image_paths": None,
    "parallel_groups": None,
    "parallel_service_groups": None,
    "prerequisites_info": None,
    "finishing_services_info": None,
}
SERVICES = {"services": [SERVICE], "page_info": {"total": 1, "page": 1, "size": 10}}
THERAPISTS = {
    "therapists": [
        {
            "id": "t",
            "code": "1",
            "personal_info": {"first_name": "a", "last_name": "b", "name": "a b", "nick_name": "", "gender": "1"},
            "job_info": {"id": "j", "name": "n"},
        }
    ]
}
MEMBERSHIPS = {
    "memberships": [
        {
            "id": "m",
            "version_id": "v",
            "name": "n",
            "price": PRICE,
            "can_book": True,
            "show_price": True,
            "display_name": None,
            "display_price": None,
            "image_paths": None,
            "is_recurring_membership": False,
            "membership_type": 0,
            "first_collection_after": 0,
            "description": "",
            "html_description": None,
            "terms_and_conditions": None,
            "terms_and_conditions_acceptance": None,
            "enforce_mandatory_fields": False,
            "payment_frequency": "",
        }
    ],
    "total_no_of_memberships": 1,
    "benefits": None,
    "page_info": None,
    "error": None,
}
APPOINTMENT = {
    "appointment_id": "a",
    "appointment_segment_id": None,
    "appointment_group_id": "g",
    "invoice_id": "i",
    "service": {
        "id": "s",
        "name": "n",
        "is_addon": False,
        "has_addons": True,
        "parent_appointment_id": None,
        "business_unit": {"guid": "b", "name": "Default", "id": 237},
        "category": {"id": "c", "name": "n"},
        "sub_category": {"id": "c", "name": "n"},
        "override_product_consumption": True,
        "override_default_product_consumption": True,
    },
    "start_time": "2019-09-15T05:00:00",
    "start_time_utc": "2019-09-15T09:00:00",
    "end_time": "2019-09-15T05:15:00",
    "end_time_utc": "2019-09-15T09:15:00",
    "status": 0,
    "source": 0,
    "progress": 0,
    "locked": False,
    "invoice_locked": False,
    "has_active_membership_for_auto_pay": False,
    "guest": {
        "id": "g",
        "first_name": "a",
        "last_name": "b",
        "gender": 0,
        "mobile": {"country_id": 0, "number": None, "display_number": "+1 1"},
        "email": "e",
        "indicator": "",
        "lp_tier_info": "",
        "GuestIndicatorValue": None,
    },
    "therapist": {
        "id": "t",
        "first_name": "a",
        "last_name": "b",
        "nick_name": None,
        "display_name": None,
        "email": "e",
        "gender": 1,
        "vanity_image_url": "",
    },
    "room": None,
    "equipment": None,
    "service_custom_data_indicator": "",
    "notes": None,
    "price": None,
    "actual_start_time": None,
    "actual_completed_time": None,
    "checkin_time": None,
    "therapist_preference_type": 0,
    "form_id": None,
    "blockout": None,
    "creation_date": "2019-03-12T03:30:00",
    "creation_date_utc": "2019-03-12T07:30:00",
    "created_by_id": None,
    "closed_by_id": None,
    "show_in_calender": 1,
    "available_therapists": None,
    "available_rooms": None,
    "available_times": None,
    "selected_therapist_id": None,
    "selected_room_id": None,
    "selected_time": "0001-01-01T00:00:00",
    "requested_alternative": 0,
    "group_invoice_id": None,
    "error": None,
}
GUEST_APPOINTMENTS = {
    "appointments": [
        {
            "appointment_group_id": "g",
            "no_of_guests": 1,
            "invoice_id": "i",
            "invoice_status": 4,
            "is_rebooking": True,
            "notes": None,
            "center_id": "c",
            "appointment_services": [
                {
                    "appointment_id": "a",
                    "invoice_item_id": "ii",
                    "cart_item_id": None,
                    "service": {
                        "id": "s",
                        "name": "n",
                        "display_name": None,
                        "price": PRICE,
                        "duration": 30,
                        "category_id": None,
                        "is_addon": False,
                        "has_addons": None,
                        "addons": None,
                        "is_variant": None,
                        "has_variant": None,
                        "parent_service_id": None,
                    },
                    "requested_therapist_gender": 0,
                    "start_time": "2019-08-29T10:45:00",
                    "end_time": "2019-08-29T11:15:00",
                    "room": None,
                    "equipment": None,
                    "appointment_status": 1,
                    "requested_therapist_id": None,
                    "quantity": 0,
                    "service_custom_data_indicator": "",
                    "actual_start_time": None,
                    "completed_time": None,
                    "progress": 0,
                    "parent_appointment_id": None,
                    "service_custom_Data": None,
                    "item_actions": "",
                    "is_membership_applied": False,
                    "is_addon": False,
                    "addon_appointment_id": None,
                    "has_service_form": True,
                    "has_segments": False,
                    "segments": None,
                }
            ],
            "appointment_packages": [],
            "price": PRICE,
            "group_invoice_id": None,
            "is_feedback_submitted": True,
        }
    ],
    "page_info": {"total": 7, "page": 1, "size": 10},
}
BOOKING = {"id": "b", "error": None}
