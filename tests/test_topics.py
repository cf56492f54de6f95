"""`signalflow topics ensure|list` and `ensure_topics` against the real broker."""

from __future__ import annotations

import time

import pytest
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)
from typer.testing import CliRunner

from signalflow.kafka.admin import (
    ChangeKind,
    ExistingTopic,
    admin_client,
    delete_topics,
    ensure_topics,
    plan_changes,
)
from signalflow.kafka.cli import topics_app
from signalflow.settings import Settings
from signalflow.topics import TOPIC_SPECS, Topics

# What the cluster says of a topic: partitions, replication, and the configs the
# topic table sets or Kafka defaults for them.
Described = dict[str, tuple[int, int, dict[str, str]]]

_DESCRIBED_CONFIGS = ("cleanup.policy", "min.insync.replicas")


def _cli_env(settings: Settings) -> dict[str, str | None]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "SIGNALFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "SIGNALFLOW_DEFAULT_PARTITIONS": str(settings.default_partitions),
        "SIGNALFLOW_REPLICATION_FACTOR": str(settings.replication_factor),
    }


def _describe(admin: AdminClient, names: list[str]) -> Described:
    metadata = admin.list_topics(timeout=10)
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    futures = admin.describe_configs(resources)
    described: Described = {}
    for resource, future in futures.items():
        entries = future.result(timeout=10)
        partitions = metadata.topics[resource.name].partitions
        described[resource.name] = (
            len(partitions),
            len(partitions[0].replicas),
            {key: entries[key].value for key in _DESCRIBED_CONFIGS},
        )
    return described


def _set_config(admin: AdminClient, topic: str, key: str, value: str) -> None:
    """Alter one config of `topic` and wait until the broker reports it."""
    entry = ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=10)
    deadline = time.monotonic() + 10
    while _describe(admin, [topic])[topic][2][key] != value:
        assert time.monotonic() < deadline, f"{key}={value} never applied to {topic}"
        time.sleep(0.1)


def test_ensure_via_cli_twice_changes_nothing_the_second_time(
    settings: Settings,
) -> None:
    runner = CliRunner(env=_cli_env(settings))
    wanted = Topics(settings).all()
    names = [topic.full_name for topic in wanted]

    first = runner.invoke(topics_app, ["ensure"])
    assert first.exit_code == 0, first.output
    created = [
        line.split(":")[0] for line in first.output.splitlines() if "created" in line
    ]
    assert sorted(created) == sorted(names)
    admin = admin_client(settings)
    after_first = _describe(admin, names)

    second = runner.invoke(topics_app, ["ensure"])
    assert second.exit_code == 0, second.output
    assert second.output.strip() == (
        f"No change: all {len(names)} topics match the table "
        "(nothing was created or altered)"
    )
    assert _describe(admin, names) == after_first

    for topic in wanted:
        partitions, replication, configs = after_first[topic.full_name]
        assert (partitions, replication) == (topic.partitions, 1)
        expected_policy = topic.spec.configs.get("cleanup.policy", "delete")
        assert configs["cleanup.policy"] == expected_policy, topic.full_name


def test_ensure_sets_a_config_that_drifted_back_to_the_table(
    settings: Settings,
) -> None:
    ensure_topics(settings)
    profiles = Topics(settings).name("profiles")
    admin = admin_client(settings)
    _set_config(admin, profiles, "cleanup.policy", "delete")

    changes = ensure_topics(settings)

    assert [(c.topic, c.kind) for c in changes.changes] == [
        (profiles, ChangeKind.CONFIG_SET)
    ]
    assert "was delete" in changes.changes[0].detail
    assert _describe(admin, [profiles])[profiles][2]["cleanup.policy"] == "compact"
    assert not ensure_topics(settings).changed


def test_ensure_adds_partitions_but_never_removes_them(settings: Settings) -> None:
    ensure_topics(settings)
    more = settings.model_copy(update={"default_partitions": 4})
    fewer = settings.model_copy(update={"default_partitions": 2})
    signals = Topics(settings).name("signals")
    workflows = Topics(settings).name("workflows")
    admin = admin_client(settings)

    grown = ensure_topics(more)
    kept = ensure_topics(fewer)

    grown_topics = {c.topic for c in grown.of_kind(ChangeKind.PARTITIONS_ADDED)}
    # The definitions topic has one partition whatever the default.
    assert signals in grown_topics and workflows not in grown_topics
    assert len(grown_topics) == sum(1 for spec in TOPIC_SPECS if not spec.partitions)
    assert not kept.changed
    assert any(
        n.topic == signals and "never removed" in n.message for n in kept.notices
    )
    assert _describe(admin, [signals])[signals][0] == 4


def test_ensure_dry_run_reports_and_creates_nothing(settings: Settings) -> None:
    changes = ensure_topics(settings, dry_run=True)

    existing = admin_client(settings).list_topics(timeout=10).topics
    assert len(changes.of_kind(ChangeKind.CREATED)) == len(TOPIC_SPECS)
    assert not [name for name in existing if name.startswith(settings.topic_prefix)]


def test_ensure_refuses_replication_above_the_broker_count(settings: Settings) -> None:
    too_many = settings.model_copy(update={"replication_factor": 7})

    runner = CliRunner(env=_cli_env(too_many))
    result = runner.invoke(topics_app, ["ensure"])

    assert result.exit_code == 1
    assert "could not create topics" in result.output


def test_list_shows_which_topics_exist(settings: Settings) -> None:
    runner = CliRunner(env={**_cli_env(settings), "COLUMNS": "200"})
    signals = Topics(settings).name("signals")

    before = runner.invoke(topics_app, ["list"])
    ensure_topics(settings)
    after = runner.invoke(topics_app, ["list"])

    assert before.exit_code == after.exit_code == 0
    assert _row_of(before.output, signals).split("│")[4].strip() == "no"
    assert _row_of(after.output, signals).split("│")[4].strip() == "yes"


def _row_of(table: str, topic: str) -> str:
    return next(line for line in table.splitlines() if f" {topic} " in line)


def test_plan_leaves_a_different_replication_alone_and_says_why() -> None:
    settings = Settings(topic_prefix="p.", default_partitions=3, replication_factor=3)
    wanted = Topics(settings).all()
    existing = {
        topic.full_name: ExistingTopic(
            topic.full_name,
            partitions=topic.partitions,
            replication_factor=1,
            configs=dict(topic.configs),
        )
        for topic in wanted
    }

    plan = plan_changes(wanted, existing)

    assert not plan.changes.changed
    assert len(plan.changes.notices) == len(wanted)
    assert "partition reassignment" in plan.changes.notices[0].message


def test_delete_topics_refuses_an_empty_prefix() -> None:
    with pytest.raises(ValueError, match="non-empty topic prefix"):
        delete_topics(Settings(topic_prefix=""))
