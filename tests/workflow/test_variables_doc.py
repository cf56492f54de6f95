"""docs/variables.md shows exactly the variable catalog the code has."""

from __future__ import annotations

from pathlib import Path

from signalflow.workflow.templates import parse_template
from signalflow.workflow.variables import CATALOG, catalog_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "variables.md"
START, END = "<!-- catalog:start -->\n", "<!-- catalog:end -->"


def test_doc_catalog_matches_the_code() -> None:
    text = DOC.read_text(encoding="utf-8")
    documented = text[text.index(START) + len(START) : text.index(END)]

    assert documented == catalog_markdown(), (
        "docs/variables.md is out of date; paste catalog_markdown() between the "
        "catalog markers"
    )


def test_every_catalog_name_parses_as_itself() -> None:
    for variable in CATALOG:
        refs = list(parse_template(f"${variable.name}.").refs())
        assert [ref.name for ref in refs] == [variable.name]


def test_catalog_names_are_unique() -> None:
    names = [variable.name for variable in CATALOG]

    assert len(names) == len(set(names))
