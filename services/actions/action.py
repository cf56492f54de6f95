"""What every action shares: the step it performs and the contract it keeps.

An `Action` performs the steps of one action type. `perform(step)` renders the
step's templates from the run's context with the escaping its target needs, acts
through a connector and returns the `Outcome` with the step's outputs; connector
failures are raised as `ActionError` and reported by the caller.

Modes: LIVE acts. TEST acts too, against the same targets, and marks what people
see (messages, subjects, tasks) with `TEST_MARK` and webhooks with a mode header,
so nobody mistakes a test for the real thing. DRY_RUN calls no connector that
changes anything: the action renders everything and returns what it would send
as outputs named `would_send.<what>`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from services.actions.command import Mode, Outcome, StepCommand
from signalflow.topics import ActionType
from signalflow.workflow.steps import Params
from signalflow.workflow.templates import Template, parse_template
from signalflow.workflow.variables import RunContext

TEST_MARK = "[TEST] "
WOULD_SEND = "would_send"

P = TypeVar("P", bound=Params)
P_co = TypeVar("P_co", bound=Params, covariant=True)


@dataclass(frozen=True)
class Step(Generic[P_co]):
    """One step command ready to perform: its validated parameters and context."""

    command: StepCommand
    params: P_co
    context: RunContext

    @property
    def mode(self) -> Mode:
        return self.command.mode

    @property
    def dry_run(self) -> bool:
        return self.command.mode == "DRY_RUN"

    @property
    def test(self) -> bool:
        return self.command.mode == "TEST"

    @property
    def mark(self) -> str:
        """What to put before text people read: the test mark in TEST mode."""
        return TEST_MARK if self.test else ""

    def plain(self, source: str) -> str:
        """Render a template as plain text (CRM values, URLs, headers)."""
        return parse_template(source, markup=False).render_plain(self.context)

    def markup(self, source: str) -> Template:
        """Parse a message template (variables, emoji and formatting)."""
        return parse_template(source)

    @property
    def person(self) -> Mapping[str, Any]:
        return self.command.enrollment.get("person") or {}

    @property
    def account(self) -> Mapping[str, Any] | None:
        account: Mapping[str, Any] | None = self.command.enrollment.get("account")
        return account


class Action(abc.ABC, Generic[P]):
    """Performs the steps of one action type."""

    action_type: ClassVar[ActionType]

    @abc.abstractmethod
    async def perform(self, step: Step[P]) -> Outcome:
        """Perform `step` (or, in DRY_RUN, say what would be sent).

        Raises ActionError when a connector or the step's data fails.
        """

    async def aclose(self) -> None:
        """Release what the action holds; the connectors are closed elsewhere."""


def would_send(
    values: Mapping[str, Any], *, prefix: str = WOULD_SEND
) -> dict[str, Any]:
    """Flatten what a dry run would send into `would_send.<path>` outputs."""
    flat: dict[str, Any] = {}
    for name, value in values.items():
        key = f"{prefix}.{name}"
        if isinstance(value, Mapping):
            flat.update(would_send(value, prefix=key))
        elif isinstance(value, (list, tuple)) and all(
            isinstance(item, str) for item in value
        ):
            flat[key] = ", ".join(value)
        else:
            flat[key] = value
    return flat
