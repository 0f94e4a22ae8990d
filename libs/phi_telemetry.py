"""PHI-free telemetry: what may leave the process in a log line, a span or a metric.

Two defences, used together:

* **Allow-listing by key.** A log record's ``extra`` attributes and a span's (and its events' and
  links') attributes pass only when their key is listed here. Everything an instrumentation, a
  library or a future change adds is dropped until someone decides it is safe and lists it.
* **Redaction by shape** of the free text that cannot be allow-listed by key: log messages and
  their string arguments, span names, status descriptions, URLs, SQL. Emails, phone numbers
  (``phonenumbers``' matcher, region US, leniency VALID: a number needs its area code, so ids,
  ports, counts and trace ids are left alone), bare calendar dates (birth dates: ``1961-07-04``,
  ``07/04/1961``; a date followed by a time of day is an event timestamp and is kept), and US
  street addresses (``77 Canary Lane``); and the query strings of URLs in text (``?[query]``).

Names, notes and other free text have no shape. Nothing here recognises "Ada" as a name; they are
kept out by the allow-lists and by the codebase's rule that logs and errors name fields, ids and
counts, never values. Exception *messages* are the usual way values slip into telemetry (pydantic
quotes its input, SQLAlchemy its parameters, httpx its URL), so, as ``docs/ARCHITECTURE.md`` says
of unexpected exceptions, they are kept by type and place only: a traceback keeps its frames and
the exception types, and loses the messages.

Metrics: the only instruments (``services/gateway/webhooks.py``) record fixed ``outcome`` and
``vendor`` values, and no MeterProvider is installed (the API's no-op one is in use). A provider
added later should take ``metric_views()``, which applies ``METRIC_ATTRIBUTES``.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import phonenumbers
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import Link, SpanKind, Status

REDACTED = "[redacted]"
# phonenumbers loads a region's metadata on first use, under a lock it does not release when the
# load fails; a first use from inside Temporal's workflow sandbox (a log line there) can fail it
# and every later scrub then waits on that lock for ever. Loaded here, at import, once.
phonenumbers.PhoneMetadata.metadata_for_region("US")

# -- shapes ---------------------------------------------------------------------------------------

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", re.IGNORECASE)
# A URL's query string (vendor searches carry emails and names there): its parameters go.
_QUERY = re.compile(r"(\w+://[^\s?#'\"<>]*)\?[^\s#'\"<>]*")
# A calendar date not followed by a time of day (then it is a timestamp of an event, kept).
_DATE = re.compile(r"(?<![\w-])(?:\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4})(?![\w-]|[T ]\d{2}:\d{2}|[:/]\d)")
_STREET = re.compile(
    r"\b\d{1,6}(?:\s+[A-Z][A-Za-z.'-]*){1,4}\s+"
    r"(?i:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Way|Place|Pl|"
    r"Terrace|Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|Trl)\b\.?",
)
# Seven digits with only phone punctuation between: the cheap test before the phone matcher runs.
_MAYBE_PHONE = re.compile(r"\d(?:[\s().+-]{0,3}\d){6}")


# Longer text is cut before it is scanned: the phone matcher's cost grows with the text (a
# workflow activation dump of hundreds of KB took minutes), and a value this long is a dump.
MAX_SCANNED = 8192


def redact(text: str) -> str:
    """``text`` with every PHI-shaped value replaced by a placeholder. Cheap when there is none:
    the phone matcher runs only on text with seven digits in a row (punctuation allowed)."""
    if len(text) > MAX_SCANNED:
        text = f"{text[:MAX_SCANNED]}[{len(text) - MAX_SCANNED} characters cut]"
    if "://" in text:
        text = _QUERY.sub(r"\1?[query]", text)
    if "@" in text or "%40" in text:
        text = _EMAIL.sub("[email]", text)
    if _MAYBE_PHONE.search(text):
        matches = list(phonenumbers.PhoneNumberMatcher(text, "US"))
        for match in reversed(matches):
            text = text[: match.start] + "[phone]" + text[match.end :]
    text = _DATE.sub("[date]", text)
    return _STREET.sub("[address]", text)


_EXCEPTION_LINE = re.compile(r"([A-Za-z_][\w.]*)(?::\s|:$|$)")
_KEPT_LINES = (
    "Traceback (most recent call last):",
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)


def scrub_traceback(text: str) -> str:
    """A formatted traceback with its places kept (``File ...`` lines and the source line after
    each) and each exception line cut to its type; message lines (a message may go on over
    several lines, indented or not: pydantic's do) are dropped up to the next chain separator."""
    kept: list[str] = []
    in_frames = False
    expect_exception = True  # the next unindented line is an exception's "Type: message"
    for line in text.splitlines():
        if line.startswith('  File "'):
            kept.append(line)
            in_frames = expect_exception = True
        elif in_frames and line.startswith("    "):
            kept.append(line)  # the frame's source line, or its ^^^^ markers
        elif line in _KEPT_LINES:
            kept.append(line)
            in_frames, expect_exception = False, True
        elif not line.strip():
            kept.append(line)
        else:
            in_frames = False
            if expect_exception and not line[0].isspace() and (match := _EXCEPTION_LINE.match(line)):
                kept.append(match.group(1) if match.end() == len(line) else f"{match.group(1)}: {REDACTED}")
            expect_exception = False
    return redact("\n".join(kept))


def describe_exception(exc: BaseException) -> str:
    """What telemetry may say of an exception without a traceback: its type."""
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


# -- logs -----------------------------------------------------------------------------------------

LOG_EXTRAS = frozenset(
    {
        "run_id",
        "config_id",
        "practice_id",
        "entity_type",
        "integration_type",
        "vendor",
        "record_id",
        "patient_id",
        "request_id",
        "trace_id",
        "span_id",
        "workflow_id",
        "activity",
        "status",
        "outcome",
        "reason",
        "field",
        "direction",
        "attempt",
    }
)
"""``extra`` keys a log record may carry: ids Concord mints (opaque, never derived from PHI),
enumerations and field *names*. Their string values are redacted by shape all the same."""

_COUNT_SUFFIXES = ("_count", "_total", "_ms", "_seconds")
"""Numeric extras under these suffixes pass too (counts and durations)."""

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_MARK = "_phi_scrubbed"


def _scrub_arg(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, BaseException):
        return describe_exception(value)
    return redact(value if isinstance(value, str) else str(value))


def _extra_allowed(key: str, value: Any) -> bool:
    if key in LOG_EXTRAS:
        return True
    return key.endswith(_COUNT_SUFFIXES) and isinstance(value, int | float) and not isinstance(value, bool)


def _scrub_content(record: logging.LogRecord) -> None:
    """Message, arguments, exception and stack of a record, once."""
    if record.__dict__.get(_MARK):
        return
    record.__dict__[_MARK] = True
    record.msg = redact(record.msg if isinstance(record.msg, str) else str(record.msg))
    if isinstance(record.args, Mapping):
        record.args = {k: _scrub_arg(v) for k, v in record.args.items()}
    elif record.args:
        record.args = tuple(_scrub_arg(a) for a in record.args)
    if record.exc_info and record.exc_info[1] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        record.exc_text = scrub_traceback(text)
    elif record.exc_text:
        record.exc_text = scrub_traceback(record.exc_text)
    record.exc_info = None  # the exception object quotes its data to any handler that asks
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record.__dict__.pop("message", None)  # formatted before scrubbing: formatted again


def _scrub_extras(record: logging.LogRecord) -> None:
    for key in [k for k in record.__dict__ if k not in _STANDARD and k != _MARK]:
        value = record.__dict__[key]
        if not _extra_allowed(key, value):
            del record.__dict__[key]
        elif isinstance(value, str):
            record.__dict__[key] = redact(value)


class PhiLogFilter(logging.Filter):
    """Sanitises a record in place (every handler after this one sees it sanitised) and lets it
    through: extras not allow-listed are deleted, the rest is redacted by shape. Cheap to repeat:
    the message is scrubbed once per record however many handlers carry the filter."""

    def filter(self, record: logging.LogRecord) -> bool:
        _scrub_extras(record)
        _scrub_content(record)
        return True


log_filter = PhiLogFilter()
"""The one instance: ``install_log_filter`` puts it on handlers; tests put it on theirs."""


def _scrubbing_factory(factory: Any) -> Any:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        _scrub_content(record)
        return record

    make.phi_scrubbing = True  # type: ignore[attr-defined]
    return make


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Puts ``log_filter`` on every handler of ``logger`` (the root by default), once; and
    scrubs message, arguments and exception as each record is made, so handlers that are not
    the root's (uvicorn configures its own on its loggers, with propagation off) or are added
    later (pytest's) never see them in clear either. ``extra`` is set on a record after it is
    made: only the filter can drop it, which is why it is on the handlers too."""
    for handler in (logger or logging.getLogger()).handlers:
        if log_filter not in handler.filters:
            handler.addFilter(log_filter)
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "phi_scrubbing", False):
        logging.setLogRecordFactory(_scrubbing_factory(factory))


def log_filter_installed() -> bool:
    """Whether ``install_log_filter`` ran in this process (records are scrubbed as they are made)."""
    return bool(getattr(logging.getLogRecordFactory(), "phi_scrubbing", False))


# -- spans ----------------------------------------------------------------------------------------

SPAN_ATTRIBUTES = frozenset(
    {
        # gRPC (opentelemetry-instrumentation-grpc): service and method names, the status code.
        "rpc.system",
        "rpc.service",
        "rpc.method",
        "rpc.grpc.status_code",
        # HTTP, old and stable semantic conventions. URLs and targets lose their query strings
        # (vendor searches put emails and names there); routes are templates. A server span
        # keeps its route only: its path is whatever the caller typed (URL_KEYS).
        "http.method",
        "http.request.method",
        "http.status_code",
        "http.response.status_code",
        "http.route",
        "http.scheme",
        "http.flavor",
        "http.host",
        "http.server_name",
        "http.url",
        "http.target",
        "url.full",
        "url.path",
        "url.scheme",
        "network.protocol.version",
        # Where our services and vendors listen. Peer IPs of callers (net.peer.ip, client.address)
        # and user agents are not kept: an IP address is one of HIPAA's identifiers, and who
        # called from where is the audit log's record, not telemetry's.
        "server.address",
        "server.port",
        "net.host.name",
        "net.host.port",
        "net.peer.name",
        "net.peer.port",
        # SQLAlchemy: the statement with its literals replaced by ``?`` (parameters are bound).
        "db.system",
        "db.name",
        "db.operation",
        "db.statement",
        # Temporal's TracingInterceptor: ids Concord and Temporal mint.
        "temporalWorkflowID",
        "temporalRunID",
        "temporalActivityID",
        "error.type",
        "otel.status_code",
        # Exceptions on span events: the type; message and stacktrace are scrubbed, not dropped.
        "exception.type",
        "exception.escaped",
        "exception.message",
        "exception.stacktrace",
    }
    | {f"concord.{key}" for key in LOG_EXTRAS}
)
"""Span, event and link attribute keys that are exported; every other key is dropped."""

URL_KEYS = frozenset({"http.url", "http.target", "url.full", "url.path"})
"""Stripped of query, fragment and credentials on client spans; dropped from SERVER spans: ``http.route`` says which endpoint; the path's segments are ids a
caller typed (or anything else it typed: ``/integrations/<name>/status``)."""
_SQL_LITERAL = re.compile(r"'(?:[^']|'')*'|(?<![\w$.])\d+(?:\.\d+)?(?![\w.])")


def strip_query(url: str) -> str:
    """``url`` without its query string and fragment (and without user:password)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return redact(urlunsplit((parts.scheme, netloc, parts.path, "", "")))


def scrub_sql(statement: str) -> str:
    """Quoted strings and numbers in a statement replaced by ``?``: a literal never leaves."""
    return _SQL_LITERAL.sub("?", statement)


def _scrub_value(key: str, value: Any) -> Any:
    if key in URL_KEYS and isinstance(value, str):
        return strip_query(value)
    if key == "db.statement" and isinstance(value, str):
        return redact(scrub_sql(value))
    if key == "exception.message":
        return REDACTED
    if key == "exception.stacktrace" and isinstance(value, str):
        return scrub_traceback(value)
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return tuple(redact(v) if isinstance(v, str) else v for v in value)
    return value


def scrub_attributes(attributes: Mapping[str, Any] | None, *, server: bool = False) -> dict[str, Any]:
    """The allow-listed attributes, their values scrubbed (a server span's without its URL)."""
    return {
        k: _scrub_value(k, v)
        for k, v in (attributes or {}).items()
        if k in SPAN_ATTRIBUTES and not (server and k in URL_KEYS)
    }


def scrub_description(description: str | None) -> str | None:
    """A status description. Instrumentations write ``"<ExceptionType>: <message>"``: the type
    stays. Concord's own (gRPC details of domain errors) name fields, not values: shapes go."""
    if not description:
        return description
    match = _EXCEPTION_LINE.match(description)
    if match and match.end() < len(description) and re.search(r"(Error|Exception|Exit)$", match.group(1)):
        return f"{match.group(1)}: {REDACTED}"
    return redact(description)


def scrub_span(span: ReadableSpan) -> ReadableSpan:
    """A sanitised copy of a finished span (ReadableSpan is immutable)."""
    return ReadableSpan(
        name=redact(span.name.partition("?")[0]),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=scrub_attributes(span.attributes, server=span.kind is SpanKind.SERVER),
        events=[Event(e.name, scrub_attributes(e.attributes), e.timestamp) for e in span.events],
        links=[Link(link.context, scrub_attributes(link.attributes)) for link in span.links],
        kind=span.kind,
        status=Status(span.status.status_code, scrub_description(span.status.description)),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class SanitizingSpanProcessor(SpanProcessor):
    """Wraps an exporting processor (Simple/BatchSpanProcessor): it gets only sanitised copies.
    Every exporter ``setup_telemetry`` installs sits behind one of these."""

    def __init__(self, inner: SpanProcessor) -> None:
        self.inner = inner

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self.inner.on_end(scrub_span(span))

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


# -- metrics --------------------------------------------------------------------------------------

METRIC_ATTRIBUTES = frozenset({"outcome", "vendor", "integration_type", "entity_type", "direction", "status"})
"""Metric attribute keys: enumerations only (ids would also explode cardinality)."""


def metric_views() -> list:
    """Views for a MeterProvider that keep only ``METRIC_ATTRIBUTES`` on every instrument."""
    from opentelemetry.sdk.metrics.view import View

    return [View(instrument_name="*", attribute_keys=set(METRIC_ATTRIBUTES))]
