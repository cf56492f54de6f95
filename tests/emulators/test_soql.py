"""The SOQL subset the Salesforce emulator understands."""

from __future__ import annotations

import pytest
from simple_salesforce.format import format_soql

from signalflow.emulators.soql import SoqlError, parse_soql

ROWS: list[dict[str, str | None]] = [
    {"Id": "1", "Email": "Ada@Acme.example", "Website": "https://www.acme.example"},
    {"Id": "2", "Email": "bo@globex.example", "Website": "globex.example"},
    {"Id": "3", "Email": None, "Website": "https://acme_labs.example"},
]


def selected(query: str) -> list[str]:
    parsed = parse_soql(query)
    rows = [str(r["Id"]) for r in ROWS if parsed.matches(r)]
    return rows[: parsed.limit] if parsed.limit is not None else rows


def test_equality_ignores_case() -> None:
    query = format_soql("SELECT Id FROM Contact WHERE Email = {}", "ada@acme.example")

    assert selected(query) == ["1"]


def test_like_honours_wildcards_and_escapes() -> None:
    assert selected("SELECT Id FROM Account WHERE Website LIKE '%acme%'") == ["1", "3"]
    query = format_soql(
        "SELECT Id FROM Account WHERE Website LIKE '%{:like}%'", "acme_"
    )
    assert selected(query) == ["3"]


def test_and_binds_tighter_than_or() -> None:
    query = (
        "SELECT Id FROM Contact WHERE Email = null OR Website = 'globex.example' "
        "AND Id = '2'"
    )

    assert selected(query) == ["2", "3"]


def test_in_and_limit() -> None:
    assert selected("SELECT Id FROM Contact WHERE Id IN ('1', '3') LIMIT 1") == ["1"]


def test_quotes_inside_values_are_unescaped() -> None:
    parsed = parse_soql(
        format_soql("SELECT Id FROM Contact WHERE Email = {}", "o'hara")
    )

    assert parsed.matches({"Email": "O'Hara"})


def test_fields_and_object_are_read() -> None:
    parsed = parse_soql("select Id, Name , OwnerId from Account")

    assert parsed.fields == ("Id", "Name", "OwnerId")
    assert parsed.sobject == "Account" and parsed.where == ()


@pytest.mark.parametrize(
    "query",
    [
        "SELECT FROM Contact",
        "SELECT Id Contact",
        "SELECT Id FROM Contact WHERE Email",
        "SELECT Id FROM Contact WHERE Email = 'unterminated",
        "SELECT Id FROM Contact WHERE (Email = 'a')",
        "SELECT Id FROM Contact LIMIT -1",
        "SELECT Id FROM Contact ORDER BY Name",
    ],
)
def test_outside_the_subset_is_an_error(query: str) -> None:
    with pytest.raises(SoqlError):
        parse_soql(query)
