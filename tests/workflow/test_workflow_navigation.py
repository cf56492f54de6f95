"""Step ids, navigation through branches, and what each step declares."""

from __future__ import annotations

from typing import Any

import pytest

from signalflow.topics import ActionType
from signalflow.workflow.steps import STEP_KINDS
from signalflow.workflow.workflow import StepPathError, Workflow


def note(text: str) -> dict[str, Any]:
    return {"kind": "crm_update", "name": text, "params": {"fields": {"Note": text}}}


def branch(then: list[Any], otherwise: list[Any]) -> dict[str, Any]:
    return {
        "kind": "branch",
        "params": {"condition": {"kind": "has_email"}, "then": then, "else": otherwise},
    }


@pytest.fixture
def workflow() -> Workflow:
    # 0 a; 1 branch(then: 1.then.0 b, 1.then.1 branch(then: c | else: -); else: -);
    # 2 d; 3 branch(then: - | else: e)
    return Workflow.model_validate(
        {
            "id": "wf-nav",
            "name": "Navigation",
            "audience_id": "aud",
            "steps": [
                note("a"),
                branch([note("b"), branch([note("c")], [])], []),
                note("d"),
                branch([], [note("e")]),
            ],
        }
    )


def test_paths_list_every_step_in_document_order(workflow: Workflow) -> None:
    assert [path for path, _ in workflow.paths()] == [
        "0",
        "1",
        "1.then.0",
        "1.then.1",
        "1.then.1.then.0",
        "2",
        "3",
        "3.else.0",
    ]


def test_step_at_finds_nested_steps(workflow: Workflow) -> None:
    assert workflow.step_at("1.then.1.then.0").name == "c"
    assert workflow.step_at("3.else.0").name == "e"


def test_next_path_climbs_out_of_nested_branches(workflow: Workflow) -> None:
    assert workflow.first_path() == "0"
    assert workflow.next_path("0") == "1"
    assert workflow.next_path("1.then.0") == "1.then.1"
    assert workflow.next_path("1.then.1.then.0") == "2"
    assert workflow.next_path("3.else.0") is None
    assert workflow.next_path("1") == "2"


def test_branch_path_enters_the_chosen_arm_or_skips_an_empty_one(
    workflow: Workflow,
) -> None:
    assert workflow.branch_path("1", True) == "1.then.0"
    assert workflow.branch_path("1", False) == "2"
    assert workflow.branch_path("1.then.1", False) == "2"
    assert workflow.branch_path("3", True) is None
    assert workflow.branch_path("3", False) == "3.else.0"


def test_a_whole_run_visits_the_steps_of_the_taken_arms(workflow: Workflow) -> None:
    visited: list[str] = []
    path: str | None = workflow.first_path()
    while path is not None:
        step = workflow.step_at(path)
        if step.kind == "branch":  # type: ignore[attr-defined]
            path = workflow.branch_path(path, taken=True)
            continue
        visited.append(step.name or "")
        path = workflow.next_path(path)

    assert visited == ["a", "b", "c", "d"]


@pytest.mark.parametrize("bad", ["4", "0.then.0", "1.else.0", "1.then", "x", "", "01a"])
def test_unknown_paths_raise(workflow: Workflow, bad: str) -> None:
    with pytest.raises(StepPathError):
        workflow.step_at(bad)


def test_branch_path_on_a_non_branch_raises(workflow: Workflow) -> None:
    with pytest.raises(StepPathError, match="expected a branch step at '0'"):
        workflow.branch_path("0", True)


def test_step_kinds_declare_their_action_service_and_outputs() -> None:
    declared = {
        kind: (cls.action_type, cls.outputs) for kind, cls in STEP_KINDS.items()
    }

    assert declared == {
        "crm_upsert": (ActionType.CRM_UPSERT, ("record_id", "object", "created")),
        "assign_owner": (ActionType.ASSIGN_OWNER, ("owner",)),
        "slack": (ActionType.SLACK, ()),
        "email": (ActionType.EMAIL, ()),
        "task": (ActionType.TASK, ("task_id",)),
        "delay": (None, ()),
        "webhook": (ActionType.WEBHOOK, ("status",)),
        "ai_message": (ActionType.AI_MESSAGE, ("subject", "body")),
        "sequence": (ActionType.SEQUENCE, ("prospect_id", "enrollment_id")),
        "crm_update": (ActionType.CRM_UPDATE, ()),
        "branch": (None, ()),
    }
    action_types = {cls.action_type for cls in STEP_KINDS.values()} - {None}
    assert action_types == set(ActionType)


def test_webhook_outputs_include_its_response_fields() -> None:
    workflow = Workflow.model_validate(
        {
            "id": "wf-hook",
            "name": "Hook",
            "audience_id": "aud",
            "steps": [
                {
                    "kind": "webhook",
                    "name": "Send",
                    "params": {
                        "url": "https://x.example.com/leads?src=$Company Domain",
                        "response_fields": {"lead_id": "data.id"},
                    },
                },
                {
                    "kind": "crm_update",
                    "params": {"fields": {"Lead": "${Send: lead_id} $Webhook Status"}},
                },
            ],
        }
    )

    assert workflow.step_at("0").produces() == ("status", "lead_id")


def test_command_params_carry_step_ids_instead_of_names() -> None:
    workflow = Workflow.model_validate(
        {
            "id": "wf-cmd",
            "name": "Command",
            "audience_id": "aud",
            "steps": [
                {"kind": "ai_message", "name": "Draft"},
                branch(
                    [
                        {
                            "kind": "slack",
                            "params": {
                                "recipients": [
                                    {"kind": "specific_user", "user": "kim"}
                                ],
                                "message": "*New*: ${Draft: AI Subject}",
                            },
                        }
                    ],
                    [],
                ),
            ],
        }
    )

    params = workflow.command_params("1.then.0")

    assert params["message"] == "*New*: ${0: AI Subject}"
    assert params["recipients"] == [{"kind": "specific_user", "user": "kim"}]


def test_delay_duration_adds_its_parts() -> None:
    workflow = Workflow.model_validate(
        {
            "id": "wf-delay",
            "name": "Delay",
            "audience_id": "aud",
            "steps": [
                {"kind": "delay", "params": {"days": 1, "hours": 2, "seconds": 5}}
            ],
        }
    )

    assert workflow.step_at("0").params.duration().total_seconds() == 93_605  # type: ignore[attr-defined]
