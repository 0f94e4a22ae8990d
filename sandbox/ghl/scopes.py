"""OAuth scopes of the routes the sandbox serves (each operation's `security` in apps/*.json, docs/oauth/Scopes.md)."""

READ, WRITE = "contacts.readonly", "contacts.write"
CALENDARS_READ = "calendars.readonly"
EVENTS_READ, EVENTS_WRITE = "calendars/events.readonly", "calendars/events.write"
MESSAGES_READ, MESSAGES_WRITE = "conversations/message.readonly", "conversations/message.write"
FIELDS_READ, FIELDS_WRITE = "locations/customFields.readonly", "locations/customFields.write"
WORKFLOWS_READ = "workflows.readonly"
ALL_SCOPES = " ".join(
    (READ, WRITE, CALENDARS_READ, EVENTS_READ, EVENTS_WRITE, MESSAGES_READ, MESSAGES_WRITE)
    + (FIELDS_READ, FIELDS_WRITE, WORKFLOWS_READ)
)
