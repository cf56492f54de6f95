"""Templates parse once and render safely for plain text, Slack, HTML and JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from signalflow.workflow.errors import TemplateSyntaxError
from signalflow.workflow.templates import (
    Bold,
    Emoji,
    Italic,
    Link,
    Text,
    Var,
    check_json_template,
    parse_template,
    qualify_steps,
)
from signalflow.workflow.variables import RunContext, step_order


def enrollment(**person_fields: Any) -> dict[str, Any]:
    """An enrollment shaped like schemas/enrollment, as fastavro decodes it."""
    return {
        "run_id": "run-1",
        "person": {
            "key": "p-1",
            "kind": "PERSON",
            "account_key": "acc-1",
            "email": "dana@acme.io",
            "owner": "sam@yourco.com",
            "past_owners": ["old@yourco.com", "ali@yourco.com"],
            "last_activity_at": None,
            "fields": {
                "first_name": "Dana",
                "last_name": "Reyes",
                "title": "VP Sales",
                **person_fields,
            },
        },
        "account": {
            "key": "acc-1",
            "kind": "ACCOUNT",
            "account_key": "acc-1",
            "owner": "Kim Park",
            "past_owners": [],
            "fields": {"name": "Acme", "employees": 420},
        },
        "signals": [
            {
                "signal_id": "s-2",
                "type": "job_change",
                "scope": "PERSON",
                "occurred_at": datetime(2024, 5, 3, tzinfo=UTC),
                "attributes": {"previous_company": "Globex"},
            },
            {
                "signal_id": "s-1",
                "type": "funding",
                "scope": "COMPANY",
                "occurred_at": datetime(2024, 4, 1, tzinfo=UTC),
                "attributes": {"amount": "25000000", "round": "Series B"},
            },
        ],
        "explanation": [],
    }


def context(outputs: dict[str, str] | None = None, **fields: Any) -> RunContext:
    return RunContext.from_enrollment(enrollment(**fields), outputs=outputs)


def test_parse_happens_once_per_text() -> None:
    first = parse_template("Hi $First Name")

    assert parse_template("Hi $First Name") is first


def test_template_parses_into_typed_nodes() -> None:
    template = parse_template(
        "*$First Name* _joined_ :rocket: [site](https://acme.io/$First Name)"
    )

    bold, _, italic, _, rocket, _, link = template.nodes
    assert isinstance(bold, Bold) and isinstance(bold.children[0], Var)
    assert italic == Italic((Text("joined"),))
    assert rocket == Emoji("rocket", "\N{ROCKET}")
    assert isinstance(link, Link)
    assert link.children == (Text("site"),)
    assert [type(node) for node in link.url] == [Text, Var]


def test_variable_takes_the_longest_catalog_name_that_ends_a_word() -> None:
    longest = parse_template("$Record Owner Email")
    shorter = parse_template("$Record Owner Emailing")

    assert [ref.name for ref in longest.refs()] == ["Record Owner Email"]
    assert [ref.name for ref in shorter.refs()] == ["Record Owner"]


def test_braces_dollars_and_defaults() -> None:
    template = parse_template("${First Name}s pay $$5, not $5. Hi ${person.nickname|}")

    assert template.render_plain(context()) == "Danas pay $5, not $5. Hi "


def test_unknown_catalog_name_in_braces_is_an_error() -> None:
    with pytest.raises(
        TemplateSyntaxError, match="Unknown variable '\\$\\{Nickname\\}'"
    ):
        parse_template("Hi ${Nickname|friend}")


def test_default_applies_when_the_value_is_empty() -> None:
    template = parse_template("Hi ${person.nickname|there}, ${First Name|there}")

    assert template.render_plain(context()) == "Hi there, Dana"


def test_emoji_by_name_with_dashes_and_unknown_names_kept() -> None:
    template = parse_template(":gem-stone: :tada: :our-logo: at 10:30:00")

    rendered = template.render_plain(context())

    assert rendered == "\N{GEM STONE} \N{PARTY POPPER} :our-logo: at 10:30:00"


def test_underscores_inside_words_are_not_italic() -> None:
    template = parse_template("snake_case_name and _this_")

    assert template.render_slack(context()) == "snake_case_name and _this_"
    assert template.render_html(context()) == "snake_case_name and <em>this</em>"


def test_slack_escapes_values_so_they_cannot_mention_or_link() -> None:
    ctx = context(title="<!channel> & <https://evil.example|click>")
    template = parse_template("*$Current Title*")

    rendered = template.render_slack(ctx)

    assert rendered == ("*&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;*")


def test_slack_link_uses_angle_bracket_form() -> None:
    template = parse_template(
        "[Profile of $First Name](https://crm.example.com/p?a=1&b=2)"
    )

    rendered = template.render_slack(context())

    assert rendered == "<https://crm.example.com/p?a=1&amp;b=2|Profile of Dana>"


def test_html_escapes_values_and_refuses_script_links() -> None:
    ctx = context(title="<script>alert(1)</script>", website="javascript:alert(1)")
    template = parse_template(
        "*$Current Title*\n[site](${person.website}) [ok](https://acme.io)"
    )

    rendered = template.render_html(ctx)

    assert rendered == (
        "<strong>&lt;script&gt;alert(1)&lt;/script&gt;</strong><br>\n"
        'site <a href="https://acme.io">ok</a>'
    )


def test_plain_text_drops_markup_and_spells_out_links() -> None:
    template = parse_template("*Hi* _$First Name_, see [docs](https://x.io)")

    assert template.render_plain(context()) == "Hi Dana, see docs (https://x.io)"


def test_json_values_are_escaped_inside_and_outside_strings() -> None:
    nasty = 'He said "hi"\\ \n\t</script> \N{GEM STONE}'
    template = check_json_template(
        '{"title": "$Current Title", "raw": ${Current Title}, "who": "$First Name"}'
    )

    rendered = template.render_json(context(title=nasty))

    assert json.loads(rendered) == {"title": nasty, "raw": nasty, "who": "Dana"}


def test_json_template_does_not_read_markup() -> None:
    template = check_json_template('{"tags": ["*a*", "_b_"], "e": ":rocket:"}')

    assert json.loads(template.render_json(context())) == {
        "tags": ["*a*", "_b_"],
        "e": ":rocket:",
    }


def test_json_variable_after_escaped_quote_stays_inside_the_string() -> None:
    template = check_json_template('{"note": "say \\"$First Name\\" loudly"}')

    assert json.loads(template.render_json(context())) == {"note": 'say "Dana" loudly'}


def test_catalog_variables_read_the_enrollment_snapshot() -> None:
    template = parse_template(
        "$Full Name|$Company Name|$Employee Count|$Record Owner|$Record Owner Email|"
        "$Past Record Owner|$Account Owner|$Account Owner Email|$Signal Type|"
        "$Signal Date|$Funding Amount|$Funding Round|$Previous Employer|"
        "${signal.funding.round}|${account.employees}"
    )

    rendered = template.render_plain(context())

    assert rendered.split("|") == [
        "Dana Reyes",
        "Acme",
        "420",
        "sam@yourco.com",
        "sam@yourco.com",
        "ali@yourco.com",
        "Kim Park",
        "",
        "job change",
        "2024-05-03",
        "25000000",
        "Series B",
        "Globex",
        "Series B",
        "420",
    ]


def test_output_variable_reads_the_latest_step_that_ran() -> None:
    outputs = {
        "1.body": "first draft",
        "3.then.0.body": "branch draft",
        "3.then.1.status": "200",
    }
    template = parse_template("$AI Body / ${2: AI Body|none} / ${1: body}")

    rendered = template.render_plain(context(outputs))

    assert rendered == "branch draft / none / first draft"


def test_step_order_puts_branch_arms_between_their_branch_and_the_next_step() -> None:
    ids = ["3", "2.else.0", "10", "2", "2.then.1", "2.then.0"]

    assert sorted(ids, key=step_order) == [
        "2",
        "2.then.0",
        "2.then.1",
        "2.else.0",
        "3",
        "10",
    ]


def test_named_step_reference_resolves_through_step_names() -> None:
    ctx = RunContext.from_enrollment(
        enrollment(), outputs={"4.lead_id": "L-9"}, step_names={"Send": "4"}
    )

    assert parse_template("${Send: lead_id}").render_plain(ctx) == "L-9"


def test_qualify_steps_rewrites_names_to_ids_and_keeps_the_rest() -> None:
    source = "$$${Draft: AI Body|x} *${Other: body}* $AI Subject"

    rewritten = qualify_steps(source, {"Draft": "2.then.0"}, markup=True)

    assert rewritten == "$$${2.then.0: AI Body|x} *${Other: body}* $AI Subject"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("${person.}", "'person.' does not name a profile field."),
        (
            "${signal.funding}",
            "'signal.funding' should read ${signal.<type>.<attribute>}, for example "
            "${signal.funding.amount}.",
        ),
        ("${: AI Body}", "': AI Body' names no step before the ':'."),
        (
            "${Draft: First Name}",
            "'First Name' is not a step output; write ${First Name} without a step.",
        ),
    ],
)
def test_malformed_references_say_what_is_wrong(source: str, message: str) -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        parse_template(source)

    assert str(caught.value) == message
