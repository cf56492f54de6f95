"""Invalid audiences and workflows are refused with the path and a readable reason."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from signalflow.workflow.errors import DefinitionError, error_list
from signalflow.workflow.workflow import (
    Audience,
    Workflow,
    check_references,
    validate_audience,
    validate_workflow,
)


def valid_workflow() -> dict[str, Any]:
    return {
        "id": "wf-1",
        "name": "Funding follow-up",
        "audience_id": "aud-1",
        "schedule": {
            "kind": "weekly",
            "day": "mon",
            "at": "09:00",
            "timezone": "Europe/Berlin",
        },
        "limits": {"max_per_account": 2, "max_per_rep": 10},
        "reenrollment": {"after_days": 30},
        "steps": [
            {"kind": "crm_upsert", "name": "Save"},
            {"kind": "ai_message", "name": "Draft"},
            {
                "kind": "slack",
                "params": {
                    "recipients": [{"kind": "record_owner"}],
                    "message": "*$First Name* at $Company Name: $AI Subject",
                },
            },
            {
                "kind": "branch",
                "params": {
                    "condition": {"kind": "has_email", "value": True},
                    "then": [
                        {
                            "kind": "sequence",
                            "params": {"platform": "outreach", "sequence_id": "9"},
                        }
                    ],
                    "else": [
                        {
                            "kind": "task",
                            "params": {"subject": "Find an email for $Full Name"},
                        }
                    ],
                },
            },
        ],
    }


def valid_audience() -> dict[str, Any]:
    return {
        "id": "aud-1",
        "name": "Funded",
        "filter": {
            "kind": "all",
            "of": [
                {"kind": "company_signal", "types": ["funding"], "within_days": 90},
                {"kind": "has_email", "value": True},
            ],
        },
    }


Change = Callable[[dict[str, Any]], None]


def put(path: str, value: Any) -> Change:
    """Return a change that sets `value` at a dotted path of the definition."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


def drop(path: str) -> Change:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]

    return change


def webhook(**params: Any) -> dict[str, Any]:
    return {
        "kind": "webhook",
        "params": {"url": "https://hooks.example.com/in", **params},
    }


WORKFLOW_CASES: list[tuple[str, Change, str, str]] = [
    (
        "unknown variable",
        put("steps.2.params.message", "Hi $Frist Name"),
        "steps.2.params.message",
        "Unknown variable '$Frist Name'. Did you mean $First Name? Write $$ for a "
        "dollar sign and ${Name} when text follows a variable directly.",
    ),
    (
        "output not produced earlier",
        put("steps.0.params", {"fields": {"Note__c": "$AI Body"}}),
        "steps.0.params.fields.Note__c",
        "$AI Body comes from an AI message step, and no such step runs before this "
        "one on every path.",
    ),
    (
        "output produced in only one arm of a branch",
        lambda data: data["steps"].append(
            {
                "kind": "crm_update",
                "params": {"fields": {"Seq__c": "$Sequence Prospect Id"}},
            }
        ),
        "steps.4.params.fields.Seq__c",
        "$Sequence Prospect Id comes from a sequence step, and no such step runs "
        "before this one on every path.",
    ),
    (
        "output of a named step that runs later",
        put("steps.0.params", {"fields": {"Body__c": "${Draft: AI Body}"}}),
        "steps.0.params.fields.Body__c",
        "Step 'Draft' does not run before this one on every path.",
    ),
    (
        "output of a step that does not exist",
        put("steps.2.params.message", "${Research: AI Body}"),
        "steps.2.params.message",
        "No step is named 'Research'.",
    ),
    (
        "per-account cap below 1",
        put("limits.max_per_account", 0),
        "limits.max_per_account",
        "A limit must be at least 1; leave it empty for no limit. Got 0.",
    ),
    (
        "per-rep cap negative",
        put("limits.max_per_rep", -3),
        "limits.max_per_rep",
        "A limit must be at least 1; leave it empty for no limit. Got -3.",
    ),
    (
        "weekly without a day",
        drop("schedule.day"),
        "schedule.day",
        "Weekly schedules need a day of the week.",
    ),
    (
        "monthly on day 0",
        put("schedule", {"kind": "monthly", "day": 0}),
        "schedule.day",
        "A day of the month is 1 to 31; got 0. Months shorter than the day run on "
        "their last day.",
    ),
    (
        "monthly on day 32",
        put("schedule", {"kind": "monthly", "day": 32}),
        "schedule.day",
        "A day of the month is 1 to 31; got 32. Months shorter than the day run "
        "on their last day.",
    ),
    (
        "unknown time zone",
        put("schedule.timezone", "Mars/Olympus_Mons"),
        "schedule.timezone",
        "'Mars/Olympus_Mons' is not a time zone name; use one such as "
        "'America/New_York' or 'Europe/Berlin'.",
    ),
    (
        "daily with an empty weekdays filter",
        put("schedule", {"kind": "daily", "weekdays": []}),
        "schedule.weekdays",
        "Choose at least one weekday, or leave the filter out.",
    ),
    (
        "round robin with no users",
        put(
            "steps.0",
            {
                "kind": "assign_owner",
                "params": {"method": {"kind": "round_robin", "users": []}},
            },
        ),
        "steps.0.params.method.users",
        "Round robin needs at least one user.",
    ),
    (
        "negative round-robin weight",
        put(
            "steps.0",
            {
                "kind": "assign_owner",
                "params": {
                    "method": {
                        "kind": "round_robin",
                        "users": [{"user": "a@x.io"}, {"user": "b@x.io", "weight": -1}],
                    }
                },
            },
        ),
        "steps.0.params.method.users.1.weight",
        "A round-robin weight is a whole number from 1 to 100; got -1.",
    ),
    (
        "delay of zero",
        lambda data: data["steps"].insert(1, {"kind": "delay", "params": {"days": 0}}),
        "steps.1.params",
        "A delay must be longer than zero.",
    ),
    (
        "delay beyond the cap",
        lambda data: data["steps"].insert(
            1, {"kind": "delay", "params": {"days": 120}}
        ),
        "steps.1.params",
        "A delay can be at most 90 days; this one is 120 days, 0:00:00.",
    ),
    (
        "delay too large to compute",
        lambda data: data["steps"].insert(
            1, {"kind": "delay", "params": {"days": 10**30}}
        ),
        "steps.1.params.days",
        "Must be at most 1000000, got 1000000000000000000000000000000.",
    ),
    (
        "webhook URL not http(s)",
        lambda data: data["steps"].append(webhook(url="ftp://files.example.com/x")),
        "steps.4.params.url",
        "A webhook URL starts with http:// or https:// and a host; got "
        "'ftp://files.example.com/x'.",
    ),
    (
        "webhook method invalid",
        lambda data: data["steps"].append(webhook(method="FETCH")),
        "steps.4.params.method",
        "Expected one of 'GET', 'POST', 'PUT', 'PATCH' or 'DELETE', got 'FETCH'.",
    ),
    (
        "webhook payload that is not JSON",
        lambda data: data["steps"].append(webhook(payload='{"email": "$Email"')),
        "steps.4.params.payload",
        "The payload is not valid JSON (Expecting ',' delimiter at line 1, column "
        "19); variables stand for text values.",
    ),
    (
        "webhook GET with a payload",
        lambda data: data["steps"].append(webhook(method="GET", payload="{}")),
        "steps.4.params",
        "GET requests carry no payload; use query key/values or choose POST, PUT "
        "or PATCH.",
    ),
    (
        "webhook response field named like a built-in output",
        lambda data: data["steps"].append(
            webhook(response_fields={"body": "data.body"})
        ),
        "steps.4.params.response_fields",
        "'body' is the name of a built-in output; choose another name.",
    ),
    (
        "branch without condition",
        drop("steps.3.params.condition"),
        "steps.3.params.condition",
        "A branch needs a condition.",
    ),
    (
        "branch with no steps in either arm",
        put("steps.3.params", {"condition": {"kind": "has_email"}}),
        "steps.3.params",
        "A branch needs steps in 'then', 'else' or both.",
    ),
    (
        "empty steps",
        put("steps", []),
        "steps",
        "A workflow needs at least one step.",
    ),
    (
        "re-enroll after 0 days",
        put("reenrollment", {"after_days": 0}),
        "reenrollment.after_days",
        "Re-enrollment waits 1 to 3650 days; got 0. Choose 'never' to enroll each "
        "prospect only once.",
    ),
    (
        "slack notification with no recipients",
        put("steps.2.params.recipients", []),
        "steps.2.params.recipients",
        "Choose at least one recipient for the Slack message.",
    ),
    (
        "email without subject",
        put(
            "steps.2",
            {
                "kind": "email",
                "params": {"recipients": [{"kind": "record_owner"}], "message": "Hi"},
            },
        ),
        "steps.2.params.subject",
        "Email notifications need a subject.",
    ),
    (
        "email to a slack channel",
        put(
            "steps.2",
            {
                "kind": "email",
                "params": {
                    "recipients": [{"kind": "slack_channel", "channel": "#deals"}],
                    "subject": "New lead",
                    "message": "Hi",
                },
            },
        ),
        "steps.2.params.recipients.0",
        "Unknown kind 'slack_channel'; expected one of 'record_owner', "
        "'past_record_owner', 'account_owner', 'past_account_owner', "
        "'specific_user'.",
    ),
    (
        "email template toggle without a template",
        put("steps.2.params.include_email_template", True),
        "steps.2.params",
        "A one-click email template needs a subject and a body, such as $AI "
        "Subject and $AI Body.",
    ),
    (
        "sequence without sequence id",
        put("steps.3.params.then.0.params", {"platform": "salesloft"}),
        "steps.3.params.then.0.params",
        "Choose the sequence by its id or its name.",
    ),
    (
        "task due in -1 days",
        put("steps.3.params.else.0.params.due_in_days", -1),
        "steps.3.params.else.0.params.due_in_days",
        "A task is due today (0) or within 365 days; got -1.",
    ),
    (
        "crm update with no fields",
        put("steps.0", {"kind": "crm_update", "params": {"fields": {}}}),
        "steps.0.params.fields",
        "Choose at least one field to update.",
    ),
    (
        "two steps with the same name",
        put("steps.1.name", "Save"),
        "steps.1.name",
        "Two steps are named 'Save'; names must differ.",
    ),
    (
        "unknown step kind",
        put("steps.0", {"kind": "fax"}),
        "steps.0",
        "Unknown kind 'fax'; expected one of 'crm_upsert', 'assign_owner', "
        "'slack', 'email', 'task', 'delay', 'webhook', 'ai_message', 'sequence', "
        "'crm_update', 'branch'.",
    ),
    (
        "misspelt field",
        put("steps.1.on_eror", "continue"),
        "steps.1.on_eror",
        "This field is not recognised here; check its spelling.",
    ),
    (
        "max attempts above 20",
        put("steps.1.max_attempts", 50),
        "steps.1.max_attempts",
        "Must be at most 20, got 50.",
    ),
    (
        "unclosed variable brace",
        put("steps.2.params.message", "Hello ${First Name"),
        "steps.2.params.message",
        "A '${' at character 7 has no closing '}': '${First Name'.",
    ),
    (
        "branch condition with an empty all",
        put("steps.3.params.condition", {"kind": "all", "of": []}),
        "steps.3.params.condition.of",
        "An 'all' group needs at least one condition.",
    ),
]


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [case[1:] for case in WORKFLOW_CASES],
    ids=[case[0] for case in WORKFLOW_CASES],
)
def test_invalid_workflow_is_refused_at_its_path(
    change: Change, path: str, message: str
) -> None:
    data = valid_workflow()
    change(data)

    with pytest.raises(ValidationError) as caught:
        Workflow.model_validate(data)

    assert {"path": path, "message": message} in error_list(caught.value, data)


AUDIENCE_CASES: list[tuple[str, Change, str, str]] = [
    (
        "empty all",
        put("filter", {"kind": "all", "of": []}),
        "filter.of",
        "An 'all' group needs at least one condition.",
    ),
    (
        "in-comparison with an empty list",
        put(
            "filter.of.1",
            {"kind": "compare", "object": "person", "field": "title", "op": "in",
             "value": []},
        ),
        "filter.of.1",
        "'Is one of' needs a non-empty list of values.",
    ),
    (
        "signal type not in snake case",
        put("filter.of.0.types", ["Series-B"]),
        "filter.of.0.types",
        "Signal types are lower-case names such as 'funding' or 'job_change'; got "
        "'Series-B'.",
    ),
    (
        "signal window of zero days",
        put("filter.of.0.within_days", 0),
        "filter.of.0.within_days",
        "A signal window is 1 to 3650 days; got 0.",
    ),
    (
        "before last activity with neither days nor months",
        put("filter.of.1", {"kind": "last_activity", "condition": "before"}),
        "filter.of.1",
        "'Before' last activity needs either days or months (one of them).",
    ),
    (
        "greater-than on text",
        put(
            "filter.of.1",
            {"kind": "compare", "object": "account", "field": "employees", "op": "gt",
             "value": "many"},
        ),
        "filter.of.1",
        "'Greater/less than' compares numbers or ISO dates such as '2024-05-01'; "
        "got 'many'.",
    ),
    (
        "exists with a value",
        put(
            "filter.of.1",
            {"kind": "compare", "object": "person", "field": "phone", "op": "exists",
             "value": "x"},
        ),
        "filter.of.1",
        "'Is set' compares with no value; remove the value.",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [case[1:] for case in AUDIENCE_CASES],
    ids=[case[0] for case in AUDIENCE_CASES],
)
def test_invalid_audience_is_refused_at_its_path(
    change: Change, path: str, message: str
) -> None:
    data = valid_audience()
    change(data)

    with pytest.raises(DefinitionError) as caught:
        validate_audience(data)

    assert {"path": path, "message": message} in caught.value.as_list()


def test_valid_definitions_pass() -> None:
    workflow = validate_workflow(valid_workflow())
    audience = validate_audience(valid_audience())

    assert workflow.steps[3].kind == "branch"
    assert audience.filter.kind == "all"


def test_error_paths_drop_union_tags_without_the_submitted_data() -> None:
    data = valid_workflow()
    put("steps.3.params.else.0.params.due_in_days", -1)(data)

    with pytest.raises(ValidationError) as caught:
        Workflow.model_validate(data)

    paths = [item["path"] for item in error_list(caught.value)]
    assert paths == ["steps.3.params.else.0.params.due_in_days"]


def test_workflow_round_trips_through_json() -> None:
    workflow = Workflow.model_validate(valid_workflow())

    again = Workflow.model_validate_json(workflow.model_dump_json(by_alias=True))

    assert again == workflow


def test_workflow_naming_an_unknown_audience_is_refused() -> None:
    workflow = Workflow.model_validate(valid_workflow())

    problems = check_references(workflow, {})

    assert [p.as_dict() for p in problems] == [
        {"path": "audience_id", "message": "No saved audience has the id 'aud-1'."}
    ]


def test_branch_condition_naming_an_unknown_audience_is_refused() -> None:
    data = valid_workflow()
    put("steps.3.params.condition", {"kind": "in_audience", "audience_id": "vip"})(data)
    workflow = Workflow.model_validate(data)
    audiences = {"aud-1": Audience.model_validate(valid_audience())}

    problems = check_references(workflow, audiences)

    assert [p.as_dict() for p in problems] == [
        {
            "path": "steps.3.params.condition.audience_id",
            "message": "No saved audience has the id 'vip'.",
        }
    ]


def member_of(audience_id: str, own_id: str) -> Audience:
    return Audience.model_validate(
        {
            "id": own_id,
            "name": own_id,
            "filter": {
                "kind": "all",
                "of": [
                    {"kind": "has_email"},
                    {"kind": "in_audience", "audience_id": audience_id},
                ],
            },
        }
    )


def test_audience_cycle_is_refused() -> None:
    # a -> b -> c -> a, where a is the audience being saved.
    saved = {"b": member_of("c", "b"), "c": member_of("a", "c")}
    edited = member_of("b", "a")

    problems = check_references(edited, saved)

    assert [p.as_dict() for p in problems] == [
        {
            "path": "filter.of.1.audience_id",
            "message": "Audience 'b' includes this audience ('a') again; audiences "
            "cannot contain themselves.",
        }
    ]


def test_audience_containing_itself_is_refused() -> None:
    problems = check_references(member_of("a", "a"), {})

    assert problems[0].path == "filter.of.1.audience_id"
    assert "cannot contain themselves" in problems[0].message


def test_audience_naming_an_unknown_audience_is_refused() -> None:
    with pytest.raises(DefinitionError) as caught:
        validate_audience(member_of("ghost", "a").model_dump(), audiences={})

    assert caught.value.as_list() == [
        {
            "path": "filter.of.1.audience_id",
            "message": "No saved audience has the id 'ghost'.",
        }
    ]


def test_chain_of_audiences_without_cycle_is_accepted() -> None:
    saved = {"b": member_of("c", "b"), "c": Audience.model_validate(valid_audience())}
    saved["c"] = saved["c"].model_copy(update={"id": "c"})

    assert check_references(member_of("b", "a"), saved) == []


def test_every_case_is_a_distinct_definition() -> None:
    variants = []
    for _, change, _, _ in WORKFLOW_CASES:
        data = copy.deepcopy(valid_workflow())
        change(data)
        variants.append(repr(data))

    assert len(set(variants)) == len(WORKFLOW_CASES) >= 25


def test_models_publish_a_json_schema_for_the_api() -> None:
    workflow_schema = Workflow.model_json_schema(by_alias=True)
    audience_schema = Audience.model_json_schema()

    branch = workflow_schema["$defs"]["BranchParams"]["properties"]
    assert set(branch) == {"condition", "then", "else"}
    assert "filter" in audience_schema["properties"]


def test_saved_json_writes_branch_arms_as_users_do() -> None:
    workflow = Workflow.model_validate(valid_workflow())

    saved = workflow.model_dump(mode="json")

    assert set(saved["steps"][3]["params"]) == {"condition", "then", "else"}
