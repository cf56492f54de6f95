"""The small part of SOQL the Salesforce emulator understands.

    SELECT field, ... FROM Object
      [WHERE condition {AND condition | OR condition}]
      [LIMIT n]

A condition is `field = value`, `field != value`, `field LIKE 'pattern'` or
`field IN (value, ...)`; values are quoted strings (with SOQL's backslash
escapes), numbers, `true`, `false` or `null`. AND binds tighter than OR, and
there are no parentheses. String comparison ignores case, as Salesforce's does.
Anything else is a `SoqlError`, which the emulator answers as MALFORMED_QUERY.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*')
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op>!=|<>|=|\(|\)|,)
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_ESCAPES = {
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
}
_LIKE_ESCAPES = {"%": "\\%", "_": "\\_"}


class SoqlError(ValueError):
    """The query is outside the supported subset or malformed."""


@dataclass(frozen=True)
class Condition:
    """`field op value`; for LIKE, `value` is a compiled pattern."""

    field: str
    op: str
    value: Any

    def holds(self, record: Mapping[str, Any]) -> bool:
        """Whether a record satisfies this condition."""
        actual = _lookup(record, self.field)
        if self.op == "LIKE":
            return actual is not None and bool(self.value.fullmatch(str(actual)))
        if self.op == "IN":
            return any(_equal(actual, v) for v in self.value)
        if self.op == "=":
            return _equal(actual, self.value)
        return not _equal(actual, self.value)


@dataclass(frozen=True)
class SoqlQuery:
    """A parsed query: `where` is a list of OR-ed groups of AND-ed conditions."""

    fields: tuple[str, ...]
    sobject: str
    where: tuple[tuple[Condition, ...], ...]
    limit: int | None

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether a record is selected by the WHERE clause."""
        if not self.where:
            return True
        return any(all(c.holds(record) for c in group) for group in self.where)


def parse_soql(text: str) -> SoqlQuery:
    """Parse a query of the supported subset; raises SoqlError otherwise."""
    tokens = _Tokens(_tokenize(text))
    tokens.expect_word("SELECT")
    fields = _parse_fields(tokens)
    tokens.expect_word("FROM")
    sobject = tokens.take_word()
    where: list[tuple[Condition, ...]] = []
    limit: int | None = None
    if tokens.accept_word("WHERE"):
        where = _parse_where(tokens)
    if tokens.accept_word("LIMIT"):
        limit = _parse_limit(tokens)
    if not tokens.done():
        raise SoqlError(f"unexpected token {tokens.peek()!r}")
    return SoqlQuery(tuple(fields), sobject, tuple(where), limit)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    stripped = text.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None or match.end() == position:
            raise SoqlError(f"unexpected character at {stripped[position:][:20]!r}")
        kind = match.lastgroup
        assert kind is not None  # every alternative is a named group
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Tokens:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self._tokens = tokens
        self._index = 0

    def done(self) -> bool:
        return self._index >= len(self._tokens)

    def peek(self) -> str:
        return self._tokens[self._index][1] if not self.done() else "<end>"

    def take(self) -> tuple[str, str]:
        if self.done():
            raise SoqlError("unexpected end of query")
        token = self._tokens[self._index]
        self._index += 1
        return token

    def take_word(self) -> str:
        kind, value = self.take()
        if kind != "word":
            raise SoqlError(f"expected a name, got {value!r}")
        return value

    def accept_word(self, keyword: str) -> bool:
        if not self.done() and self.peek().upper() == keyword:
            self._index += 1
            return True
        return False

    def expect_word(self, keyword: str) -> None:
        if not self.accept_word(keyword):
            raise SoqlError(f"expected {keyword}, got {self.peek()!r}")

    def accept_op(self, op: str) -> bool:
        if not self.done() and self._tokens[self._index] == ("op", op):
            self._index += 1
            return True
        return False


def _parse_fields(tokens: _Tokens) -> list[str]:
    fields = [tokens.take_word()]
    while tokens.accept_op(","):
        fields.append(tokens.take_word())
    return fields


def _parse_where(tokens: _Tokens) -> list[tuple[Condition, ...]]:
    groups: list[tuple[Condition, ...]] = []
    group = [_parse_condition(tokens)]
    while True:
        if tokens.accept_word("AND"):
            group.append(_parse_condition(tokens))
        elif tokens.accept_word("OR"):
            groups.append(tuple(group))
            group = [_parse_condition(tokens)]
        else:
            groups.append(tuple(group))
            return groups


def _parse_condition(tokens: _Tokens) -> Condition:
    field = tokens.take_word()
    if tokens.accept_word("LIKE"):
        kind, raw = tokens.take()
        if kind != "string":
            raise SoqlError(f"expected a quoted LIKE pattern, got {raw!r}")
        return Condition(field, "LIKE", _like_pattern(raw[1:-1]))
    if tokens.accept_word("IN"):
        return Condition(field, "IN", _parse_list(tokens))
    if tokens.accept_op("="):
        return Condition(field, "=", _parse_value(tokens))
    if tokens.accept_op("!=") or tokens.accept_op("<>"):
        return Condition(field, "!=", _parse_value(tokens))
    raise SoqlError(
        f"expected =, !=, LIKE or IN after {field!r}, got {tokens.peek()!r}"
    )


def _parse_list(tokens: _Tokens) -> tuple[Any, ...]:
    if not tokens.accept_op("("):
        raise SoqlError(f"expected ( after IN, got {tokens.peek()!r}")
    values = [_parse_value(tokens)]
    while tokens.accept_op(","):
        values.append(_parse_value(tokens))
    if not tokens.accept_op(")"):
        raise SoqlError(f"expected ) to close IN, got {tokens.peek()!r}")
    return tuple(values)


def _parse_value(tokens: _Tokens) -> Any:
    kind, raw = tokens.take()
    if kind == "string":
        return _unescape(raw[1:-1])
    if kind == "number":
        return float(raw) if "." in raw else int(raw)
    if kind == "word" and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if kind == "word" and raw.lower() == "null":
        return None
    raise SoqlError(f"expected a value, got {raw!r}")


def _parse_limit(tokens: _Tokens) -> int:
    kind, raw = tokens.take()
    if kind != "number" or "." in raw or int(raw) < 0:
        raise SoqlError(f"expected a non-negative integer LIMIT, got {raw!r}")
    return int(raw)


def _unescape(body: str) -> str:
    out: list[str] = []
    chars = iter(body)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        escaped = next(chars, "")
        if escaped in _ESCAPES:
            out.append(_ESCAPES[escaped])
        elif escaped in _LIKE_ESCAPES:
            # Kept escaped: only a LIKE pattern gives \% and \_ a meaning.
            out.append(_LIKE_ESCAPES[escaped])
        else:
            raise SoqlError(f"invalid escape sequence \\{escaped} in {body!r}")
    return "".join(out)


def _like_pattern(body: str) -> re.Pattern[str]:
    text = _unescape(body)
    parts: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            parts.append(re.escape(next(chars, "")))
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _lookup(record: Mapping[str, Any], field: str) -> Any:
    for name, value in record.items():
        if name.lower() == field.lower():
            return value
    return None


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str) and isinstance(expected, str):
        return actual.casefold() == expected.casefold()
    return bool(actual == expected)
