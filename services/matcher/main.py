"""Entry point of `signalflow run matcher`."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    NewTopic,
)
from faust import Worker

from services.matcher.app import MatcherWorker, input_partitions, internal_topic_names
from services.matcher.settings import MatcherSettings
from signalflow.logs import configure_logging
from signalflow.settings import Settings, get_settings
from signalflow.topics import Topics

log = logging.getLogger(__name__)

RUNNING_MARKER = "RUNNING"
ADMIN_TIMEOUT_S = 30.0
EXIT_AFTER_FAILED_BATCH = 70  # EX_SOFTWARE of sysexits.h


def main() -> None:
    """Run the matcher worker in the foreground until SIGTERM or SIGINT."""
    configure_logging("matcher")
    settings, own = get_settings(), MatcherSettings()
    own.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_internal_topics(settings)
    discard_state_after_crash(own.data_dir)
    worker = MatcherWorker(settings, own, stop=stop_at_once)
    marker = own.data_dir / RUNNING_MARKER
    marker.write_text(str(os.getpid()))
    runner = Worker(worker.app, loglevel=settings.log_level, quiet=True)
    # Faust's terminal spinner, at WARNING and above, sets the root logger to
    # DEBUG and filters in its handler: every debug line of faust and aiokafka
    # (several per record) would then be formatted for nothing.
    runner.spinner = None
    try:
        runner.execute_from_commandline()
    finally:
        # Reached on a clean stop only: a SIGKILL leaves the marker behind.
        marker.unlink(missing_ok=True)


def stop_at_once(error: BaseException) -> None:
    """Leave the process now, as SIGKILL would, after a batch could not be
    written out.

    Nothing runs after it: faust commits no further offset, and the running
    marker stays, so the next start rebuilds the tables from the changelogs
    (`discard_state_after_crash`) and processes the batch's records again.
    """
    log.critical(
        "the matcher stops at once: a batch could not be written out (%r); its "
        "records are processed again when it starts",
        error,
    )
    logging.shutdown()
    os._exit(EXIT_AFTER_FAILED_BATCH)


def discard_state_after_crash(data_dir: Path) -> bool:
    """Remove the local tables when the last run did not stop cleanly.

    RocksDB keeps writes whose changelog records may never have reached Kafka;
    rebuilt from the changelogs, the tables hold exactly what Kafka has. Returns
    whether anything was discarded.
    """
    marker = data_dir / RUNNING_MARKER
    if not marker.exists():
        return False
    for entry in data_dir.iterdir():
        if entry.name == RUNNING_MARKER:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    marker.unlink()
    log.warning(
        "the matcher did not stop cleanly last time; its tables are rebuilt from "
        "the changelogs"
    )
    return True


def ensure_internal_topics(settings: Settings) -> None:
    """Create those of the matcher's own topics that are missing: ticks, profiles
    by account and handovers.

    They have as many partitions as the signals topic. Raises KafkaException when
    the cluster refuses.
    """
    admin = AdminClient(settings.kafka.librdkafka_config())
    partitions = input_partitions(settings)
    wanted = [
        NewTopic(name, partitions, settings.replication_factor)
        for name in internal_topic_names(settings).values()
    ]
    existing = admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics
    topics = Topics(settings)
    for logical in ("signals", "profiles", "control"):
        name = topics.name(logical)
        found = existing.get(name)
        if found is not None and len(found.partitions) != partitions:
            raise ValueError(
                f"expected {partitions} partitions in {name!r} like the signals "
                f"topic (co-partitioning), got {len(found.partitions)}"
            )
    missing = [topic for topic in wanted if topic.topic not in existing]
    if not missing:
        return
    for name, future in admin.create_topics(missing).items():
        try:
            future.result(ADMIN_TIMEOUT_S)
        except Exception as error:  # already created by another replica is fine
            if "TOPIC_ALREADY_EXISTS" not in str(error):
                raise
        log.info("created %s", name)
