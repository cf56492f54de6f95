"""Prebuilt campaigns validate, get fresh ids and render with a real context."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from signalflow.workflow.evaluate import evaluate, state_from_enrollment
from signalflow.workflow.prebuilt import CAMPAIGNS, instantiate
from signalflow.workflow.steps import TemplateSource
from signalflow.workflow.templates import check_json_template, parse_template
from signalflow.workflow.variables import RunContext
from signalflow.workflow.workflow import check_references


def test_library_has_the_common_campaigns() -> None:
    assert len(CAMPAIGNS) >= 6
    assert {
        "funding-multi-thread",
        "past-champion-new-account",
        "new-hire-buying-committee",
        "promotion-congratulations",
        "hiring-surge",
        "new-tech-adopted",
    } <= set(CAMPAIGNS)
    for campaign in CAMPAIGNS.values():
        assert campaign.title and campaign.description


@pytest.mark.parametrize("slug", list(CAMPAIGNS))
def test_prebuilt_campaign_validates_with_fresh_ids(slug: str) -> None:
    audience, workflow = instantiate(slug)
    again, _ = instantiate(slug)

    assert workflow.audience_id == audience.id != again.id
    assert workflow.status == "draft"
    assert check_references(workflow, {audience.id: audience}) == []
    assert check_references(audience, {}) == []


@pytest.mark.parametrize("slug", list(CAMPAIGNS))
def test_prebuilt_templates_render_for_a_prospect(slug: str) -> None:
    _, workflow = instantiate(slug)
    enrollment = {
        "person": {
            "key": "p-1",
            "email": "dana@acme.io",
            "owner": "sam@yourco.com",
            "fields": {"first_name": "Dana", "last_name": "Reyes", "title": "CTO"},
        },
        "account": {
            "key": "a-1",
            "owner": "kim@yourco.com",
            "fields": {"name": "Acme"},
        },
        "signals": [
            {
                "signal_id": "s-1",
                "type": "funding",
                "scope": "COMPANY",
                "occurred_at": datetime(2024, 5, 1, tzinfo=UTC),
                "attributes": {"amount": "25000000", "round": "Series B"},
            }
        ],
    }
    outputs = {f"{path}.{name}": "x" for path, step in workflow.paths()
               for name in step.produces()}  # fmt: skip
    ctx = RunContext.from_enrollment(
        enrollment, outputs=outputs, step_names=workflow.step_names()
    )

    rendered = []
    for _, step in workflow.paths():
        for _, source in step.templates():
            rendered.append(_render(source, ctx))
        condition = getattr(getattr(step, "params", None), "condition", None)
        if condition is not None:
            state = state_from_enrollment(enrollment)
            evaluate(condition, state, now=datetime(2024, 5, 2, tzinfo=UTC))

    assert rendered and all(isinstance(text, str) for text in rendered)


def _render(source: TemplateSource, ctx: RunContext) -> str:
    if source.markup == "json":
        return check_json_template(str(source)).render_json(ctx)
    if source.markup == "plain":
        return parse_template(str(source), markup=False).render_plain(ctx)
    template = parse_template(str(source))
    template.render_html(ctx)
    return template.render_slack(ctx)


def test_unknown_slug_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="funding-multi-thread"):
        instantiate("no-such-campaign")
