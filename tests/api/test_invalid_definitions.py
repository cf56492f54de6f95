"""Every invalid definition is answered 422 with the path and a readable reason.

Covers the model's own checks through HTTP, and the checks that need other saved
objects: unknown audiences, audience cycles, and a draft that no longer passes its
checks when it is activated, tested or previewed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from api_harness import client_for
from api_samples import audience_body, new_id

Change = Callable[[dict[str, Any]], None]


def at(data: Any, parts: list[str]) -> Any:
    for part in parts:
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def put(path: str, value: Any) -> Change:
    """A change that sets `value` at a dotted path."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = at(data, parents)
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


def drop(path: str) -> Change:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        del at(data, parents)[last]

    return change


def append_step(step: dict[str, Any]) -> Change:
    return lambda data: data["steps"].append(step)


def webhook(**params: Any) -> dict[str, Any]:
    return {
        "kind": "webhook",
        "params": {"url": "https://hooks.example.com/in", **params},
    }


def base_workflow(audience_id: str) -> dict[str, Any]:
    """A valid workflow of four steps; the cases below break one thing each."""
    return {
        "name": "Funding follow-up",
        "audience_id": audience_id,
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


# (name, change, path, a phrase the message must contain)
WORKFLOW_CASES: list[tuple[str, Change, str, str]] = [
    ("unknown variable", put("steps.2.params.message", "Hi $Frist Name"),
     "steps.2.params.message", "Unknown variable '$Frist Name'"),
    ("output not produced earlier",
     put("steps.0.params", {"fields": {"Note__c": "$AI Body"}}),
     "steps.0.params.fields.Note__c", "no such step runs before this one"),
    ("output of a named step that runs later",
     put("steps.0.params", {"fields": {"Body__c": "${Draft: AI Body}"}}),
     "steps.0.params.fields.Body__c", "Step 'Draft' does not run before this one"),
    ("output of a step that does not exist",
     put("steps.2.params.message", "${Research: AI Body}"),
     "steps.2.params.message", "No step is named 'Research'."),
    ("per-account cap below 1", put("limits.max_per_account", 0),
     "limits.max_per_account", "at least 1"),
    ("per-rep cap negative", put("limits.max_per_rep", -3),
     "limits.max_per_rep", "at least 1"),
    ("weekly without a day", drop("schedule.day"),
     "schedule.day", "Weekly schedules need a day of the week."),
    ("monthly on day 0", put("schedule", {"kind": "monthly", "day": 0}),
     "schedule.day", "A day of the month is 1 to 31; got 0."),
    ("monthly on day 32", put("schedule", {"kind": "monthly", "day": 32}),
     "schedule.day", "A day of the month is 1 to 31; got 32."),
    ("unknown time zone", put("schedule.timezone", "Mars/Olympus_Mons"),
     "schedule.timezone", "'Mars/Olympus_Mons' is not a time zone name"),
    ("unknown schedule kind", put("schedule", {"kind": "hourly"}),
     "schedule", "Unknown kind 'hourly'"),
    ("round robin with no users",
     put("steps.0", {"kind": "assign_owner",
                     "params": {"method": {"kind": "round_robin", "users": []}}}),
     "steps.0.params.method.users", "Round robin needs at least one user."),
    ("negative round-robin weight",
     put("steps.0", {"kind": "assign_owner", "params": {"method": {
         "kind": "round_robin",
         "users": [{"user": "a@x.io"}, {"user": "b@x.io", "weight": -1}]}}}),
     "steps.0.params.method.users.1.weight", "got -1"),
    ("delay of zero",
     lambda data: data["steps"].insert(1, {"kind": "delay", "params": {"days": 0}}),
     "steps.1.params", "A delay must be longer than zero."),
    ("webhook URL not http(s)", append_step(webhook(url="ftp://files.example.com/x")),
     "steps.4.params.url", "A webhook URL starts with http:// or https://"),
    ("webhook method invalid", append_step(webhook(method="FETCH")),
     "steps.4.params.method", "'FETCH'"),
    ("webhook payload that is not JSON",
     append_step(webhook(payload='{"email": "$Email"')),
     "steps.4.params.payload", "The payload is not valid JSON"),
    ("branch without condition", drop("steps.3.params.condition"),
     "steps.3.params.condition", "A branch needs a condition."),
    ("branch with no steps in either arm",
     put("steps.3.params", {"condition": {"kind": "has_email"}}),
     "steps.3.params", "A branch needs steps in 'then', 'else' or both."),
    ("empty steps", put("steps", []), "steps", "A workflow needs at least one step."),
    ("re-enroll after 0 days", put("reenrollment", {"after_days": 0}),
     "reenrollment.after_days", "Re-enrollment waits 1 to 3650 days; got 0."),
    ("slack notification with no recipients", put("steps.2.params.recipients", []),
     "steps.2.params.recipients", "Choose at least one recipient"),
    ("email without subject",
     put("steps.2", {"kind": "email", "params": {
         "recipients": [{"kind": "record_owner"}], "message": "Hi"}}),
     "steps.2.params.subject", "Email notifications need a subject."),
    ("sequence without sequence id",
     put("steps.3.params.then.0.params", {"platform": "salesloft"}),
     "steps.3.params.then.0.params", "Choose the sequence by its id or its name."),
    ("task due in -1 days", put("steps.3.params.else.0.params.due_in_days", -1),
     "steps.3.params.else.0.params.due_in_days", "got -1"),
    ("two steps with the same name", put("steps.1.name", "Save"),
     "steps.1.name", "Two steps are named 'Save'"),
    ("unknown step kind", put("steps.0", {"kind": "fax"}),
     "steps.0", "Unknown kind 'fax'"),
    ("misspelt field", put("steps.1.on_eror", "continue"),
     "steps.1.on_eror", "not recognised"),
    ("max attempts above 20", put("steps.1.max_attempts", 50),
     "steps.1.max_attempts", "at most 20"),
    ("branch condition with an empty all",
     put("steps.3.params.condition", {"kind": "all", "of": []}),
     "steps.3.params.condition.of", "needs at least one condition"),
    ("missing name", drop("name"), "name", "This field is required."),
    ("unknown audience", put("audience_id", "aud_nobody_saved_this"),
     "audience_id", "No saved audience has the id 'aud_nobody_saved_this'."),
    ("branch condition naming an unknown audience",
     put("steps.3.params.condition", {"kind": "in_audience", "audience_id": "vip"}),
     "steps.3.params.condition.audience_id", "No saved audience has the id 'vip'."),
    ("status other than draft on create", put("status", "active"),
     "status", "change it with activate or pause"),
]  # fmt: skip

AUDIENCE_CASES: list[tuple[str, Change, str, str]] = [
    ("empty all", put("filter", {"kind": "all", "of": []}),
     "filter.of", "needs at least one condition"),
    ("in-comparison with an empty list",
     put("filter.of.1", {"kind": "compare", "object": "person", "field": "title",
                         "op": "in", "value": []}),
     "filter.of.1", "non-empty list"),
    ("signal type not in snake case", put("filter.of.0.types", ["Series-B"]),
     "filter.of.0.types", "'Series-B'"),
    ("signal window of zero days", put("filter.of.0.within_days", 0),
     "filter.of.0.within_days", "got 0"),
    ("last activity before with no period",
     put("filter.of.3", {"kind": "last_activity", "condition": "before"}),
     "filter.of.3", "needs either days or months"),
    ("membership of an unknown audience",
     put("filter.of.2", {"kind": "in_audience", "audience_id": "ghost"}),
     "filter.of.2.audience_id", "No saved audience has the id 'ghost'."),
    ("empty name", put("name", ""), "name", "cannot be empty"),
]  # fmt: skip


@pytest.fixture(scope="module")
async def saved_audience(api: Any) -> str:
    async with client_for(api) as http:
        response = await http.post("/audiences", json=audience_body())
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


def assert_problem(response: httpx.Response, path: str, phrase: str) -> None:
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    matching = [e for e in errors if e["path"] == path and phrase in e["message"]]
    assert matching, f"no error at {path!r} saying {phrase!r}: {errors}"


@pytest.mark.parametrize(
    ("change", "path", "phrase"),
    [case[1:] for case in WORKFLOW_CASES],
    ids=[case[0] for case in WORKFLOW_CASES],
)
async def test_an_invalid_workflow_is_refused_at_its_path(
    client: httpx.AsyncClient, saved_audience: str, change: Change, path: str,
    phrase: str,
) -> None:  # fmt: skip
    body = base_workflow(saved_audience)
    change(body)

    response = await client.post("/workflows", json=body)

    assert_problem(response, path, phrase)


@pytest.mark.parametrize(
    ("change", "path", "phrase"),
    [case[1:] for case in AUDIENCE_CASES],
    ids=[case[0] for case in AUDIENCE_CASES],
)
async def test_an_invalid_audience_is_refused_at_its_path(
    client: httpx.AsyncClient, change: Change, path: str, phrase: str
) -> None:
    body = audience_body()
    change(body)

    response = await client.post("/audiences", json=body)

    assert_problem(response, path, phrase)


async def test_the_cases_are_distinct_definitions(saved_audience: str) -> None:
    variants = set()
    for _, change, _, _ in WORKFLOW_CASES:
        body = copy.deepcopy(base_workflow(saved_audience))
        change(body)
        variants.add(repr(body))

    assert len(variants) == len(WORKFLOW_CASES) >= 25


async def test_the_base_workflow_is_valid(
    client: httpx.AsyncClient, saved_audience: str
) -> None:
    response = await client.post("/workflows", json=base_workflow(saved_audience))

    assert response.status_code == 201, response.text


async def test_an_update_that_closes_an_audience_cycle_is_refused(
    client: httpx.AsyncClient,
) -> None:
    first = (await client.post("/audiences", json=audience_body())).json()["id"]
    second = await client.post(
        "/audiences",
        json=audience_body(filter={"kind": "in_audience", "audience_id": first}),
    )
    assert second.status_code == 201, second.text
    second_id = second.json()["id"]

    closing = audience_body(filter={"kind": "in_audience", "audience_id": second_id})
    response = await client.put(f"/audiences/{first}", json=closing)

    assert_problem(response, "filter.audience_id", "cannot contain themselves")
    unchanged = (await client.get(f"/audiences/{first}")).json()
    assert unchanged["version"] == 1


async def test_an_audience_cannot_include_itself(client: httpx.AsyncClient) -> None:
    audience_id = new_id("aud")
    body = audience_body(
        audience_id, filter={"kind": "in_audience", "audience_id": audience_id}
    )

    response = await client.post("/audiences", json=body)

    assert_problem(response, "filter.audience_id", "cannot contain themselves")


async def test_a_draft_whose_audience_was_deleted_cannot_run(
    client: httpx.AsyncClient,
) -> None:
    audience_id = (await client.post("/audiences", json=audience_body())).json()["id"]
    draft = await client.post("/workflows", json=base_workflow(audience_id))
    workflow_id = draft.json()["id"]
    deleted = await client.delete(f"/audiences/{audience_id}")
    assert deleted.status_code == 200, deleted.text
    message = f"No saved audience has the id '{audience_id}'."

    activate = await client.post(
        f"/workflows/{workflow_id}/activate", json={"execution_timing": "all_current"}
    )
    test_run = await client.post(f"/workflows/{workflow_id}/test-runs", json={})
    dry_run = await client.post(f"/workflows/{workflow_id}/dry-runs", json={})
    preview = await client.post(f"/workflows/{workflow_id}/preview")

    for response in (activate, test_run, dry_run, preview):
        assert_problem(response, "audience_id", message)
    workflow = (await client.get(f"/workflows/{workflow_id}")).json()
    assert (workflow["status"], workflow["version"]) == ("draft", 1)


async def test_an_update_with_another_id_is_refused(
    client: httpx.AsyncClient, saved_audience: str
) -> None:
    body = audience_body(new_id("aud"))

    response = await client.put(f"/audiences/{saved_audience}", json=body)

    assert_problem(response, "id", "must be the id in the address")


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        (b"", "The body is empty."),
        (b"{not json", "The body is not valid JSON"),
        (b"[1, 2]", "Send the definition as a JSON object."),
    ],
    ids=["empty", "not JSON", "not an object"],
)
async def test_a_body_that_is_no_definition_is_refused(
    client: httpx.AsyncClient, content: bytes, phrase: str
) -> None:
    response = await client.post(
        "/workflows", content=content, headers={"Content-Type": "application/json"}
    )

    assert_problem(response, "", phrase)


async def test_a_run_limit_out_of_range_is_refused(
    client: httpx.AsyncClient, saved_audience: str
) -> None:
    workflow = await client.post("/workflows", json=base_workflow(saved_audience))
    workflow_id = workflow.json()["id"]

    response = await client.post(
        f"/workflows/{workflow_id}/test-runs", json={"limit": 0}
    )

    assert_problem(response, "limit", "greater than or equal to 1")
