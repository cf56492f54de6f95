"""Message templates: parsed once into nodes, rendered for each target.

Syntax (the full reference is `docs/variables.md`):

- `$First Name` reads a catalog variable, the longest catalog name that matches;
  `${First Name}` does the same where text follows without a space, and
  `${First Name|there}` falls back to `there` when the value is empty;
- `${person.<field>}`, `${account.<field>}` read any profile field,
  `${signal.<type>.<attribute>}` any attribute of the latest signal of a type, and
  `${<step name or id>: <output>}` the output of one particular step;
- `$$` is a literal dollar; a `$` not followed by a letter or `{` is literal too;
- `:rocket:`, `:gem-stone:` are emoji by name (unknown names stay as written);
- `*bold*`, `_italic_` and `[text](url)` format text (not in JSON templates).

`parse_template()` caches what it parsed, so each service can call it for every
message without paying for the parse again. Renderers: `render_plain`,
`render_slack` (Slack mrkdwn; values cannot inject mentions or links),
`render_html` (values escaped; only http, https and mailto links) and
`render_json` (a payload template whose values become JSON strings).
"""

from __future__ import annotations

import difflib
import html
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

import emoji

from signalflow.workflow.errors import TemplateSyntaxError
from signalflow.workflow.variables import (
    BY_NAME,
    OUTPUT_NAME_PATTERN,
    PROFILE_FIELD_PATTERN,
    SIGNAL_ATTRIBUTE_PATTERN,
    RunContext,
    Variable,
    as_text,
)

MAX_TEMPLATE_CHARS = 20_000

RefKind = Literal["catalog", "person_field", "account_field", "signal", "step_output"]


@dataclass(frozen=True)
class VariableRef:
    """What a variable node reads.

    `catalog`: `name` is a catalog name. `person_field` / `account_field`: `name`
    is a profile field. `signal`: `name` is `<type>.<attribute>`. `step_output`:
    `step` is a step name or id and `name` either an output variable's catalog name
    (`AI Body`) or a raw output name (`lead_id`).
    """

    kind: RefKind
    name: str
    step: str | None = None

    @property
    def variable(self) -> Variable | None:
        """The catalog entry this reference names, if any."""
        return BY_NAME.get(self.name)

    @property
    def output(self) -> str | None:
        """The output name this reference reads, or None when it reads no output."""
        if self.kind == "step_output":
            variable = self.variable
            return variable.output if variable is not None else self.name
        if self.kind == "catalog" and self.variable is not None:
            return self.variable.output
        return None

    def resolve(self, ctx: RunContext) -> str:
        """Return this reference's value in `ctx` as text ("" when there is none)."""
        match self.kind:
            case "catalog":
                return BY_NAME[self.name].resolve(ctx) or ""
            case "person_field":
                return as_text(ctx.field_value("person", self.name))
            case "account_field":
                return as_text(ctx.field_value("account", self.name))
            case "signal":
                type_name, _, attribute = self.name.partition(".")
                return as_text(ctx.signal_attribute(type_name, attribute))
        output = self.output or self.name
        return as_text(ctx.output_value(output, step=self.step))


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Var:
    ref: VariableRef
    default: str | None
    source: str
    # Where `source` starts in the template text.
    start: int = 0
    # For JSON templates: whether the variable stands inside a JSON string literal.
    in_json_string: bool = False


@dataclass(frozen=True)
class Emoji:
    name: str
    char: str


@dataclass(frozen=True)
class Bold:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Italic:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Link:
    children: tuple[Node, ...]
    url: tuple[Node, ...]


Node = Text | Var | Emoji | Bold | Italic | Link


@dataclass(frozen=True)
class Template:
    """A parsed template: its source text and its nodes."""

    source: str
    nodes: tuple[Node, ...]
    markup: bool

    def refs(self) -> Iterator[VariableRef]:
        """Yield every variable reference, in order."""
        for node in _walk(self.nodes):
            if isinstance(node, Var):
                yield node.ref

    def render_plain(self, ctx: RunContext) -> str:
        return "".join(_plain(node, ctx) for node in self.nodes)

    def render_slack(self, ctx: RunContext) -> str:
        return "".join(_slack(node, ctx) for node in self.nodes)

    def render_html(self, ctx: RunContext) -> str:
        return "".join(_html(node, ctx) for node in self.nodes)

    def render_json(self, ctx: RunContext) -> str:
        """Render a JSON payload template; every value becomes a JSON string.

        The result parses as JSON when the template was valid at save time, which
        `check_json_template()` verifies.
        """
        return "".join(_json(node, ctx) for node in self.nodes)


def parse_template(source: str, *, markup: bool = True) -> Template:
    """Parse a template once; later calls with the same text reuse the result.

    With `markup=False` (JSON payloads, URLs, CRM field values) only variables and
    `$$` are recognised. Raises `TemplateSyntaxError` naming the offending text: an
    unknown variable, an unclosed `${`, an ill-formed field or step reference.
    """
    return _parse_cached(source, markup)


@lru_cache(maxsize=4096)
def _parse_cached(source: str, markup: bool) -> Template:
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateSyntaxError(
            f"Templates are limited to {MAX_TEMPLATE_CHARS} characters; "
            f"this one has {len(source)}."
        )
    nodes = _Parser(source, markup=markup).parse()
    if not markup:
        nodes = _mark_json_strings(nodes)
    return Template(source, nodes, markup)


def qualify_steps(source: str, step_ids: Mapping[str, str], *, markup: bool) -> str:
    """Rewrite `${<step name>: <output>}` as `${<step id>: <output>}`.

    The dispatcher does this when it sends a step to an action service, which
    sees the outputs map (keyed by step id) but not the workflow. Names not in
    `step_ids` are left as written.
    """
    template = parse_template(source, markup=markup)
    pieces: list[str] = []
    done = 0
    for node in _walk(template.nodes):
        if not isinstance(node, Var) or node.ref.kind != "step_output":
            continue
        step_id = step_ids.get(node.ref.step or "")
        if step_id is None:
            continue
        default = "" if node.default is None else f"|{node.default}"
        pieces += [
            source[done : node.start],
            f"${{{step_id}: {node.ref.name}{default}}}",
        ]
        done = node.start + len(node.source)
    return "".join(pieces) + source[done:]


def check_json_template(source: str) -> Template:
    """Parse a JSON payload template and prove it yields valid JSON.

    Each variable is replaced by a JSON string of its own length, so an error's
    line and column point into the template as written. Raises
    `TemplateSyntaxError` saying where the JSON breaks.
    """
    template = parse_template(source, markup=False)
    stand_in = "".join(_json_stand_in(node) for node in template.nodes)
    try:
        json.loads(stand_in)
    except json.JSONDecodeError as exc:
        raise TemplateSyntaxError(
            f"The payload is not valid JSON ({exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}); variables stand for text values."
        ) from None
    return template


def _json_stand_in(node: Node) -> str:
    if isinstance(node, Text):
        return node.text
    if not isinstance(node, Var):
        raise TypeError(f"expected a text or variable node, got {node!r}")
    width = len(node.source)
    return "x" * width if node.in_json_string else '"' + "x" * (width - 2) + '"'


# --- parsing -------------------------------------------------------------------

_CATALOG_NAMES = sorted(BY_NAME, key=len, reverse=True)
# Longest name first, and a name must not run on into a word: `$Record Owner
# Emailing` reads `Record Owner`, not `Record Owner Email`.
_NAME_AT = re.compile(
    "(?:" + "|".join(re.escape(name) for name in _CATALOG_NAMES) + r")(?!\w)"
)
_EMOJI_AT = re.compile(r":([a-z0-9][a-z0-9_+\-]*):")
_LINK_AT = re.compile(r"\[([^\[\]\n]+)\]\(([^()\s][^()\n]*)\)")
_WORD = re.compile(r"\w")


class _Parser:
    def __init__(self, source: str, *, markup: bool) -> None:
        self.source = source
        self.markup = markup

    def parse(self) -> tuple[Node, ...]:
        return self.inline(0, len(self.source), bold=self.markup, italic=self.markup)

    def inline(
        self, start: int, end: int, *, bold: bool, italic: bool
    ) -> tuple[Node, ...]:
        nodes: list[Node] = []
        text: list[str] = []
        i = start
        while i < end:
            node, after = self.special(i, end, bold=bold, italic=italic)
            if node is None:
                text.append(self.source[i:after])
            else:
                if text:
                    nodes.append(Text("".join(text)))
                    text = []
                nodes.append(node)
            i = after
        if text:
            nodes.append(Text("".join(text)))
        return tuple(nodes)

    def special(
        self, i: int, end: int, *, bold: bool, italic: bool
    ) -> tuple[Node | None, int]:
        """Return the node starting at `i` (None: one literal char) and its end."""
        char = self.source[i]
        if char == "$":
            return self.dollar(i, end)
        if not self.markup:
            return None, i + 1
        if char == ":":
            return self.emoji(i, end)
        if char == "*" and bold:
            return self.emphasis(i, end, "*", bold=False, italic=italic)
        if char == "_" and italic:
            return self.emphasis(i, end, "_", bold=bold, italic=False)
        if char == "[":
            return self.link(i, end)
        return None, i + 1

    # variables

    def dollar(self, i: int, end: int) -> tuple[Node | None, int]:
        following = self.source[i + 1 : i + 2] if i + 1 < end else ""
        if following == "$":
            return Text("$"), i + 2
        if following == "{":
            return self.braced(i, end)
        if not following.isalpha():
            return None, i + 1
        match = _NAME_AT.match(self.source, i + 1, end)
        if match is None or match.end() > end:
            raise TemplateSyntaxError(_unknown_variable(self.source, i, end))
        ref = VariableRef("catalog", match.group())
        return Var(ref, None, self.source[i : match.end()], i), match.end()

    def braced(self, i: int, end: int) -> tuple[Node, int]:
        close = self.source.find("}", i + 2, end)
        if close < 0:
            raise TemplateSyntaxError(
                f"A '${{' at character {i + 1} has no closing '}}': "
                f"{self.source[i : i + 30]!r}."
            )
        body, _, default = self.source[i + 2 : close].partition("|")
        ref = _braced_ref(body.strip())
        default_text = default.strip() if "|" in self.source[i + 2 : close] else None
        return Var(ref, default_text, self.source[i : close + 1], i), close + 1

    # markup

    def emoji(self, i: int, end: int) -> tuple[Node | None, int]:
        match = _EMOJI_AT.match(self.source, i, end)
        if match is None:
            return None, i + 1
        char = emoji_char(match.group(1))
        if char is None:
            return None, i + 1
        return Emoji(match.group(1), char), match.end()

    def emphasis(
        self, i: int, end: int, marker: str, *, bold: bool, italic: bool
    ) -> tuple[Node | None, int]:
        if not _opens(self.source, i, end, marker):
            return None, i + 1
        close = _find_closing(self.source, i + 1, end, marker)
        if close is None:
            return None, i + 1
        children = self.inline(i + 1, close, bold=bold, italic=italic)
        node: Node = Bold(children) if marker == "*" else Italic(children)
        return node, close + 1

    def link(self, i: int, end: int) -> tuple[Node | None, int]:
        match = _LINK_AT.match(self.source, i, end)
        if match is None:
            return None, i + 1
        children = self.inline(match.start(1), match.end(1), bold=True, italic=True)
        url_parser = _Parser(self.source, markup=False)
        url = url_parser.inline(match.start(2), match.end(2), bold=False, italic=False)
        return Link(children, url), match.end()


def _braced_ref(body: str) -> VariableRef:
    if body in BY_NAME:
        return VariableRef("catalog", body)
    scope, dot, rest = body.partition(".")
    if dot and scope in ("person", "account"):
        if not PROFILE_FIELD_PATTERN.match(rest):
            raise TemplateSyntaxError(f"{body!r} does not name a profile field.")
        return VariableRef(
            "person_field" if scope == "person" else "account_field", rest
        )
    if dot and scope == "signal":
        if not SIGNAL_ATTRIBUTE_PATTERN.match(rest):
            raise TemplateSyntaxError(
                f"{body!r} should read ${{signal.<type>.<attribute>}}, "
                "for example ${signal.funding.amount}."
            )
        return VariableRef("signal", rest)
    step, colon, output = body.partition(":")
    if colon:
        return _step_output_ref(body, step.strip(), output.strip())
    raise TemplateSyntaxError(_unknown_name(body))


def _step_output_ref(body: str, step: str, output: str) -> VariableRef:
    if not step:
        raise TemplateSyntaxError(f"{body!r} names no step before the ':'.")
    variable = BY_NAME.get(output)
    if variable is not None and variable.output is None:
        raise TemplateSyntaxError(
            f"{output!r} is not a step output; write ${{{output}}} without a step."
        )
    if variable is None and not OUTPUT_NAME_PATTERN.match(output):
        raise TemplateSyntaxError(
            f"{output!r} in {body!r} is not an output; use an output variable such "
            "as 'AI Body' or a webhook response field name."
        )
    return VariableRef("step_output", output, step)


def _unknown_variable(source: str, i: int, end: int) -> str:
    word = re.match(r"[A-Za-z][A-Za-z0-9]*(?: [A-Z][A-Za-z0-9]*)*", source[i + 1 : end])
    written = word.group() if word else source[i + 1 : i + 20]
    return _unknown_name(written, dollar=True)


def _unknown_name(written: str, *, dollar: bool = False) -> str:
    shown = f"${written}" if dollar else f"${{{written}}}"
    close = difflib.get_close_matches(written, _CATALOG_NAMES, n=1, cutoff=0.6)
    hint = f" Did you mean ${close[0]}?" if close else ""
    return (
        f"Unknown variable {shown!r}.{hint} Write $$ for a dollar sign and "
        "${Name} when text follows a variable directly."
    )


def _opens(source: str, i: int, end: int, marker: str) -> bool:
    before = source[i - 1] if i > 0 else " "
    after = source[i + 1] if i + 1 < end else " "
    if after.isspace() or after == marker:
        return False
    return not (marker == "_" and _WORD.match(before))


def _find_closing(source: str, start: int, end: int, marker: str) -> int | None:
    i = start
    while i < end:
        char = source[i]
        if char == "\n":
            return None
        if char == "$" and source.startswith("${", i):
            brace = source.find("}", i, end)
            i = brace + 1 if brace >= 0 else end
            continue
        if char == marker and _closes(source, i, end, marker):
            return i
        i += 1
    return None


def _closes(source: str, i: int, end: int, marker: str) -> bool:
    before = source[i - 1]
    after = source[i + 1] if i + 1 < end else " "
    if before.isspace():
        return False
    return not (marker == "_" and _WORD.match(after))


@lru_cache(maxsize=2048)
def emoji_char(name: str) -> str | None:
    """Return the emoji for a name such as `gem-stone` or `rocket`, or None."""
    alias = f":{name.replace('-', '_')}:"
    rendered = emoji.emojize(alias, language="alias")
    return None if rendered == alias else rendered


def _mark_json_strings(nodes: tuple[Node, ...]) -> tuple[Node, ...]:
    """Record, for each variable of a JSON template, whether it sits in a string."""
    in_string = False
    escaped = False
    marked: list[Node] = []
    for node in nodes:
        if isinstance(node, Var):
            marked.append(replace(node, in_json_string=in_string))
            continue
        marked.append(node)
        text = node.text if isinstance(node, Text) else ""
        for char in text:
            if escaped:
                escaped = False
            elif char == "\\" and in_string:
                escaped = True
            elif char == '"':
                in_string = not in_string
    return tuple(marked)


def _walk(nodes: tuple[Node, ...]) -> Iterator[Node]:
    for node in nodes:
        yield node
        if isinstance(node, (Bold, Italic)):
            yield from _walk(node.children)
        elif isinstance(node, Link):
            yield from _walk(node.children)
            yield from _walk(node.url)


# --- rendering -------------------------------------------------------------------


def _value(node: Var, ctx: RunContext) -> str:
    value = node.ref.resolve(ctx)
    if not value and node.default is not None:
        return node.default
    return value


def _plain(node: Node, ctx: RunContext) -> str:
    match node:
        case Text(text):
            return text
        case Var():
            return _value(node, ctx)
        case Emoji(_, char):
            return char
        case Bold(children) | Italic(children):
            return _join(children, _plain, ctx)
        case Link(children, url):
            text, href = _join(children, _plain, ctx), _join(url, _plain, ctx)
            return href if text == href else f"{text} ({href})"
    raise TypeError(f"expected a template node, got {node!r}")


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack(node: Node, ctx: RunContext) -> str:
    match node:
        case Text(text):
            return _slack_escape(text)
        case Var():
            return _slack_escape(_value(node, ctx))
        case Emoji(_, char):
            return char
        case Bold(children):
            return f"*{_join(children, _slack, ctx)}*"
        case Italic(children):
            return f"_{_join(children, _slack, ctx)}_"
        case Link(children, url):
            href = _join(url, _plain, ctx)
            text = _join(children, _slack, ctx).replace(
                "|", "\N{FULLWIDTH VERTICAL LINE}"
            )
            if not _safe_href(href):
                return text
            return f"<{_slack_escape(href).replace('|', '%7C')}|{text}>"
    raise TypeError(f"expected a template node, got {node!r}")


def _html(node: Node, ctx: RunContext) -> str:
    match node:
        case Text(text):
            return html.escape(text, quote=False).replace("\n", "<br>\n")
        case Var():
            return html.escape(_value(node, ctx), quote=False).replace("\n", "<br>\n")
        case Emoji(_, char):
            return char
        case Bold(children):
            return f"<strong>{_join(children, _html, ctx)}</strong>"
        case Italic(children):
            return f"<em>{_join(children, _html, ctx)}</em>"
        case Link(children, url):
            href = _join(url, _plain, ctx)
            text = _join(children, _html, ctx)
            if not _safe_href(href):
                return text
            return f'<a href="{html.escape(href, quote=True)}">{text}</a>'
    raise TypeError(f"expected a template node, got {node!r}")


def _json(node: Node, ctx: RunContext) -> str:
    if isinstance(node, Var):
        encoded = json.dumps(_value(node, ctx), ensure_ascii=False)
        return encoded[1:-1] if node.in_json_string else encoded
    if isinstance(node, Text):
        return node.text
    raise TypeError(
        f"expected a text or variable node in a JSON template, got {node!r}"
    )


def _join(
    nodes: tuple[Node, ...], render: Callable[[Node, RunContext], str], ctx: RunContext
) -> str:
    return "".join(render(node, ctx) for node in nodes)


def _safe_href(href: str) -> bool:
    return href.lower().startswith(("http://", "https://", "mailto:"))
