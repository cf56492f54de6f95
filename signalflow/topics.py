"""Every topic signalflow uses: its name, key, partitions, replication and configs.

This module is the single place that names topics. Services ask it for the full name
(with the configured prefix) instead of spelling topic names themselves, and
`signalflow topics ensure` creates and corrects the cluster from the same table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from signalflow.settings import Settings


class ActionType(StrEnum):
    """The action services, one topic and one consumer group each."""

    CRM_UPSERT = "crm-upsert"
    ASSIGN_OWNER = "assign-owner"
    SLACK = "slack"
    EMAIL = "email"
    TASK = "task"
    WEBHOOK = "webhook"
    AI_MESSAGE = "ai-message"
    SEQUENCE = "sequence"
    CRM_UPDATE = "crm-update"


@dataclass(frozen=True)
class DelayTier:
    """A fixed-delay topic: every message in it waits the same time."""

    label: str
    delay: timedelta


DELAY_TIERS: tuple[DelayTier, ...] = (
    DelayTier("1s", timedelta(seconds=1)),
    DelayTier("10s", timedelta(seconds=10)),
    DelayTier("1m", timedelta(minutes=1)),
    DelayTier("10m", timedelta(minutes=10)),
    DelayTier("1h", timedelta(hours=1)),
    DelayTier("10h", timedelta(hours=10)),
)

COMPACTED = {"cleanup.policy": "compact"}


@dataclass(frozen=True)
class TopicSpec:
    """One topic as the design describes it.

    `partitions=None` takes the cluster-wide default from settings, so co-partitioned
    topics (signals, profiles, control, enrollments) always agree.
    """

    name: str
    key: str
    description: str
    schema: str
    partitions: int | None = None
    configs: dict[str, str] = field(default_factory=dict)


def _static_specs() -> list[TopicSpec]:
    return [
        TopicSpec("signals", "account key", "things that happened", "signal"),
        TopicSpec(
            "profiles",
            "person or account key",
            "current data about a person or account",
            "profile",
            configs=COMPACTED,
        ),
        TopicSpec(
            "workflows",
            "definition id and version",
            "audience and workflow definitions, every version",
            "definition",
            # One partition keeps every definition in write order, which is what
            # read-your-writes and version history need.
            partitions=1,
            configs=COMPACTED,
        ),
        TopicSpec(
            "control",
            "partition-addressed",
            "activate, pause, preview and test-run commands for the matcher",
            "control",
        ),
        TopicSpec(
            "enrollments", "account key", "prospects entering a run", "enrollment"
        ),
        TopicSpec("step-results", "run id", "the outcome of one step", "step_result"),
        TopicSpec("runs", "run id", "the end of a run, for metrics", "run"),
        TopicSpec(
            "matcher-status",
            "workflow id and partition",
            "pending counts and last run per matcher partition",
            "matcher_status",
            configs=COMPACTED,
        ),
        TopicSpec(
            "dead-letters",
            "original key",
            "input that could not be processed, with the reason",
            "dead_letter",
        ),
    ]


def _action_specs() -> list[TopicSpec]:
    return [
        TopicSpec(
            f"actions.{action}",
            "run id",
            f"step commands for the {action} action service",
            "step_command",
        )
        for action in ActionType
    ]


def _delay_specs() -> list[TopicSpec]:
    return [
        TopicSpec(
            f"delays.{tier.label}",
            "run id",
            f"envelopes waiting {tier.label} before they are forwarded",
            "delay_envelope",
        )
        for tier in DELAY_TIERS
    ]


TOPIC_SPECS: tuple[TopicSpec, ...] = tuple(
    _static_specs() + _action_specs() + _delay_specs()
)
_BY_NAME = {spec.name: spec for spec in TOPIC_SPECS}


@dataclass(frozen=True)
class ResolvedTopic:
    """A topic spec with its prefixed name, partitions and replication settled."""

    spec: TopicSpec
    full_name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]


class Topics:
    """Resolves logical topic names against one environment's settings."""

    def __init__(self, settings: Settings) -> None:
        self._prefix = settings.topic_prefix
        self._partitions = settings.default_partitions
        self._replication = settings.replication_factor

    def name(self, logical: str) -> str:
        """Return the full topic name for a logical one such as `signals`."""
        if logical not in _BY_NAME:
            raise KeyError(f"expected one of the design's topics, got {logical!r}")
        return self._prefix + logical

    def action(self, action: ActionType | str) -> str:
        return self.name(f"actions.{ActionType(action)}")

    def delay(self, tier: DelayTier) -> str:
        return self.name(f"delays.{tier.label}")

    def logical(self, full_name: str) -> str:
        """Return the logical name of a prefixed topic name."""
        if not full_name.startswith(self._prefix):
            raise KeyError(f"topic {full_name!r} lacks prefix {self._prefix!r}")
        return full_name[len(self._prefix) :]

    def resolve(self, spec: TopicSpec) -> ResolvedTopic:
        configs = dict(spec.configs)
        if self._replication >= 3:
            configs.setdefault("min.insync.replicas", "2")
        return ResolvedTopic(
            spec=spec,
            full_name=self._prefix + spec.name,
            partitions=spec.partitions or self._partitions,
            replication_factor=self._replication,
            configs=configs,
        )

    def all(self) -> list[ResolvedTopic]:
        return [self.resolve(spec) for spec in TOPIC_SPECS]


def spec_for(logical: str) -> TopicSpec:
    """Return the spec of a logical topic name, or raise KeyError naming it."""
    try:
        return _BY_NAME[logical]
    except KeyError:
        raise KeyError(
            f"expected one of the design's topics, got {logical!r}"
        ) from None
