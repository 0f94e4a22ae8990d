"""GoHighLevel contact wire shapes (docs/vendors/gohighlevel/apps/contacts.json)."""

# UpsertContactDto fields that UpdateContactDto (PUT /contacts/{id}) lacks: GHL refuses them there
# with 422, so gender and companyName change only when a contact is created or upserted.
NOT_UPDATABLE = frozenset({"companyName", "gender", "locationId", "createNewIfDuplicateAllowed"})


def update_body(record: dict) -> dict:
    """The record as a PUT body. Any other field GHL does not know is sent, so GHL refuses the
    record rather than the adapter silently dropping what the hub meant to write."""
    return {key: value for key, value in record.items() if key not in NOT_UPDATABLE}
