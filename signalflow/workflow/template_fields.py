"""Template-bearing fields of step parameters, validated when the step is.

A template field holds the text as written, as a `TemplateSource` (a `str`) that
remembers how it parses: `markup` for messages, `plain` for values without
formatting, `json` for payloads. Unknown variables and malformed references are
reported at the field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator

from signalflow.workflow.errors import TemplateSyntaxError, user_error
from signalflow.workflow.templates import Template, check_json_template, parse_template


class TemplateSource(str):
    """The text of a template field, as written; `markup` says how it parses."""

    markup: ClassVar[Literal["markup", "plain", "json"]] = "markup"


class PlainTemplateSource(TemplateSource):
    """A template without formatting: URLs, header values, CRM field values."""

    markup = "plain"


class JsonTemplateSource(TemplateSource):
    """A JSON payload template."""

    markup = "json"


def _markup_template(value: str) -> TemplateSource:
    _parse_or_report(lambda: parse_template(value))
    return TemplateSource(value)


def _plain_template(value: str) -> TemplateSource:
    _parse_or_report(lambda: parse_template(value, markup=False))
    return PlainTemplateSource(value)


def _json_template(value: str) -> TemplateSource:
    _parse_or_report(lambda: check_json_template(value))
    return JsonTemplateSource(value)


def _parse_or_report(parse: Callable[[], Template]) -> None:
    try:
        parse()
    except TemplateSyntaxError as exc:
        raise user_error(str(exc)) from None


MarkupTemplate = Annotated[str, AfterValidator(_markup_template)]
"""Message text: variables, emoji, *bold*, _italic_ and [links](url)."""
PlainTemplate = Annotated[str, AfterValidator(_plain_template)]
"""Text with variables only."""
JsonTemplate = Annotated[str, AfterValidator(_json_template)]
"""A JSON document whose variables become JSON strings."""
