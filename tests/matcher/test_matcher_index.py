"""The audience index: every workflow a prospect matches is among its candidates.

The index files workflows under anchors (signal types, folded text values of
fields) and looks them up by the prospect's own; a mistake there loses
enrollments silently. These tests compare it with the compiled evaluation on
many generated audiences and prospects, and pin down the text folding.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from matcher_harness import START, Harness

from services.matcher.active import ActiveWorkflow, compile_workflow
from services.matcher.anchors import dimensions, fold
from services.matcher.index import AudienceIndex
from services.matcher.state import EVERYTHING
from signalflow.workflow import Audience, Workflow
from signalflow.workflow.evaluate import ProspectState, SignalFact
from signalflow.workflow.filters import AllOf

Json = dict[str, Any]

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)
TITLES = ["CTO", " cto ", "VP Sales", "vp sales", "100", "1e3", "Ärztin", "ÄRZTIN"]
INDUSTRIES = ["Banking", "banking", "Retail", "42", "nan"]
PERSON_TYPES = ["job_change", "promotion", "new_hire"]
COMPANY_TYPES = ["funding", "hiring_surge", "expansion"]


def random_value(rng: random.Random, options: list[str]) -> Any:
    """Mostly text from `options`, sometimes a number or a boolean."""
    draw = rng.random()
    if draw < 0.8:
        return rng.choice(options)
    if draw < 0.9:
        return rng.choice([100, 1000.0, 42])
    return rng.choice([True, False])


def random_predicate(rng: random.Random) -> Json:
    kind = rng.randrange(8)
    if kind == 0:
        return {"kind": "person_signal", "types": rng.sample(PERSON_TYPES, 2)}
    if kind == 1:
        return {
            "kind": "company_signal",
            "types": rng.sample(COMPANY_TYPES, 1),
            "within_days": rng.choice([5, 30]),
        }
    if kind == 2:
        return {"kind": "has_email", "value": rng.random() < 0.5}
    if kind == 3:
        return {
            "kind": "last_activity",
            "condition": rng.choice(["before", "within"]),
            "days": 30,
        }
    scope, field, options = rng.choice(
        [("person", "title", TITLES), ("account", "industry", INDUSTRIES)]
    )
    op = rng.choice(["eq", "in", "in", "ne", "contains", "exists"])
    node: Json = {"kind": "compare", "object": scope, "field": field, "op": op}
    if op == "in":
        node["value"] = [random_value(rng, options) for _ in range(rng.randint(1, 3))]
    elif op != "exists":
        node["value"] = random_value(rng, options)
    return node


def random_filter(rng: random.Random) -> Json:
    parts = [random_predicate(rng) for _ in range(rng.randint(1, 4))]
    shape = rng.random()
    if shape < 0.15:
        return parts[0]
    if shape < 0.25:
        return {"kind": "any", "of": parts}
    if shape < 0.3:
        return {"kind": "not", "filter": {"kind": "all", "of": parts}}
    return {"kind": "all", "of": parts}


def random_workflows(rng: random.Random, count: int) -> list[ActiveWorkflow]:
    found = []
    for index in range(count):
        audience = Audience.model_validate(
            {"id": f"a{index}", "name": "a", "filter": random_filter(rng)}
        )
        workflow = Workflow.model_validate(
            {
                "id": f"w{index}",
                "name": "w",
                "audience_id": audience.id,
                "steps": [{"kind": "delay", "params": {"minutes": 1}}],
                "status": "active",
            }
        )
        found.append(compile_workflow(workflow, 1, audience, {}))
    return found


def random_facts(rng: random.Random, types: list[str]) -> dict[str, SignalFact]:
    return {
        kind: SignalFact(type=kind, last_at=NOW - timedelta(days=rng.randint(0, 40)))
        for kind in types
        if rng.random() < 0.4
    }


def random_prospect(rng: random.Random) -> ProspectState:
    person: Json = {
        "email": "a@b.c" if rng.random() < 0.5 else None,
        "last_activity_at": NOW - timedelta(days=rng.randint(1, 60)),
        "fields": {},
    }
    if rng.random() < 0.9:
        person["fields"]["title"] = random_value(rng, TITLES)
    account: Json | None = None
    if rng.random() < 0.9:
        account = {"fields": {"industry": random_value(rng, INDUSTRIES)}}
    return ProspectState(
        person=person,
        account=account,
        person_signals=random_facts(rng, PERSON_TYPES),
        account_signals=random_facts(rng, COMPANY_TYPES),
    )


def test_every_match_is_a_candidate_and_every_candidate_has_its_anchors() -> None:
    rng = random.Random(20260302)
    workflows = random_workflows(rng, 400)
    index = AudienceIndex()
    for active in workflows:
        index.add(active)

    checked = 0
    for _ in range(600):
        state = random_prospect(rng)
        anchors = index.keys_of(state)
        candidates = index.candidates({EVERYTHING}, anchors)
        matching = {a.id for a in workflows if a.matches(state, NOW)}
        assert matching <= candidates
        assert all(index.get(wid).admits(anchors) for wid in candidates)  # type: ignore[union-attr]
        for key in ("signal:job_change", "field:person.title", "email"):
            readers = {a.id for a in workflows if key in a.reads}
            found = index.candidates({key}, anchors)
            assert found <= readers
            assert matching & readers <= found
        checked += len(matching)
    assert checked > 1000  # the generator makes prospects that match


def test_removed_and_replaced_workflows_leave_no_trace() -> None:
    rng = random.Random(7)
    workflows = random_workflows(rng, 50)
    index = AudienceIndex()
    for active in workflows:
        index.add(active)
    for active in workflows[:25]:
        index.remove(active.id)
    for active in workflows[25:]:
        index.add(active)  # again: replaces itself
    state = random_prospect(rng)
    found = index.candidates({EVERYTHING}, index.keys_of(state))
    assert found <= {a.id for a in workflows[25:]}
    for active in workflows[25:]:
        index.remove(active.id)
    assert len(index) == 0
    assert index.candidates({EVERYTHING}, index.keys_of(state)) == set()
    assert not index.reads_any({EVERYTHING})


def test_text_folds_as_the_evaluation_compares_it() -> None:
    assert fold("  VP Sales ") == "vp sales"
    assert fold("ÄRZTIN") == fold("ärztin")
    # Numbers and text the evaluation reads as numbers are never anchors.
    for value in ("100", " 1e3 ", "nan", "Infinity", 100, 1.5, True, None, ["x"]):
        assert fold(value) is None


def test_only_text_equalities_and_signals_at_the_top_are_anchors() -> None:
    root = AllOf.model_validate(
        {
            "kind": "all",
            "of": [
                {"kind": "person_signal", "types": ["job_change"]},
                {
                    "kind": "compare",
                    "object": "person",
                    "field": "title",
                    "op": "in",
                    "value": ["CTO", "cfo"],
                },
                {
                    "kind": "compare",
                    "object": "account",
                    "field": "size",
                    "op": "eq",
                    "value": "100",
                },
                {
                    "kind": "any",
                    "of": [{"kind": "company_signal", "types": ["funding"]}],
                },
                {"kind": "has_email", "value": True},
            ],
        }
    )
    found = {d.kind: sorted(d.keys) for d in dimensions(root)}
    assert found == {
        "person.title": ["person.title=cfo", "person.title=cto"],
        "PERSON": ["PERSON:job_change"],
    }


async def test_an_account_leaving_the_segment_ends_the_match(
    harness: Harness,
) -> None:
    # The account's industry is an anchor: when it changes, the workflows
    # filed under the old industry are evaluated once more, so the match ends
    # and a later one enrolls again.
    await harness.activate(
        {
            "kind": "all",
            "of": [
                {
                    "kind": "compare",
                    "object": "account",
                    "field": "industry",
                    "op": "eq",
                    "value": "banking",
                },
                {"kind": "person_signal", "types": ["job_change"]},
            ],
        },
        reenrollment={"after_days": 10},
    )
    await harness.account("bank", industry="Banking")
    await harness.person("ann", "bank")
    await harness.signal("job_change", "bank", "ann")
    assert harness.outbox.people() == ["ann"]

    await harness.account("bank", industry="Retail", updated=START + DAY)
    harness.clock.advance(11 * DAY)
    await harness.account("bank", industry="banking", updated=START + 11 * DAY)
    assert harness.outbox.people() == ["ann", "ann"]
