"""One module per action type: how each step kind performs its side effect.

`build_action(action_type, resources)` returns the action a service runs; each
module is imported only by the service that runs it.
"""

from __future__ import annotations

from typing import Any

from services.actions.action import Action
from services.actions.resources import Resources
from signalflow.topics import ActionType


def build_action(action_type: ActionType, resources: Resources) -> Action[Any]:
    """Return the action performing `action_type`'s steps.

    Raises KeyError for an action type no module performs.
    """
    match ActionType(action_type):
        case ActionType.WEBHOOK:
            from services.actions.kinds.webhook import WebhookAction

            return WebhookAction(resources.webhook)
        case ActionType.AI_MESSAGE:
            from services.actions.kinds.ai_message import AiMessageAction

            return AiMessageAction(resources)
        case ActionType.SLACK:
            from services.actions.kinds.slack import SlackAction

            return SlackAction(resources)
        case ActionType.EMAIL:
            from services.actions.kinds.email import EmailAction

            return EmailAction(resources)
        case ActionType.CRM_UPSERT:
            from services.actions.kinds.crm_upsert import CrmUpsertAction

            return CrmUpsertAction(resources)
        case ActionType.ASSIGN_OWNER:
            from services.actions.kinds.assign_owner import AssignOwnerAction

            return AssignOwnerAction(resources)
        case ActionType.TASK:
            from services.actions.kinds.task import TaskAction

            return TaskAction(resources)
        case ActionType.CRM_UPDATE:
            from services.actions.kinds.crm_update import CrmUpdateAction

            return CrmUpdateAction(resources)
        case ActionType.SEQUENCE:
            from services.actions.kinds.sequence import SequenceAction

            return SequenceAction(resources)
    raise KeyError(f"no action performs {action_type!r}")
