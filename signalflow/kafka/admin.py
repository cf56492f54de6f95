"""Creating and correcting the cluster's topics from the topic table.

`ensure_topics` compares `Topics(settings).all()` with what the cluster has and
makes the cluster match where Kafka allows it: it creates missing topics, adds
partitions where a topic has fewer than the table asks for, and sets topic configs
that differ. It never removes partitions, never changes replication (both need a
data migration) and never touches configs the table does not name; it reports each
such difference instead. Run again, it changes nothing and says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from confluent_kafka import KafkaError, KafkaException

# confluent-kafka's public admin module re-exports these without declaring them, so
# strict mypy needs telling that importing them from there is intended.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ClusterMetadata,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
    TopicMetadata,
)

from signalflow.settings import Settings
from signalflow.topics import ResolvedTopic, Topics

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
_POLL_S = 0.2
_T = TypeVar("_T")


class TopicAdminError(Exception):
    """The cluster refused or did not answer a topic operation; not retried here."""

    retryable = False


class ChangeKind(StrEnum):
    CREATED = "created"
    PARTITIONS_ADDED = "partitions added"
    CONFIG_SET = "config set"


@dataclass(frozen=True)
class TopicChange:
    """One change made (or, in a dry run, to be made) to one topic."""

    topic: str
    kind: ChangeKind
    detail: str


@dataclass(frozen=True)
class TopicNotice:
    """A difference from the table that was left alone, and why."""

    topic: str
    message: str


@dataclass(frozen=True)
class TopicChanges:
    """What `ensure_topics` changed, and what it found but left alone."""

    changes: tuple[TopicChange, ...] = ()
    notices: tuple[TopicNotice, ...] = ()
    topics_checked: int = 0
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def of_kind(self, kind: ChangeKind) -> list[TopicChange]:
        return [change for change in self.changes if change.kind is kind]

    def summary(self) -> list[str]:
        """Return one line per change and notice, or one line saying nothing changed."""
        verb = "would be" if self.dry_run else "was"
        lines = [
            f"{change.topic}: {change.kind} {change.detail}".rstrip()
            for change in self.changes
        ]
        lines += [f"{n.topic}: left alone: {n.message}" for n in self.notices]
        if not self.changes:
            lines.append(
                f"No change: all {self.topics_checked} topics match the table "
                f"(nothing {verb} created or altered)"
            )
        return lines


@dataclass(frozen=True)
class ExistingTopic:
    """A topic as the cluster has it, with the values of the configs the table sets."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicPlan:
    """The operations that bring the cluster to the table."""

    create: tuple[ResolvedTopic, ...]
    add_partitions: dict[str, int]
    set_configs: dict[str, dict[str, str]]
    changes: TopicChanges


def ensure_topics(
    settings: Settings, *, dry_run: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S
) -> TopicChanges:
    """Make the cluster's topics match the table; report what changed.

    Waits until every created topic and added partition has a leader and every
    altered config is in effect, so clients (and a second run) see the result as
    soon as this returns. With `dry_run`, changes nothing and
    reports what it would change. Raises TopicAdminError when the cluster refuses
    an operation (e.g. a replication factor above its broker count) or does not
    answer within `timeout_s`.
    """
    wanted = Topics(settings).all()
    admin = admin_client(settings)
    existing = describe_topics(admin, wanted, timeout_s=timeout_s)
    plan = plan_changes(wanted, existing, dry_run=dry_run)
    if not dry_run:
        _apply(admin, plan, timeout_s=timeout_s)
    logger.info(
        "topics: %d change(s)%s, %d difference(s) left alone",
        len(plan.changes.changes),
        " planned" if dry_run else "",
        len(plan.changes.notices),
    )
    return plan.changes


def plan_changes(
    wanted: Iterable[ResolvedTopic],
    existing: Mapping[str, ExistingTopic],
    *,
    dry_run: bool = False,
) -> TopicPlan:
    """Return the operations and report that turn `existing` into `wanted`."""
    create: list[ResolvedTopic] = []
    add_partitions: dict[str, int] = {}
    set_configs: dict[str, dict[str, str]] = {}
    changes: list[TopicChange] = []
    notices: list[TopicNotice] = []
    wanted = list(wanted)

    for topic in wanted:
        current = existing.get(topic.full_name)
        if current is None:
            create.append(topic)
            changes.append(_created(topic))
            continue
        if current.partitions < topic.partitions:
            add_partitions[topic.full_name] = topic.partitions
            changes.append(_partitions_added(current, topic))
        elif current.partitions > topic.partitions:
            notices.append(_more_partitions(current, topic))
        if current.replication_factor != topic.replication_factor:
            notices.append(_other_replication(current, topic))
        differing = _differing_configs(current, topic)
        if differing:
            set_configs[topic.full_name] = differing
            changes.append(_configs_set(current, differing))

    report = TopicChanges(
        changes=tuple(changes),
        notices=tuple(notices),
        topics_checked=len(wanted),
        dry_run=dry_run,
    )
    return TopicPlan(tuple(create), add_partitions, set_configs, report)


def describe_topics(
    admin: AdminClient,
    wanted: Iterable[ResolvedTopic],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> dict[str, ExistingTopic]:
    """Return the wanted topics the cluster has, with the configs the table names."""
    wanted = list(wanted)
    metadata = _metadata(admin, timeout_s)
    present = [topic for topic in wanted if topic.full_name in metadata.topics]
    configs = _describe_configs(
        admin, {topic.full_name: topic.configs for topic in present}, timeout_s
    )
    existing = {}
    for topic in present:
        partitions = metadata.topics[topic.full_name].partitions
        first = partitions[min(partitions)] if partitions else None
        existing[topic.full_name] = ExistingTopic(
            name=topic.full_name,
            partitions=len(partitions),
            replication_factor=len(first.replicas) if first else 0,
            configs=configs.get(topic.full_name, {}),
        )
    return existing


def delete_topics(
    settings: Settings, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> list[str]:
    """Delete every topic whose name starts with the settings' topic prefix.

    Returns the names it asked the cluster to delete. Refuses an empty prefix, which
    would name every topic. Raises TopicAdminError when the cluster refuses.
    """
    prefix = settings.topic_prefix
    if not prefix:
        raise ValueError(f"expected a non-empty topic prefix, got {prefix!r}")
    admin = admin_client(settings)
    names = sorted(
        name for name in _metadata(admin, timeout_s).topics if name.startswith(prefix)
    )
    if not names:
        return []
    futures = admin.delete_topics(
        names, operation_timeout=timeout_s, request_timeout=timeout_s
    )
    _results(futures, "delete", timeout_s, tolerate=KafkaError.UNKNOWN_TOPIC_OR_PART)
    return names


def admin_client(settings: Settings) -> AdminClient:
    """Return an admin client for the settings' cluster, with their security."""
    return AdminClient(settings.kafka.librdkafka_config())


def _apply(admin: AdminClient, plan: TopicPlan, *, timeout_s: float) -> None:
    if plan.create:
        new_topics = [
            NewTopic(
                topic.full_name,
                num_partitions=topic.partitions,
                replication_factor=topic.replication_factor,
                config=dict(topic.configs),
            )
            for topic in plan.create
        ]
        futures = admin.create_topics(
            new_topics, operation_timeout=timeout_s, request_timeout=timeout_s
        )
        # Another process may create the same topic first; it is there either way.
        _results(futures, "create", timeout_s, tolerate=KafkaError.TOPIC_ALREADY_EXISTS)
    if plan.add_partitions:
        increases = [
            NewPartitions(name, total) for name, total in plan.add_partitions.items()
        ]
        futures = admin.create_partitions(
            increases, operation_timeout=timeout_s, request_timeout=timeout_s
        )
        _results(futures, "add partitions to", timeout_s)
    if plan.set_configs:
        resources = [
            ConfigResource(
                ResourceType.TOPIC,
                name,
                incremental_configs=[
                    ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                    for key, value in sorted(configs.items())
                ],
            )
            for name, configs in plan.set_configs.items()
        ]
        futures_by_resource = admin.incremental_alter_configs(
            resources, request_timeout=timeout_s
        )
        _results(
            {r.name: f for r, f in futures_by_resource.items()},
            "alter configs of",
            timeout_s,
        )
    expected = {topic.full_name: topic.partitions for topic in plan.create}
    expected.update(plan.add_partitions)
    _wait_for_leaders(admin, expected, timeout_s)
    _wait_for_configs(admin, plan.set_configs, timeout_s)


def _wait_for_leaders(
    admin: AdminClient, expected: Mapping[str, int], timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    waiting = dict(expected)
    while waiting:
        metadata = _metadata(admin, timeout_s)
        waiting = {
            name: count
            for name, count in waiting.items()
            if not _has_leaders(metadata.topics.get(name), count)
        }
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise TopicAdminError(
                f"expected leaders for every partition of {sorted(waiting)!r} "
                f"within {timeout_s:.0f}s"
            )
        time.sleep(_POLL_S)


def _has_leaders(topic: TopicMetadata | None, count: int) -> bool:
    if topic is None or topic.error is not None or len(topic.partitions) < count:
        return False
    return all(p.leader >= 0 and p.error is None for p in topic.partitions.values())


def _metadata(admin: AdminClient, timeout_s: float) -> ClusterMetadata:
    try:
        return admin.list_topics(timeout=timeout_s)
    except KafkaException as error:
        raise TopicAdminError(
            f"expected the cluster to answer a metadata request within "
            f"{timeout_s:.0f}s: {error}"
        ) from error


def _describe_configs(
    admin: AdminClient, keys: Mapping[str, Iterable[str]], timeout_s: float
) -> dict[str, dict[str, str | None]]:
    """Return, per topic named in `keys`, the current value of each of its keys."""
    if not keys:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in keys]
    futures = admin.describe_configs(resources, request_timeout=timeout_s)
    described = _results({r.name: f for r, f in futures.items()}, "describe", timeout_s)
    return {
        name: {key: _config_value(entries.get(key)) for key in keys[name]}
        for name, entries in described.items()
    }


def _wait_for_configs(
    admin: AdminClient, wanted: Mapping[str, Mapping[str, str]], timeout_s: float
) -> None:
    # A broker applies an altered config when the controller's metadata reaches it,
    # a moment after the alteration was accepted.
    deadline = time.monotonic() + timeout_s
    while True:
        current = _describe_configs(admin, wanted, timeout_s)
        if all(current[name] == dict(configs) for name, configs in wanted.items()):
            return
        if time.monotonic() > deadline:
            raise TopicAdminError(
                f"expected configs {dict(wanted)!r} to apply within {timeout_s:.0f}s, "
                f"the cluster still has {current!r}"
            )
        time.sleep(_POLL_S)


def _config_value(entry: ConfigEntry | None) -> str | None:
    return entry.value if entry is not None else None


def _results(
    futures: Mapping[str, Future[_T]],
    action: str,
    timeout_s: float,
    *,
    tolerate: int | None = None,
) -> dict[str, _T]:
    # Every future is awaited before any failure is raised, so one refused topic
    # does not hide what happened to the others.
    results: dict[str, _T] = {}
    failures: list[str] = []
    for name, future in futures.items():
        try:
            results[name] = future.result(timeout=timeout_s)
        except KafkaException as error:
            kafka_error = error.args[0] if error.args else error
            if isinstance(kafka_error, KafkaError) and kafka_error.code() == tolerate:
                continue
            failures.append(f"{name!r}: {kafka_error}")
        except TimeoutError:
            failures.append(f"{name!r}: no answer within {timeout_s:.0f}s")
    if failures:
        raise TopicAdminError(f"could not {action} topics: " + "; ".join(failures))
    return results


def _created(topic: ResolvedTopic) -> TopicChange:
    configs = ", ".join(f"{k}={v}" for k, v in sorted(topic.configs.items()))
    detail = (
        f"with {topic.partitions} partitions, replication {topic.replication_factor}"
    )
    if configs:
        detail += f", {configs}"
    return TopicChange(topic.full_name, ChangeKind.CREATED, detail)


def _partitions_added(current: ExistingTopic, topic: ResolvedTopic) -> TopicChange:
    detail = f"{current.partitions} -> {topic.partitions}"
    return TopicChange(topic.full_name, ChangeKind.PARTITIONS_ADDED, detail)


def _more_partitions(current: ExistingTopic, topic: ResolvedTopic) -> TopicNotice:
    return TopicNotice(
        topic.full_name,
        f"has {current.partitions} partitions, the table {topic.partitions}; "
        "partitions are never removed (keys would move)",
    )


def _other_replication(current: ExistingTopic, topic: ResolvedTopic) -> TopicNotice:
    return TopicNotice(
        topic.full_name,
        f"has replication {current.replication_factor}, the table "
        f"{topic.replication_factor}; changing it needs a partition reassignment",
    )


def _differing_configs(current: ExistingTopic, topic: ResolvedTopic) -> dict[str, str]:
    return {
        key: value
        for key, value in topic.configs.items()
        if current.configs.get(key) != value
    }


def _configs_set(current: ExistingTopic, differing: Mapping[str, str]) -> TopicChange:
    detail = ", ".join(
        f"{key}={value} (was {current.configs.get(key)})"
        for key, value in sorted(differing.items())
    )
    return TopicChange(current.name, ChangeKind.CONFIG_SET, detail)
