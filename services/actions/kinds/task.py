"""The task action: a to-do in the CRM on the person's record.

The subject and description render as plain text (a CRM task shows no markup);
the step's static text follows the description. The task is due `due_in_days`
from today (UTC), has the step's priority, and belongs to the record's owner (or
another owner field of it), the account's owner (or a field of the account), or
a specific user. Prefilled `fields` are written to the task once it exists. In
TEST mode the subject starts with the test mark.

Output: `task_id`.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.actions.action import Action, Step, would_send
from services.actions.command import Outcome
from services.actions.connectors.crm import CrmConnector, CrmRecord, TaskSpec
from services.actions.crm_records import (
    CrmPerson,
    find_account,
    find_person,
    read_fully,
    record_field,
    resolve_user,
    run_target,
)
from services.actions.errors import PermanentError
from services.actions.resources import Resources
from signalflow.topics import ActionType
from signalflow.workflow.steps import (
    AccountOwner,
    RecordOwner,
    SpecificUser,
    TaskParams,
)

log = logging.getLogger(__name__)


class TaskAction(Action[TaskParams]):
    """Creates CRM tasks."""

    action_type = ActionType.TASK

    def __init__(self, resources: Resources) -> None:
        self._resources = resources

    async def perform(self, step: Step[TaskParams]) -> Outcome:
        params = step.params
        target = run_target(step, self._resources)
        subject = step.mark + step.markup(params.subject).render_plain(step.context)
        body = _description(step)
        due = datetime.now(UTC).date() + timedelta(days=params.due_in_days)
        fields = {name: step.plain(value) for name, value in params.fields.items()}
        if step.dry_run:
            view = {
                "crm": target,
                "subject": subject,
                "description": body,
                "due": due.isoformat(),
                "priority": params.priority,
                "owner": _owner_choice(params),
                "fields": fields,
            }
            return Outcome.ok(would_send(view))
        crm = await self._resources.connectors.crm(target)
        person = await find_person(step, crm, target)
        account = await find_account(step, crm)
        spec = TaskSpec(
            subject=subject,
            body=body,
            due=due,
            owner_id=await self._owner_id(step, crm, person, account),
            person=person.record.ref,
            account=_task_account(person, account),
            priority=params.priority,
        )
        task = await crm.create_task(spec)
        if fields:
            await crm.update_fields(task, fields)
        log.info("created %s task %s for run %s", target, task.id, step.command.run_id)
        return Outcome.ok({"task_id": task.id, "due": _date(due)})

    async def _owner_id(
        self,
        step: Step[TaskParams],
        crm: CrmConnector,
        person: CrmPerson,
        account: CrmRecord | None,
    ) -> str | None:
        choice = step.params.assign_to
        if isinstance(choice, SpecificUser):
            return (await resolve_user(crm, person.target, choice.user)).id
        if isinstance(choice, RecordOwner) and choice.field is None:
            owner = await crm.get_owner(person.record.ref)
            return owner.id if owner is not None else None
        if isinstance(choice, AccountOwner) and choice.field is None:
            if account is None:
                raise PermanentError(
                    "the task belongs to the account owner, but no account matches "
                    "the person's domain"
                )
            owner = await crm.get_owner(account.ref)
            return owner.id if owner is not None else None
        record = person.record if isinstance(choice, RecordOwner) else account
        snapshot = step.person if isinstance(choice, RecordOwner) else step.account
        field = choice.field or ""
        user = record_field(await read_fully(crm, record), snapshot, field)
        if user is None:
            raise PermanentError(f"the field {field!r} names no user for the task")
        return (await resolve_user(crm, person.target, user)).id


def _description(step: Step[TaskParams]) -> str:
    params = step.params
    parts = [step.markup(params.description).render_plain(step.context).strip()]
    if params.static_text.strip():
        parts.append(params.static_text.strip())
    return "\n\n".join(part for part in parts if part)


def _task_account(person: CrmPerson, account: CrmRecord | None) -> Any:
    # A Salesforce task on a lead may not name an account as well.
    if account is None or (person.target == "salesforce" and person.object == "lead"):
        return None
    return account.ref


def _owner_choice(params: TaskParams) -> str:
    choice = params.assign_to
    if isinstance(choice, SpecificUser):
        return choice.user
    field = f" ({choice.field})" if choice.field else ""
    return f"{choice.kind}{field}"


def _date(value: date) -> str:
    return value.isoformat()
