"""GoHighLevel contact wire shapes (docs/vendors/gohighlevel/apps/contacts.json)."""

# UpdateContactDto: PUT /contacts/{id} accepts only these; GHL refuses others (gender,
# companyName) with 422, so those change only when a contact is created or upserted.
UPDATE_FIELDS = frozenset(
    {
        "address1",
        "assignedTo",
        "city",
        "country",
        "customFields",
        "dateOfBirth",
        "dnd",
        "dndSettings",
        "email",
        "firstName",
        "inboundDndSettings",
        "lastName",
        "name",
        "phone",
        "postalCode",
        "source",
        "state",
        "tags",
        "timezone",
        "website",
    }
)

# UpsertContactDto adds these to UPDATE_FIELDS.
UPSERT_ONLY_FIELDS = frozenset({"companyName", "gender", "locationId", "createNewIfDuplicateAllowed"})


def update_body(record: dict) -> dict:
    return {key: value for key, value in record.items() if key in UPDATE_FIELDS}
