"""A small SOQL: ``SELECT f1, Rel.f2, COUNT() FROM Obj [WHERE ...] [ORDER BY ...] [LIMIT n] [OFFSET n]``
with =, !=, <>, <, >, <=, >=, IN, NOT IN, LIKE, AND / OR / NOT and parentheses (AND and OR can't be
mixed without parentheses, as in Salesforce), string / number / boolean / null / date / datetime
literals and TODAY, YESTERDAY, TOMORROW, LAST_N_DAYS:n, NEXT_N_DAYS:n."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import ids, schema, timefmt
from .errors import SfError, sf_error

if TYPE_CHECKING:
    from .state import Org

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\w:]))
  | (?P<num>[+-]?\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?::\d+)?)
  | (?P<op>!=|<>|<=|>=|=|<|>|\(|\)|,)
    """,
    re.VERBOSE,
)
_KEYWORDS = {
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC", "NULLS", "FIRST",
    "LAST", "LIMIT", "OFFSET", "TRUE", "FALSE", "NULL", "GROUP", "HAVING", "WITH", "FOR", "ALL", "ROWS", "INCLUDES",
    "EXCLUDES", "USING", "TYPEOF",
}  # fmt: skip
_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "'": "'",
    '"': '"',
    "\\": "\\",
    "%": "\\%",
    "_": "\\_",
}
_NAMED_DATES = {"TODAY", "YESTERDAY", "TOMORROW", "LAST_N_DAYS", "NEXT_N_DAYS"}
_FILTER_TYPE = {
    "boolean": "boolean",
    "int": "int",
    "double": "double",
    "date": "date",
    "datetime": "dateTime",
}


@dataclass
class Token:
    kind: str
    text: str
    pos: int

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "ident" else ""


@dataclass
class Path:
    """A selected or filtered field, direct (``Name``) or through a lookup (``Account.Name``)."""

    text: str
    field: schema.Field  # the field on the queried object or, through a relationship, on a target
    relationship: schema.Field | None = None  # the lookup on the queried object
    targets: tuple[schema.SObject, ...] = ()

    def value(self, record: dict[str, Any], org: Org) -> Any:
        if self.relationship is None:
            return record.get(self.field.name)
        parent = _parent(record, self.relationship, org)
        return None if parent is None else parent[1].get(self.field.name)


def _parent(record: dict[str, Any], lookup: schema.Field, org: Org) -> tuple[schema.SObject, dict[str, Any]] | None:
    ref = record.get(lookup.name)
    if ref is None:
        return None
    found = org.find(ref)
    if found is None or found[1].get("IsDeleted"):
        return None
    return found


@dataclass
class Query:
    sobject: schema.SObject
    fields: list[Path] = field(default_factory=list)
    count_only: bool = False
    aggregates: list[tuple[str, Path | None]] = field(default_factory=list)  # (alias, field)
    where: Callable[[dict[str, Any]], bool] | None = None
    order: list[tuple[Path, bool, bool]] = field(default_factory=list)  # (path, descending, nulls_first)
    limit: int | None = None
    offset: int = 0


class _Parser:
    def __init__(self, text: str, org: Org, now: float) -> None:
        self.text = text
        self.org = org
        self.now = now
        self.tokens = self._tokenize(text)
        self.i = 0

    # -- errors ----------------------------------------------------------------------------------

    def _where(self, pos: int) -> tuple[int, int, str]:
        before = self.text[:pos]
        row = before.count("\n") + 1
        col = pos - (before.rfind("\n") + 1) + 1
        line = self.text.splitlines()[row - 1] if self.text.splitlines() else ""
        return row, col, line

    def error(self, code: str, message: str, pos: int) -> SfError:
        row, col, line = self._where(pos)
        return sf_error(400, code, f"\n{line}\n{' ' * (col - 1)}^\nERROR at Row:{row}:Column:{col}\n{message}")

    def unexpected(self, token: Token) -> SfError:
        shown = token.text if token.kind != "eof" else "<EOF>"
        return self.error("MALFORMED_QUERY", f"unexpected token: {shown}", token.pos)

    # -- tokens ----------------------------------------------------------------------------------

    def _tokenize(self, text: str) -> list[Token]:
        tokens, pos = [], 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None:
                raise self.error(
                    "MALFORMED_QUERY", f"line 1:{pos} no viable alternative at character '{text[pos]}'", pos
                )
            kind = match.lastgroup or ""
            if kind != "ws":
                tokens.append(Token(kind, match.group(), pos))
            pos = match.end()
        tokens.append(Token("eof", "", len(text)))
        return tokens

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def keyword(self, *words: str) -> bool:
        if self.tok.upper in words:
            self.i += 1
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            raise self.unexpected(self.tok)

    def expect_op(self, op: str) -> None:
        if self.tok.kind != "op" or self.tok.text != op:
            raise self.unexpected(self.tok)
        self.i += 1

    def is_op(self, op: str) -> bool:
        return self.tok.kind == "op" and self.tok.text == op

    # -- grammar ---------------------------------------------------------------------------------

    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        items: list[Token | tuple[str, Token | None, Token | None]] = []
        count_only = False
        while True:
            token = self.tok
            if token.kind == "ident" and token.upper == "COUNT" and self.tokens[self.i + 1].text == "(":
                self.i += 2
                if self.is_op(")"):
                    self.i += 1
                    count_only = True
                else:
                    inner = self.take()
                    if inner.kind != "ident" or inner.upper in _KEYWORDS:
                        raise self.unexpected(inner)
                    self.expect_op(")")
                    alias = None
                    if self.tok.kind == "ident" and self.tok.upper not in _KEYWORDS:
                        alias = self.take()
                    items.append(("count", inner, alias))
            elif token.kind == "ident" and token.upper not in _KEYWORDS:
                items.append(self.take())
            else:
                raise self.unexpected(token)
            if not self.is_op(","):
                break
            self.i += 1
        if count_only and items:
            raise self.error("MALFORMED_QUERY", "COUNT() can't be used with other fields", self.tokens[1].pos)
        self.expect_keyword("FROM")
        name = self.take()
        if name.kind != "ident" or name.upper in _KEYWORDS:
            raise self.unexpected(name)
        obj = schema.sobject(name.text)
        if obj is None:
            raise self.error(
                "INVALID_TYPE",
                f"sObject type '{name.text}' is not supported. If you are attempting to use a custom object, be sure "
                "to append the '__c' after the entity name. Please reference your WSDL or the describe call for the "
                "appropriate names.",
                name.pos,
            )
        query = Query(obj, count_only=count_only)
        seen: set[str] = set()
        for item in items:
            if isinstance(item, tuple):
                _, inner, alias = item
                path = None if inner is None else self.path(obj, inner)
                query.aggregates.append((alias.text if alias else f"expr{len(query.aggregates)}", path))
                continue
            path = self.path(obj, item)
            if path.text.lower() not in seen:
                seen.add(path.text.lower())
                query.fields.append(path)
        if query.aggregates and query.fields:
            raise self.error(
                "MALFORMED_QUERY",
                "Field must be grouped or aggregated: " + query.fields[0].text,
                self.tokens[1].pos,
            )
        if self.keyword("WHERE"):
            query.where = self.expression(obj)
        if self.keyword("ORDER"):
            self.expect_keyword("BY")
            while True:
                token = self.take()
                if token.kind != "ident" or token.upper in _KEYWORDS:
                    raise self.unexpected(token)
                path = self.path(obj, token)
                descending = False
                if self.keyword("DESC"):
                    descending = True
                else:
                    self.keyword("ASC")
                nulls_first = not descending
                if self.keyword("NULLS"):
                    if self.keyword("FIRST"):
                        nulls_first = True
                    elif self.keyword("LAST"):
                        nulls_first = False
                    else:
                        raise self.unexpected(self.tok)
                query.order.append((path, descending, nulls_first))
                if not self.is_op(","):
                    break
                self.i += 1
        if self.keyword("LIMIT"):
            query.limit = self.integer()
        if self.keyword("OFFSET"):
            token = self.tok
            query.offset = self.integer()
            if query.offset > 2000:
                raise self.error("NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000", token.pos)
        if self.tok.kind != "eof":
            raise self.unexpected(self.tok)
        return query

    def integer(self) -> int:
        token = self.take()
        if token.kind != "num" or not token.text.isdigit():
            raise self.unexpected(token)
        return int(token.text)

    def path(self, obj: schema.SObject, token: Token) -> Path:
        parts = token.text.split(".")
        if len(parts) == 1:
            f = obj.field(parts[0])
            if f is None:
                raise self._no_column(token, parts[0], obj)
            return Path(f.name, f)
        if len(parts) != 2:
            raise self.error(
                "INVALID_FIELD", f"Didn't understand relationship '{'.'.join(parts[:-1])}' in field path.", token.pos
            )
        lookup = obj.relationship(parts[0])
        if lookup is None:
            raise self.error(
                "INVALID_FIELD",
                f"Didn't understand relationship '{parts[0]}' in field path. If you are attempting to use a custom "
                "relationship, be sure to append the '__r' after the custom relationship name. Please reference your "
                "WSDL or the describe call for the appropriate names.",
                token.pos,
            )
        targets = tuple(schema.SOBJECTS[name] for name in lookup.reference_to)
        for target in targets:
            f = target.field(parts[1])
            if f is not None:
                return Path(f"{lookup.relationship_name}.{f.name}", f, lookup, targets)
        raise self._no_column(token, parts[1], targets[0])

    def _no_column(self, token: Token, name: str, obj: schema.SObject) -> SfError:
        return self.error(
            "INVALID_FIELD",
            f"No such column '{name}' on entity '{obj.name}'. If you are attempting to use a custom field, be sure to "
            "append the '__c' after the custom field name. Please reference your WSDL or the describe call for the "
            "appropriate names.",
            token.pos,
        )

    # -- conditions ------------------------------------------------------------------------------

    def expression(self, obj: schema.SObject) -> Callable[[dict[str, Any]], bool]:
        first = self.unary(obj)
        joiner = None
        terms = [first]
        while self.tok.upper in ("AND", "OR"):
            word = self.tok.upper
            if joiner is not None and word != joiner:
                raise self.unexpected(self.tok)  # SOQL needs parentheses to mix AND and OR
            joiner = word
            self.i += 1
            terms.append(self.unary(obj))
        if joiner is None:
            return first
        if joiner == "AND":
            return lambda r: all(t(r) for t in terms)
        return lambda r: any(t(r) for t in terms)

    def unary(self, obj: schema.SObject) -> Callable[[dict[str, Any]], bool]:
        if self.keyword("NOT"):
            inner = self.unary(obj)
            return lambda r: not inner(r)
        if self.is_op("("):
            self.i += 1
            inner = self.expression(obj)
            self.expect_op(")")
            return inner
        return self.condition(obj)

    def condition(self, obj: schema.SObject) -> Callable[[dict[str, Any]], bool]:
        token = self.take()
        if token.kind != "ident" or token.upper in _KEYWORDS:
            raise self.unexpected(token)
        path = self.path(obj, token)
        org = self.org
        if self.keyword("NOT"):
            self.expect_keyword("IN")
            values = self.value_list(path)
            return lambda r: not _in(path.value(r, org), values, path.field)
        if self.keyword("IN"):
            values = self.value_list(path)
            return lambda r: _in(path.value(r, org), values, path.field)
        if self.keyword("LIKE"):
            literal = self.take()
            if literal.kind != "str":
                raise self.unexpected(literal)
            if not path.field.text:
                raise self.error(
                    "INVALID_QUERY_FILTER_OPERATOR", f"invalid operator on {path.field.type} field: LIKE", token.pos
                )
            pattern = _like(_unquote(literal.text))
            return lambda r: isinstance(v := path.value(r, org), str) and pattern.match(v) is not None
        op = self.take()
        if op.kind != "op" or op.text in ("(", ")", ","):
            raise self.unexpected(op)
        value = self.literal(path)
        operator = "!=" if op.text == "<>" else op.text
        # Ids compare as strings in range filters (PK chunking relies on it); booleans and lookups do not.
        if operator not in ("=", "!=") and path.field.type in ("boolean", "reference"):
            raise self.error(
                "INVALID_QUERY_FILTER_OPERATOR", f"invalid operator on {path.field.type} field: {op.text}", op.pos
            )
        return lambda r: _compare(path.value(r, org), operator, value, path.field)

    def value_list(self, path: Path) -> list[Any]:
        self.expect_op("(")
        values = [self.literal(path)]
        while self.is_op(","):
            self.i += 1
            values.append(self.literal(path))
        self.expect_op(")")
        return values

    def literal(self, path: Path) -> Any:
        token = self.take()
        f = path.field
        kind = f.type
        if token.kind == "ident" and token.upper == "NULL":
            return None
        expected = _FILTER_TYPE.get(kind, "string")
        quoted = kind not in _FILTER_TYPE

        def mismatch() -> SfError:
            how = "should be enclosed in quotes" if quoted else "should not be enclosed in quotes"
            return self.error(
                "INVALID_FIELD",
                f"value of filter criterion for field '{path.text}' must be of type {expected} and {how}",
                token.pos,
            )

        if token.kind == "eof" or (token.kind == "op"):
            raise self.unexpected(token)
        if kind in ("id", "reference"):
            if token.kind != "str":
                raise mismatch()
            raw = _unquote(token.text)
            canonical = ids.to18(raw)
            if canonical is None:
                raise self.error("INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {raw}", token.pos)
            return canonical
        if f.text:
            if token.kind != "str":
                raise mismatch()
            return _unquote(token.text)
        if kind == "boolean":
            if token.upper not in ("TRUE", "FALSE"):
                raise mismatch()
            return token.upper == "TRUE"
        if kind in ("int", "double"):
            if token.kind != "num":
                raise mismatch()
            return float(token.text)
        if kind == "datetime":
            if token.kind == "datetime":
                return timefmt.parse_datetime(token.text)
            if token.kind == "ident" and token.upper.split(":")[0] in _NAMED_DATES:
                return self.named_range(token, as_datetime=True)
            raise mismatch()
        if kind == "date":
            if token.kind == "date":
                return timefmt.parse_date(token.text)
            if token.kind == "ident" and token.upper.split(":")[0] in _NAMED_DATES:
                return self.named_range(token, as_datetime=False)
            raise mismatch()
        raise mismatch()

    def named_range(self, token: Token, *, as_datetime: bool) -> _Range:
        name, _, n = token.upper.partition(":")
        today = datetime.fromtimestamp(self.now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        day = timedelta(days=1)
        if name in ("LAST_N_DAYS", "NEXT_N_DAYS"):
            if not n.isdigit():
                raise self.unexpected(token)
            span = int(n) * day
            start, end = (today - span, today + day) if name == "LAST_N_DAYS" else (today + day, today + day + span)
        elif n:
            raise self.unexpected(token)
        else:
            offset = {"TODAY": 0, "YESTERDAY": -1, "TOMORROW": 1}[name]
            start = today + offset * day
            end = start + day
        if as_datetime:
            return _Range(int(start.timestamp()) * 1000, int(end.timestamp()) * 1000)
        return _Range(start.date().isoformat(), end.date().isoformat())


@dataclass(frozen=True)
class _Range:
    start: Any  # inclusive
    end: Any  # exclusive


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _like(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    return re.compile("^" + "".join(out) + "$", re.IGNORECASE | re.DOTALL)


def _norm(value: Any, f: schema.Field) -> Any:
    if isinstance(value, str) and f.text:
        return value.lower()  # SOQL text comparisons ignore case
    if isinstance(value, int) and not isinstance(value, bool) and f.type in ("int", "double"):
        return float(value)
    return value


def _compare(value: Any, op: str, literal: Any, f: schema.Field) -> bool:
    if isinstance(literal, _Range):
        if value is None:
            return op == "!="
        inside = literal.start <= value < literal.end
        return {
            "=": inside,
            "!=": not inside,
            "<": value < literal.start,
            "<=": value < literal.end,
            ">": value >= literal.end,
            ">=": value >= literal.start,
        }[op]
    if literal is None:
        return (value is None) if op == "=" else (value is not None) if op == "!=" else False
    if value is None:
        return op == "!="
    a, b = _norm(value, f), _norm(literal, f)
    if op == "=":
        return a == b
    if op == "!=":
        return a != b
    try:
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    except TypeError:
        return False


def _in(value: Any, values: list[Any], f: schema.Field) -> bool:
    return _norm(value, f) in {_norm(v, f) for v in values}


# -- execution -------------------------------------------------------------------------------------


def parse(text: str, org: Org, now: float) -> Query:
    return _Parser(text, org, now).parse()


def _sort_key(query: Query, org: Org) -> Callable[[dict[str, Any], dict[str, Any]], int]:
    def compare(a: dict[str, Any], b: dict[str, Any]) -> int:
        for path, descending, nulls_first in query.order:
            va, vb = _norm(path.value(a, org), path.field), _norm(path.value(b, org), path.field)
            if va is None or vb is None:
                if va is None and vb is None:
                    continue
                return (-1 if va is None else 1) * (1 if nulls_first else -1)
            if va == vb:
                continue
            result = -1 if va < vb else 1
            return -result if descending else result
        return 0

    return compare


def execute(query: Query, org: Org, *, include_deleted: bool, version: int) -> tuple[int, list[dict[str, Any]]]:
    """Runs a parsed query: (totalSize, serialized records)."""
    rows = [
        r
        for r in org.table(query.sobject.name).values()
        if (include_deleted or not r.get("IsDeleted")) and (query.where is None or query.where(r))
    ]
    if query.count_only:
        return len(rows), []
    if query.aggregates:
        record: dict[str, Any] = {"attributes": {"type": "AggregateResult"}}
        for alias, path in query.aggregates:
            record[alias] = sum(1 for r in rows if path is None or path.value(r, org) is not None)
        return 1, [record]
    if query.order:
        rows.sort(key=functools.cmp_to_key(_sort_key(query, org)))
    rows = rows[query.offset :]
    if query.limit is not None:
        rows = rows[: query.limit]
    return len(rows), [serialize_row(query, r, org, version) for r in rows]


def value_out(f: schema.Field, value: Any) -> Any:
    if f.type == "datetime":
        return timefmt.rest(value)
    if f.type == "double" and value is not None:
        return float(value)
    return value


def attributes(obj: schema.SObject, record_id: str, version: int) -> dict[str, str]:
    return {"type": obj.name, "url": f"/services/data/v{version}.0/sobjects/{obj.name}/{record_id}"}


def serialize_row(query: Query, record: dict[str, Any], org: Org, version: int) -> dict[str, Any]:
    out: dict[str, Any] = {"attributes": attributes(query.sobject, record["Id"], version)}
    for path in query.fields:
        if path.relationship is None:
            out[path.field.name] = value_out(path.field, record.get(path.field.name))
            continue
        name = path.relationship.relationship_name or ""
        parent = _parent(record, path.relationship, org)
        if parent is None:
            out.setdefault(name, None)
            continue
        target, parent_record = parent
        nested = out.get(name) or {"attributes": attributes(target, parent_record["Id"], version)}
        target_field = target.field(path.field.name)
        nested[path.field.name] = value_out(target_field, parent_record.get(path.field.name)) if target_field else None
        out[name] = nested
    return out
