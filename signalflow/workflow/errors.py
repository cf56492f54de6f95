"""Errors of the workflow model, and their translation into field-path messages.

```
DefinitionError          an audience or workflow that cannot be saved (never retryable)
 +-- ReferenceProblem    it names saved objects that are missing or form a cycle
TemplateSyntaxError      a template that cannot be parsed (a ValueError, so pydantic
                         reports it at the field that holds the template)
```

Model validators raise `ValueError` or `PydanticCustomError` with a sentence a
revenue-operations user understands; pydantic attaches the field path. The api turns
a `ValidationError` into `[{"path": "steps.2.params.url", "message": ...}]` with
`error_list()` and answers 422 with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

# Error types our own validators raise; their message is already meant for a user.
OUR_ERROR_TYPE = "signalflow"


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with a definition: where (dotted path) and why (a sentence)."""

    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class DefinitionError(ValueError):
    """An audience or workflow that cannot be saved; lists every problem found.

    Not retryable: the definition must change.
    """

    retryable = False

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        self.problems = list(problems)
        summary = "; ".join(
            f"{p.path or '(definition)'}: {p.message}" for p in problems
        )
        super().__init__(summary)

    def as_list(self) -> list[dict[str, str]]:
        return [problem.as_dict() for problem in self.problems]


class ReferenceProblem(DefinitionError):
    """The definition names audiences that do not exist or that contain each other."""


class TemplateSyntaxError(ValueError):
    """A template that cannot be parsed; the message quotes the offending text."""


def user_error(message: str, **context: Any) -> PydanticCustomError:
    """Return an error pydantic reports with its field path and `message` verbatim.

    With `context`, `message` is formatted with it first (`{value!r}` quotes the
    bad value); without, it is used as written, braces included.
    """
    text = message.format(**context) if context else message
    return PydanticCustomError(OUR_ERROR_TYPE, "{text}", {"text": text})


def raise_at(title: str, problems: Iterable[tuple[tuple[str | int, ...], str]]) -> None:
    """Raise one `ValidationError` carrying problems found by a whole-model check.

    A model validator sees the whole definition but pydantic would report its error
    at the model's own location; this keeps the exact path of each problem (for
    example `steps.3.params.message`). Does nothing when `problems` is empty.
    """
    details = [
        InitErrorDetails(
            type=PydanticCustomError(OUR_ERROR_TYPE, "{text}", {"text": message}),
            loc=loc,
            input=None,
        )
        for loc, message in problems
    ]
    if details:
        raise ValidationError.from_exception_data(title, details)


def error_list(exc: ValidationError, data: Any = None) -> list[dict[str, str]]:
    """Turn a `ValidationError` into `[{"path": ..., "message": ...}]` for a 422.

    Paths are dotted (`steps.2.params.url`); the tags pydantic inserts for
    discriminated unions (`steps.2.webhook.params`) are dropped. Pass the submitted
    `data` when you have it: the tags are then recognised exactly, by the `kind` of
    the object they stand for; without it, any path element that names one of the
    model's kinds is dropped.
    """
    return [
        FieldProblem(_path(error["loc"], data), _message(error)).as_dict()
        for error in exc.errors(include_url=False)
    ]


def problems_of(exc: ValidationError, data: Any = None) -> list[FieldProblem]:
    """Like `error_list()`, as `FieldProblem` values."""
    return [
        FieldProblem(item["path"], item["message"]) for item in error_list(exc, data)
    ]


def _path(loc: Sequence[str | int], data: Any) -> str:
    parts: list[str] = []
    node = data
    for element in loc:
        if _is_union_tag(element, node, have_data=data is not None):
            continue
        parts.append(str(element))
        node = _descend(node, element)
    return ".".join(parts)


def _is_union_tag(element: str | int, node: Any, *, have_data: bool) -> bool:
    if not isinstance(element, str):
        return False
    if have_data:
        return isinstance(node, Mapping) and node.get("kind") == element
    return element in _union_tags()


def _descend(node: Any, element: str | int) -> Any:
    if isinstance(node, Mapping):
        return node.get(element)
    if isinstance(node, list) and isinstance(element, int) and element < len(node):
        return node[element]
    return None


def _union_tags() -> frozenset[str]:
    # Imported late: the model modules import this one.
    from signalflow.workflow.filters import FILTER_KINDS
    from signalflow.workflow.steps import STEP_KINDS, UNION_TAGS

    return frozenset(FILTER_KINDS) | frozenset(STEP_KINDS) | UNION_TAGS


_FRIENDLY: dict[str, str] = {
    "missing": "This field is required.",
    "extra_forbidden": "This field is not recognised here; check its spelling.",
    "int_parsing": "Expected a whole number, got {input!r}.",
    "int_type": "Expected a whole number, got {input!r}.",
    "int_from_float": "Expected a whole number, got {input!r}.",
    "float_parsing": "Expected a number, got {input!r}.",
    "float_type": "Expected a number, got {input!r}.",
    "bool_parsing": "Expected yes or no (true/false), got {input!r}.",
    "bool_type": "Expected yes or no (true/false), got {input!r}.",
    "string_type": "Expected text, got {input!r}.",
    "list_type": "Expected a list, got {input!r}.",
    "dict_type": "Expected an object of names and values, got {input!r}.",
    "model_type": "Expected an object, got {input!r}.",
    "model_attributes_type": "Expected an object, got {input!r}.",
    "time_parsing": "Expected a time of day such as '09:00', got {input!r}.",
    "time_type": "Expected a time of day such as '09:00', got {input!r}.",
}


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == OUR_ERROR_TYPE:
        return error["msg"]
    if kind in _FRIENDLY:
        return _FRIENDLY[kind].format(input=_short(error.get("input")))
    return _bounded_message(kind, ctx, error)


def _bounded_message(kind: str, ctx: Mapping[str, Any], error: ErrorDetails) -> str:
    value = _short(error.get("input"))
    match kind:
        case "greater_than_equal":
            return f"Must be at least {ctx['ge']}, got {value!r}."
        case "greater_than":
            return f"Must be more than {ctx['gt']}, got {value!r}."
        case "less_than_equal":
            return f"Must be at most {ctx['le']}, got {value!r}."
        case "less_than":
            return f"Must be less than {ctx['lt']}, got {value!r}."
        case "too_short":
            return f"Needs at least {ctx['min_length']} item(s)."
        case "too_long":
            return f"Allows at most {ctx['max_length']} item(s)."
        case "string_too_short":
            return (
                "This field cannot be empty."
                if ctx.get("min_length") == 1
                else (f"Needs at least {ctx['min_length']} characters.")
            )
        case "string_too_long":
            return f"Allows at most {ctx['max_length']} characters."
        case "string_pattern_mismatch":
            return f"{value!r} is not in the expected form ({ctx['pattern']})."
        case "literal_error":
            return f"Expected one of {ctx['expected']}, got {value!r}."
        case "enum":
            return f"Expected one of {ctx['expected']}, got {value!r}."
        case "union_tag_invalid":
            return (
                f"Unknown kind {ctx['tag']!r}; expected one of {ctx['expected_tags']}."
            )
        case "union_tag_not_found":
            return f"Say which kind this is with a {ctx['discriminator']} field."
    return error["msg"]


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > 80:
        return value[:77] + "..."
    if isinstance(value, (dict, list)):
        text = repr(value)
        return text if len(text) <= 80 else text[:77] + "..."
    return value
