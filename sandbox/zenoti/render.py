"""Records as Zenoti renders them: API responses and webhook ``data``."""

from __future__ import annotations

import copy
from typing import Any

from .model import (
    DIAL_CODES,
    MIN_DATE,
    Appointment,
    Category,
    Center,
    GuestMembership,
    Membership,
    Org,
    Service,
    Therapist,
    fmt,
    fmt_date,
    utc,
)

GUEST_FIELDS = ("id", "code", "center_id", "personal_info", "address_info", "preferences", "tags", "referral")


def guest(record: dict[str, Any]) -> dict[str, Any]:
    """The guest object of POST/GET/PUT /v1/guests and search results; unset dates read 0001-01-01."""
    body = {k: copy.deepcopy(record[k]) for k in GUEST_FIELDS}
    body["primary_employee"] = copy.deepcopy(record["primary_employee"])
    info = body["personal_info"]
    info["date_of_birth"] = fmt_date(info["date_of_birth"])
    info["anniversary_date"] = fmt_date(info["anniversary_date"])
    return body


def guest_event(org: Org, record: dict[str, Any]) -> dict[str, Any]:
    """``data`` of Guest.* webhooks (reference/guest-created.md): unset dates and phones are null."""
    info = copy.deepcopy(record["personal_info"])
    info["date_of_birth"] = fmt_date(info["date_of_birth"], None)
    info["anniversary_date"] = fmt_date(info["anniversary_date"], None)
    info["dob_incomplete_year"] = None
    prefs = record["preferences"]
    optin = {True: 1, False: 0}
    center = org.centers.get(record["center_id"])
    return {
        "id": record["id"],
        "_id": record["_id"],
        "code": record["code"],
        "center_id": record["center_id"],
        "center_name": center.name if center else "",
        "created_date": fmt(utc(record["created"]).replace(tzinfo=None)),
        "personal_info": info,
        "address_info": copy.deepcopy(record["address_info"]),
        "preferences": {
            "receive_transactional_email": prefs["receive_transactional_email"],
            "receive_transactional_sms": prefs["receive_transactional_sms"],
            "receive_marketing_email": prefs["receive_marketing_email"],
            "receive_marketing_sms": prefs["receive_marketing_sms"],
            "recieve_lp_stmt": prefs["recieve_lp_stmt"],
            "opt_in_for_loyalty_program": prefs["recieve_lp_stmt"],
            "transactional_sms_optin": optin[prefs["receive_transactional_sms"]],
            "transactional_email_optin": optin[prefs["receive_transactional_email"]],
            "marketing_sms_optin": optin[prefs["receive_marketing_sms"]],
            "marketing_email_optin": optin[prefs["receive_marketing_email"]],
            "transactional_whatsapp_optin": 0,
            "receive_transactional_whatsapp": False,
        },
    }


def price(sale: float, tax: float, final: float, currency_id: int) -> dict[str, Any]:
    return {"currency_id": currency_id, "sales": sale, "tax": tax, "final": final}


def appointment(org: Org, appt: Appointment) -> dict[str, Any]:
    """One element of GET /v1/appointments (a bare array) and the body of GET /v1/appointments/{id}."""
    center, service = org.centers[appt.center_id], org.services[appt.service_id]
    category = org.categories[service.category_id]
    record = org.guests.get(appt.guest_id)
    therapist = org.therapists.get(appt.therapist_id or "")
    local = center.local
    guest_part = None
    if record is not None:
        info = record["personal_info"]
        mobile = info["mobile_phone"] or {}
        dial = DIAL_CODES.get(mobile.get("country_code", 0), "")
        guest_part = {
            "id": record["id"],
            "first_name": info["first_name"],
            "last_name": info["last_name"],
            "gender": info["gender"],
            "mobile": {
                "country_id": mobile.get("country_code", 0),
                "number": mobile.get("number"),
                "display_number": f"+{dial} {mobile['number']}" if mobile.get("number") else None,
            },
            "email": info["email"],
            "indicator": "",
            "lp_tier_info": "",
            "GuestIndicatorValue": None,
        }
    return {
        "appointment_id": appt.id,
        "appointment_segment_id": None,
        "appointment_group_id": appt.group_id,
        "invoice_id": appt.invoice_id,
        "service": {
            "id": service.id,
            "name": service.name,
            "is_addon": False,
            "has_addons": False,
            "parent_appointment_id": None,
            "business_unit": {"guid": org.id, "name": "Default", "id": 1},
            "category": {"id": category.id, "name": category.name},
            "sub_category": {"id": category.id, "name": category.name},
            "override_product_consumption": False,
            "override_default_product_consumption": False,
        },
        "start_time": fmt(local(appt.start)),
        "start_time_utc": fmt(appt.start.replace(tzinfo=None)),
        "end_time": fmt(local(appt.end)),
        "end_time_utc": fmt(appt.end.replace(tzinfo=None)),
        "status": appt.status,
        "source": appt.source,
        "progress": appt.progress,
        "locked": False,
        "invoice_locked": False,
        "has_active_membership_for_auto_pay": False,
        "guest": guest_part,
        "therapist": _therapist_brief(therapist),
        "room": None,
        "equipment": None,
        "service_custom_data_indicator": "",
        "notes": appt.notes,
        "price": price(*service.price(center), center.currency_id),
        "actual_start_time": fmt(local(appt.actual_start)) if appt.actual_start else None,
        "actual_completed_time": fmt(local(appt.completed)) if appt.completed else None,
        "checkin_time": fmt(local(appt.checkin_time)) if appt.checkin_time else None,
        "therapist_preference_type": 1 if appt.requested_therapist else 0,
        "form_id": None,
        "blockout": None,
        "creation_date": fmt(local(appt.created)),
        "creation_date_utc": fmt(appt.created.replace(tzinfo=None)),
        "created_by_id": None,
        "closed_by_id": None,
        "show_in_calender": 1,
        "available_therapists": None,
        "available_rooms": None,
        "available_times": None,
        "selected_therapist_id": None,
        "selected_room_id": None,
        "selected_time": MIN_DATE,
        "requested_alternative": 0,
        "group_invoice_id": None,
        "error": None,
    }


def _therapist_brief(therapist: Therapist | None) -> dict[str, Any] | None:
    if therapist is None:
        return None
    return {
        "id": therapist.id,
        "first_name": therapist.first_name,
        "last_name": therapist.last_name,
        "nick_name": None,
        "display_name": None,
        "email": therapist.email,
        "gender": therapist.gender,
        "vanity_image_url": "",
    }


def guest_appointment_group(org: Org, appts: list[Appointment]) -> dict[str, Any]:
    """One element of GET /v1/guests/{guest_id}/appointments: an appointment group and its services."""
    first, center = appts[0], org.centers[appts[0].center_id]
    services, totals = [], [0.0, 0.0, 0.0]
    for appt in appts:
        service = org.services[appt.service_id]
        amounts = service.price(center)
        totals = [round(a + b, 2) for a, b in zip(totals, amounts, strict=True)]
        services.append(
            {
                "appointment_id": appt.id,
                "invoice_item_id": appt.invoice_item_id,
                "cart_item_id": None,
                "service": {
                    "id": service.id,
                    "name": service.name,
                    "display_name": None,
                    "price": price(*amounts, center.currency_id),
                    "duration": service.duration,
                    "category_id": service.category_id,
                    "is_addon": False,
                    "has_addons": None,
                    "addons": None,
                    "is_variant": None,
                    "has_variant": None,
                    "parent_service_id": None,
                },
                "requested_therapist_gender": 0,
                "start_time": fmt(center.local(appt.start)),
                "end_time": fmt(center.local(appt.end)),
                "room": None,
                "equipment": None,
                "appointment_status": appt.status,
                "requested_therapist_id": appt.therapist_id if appt.requested_therapist else None,
                "quantity": 0,
                "service_custom_data_indicator": "",
                "actual_start_time": fmt(center.local(appt.actual_start)) if appt.actual_start else None,
                "completed_time": fmt(center.local(appt.completed)) if appt.completed else None,
                "progress": appt.progress,
                "parent_appointment_id": None,
                "service_custom_Data": None,
                "item_actions": "",
                "is_membership_applied": False,
                "is_addon": False,
                "addon_appointment_id": None,
                "has_service_form": False,
                "has_segments": False,
                "segments": None,
            }
        )
    return {
        "appointment_group_id": first.group_id,
        "no_of_guests": 1,
        "invoice_id": first.invoice_id,
        "invoice_status": 4 if all(a.status == 1 for a in appts) else 0,
        "is_rebooking": False,
        "notes": first.notes,
        "center_id": center.id,
        "appointment_services": services,
        "appointment_packages": [],
        "price": price(*totals, center.currency_id),
        "group_invoice_id": None,
        "is_feedback_submitted": False,
    }


def group_created_event(org: Org, appts: list[Appointment]) -> dict[str, Any]:
    """``data`` of AppointmentGroup.Created (reference/appointment-group-created.md): start_time is UTC,
    start_time_in_center is the center's wall clock."""
    first, center = appts[0], org.centers[appts[0].center_id]
    record = org.guests.get(first.guest_id) or {"id": first.guest_id, "personal_info": {}}
    info = record["personal_info"]
    items = []
    for appt in appts:
        service, therapist = org.services[appt.service_id], org.therapists.get(appt.therapist_id or "")
        items.append(
            {
                "id": appt.id,
                "invoice_item_id": appt.invoice_item_id,
                "service_name": service.name,
                "service_id": service.id,
                "start_time": fmt(appt.start.replace(tzinfo=None)),
                "end_time": fmt(appt.end.replace(tzinfo=None)),
                "start_time_in_center": fmt(center.local(appt.start)),
                "end_time_in_center": fmt(center.local(appt.end)),
                "creation_date": fmt(appt.created.replace(tzinfo=None)),
                "last_updated_on": fmt(appt.updated.replace(tzinfo=None)),
                "service_duration_in_minutes": service.duration,
                "has_add_ons": False,
                "is_add_on": False,
                "therapist_name": f"{therapist.first_name} {therapist.last_name}" if therapist else "",
                "therapist_id": therapist.id if therapist else None,
                "is_recurring": False,
                "show_in_calendar": True,
                "appointment_type": 2,
                "therapist_request_type": 4 if appt.requested_therapist else 0,
                "room_id": "",
                "room_name": "",
                "equipment_name": "",
            }
        )
    return {
        "invoice_id": first.invoice_id,
        "invoice_number": str(first.invoice_number),
        "invoice_number_prefix": center.code,
        "utm_source": "",
        "utm_medium": "",
        "appointment_group_id": first.group_id,
        "organization_id": org.id,
        "center_id": center.id,
        "center_Name": center.name,
        "guest": {
            "id": record["id"],
            "first_name": info.get("first_name", ""),
            "last_name": info.get("last_name", ""),
            "email": info.get("email", ""),
        },
        "appointments": items,
    }


def group_status_event(appts: list[Appointment], status: int) -> dict[str, Any]:
    """``data`` of AppointmentGroup.Status (reference/appointment-group-status.md)."""
    first = appts[0]
    return {
        "invoice_id": first.invoice_id,
        "invoice_number": str(first.invoice_number),
        "receipt_number": "0",
        "appointment_group_id": first.group_id,
        "appointment_group_status": status,
        "is_noshowfeerequired": "No",
        "is_cancellationfeerequired": "No",
    }


def progress_event(org: Org, appt: Appointment) -> dict[str, Any]:
    """``data`` of Appointment.Started / Appointment.Completed (reference/appointment-started.md)."""
    center, service = org.centers[appt.center_id], org.services[appt.service_id]
    therapist = org.therapists.get(appt.therapist_id or "")
    return {
        "invoice_id": appt.invoice_id,
        "invoice_number": str(appt.invoice_number),
        "appointment_group_id": appt.group_id,
        "center_id": center.id,
        "appointments": [
            {
                "id": appt.id,
                "invoice_item_id": appt.invoice_item_id,
                "service_name": service.name,
                "service_id": service.id,
                "start_time": fmt(center.local(appt.start)),
                "end_time": fmt(center.local(appt.end)),
                "serviceduration_in_miutes": service.duration,
                "has_add_ons": False,
                "is_add_on": False,
                "therapist_name": f"{therapist.first_name} {therapist.last_name}" if therapist else "",
                "TherapistId": therapist.id if therapist else None,
                "is_recurring": False,
                "appointment_type": 2,
                "therapist_request_type": 4 if appt.requested_therapist else 0,
                "room_name": "",
                "equipment_name": "",
                "room_id": "",
                "equipment_id": "",
                "appointment_progress": appt.progress,
            }
        ],
    }


def center(c: Center, *, working_hours: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": c.id,
        "code": c.code,
        "name": c.name,
        "display_name": c.name,
        "phone": c.phone,
        "email": c.email,
        "time_zone_id": c.time_zone_id,
        "currency_id": c.currency_id,
        "address_info": dict(c.address),
    }
    if working_hours:
        hours = {"start_time": f"{c.open_hour:02d}:00:00", "end_time": f"{c.close_hour:02d}:00:00"}
        body["working_hours"] = [{"day_of_week": day, **hours} for day in range(7)]
    return body


def service(org: Org, s: Service, c: Center) -> dict[str, Any]:
    sale, tax, final = s.price(c)
    category = org.categories[s.category_id]
    return {
        "id": s.id,
        "code": s.code,
        "name": s.name,
        "description": "",
        "duration": s.duration,
        "recovery_time": 0,
        "is_couple_service": False,
        "price_info": {
            "currency_id": c.currency_id,
            "sale_price": sale,
            "tax_id": "",
            "ssg": 0,
            "include_tax": False,
            "demand_group_id": "",
            "tax": tax,
            "price_without_tax": sale,
            "final_price": final,
        },
        "additional_info": {
            "html_description": "",
            "category": {"id": category.id, "name": category.name},
            "sub_category": None,
            "bussiness_unit": None,
        },
        "catalog_info": {
            "show_in_catalog": True,
            "can_book": True,
            "show_price": True,
            "display_name": "",
            "display_price": "",
            "display_order": "",
            "video_url": "",
        },
        "variants_info": {"is_variant": False, "has_variant": False},
        "add_ons_info": {"is_add_on": False, "has_add_ons": False, "add_ons_list": None},
        "image_paths": None,
        "parallel_groups": None,
        "parallel_service_groups": None,
        "prerequisites_info": None,
        "finishing_services_info": None,
    }


def category(c: Category) -> dict[str, Any]:
    return {
        "id": c.id,
        "code": c.code,
        "name": c.name,
        "description": "",
        "html_description": "",
        "parent_category_id": None,
        "display_order": c.display_order,
    }


def therapist(t: Therapist) -> dict[str, Any]:
    """GET /v1/centers/{id}/therapists renders gender as a string ("1"), unlike other payloads."""
    return {
        "id": t.id,
        "code": t.code,
        "personal_info": {
            "first_name": t.first_name,
            "last_name": t.last_name,
            "name": f"{t.first_name} {t.last_name}",
            "nick_name": "",
            "gender": str(t.gender),
        },
        "job_info": {"id": t.job_id, "name": t.job_name},
    }


def membership(m: Membership, c: Center) -> dict[str, Any]:
    return {
        "id": m.id,
        "version_id": m.id,
        "name": m.name,
        "price": price(m.price, 0, m.price, c.currency_id),
        "can_book": True,
        "show_price": True,
        "display_name": None,
        "display_price": None,
        "image_paths": None,
        "is_recurring_membership": m.is_recurring,
        "membership_type": m.membership_type,
        "first_collection_after": 0,
        "description": m.description,
        "html_description": None,
        "terms_and_conditions": None,
        "terms_and_conditions_acceptance": None,
        "enforce_mandatory_fields": False,
        "payment_frequency": m.payment_frequency,
    }


def guest_membership(org: Org, gm: GuestMembership) -> dict[str, Any]:
    """Simulator-chosen shape: the docs mirror has no sample of GET /v1/guests/{id}/memberships."""
    m, c = org.memberships[gm.membership_id], org.centers[gm.center_id]
    return {
        "id": gm.id,
        "membership": {"id": m.id, "code": m.code, "name": m.name},
        "center": {"id": c.id, "name": c.name},
        "status": gm.status,
        "start_date": fmt_date(gm.start),
        "end_date": fmt_date(gm.end),
        "is_recurring": m.is_recurring,
        "price": price(m.price, 0, m.price, c.currency_id),
        "invoice_id": gm.invoice_id,
    }
