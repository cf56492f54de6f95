"""Ready-made campaigns: an audience and a workflow for common plays.

Each campaign is plain definition data; `instantiate()` gives it fresh ids and
returns validated models, in draft status, for the user to adjust and activate.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from signalflow.workflow.workflow import Audience, Workflow

WEEKDAYS_ONLY = ["mon", "tue", "wed", "thu", "fri"]


@dataclass(frozen=True)
class PrebuiltCampaign:
    """A campaign template: what it is for, its audience and its workflow."""

    slug: str
    title: str
    description: str
    audience: dict[str, Any]
    workflow: dict[str, Any]


def _morning(timezone: str = "America/New_York") -> dict[str, Any]:
    return {
        "kind": "daily",
        "at": "09:00",
        "timezone": timezone,
        "weekdays": WEEKDAYS_ONLY,
    }


def _owner_alert(message: str, *, with_email: bool = True) -> dict[str, Any]:
    params: dict[str, Any] = {
        "recipients": [{"kind": "record_owner"}],
        "message": message,
    }
    if with_email:
        params |= {
            "include_email_template": True,
            "email_template_subject": "$AI Subject",
            "email_template_body": "$AI Body",
        }
    return {"kind": "slack", "name": "Tell the owner", "params": params}


FUNDING_MULTI_THREAD = PrebuiltCampaign(
    slug="funding-multi-thread",
    title="Funded account, multi-thread the buying committee",
    description=(
        "When an account raises a round, reach the buying committee members you "
        "have not engaged in six months: create them in the CRM, write a "
        "personal email and enroll them in a sequence."
    ),
    audience={
        "name": "Funding account multi-thread",
        "description": "Buying committee at recently funded accounts, unengaged.",
        "filter": {
            "kind": "all",
            "of": [
                {"kind": "company_signal", "types": ["funding"], "within_days": 90},
                {"kind": "person_signal", "types": ["multi_thread"]},
                {"kind": "has_email", "value": True},
                {
                    "kind": "last_activity",
                    "condition": "before",
                    "months": 6,
                    "or_empty": True,
                },
            ],
        },
    },
    workflow={
        "name": "Funding account multi-thread",
        "schedule": _morning(),
        "limits": {"max_per_account": 3, "max_per_rep": 25, "max_per_run": 100},
        "timing": "future_only",
        "reenrollment": {"after_days": 180},
        "steps": [
            {"kind": "crm_upsert", "name": "Save to CRM"},
            {
                "kind": "delay",
                "name": "Let routing assign",
                "params": {"minutes": 15},
            },
            {
                "kind": "ai_message",
                "name": "Write the email",
                "params": {
                    "tone": "professional",
                    "instructions": (
                        "Congratulate $Company Name on its $Funding Round and "
                        "connect the round to the priorities of a $Current Title."
                    ),
                },
            },
            {
                "kind": "sequence",
                "name": "Enroll",
                "params": {
                    "platform": "outreach",
                    "sequence_name": "Funding multi-thread",
                    "owner": {"kind": "record_owner"},
                },
            },
            _owner_alert(
                ":moneybag: *$Company Name* raised $$$Funding Amount "
                "($Funding Round). $Full Name, $Current Title, is now in your "
                "sequence. [CRM record](https://crm.example.com/${CRM Record Id})",
                with_email=False,
            ),
        ],
    },
)

PAST_CHAMPION = PrebuiltCampaign(
    slug="past-champion-new-account",
    title="Past champion joins a new account",
    description=(
        "Someone who bought or used your product at a former employer starts "
        "somewhere new: route them to the account's SDR and hand the rep a "
        "ready-to-send email."
    ),
    audience={
        "name": "Past champions at new accounts",
        "description": "Former champions who changed jobs in the last 30 days.",
        "filter": {
            "kind": "all",
            "of": [
                {
                    "kind": "person_signal",
                    "types": ["past_champion"],
                    "within_days": 30,
                },
                {"kind": "has_email", "value": True},
            ],
        },
    },
    workflow={
        "name": "Past champion joins a new account",
        "schedule": {"kind": "realtime"},
        "limits": {"max_per_account": 2},
        "timing": "future_only",
        "reenrollment": "never",
        "steps": [
            {
                "kind": "crm_upsert",
                "name": "Save to CRM",
                "params": {"create_as": "lead"},
            },
            {
                "kind": "assign_owner",
                "name": "Route to SDR",
                "params": {
                    "method": {"kind": "account_owner_field", "field": "SDR_Owner__c"},
                    "only_if_unowned": True,
                },
            },
            {
                "kind": "ai_message",
                "name": "Write the email",
                "params": {
                    "tone": "friendly",
                    "instructions": (
                        "They used us at $Champion Past Company; ask how we can "
                        "help in their new role as $Current Title at $Company Name."
                    ),
                },
            },
            _owner_alert(
                ":gem-stone: *Past champion alert*: $Full Name (formerly at "
                "$Champion Past Company) joined *$Company Name* as $Current Title. "
                "Owner: $Assigned Owner."
            ),
            {
                "kind": "task",
                "name": "Follow up",
                "params": {
                    "subject": "Reach out to past champion $Full Name",
                    "description": "Joined $Company Name as $Current Title.",
                    "static_text": "Call within two business days; reference the "
                    "work you did together before.",
                    "due_in_days": 2,
                    "priority": "high",
                },
            },
        ],
    },
)

NEW_HIRE_COMMITTEE = PrebuiltCampaign(
    slug="new-hire-buying-committee",
    title="New hire in the buying committee",
    description=(
        "A senior person joins a target account: tell the account owner, or "
        "round-robin the record when the account has none, and email the owner."
    ),
    audience={
        "name": "New senior hires",
        "description": "VPs, directors and executives hired in the last 60 days.",
        "filter": {
            "kind": "all",
            "of": [
                {"kind": "person_signal", "types": ["new_hire"], "within_days": 60},
                {
                    "kind": "compare",
                    "object": "person",
                    "field": "seniority",
                    "op": "in",
                    "value": ["VP", "Director", "C-Level"],
                },
                {"kind": "has_email", "value": True},
            ],
        },
    },
    workflow={
        "name": "New hire in the buying committee",
        "schedule": _morning("Europe/London"),
        "limits": {"max_per_account": 3, "max_per_rep": 15},
        "timing": "all_current",
        "reenrollment": "never",
        "steps": [
            {"kind": "crm_upsert", "name": "Save to CRM"},
            {
                "kind": "branch",
                "name": "Account owned?",
                "params": {
                    "condition": {
                        "kind": "compare",
                        "object": "account",
                        "field": "owner",
                        "op": "exists",
                    },
                    "then": [
                        {
                            "kind": "slack",
                            "params": {
                                "recipients": [{"kind": "account_owner"}],
                                "message": ":wave: $Full Name just joined "
                                "*$Company Name* as _$Current Title_.",
                            },
                        }
                    ],
                    "else": [
                        {
                            "kind": "assign_owner",
                            "params": {
                                "method": {
                                    "kind": "round_robin",
                                    "users": [
                                        {"user": "ae-east@yourco.com", "weight": 2},
                                        {"user": "ae-west@yourco.com", "weight": 1},
                                    ],
                                },
                            },
                        }
                    ],
                },
            },
            {
                "kind": "email",
                "name": "Email the owner",
                "params": {
                    "recipients": [{"kind": "record_owner"}],
                    "subject": "New $Current Title at $Company Name",
                    "message": "$Full Name started as $Current Title at "
                    "$Company Name on ${Start Date|a recent date}. Say hello!",
                },
            },
        ],
    },
)

PROMOTION_CONGRATS = PrebuiltCampaign(
    slug="promotion-congratulations",
    title="Promotion congratulations",
    description=(
        "A contact is promoted: draft a congratulations note, email it to the "
        "owner and store it on the record for any sequencing tool."
    ),
    audience={
        "name": "Recently promoted contacts",
        "description": "People promoted in the last 21 days.",
        "filter": {
            "kind": "all",
            "of": [
                {"kind": "person_signal", "types": ["promotion"], "within_days": 21},
                {"kind": "has_email", "value": True},
            ],
        },
    },
    workflow={
        "name": "Promotion congratulations",
        "schedule": {"kind": "weekly", "day": "mon", "at": "08:30", "timezone": "UTC"},
        "limits": {"max_per_rep": 30},
        "timing": "future_only",
        "reenrollment": {"after_days": 365},
        "steps": [
            {
                "kind": "ai_message",
                "name": "Write the note",
                "params": {
                    "tone": "friendly",
                    "max_words": 80,
                    "instructions": "Congratulate them on moving from "
                    "$Promoted From to $Current Title.",
                },
            },
            {
                "kind": "email",
                "params": {
                    "recipients": [{"kind": "record_owner"}],
                    "subject": ":tada: $First Name was promoted",
                    "message": "*$Full Name* is now $Current Title at $Company Name.",
                    "include_email_template": True,
                    "email_template_subject": "$AI Subject",
                    "email_template_body": "$AI Body",
                },
            },
            {
                "kind": "crm_update",
                "params": {
                    "fields": {
                        "AI_Email_Subject__c": "$AI Subject",
                        "AI_Email_Body__c": "$AI Body",
                    }
                },
            },
        ],
    },
)

HIRING_SURGE = PrebuiltCampaign(
    slug="hiring-surge",
    title="Hiring surge",
    description=(
        "An account is hiring fast: create the department's leaders in the CRM, "
        "give the owner a task and send the lead to your outbound tool."
    ),
    audience={
        "name": "Leaders at accounts hiring fast",
        "description": "Department heads at accounts with a hiring surge this month.",
        "filter": {
            "kind": "all",
            "of": [
                {
                    "kind": "company_signal",
                    "types": ["hiring_surge"],
                    "within_days": 30,
                },
                {
                    "kind": "compare",
                    "object": "person",
                    "field": "seniority",
                    "op": "in",
                    "value": ["VP", "Director", "Head"],
                },
                {"kind": "has_email", "value": True},
            ],
        },
    },
    workflow={
        "name": "Hiring surge",
        "schedule": {"kind": "daily", "at": "07:00", "timezone": "America/Chicago"},
        "limits": {"max_per_account": 2, "max_per_run": 200},
        "timing": "future_only",
        "reenrollment": {"after_days": 90},
        "steps": [
            {"kind": "crm_upsert", "name": "Save to CRM"},
            {
                "kind": "task",
                "params": {
                    "subject": "$Company Name is hiring: $Open Roles roles",
                    "description": "Hiring fastest in $Hiring Department.",
                    "due_in_days": 3,
                },
            },
            {
                "kind": "webhook",
                "name": "Send to outbound",
                "on_error": "continue",
                "params": {
                    "url": "https://outbound.example.com/api/leads",
                    "method": "POST",
                    "headers": {"X-Campaign": "hiring-surge"},
                    "payload": (
                        '{"email": "$Email", "first_name": "$First Name", '
                        '"company": "$Company Name", "crm_id": "$CRM Record Id", '
                        '"department": "$Hiring Department"}'
                    ),
                    "signing_secret": "OUTBOUND_WEBHOOK_SECRET",
                    "response_fields": {"lead_id": "data.id"},
                },
            },
        ],
    },
)

NEW_TECH = PrebuiltCampaign(
    slug="new-tech-adopted",
    title="New technology adopted",
    description=(
        "An account adopts a technology your product works with: alert the "
        "team channel and enroll the technical buyers in a sequence."
    ),
    audience={
        "name": "Technical buyers at accounts adopting a new tool",
        "description": "Engineering and IT leaders where a new technology landed.",
        "filter": {
            "kind": "all",
            "of": [
                {"kind": "company_signal", "types": ["new_tech"], "within_days": 45},
                {
                    "kind": "any",
                    "of": [
                        {
                            "kind": "compare",
                            "object": "person",
                            "field": "department",
                            "op": "in",
                            "value": ["Engineering", "IT", "Data"],
                        },
                        {
                            "kind": "compare",
                            "object": "person",
                            "field": "title",
                            "op": "contains",
                            "value": "CTO",
                        },
                    ],
                },
                {"kind": "has_email", "value": True},
            ],
        },
    },
    workflow={
        "name": "New technology adopted",
        "schedule": {"kind": "monthly", "day": 1, "at": "10:00", "timezone": "UTC"},
        "limits": {"max_per_account": 2},
        "timing": "all_current",
        "reenrollment": "never",
        "steps": [
            {
                "kind": "slack",
                "params": {
                    "recipients": [{"kind": "slack_channel", "channel": "#new-tech"}],
                    "message": ":rocket: *$Company Name* adopted $New Technology. "
                    "Reaching out to $Full Name ($Current Title).",
                },
            },
            {
                "kind": "sequence",
                "params": {
                    "platform": "salesloft",
                    "sequence_id": "cad-new-tech",
                    "owner": {"kind": "account_owner", "field": "OwnerId"},
                    "remove_from_other_sequences": True,
                },
            },
        ],
    },
)

CAMPAIGNS: dict[str, PrebuiltCampaign] = {
    campaign.slug: campaign
    for campaign in (
        FUNDING_MULTI_THREAD,
        PAST_CHAMPION,
        NEW_HIRE_COMMITTEE,
        PROMOTION_CONGRATS,
        HIRING_SURGE,
        NEW_TECH,
    )
}
"""Every prebuilt campaign by slug, in the order a library page lists them."""


def instantiate(slug: str) -> tuple[Audience, Workflow]:
    """Return a new audience and a draft workflow of a campaign, with fresh ids.

    Raises `KeyError` naming the known slugs when `slug` is not one of them.
    """
    campaign = CAMPAIGNS.get(slug)
    if campaign is None:
        raise KeyError(f"expected one of {sorted(CAMPAIGNS)}, got {slug!r}")
    audience = Audience.model_validate({**campaign.audience, "id": _fresh_id("aud")})
    workflow = Workflow.model_validate(
        {
            **campaign.workflow,
            "id": _fresh_id("wf"),
            "audience_id": audience.id,
            "description": campaign.description,
            "status": "draft",
        }
    )
    return audience, workflow


def _fresh_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"
