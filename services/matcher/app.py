"""The matcher's faust worker: topics, tables, agents, timer and health page.

Data flow. Signals are keyed by account and read as they are. Profiles are keyed
by person or account; `repartition_profiles` re-keys each by its account into the
internal topic `<app id>-profiles-by-account` (once, with faust's producer, whose
partitioner is Kafka's murmur2 like the Java client's), so a partition number
means the same accounts on every input. It remembers each person's home (the
`homes` table) and sends the profile of a person who moved to an account of
another partition to the old one, which hands the person over, with their
history, through the internal topic `<app id>-handovers`
(`services.matcher.routing`). One agent, `match`, reads signals, re-keyed
profiles, handovers, control commands and the internal ticks topic, and hands
each record to the `PartitionMatcher` of its partition. Faust's assignor gives a
worker the same partition numbers of all these co-partitioned topics and of the
tables' changelogs. A faust timer sends a tick to every partition the worker
owns; the tick is processed like any record, so time-driven work (timers,
scheduled runs, status) is ordered with the partition's other records and
batched with them.

Exactly once across SIGKILL, restarts and rebalances. What a record changes is
held in memory, and the record is acknowledged to faust only when its batch is
written out (`services.matcher.batching`): every `flush_interval_s` (or
`flush_records` records), the worker waits until the broker acknowledged every
enrollment and handover the batch sent, writes the batch's changes to the tables
(RocksDB and the changelog, through faust's producer), waits until the broker
acknowledged the changelog records, and only then acknowledges the batch's
records. Faust (at-least-once) commits only acknowledged offsets, so every table
write, enrollment and handover caused by records up to a committed offset reached
Kafka first; records after it are processed again after a crash. A batch that
cannot be written out stops the process at once, as a crash would
(`main.stop_at_once`). Three rules make that replay harmless:

1. An enrollment is sent and acknowledged *before* the tables record it (the
   `emitted` run id and the `enrolled` epoch): the tables are written only after
   the batch's acknowledgements. Its run id is derived from (workflow, person,
   epoch), so a replay decides the same id. A crash after the acknowledgement and
   before the changelog write leaves the enrollment in the topic and not in the
   table: when a replica takes up a partition, `reconcile()` reads the partition
   of the `enrollments` topic (the matcher sends there with an explicit
   partition) from the last offset the table recorded to the end, and records
   what it finds. Only then does the partition process records; the replayed
   record then finds its run id in `emitted` and records the enrollment without
   sending it again. A crash before the acknowledgement leaves the table without
   it and the topic with or without it: reconciliation records it if the broker
   took it, and the replay sends it if not.
2. Every state update is idempotent (a signal id is applied once, a profile keeps
   the newest `updated_at`, a pending entry is added once), and evaluation runs
   even for a duplicate, so a replayed record decides what it decided the first
   time. Faust may replay records of different topics in another order than
   they were first processed; between data records that does not change what
   they decide, but a control command does (a `future_only` activation marks who
   matches when it is processed). So a batch never holds control commands and
   other records together, and its changes are delivered to Kafka before a
   record of the other kind is processed: a replayed command then finds its
   effects recorded (commands are idempotent by their id) and the records around
   it see the state they saw the first time.
3. RocksDB keeps a batch's writes as soon as they are written out, before their
   changelog records are delivered. After an unclean stop the local store may
   hold writes that never reached the changelog, and the changelog is what other
   replicas rebuild from. A replica that did not stop cleanly therefore discards
   its local tables and rebuilds them from the changelogs
   (`main.discard_state_after_crash`), so the recovered tables are exactly what
   Kafka has.

Caps held in Redis are claimed per run id (a second claim of the same id is a
yes that does not count again), so a replay does not use up places either. A
zombie replica (paused past its session, still sending) is not fenced; that needs
transactions, which this design does without.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import faust
import redis.asyncio as redis
from faust.types import TP
from faust.web import Request, Response, View

from services.matcher.batching import Batcher, OwnedPartition, Stop
from services.matcher.catalog import Catalog, DefinitionMissingError
from services.matcher.clock import Clock, FileClock, SystemClock
from services.matcher.engine import PartitionMatcher
from services.matcher.limits import SharedLimits
from services.matcher.outbox import DeadLetterSender, FaustOutbox, reconcile
from services.matcher.routing import route
from services.matcher.settings import MatcherSettings
from services.matcher.tables import PartitionTables, make_homes_table, make_tables
from signalflow.contracts import Codec, ContractError
from signalflow.contracts.inputs import validate_profile, validate_signal
from signalflow.definitions import DefinitionLog
from signalflow.settings import Settings
from signalflow.topics import Topics, spec_for

log = logging.getLogger(__name__)

SERVICE = "matcher"
PRODUCER_LINGER_S = 0.005


def app_id(settings: Settings) -> str:
    """The faust app id: the consumer group and the prefix of internal topics."""
    return f"{settings.topic_prefix}signalflow.{SERVICE}"


def internal_topic_names(settings: Settings) -> dict[str, str]:
    """The names of the topics the matcher keeps for itself."""
    base = app_id(settings)
    return {
        "ticks": f"{base}-ticks",
        "profiles_by_account": f"{base}-profiles-by-account",
        "handovers": f"{base}-handovers",
    }


def input_partitions(settings: Settings) -> int:
    """How many partitions signals (and so every co-partitioned topic) have."""
    return Topics(settings).resolve(spec_for("signals")).partitions


class MatcherWorker:
    """Everything one matcher replica runs inside its faust app.

    Args:
        settings: the environment.
        own: the matcher's settings.
        stop: stops the process at once when a batch cannot be written out
            (`services.matcher.batching`).
        clock: the time decisions use (default: the system clock, or the clock
            file when the settings name one).
    """

    def __init__(
        self,
        settings: Settings,
        own: MatcherSettings,
        *,
        stop: Stop,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.own = own
        self.clock = clock or (
            FileClock(own.clock_file) if own.clock_file else SystemClock()
        )
        self.topics = Topics(settings)
        self.codec = Codec.load()
        self.partitions = input_partitions(settings)
        self.app = self._build_app()
        self.batcher = Batcher(
            interval_s=own.flush_interval_s,
            max_records=own.flush_records,
            name_of=self._input_name,
            deliver=self._deliver,
            stop=stop,
        )
        self._definitions: DefinitionLog | None = None
        self._catalog: Catalog | None = None
        self._limits: SharedLimits | None = None
        self._redis: redis.Redis | None = None
        self._ready = asyncio.Lock()
        self._wire()

    # ------------------------------------------------------------------ setup

    def _build_app(self) -> faust.App:
        own = self.own
        return faust.App(
            app_id(self.settings),
            broker=[
                f"kafka://{server}"
                for server in self.settings.kafka.bootstrap_servers.split(",")
            ],
            broker_credentials=_credentials(self.settings),
            store="rocksdb://",
            datadir=str(own.data_dir),
            web_host=own.host,
            web_port=own.port,
            topic_partitions=self.partitions,
            topic_replication_factor=self.settings.replication_factor,
            key_serializer="raw",
            value_serializer="raw",
            table_standby_replicas=0,
            broker_commit_interval=own.commit_interval_s,
            broker_session_timeout=own.session_timeout_s,
            broker_heartbeat_interval=min(3.0, own.session_timeout_s / 3),
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            # Wait a little for more records before a produce request: batches
            # the changelog writes of a batch and the enrollments into fewer
            # requests.
            producer_linger=PRODUCER_LINGER_S,
            processing_guarantee="at_least_once",
            # A rebalance and a stop wait for every record to be acknowledged,
            # so a batch is written out before its partition moves.
            stream_wait_empty=True,
        )

    def _wire(self) -> None:
        app, names = self.app, internal_topic_names(self.settings)
        raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes}
        self.signals_topic = self.topics.name("signals")
        self.control_topic = self.topics.name("control")
        self.ticks_topic = names["ticks"]
        self.by_account_topic = names["profiles_by_account"]
        self.handovers_topic = names["handovers"]
        self.profiles = app.topic(self.topics.name("profiles"), **raw)
        self.by_account = app.topic(self.by_account_topic, **raw)
        self.ticks = app.topic(self.ticks_topic, **raw)
        sources = (
            self.signals_topic,
            self.by_account_topic,
            self.control_topic,
            self.ticks_topic,
            self.handovers_topic,
        )
        self.inputs = app.topic(*sources, **raw)
        self.enrollments_topic = self.topics.name("enrollments")
        self.outbox = FaustOutbox(
            self.codec,
            enrollments=app.topic(self.enrollments_topic, **raw),
            status=app.topic(self.topics.name("matcher-status"), **raw),
            handovers=app.topic(self.handovers_topic, **raw),
        )
        self.dead_letters = DeadLetterSender(
            self.codec, app.topic(self.topics.name("dead-letters"), **raw)
        )
        self.tables = make_tables(app, partitions=self.partitions, sources=sources)
        self.homes = make_homes_table(
            app, partitions=self.partitions, source=self.profiles.get_topic_name()
        )
        app.agent(self.profiles, name="repartition_profiles")(self._repartition)
        app.agent(self.inputs, name="match")(self._match)
        app.task(self.batcher.run)
        app.timer(interval=self.own.tick_interval_s)(self._tick_all)
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]
        worker = self

        @app.page("/health")
        class Health(View):
            async def get(self, request: Request) -> Response:
                return self.json(worker.health())

    # --------------------------------------------------------------- services

    async def _services(self) -> tuple[Catalog, SharedLimits]:
        """Start the definition log and Redis client on first use."""
        async with self._ready:
            if self._catalog is None or self._limits is None:
                self._definitions = DefinitionLog(self.settings, codec=self.codec)
                await self._definitions.start()
                self._catalog = Catalog(
                    self._definitions, wait_s=self.own.definition_wait_s
                )
                self._redis = redis.Redis.from_url(self.settings.redis.url)
                self._limits = SharedLimits(
                    self._redis, prefix=self.settings.topic_prefix
                )
            return self._catalog, self._limits

    async def _owned(self, partition: int) -> OwnedPartition:
        """The partition's matcher and tables; the first call reconciles and
        loads them. Call under the batcher's lock."""
        owned = self.batcher.partitions.get(partition)
        if owned is not None:
            return owned
        catalog, limits = await self._services()
        tables = PartitionTables(
            self.tables, partition, cache_entries=self.own.cache_entries
        )
        found = await reconcile(
            self.settings, self.codec, self.enrollments_topic, partition, tables.state
        )
        matcher = PartitionMatcher(
            partition,
            tables.state,
            partitions=self.partitions,
            catalog=catalog,
            limits=limits,
            outbox=self.outbox,
            clock=self.clock,
            settings=self.own,
        )
        await matcher.load()
        matcher.recover(found)
        owned = OwnedPartition(matcher, tables)
        self.batcher.partitions[partition] = owned
        return owned

    async def _on_revoked(self, app: faust.App, revoked: set[TP], **_: Any) -> None:
        self._drop_partitions({tp.partition for tp in revoked})

    async def _on_assigned(self, app: faust.App, assigned: set[TP], **_: Any) -> None:
        self._seek_uncommitted_to_start()
        # A partition that comes back may have moved meanwhile: take it up afresh.
        owned = {tp.partition for tp in assigned if tp.topic == self.signals_topic}
        self._drop_partitions(set(self.batcher.partitions) - owned)
        log.info("matcher owns partitions %s", sorted(owned))

    def _seek_uncommitted_to_start(self) -> None:
        """Make faust's seek to committed offsets also rewind input partitions
        that have none.

        After a rebalance faust resumes the input partitions, then seeks them to
        their committed offsets, then resumes the streams, clearing what they
        had queued meanwhile. aiokafka seeks only partitions with a committed
        offset above zero, so a partition without one keeps its fetch position,
        past the records just cleared: they would not be processed before the
        next restart. Rewinding such a partition to its start has faust fetch
        them again (a partition without a commit has had nothing acknowledged).
        """
        consumer: Any = self.app.consumer
        if getattr(consumer, "_rewinds_uncommitted", False):
            return
        seek_to_committed = consumer.seek_to_committed
        inputs = {self.profiles.get_topic_name(), *self.inputs.topics}

        async def seek_to_committed_or_start() -> dict[TP, int | None]:
            committed: dict[TP, int | None] = await seek_to_committed()
            for tp, offset in committed.items():
                if tp.topic in inputs and not offset:
                    await consumer.seek(tp, 0)
            return committed

        consumer.seek_to_committed = seek_to_committed_or_start
        consumer._rewinds_uncommitted = True

    def _drop_partitions(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.batcher.drop(partition)

    # ----------------------------------------------------------------- agents

    async def _repartition(self, stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            try:
                record = validate_profile(self.codec.decode("profile", event.value))
            except ContractError as error:
                await self.dead_letters.send(event.message, str(error))
                continue
            if record["kind"] == "ACCOUNT":
                await self.by_account.send(
                    key=record["account_key"].encode(), value=event.value
                )
            else:
                await self._route_person(record, event.value)

    async def _route_person(self, record: dict[str, Any], value: bytes) -> None:
        """Send a person's profile where `services.matcher.routing` says, and
        remember their home (in the profiles partition's `homes` table)."""
        key = record["key"].encode()
        stored = self.homes.get(key)
        home = json.loads(stored) if stored is not None else None
        way = route(record, home, self.partitions)
        delivery = await self.by_account.send(key=way.account_key.encode(), value=value)
        if way.moves:
            await delivery
        if way.home is None:
            if stored is not None:
                del self.homes[key]
        elif way.home != home:
            self.homes[key] = json.dumps(way.home).encode()

    async def _match(self, stream: faust.StreamT[bytes]) -> None:
        # Records are acknowledged by the batcher, once written out.
        manual: Any = stream.noack()  # type: ignore[attr-defined]
        self.batcher.acknowledge = manual.ack
        async for event in manual.events():
            message = event.message
            command = message.topic == self.control_topic
            if self.batcher.crosses(command=command):
                await self.batcher.flush(deliver=True)
            async with self.batcher.lock:
                owned = await self._owned(message.partition)
                try:
                    await self._dispatch(owned.matcher, message.topic, event.value)
                except (ContractError, DefinitionMissingError) as error:
                    await self.dead_letters.send(message, str(error))
                self.batcher.hold(owned, event, command=command)
            if self.batcher.due():
                await self.batcher.flush()

    async def _dispatch(
        self, matcher: PartitionMatcher, topic: str, value: bytes
    ) -> None:
        if topic == self.signals_topic:
            await matcher.on_signal(validate_signal(self.codec.decode("signal", value)))
        elif topic == self.by_account_topic:
            await matcher.on_profile(
                validate_profile(self.codec.decode("profile", value))
            )
        elif topic == self.control_topic:
            await matcher.on_control(self.codec.decode("control", value))
        elif topic == self.ticks_topic:
            await matcher.on_tick()
        elif topic == self.handovers_topic:
            await matcher.on_handover(self.codec.decode("person_handover", value))
        else:
            raise ValueError(f"expected one of the matcher's inputs, got {topic!r}")

    async def _tick_all(self) -> None:
        owned = sorted(
            tp.partition
            for tp in self.app.assignor.assigned_actives()
            if tp.topic == self.ticks_topic
        )
        tick = json.dumps({"at": self.clock.now().isoformat()}).encode()
        for partition in owned:
            await self.ticks.send(key=b"tick", value=tick, partition=partition)

    # ----------------------------------------------------------------- health

    async def _deliver(self) -> None:
        """Wait until the producer delivered everything it was handed."""
        await self.app.producer.flush()

    def _input_name(self, topic: str) -> str:
        names = {
            self.signals_topic: "signals",
            self.by_account_topic: "profiles",
            self.control_topic: "control",
            self.ticks_topic: "ticks",
            self.handovers_topic: "handovers",
        }
        return names.get(topic, topic)

    def health(self) -> dict[str, Any]:
        """The health report: partitions owned, records done (written out and
        acknowledged) in all and by input, enrollments the broker acknowledged,
        dead letters."""
        done = self.batcher.done
        return {
            "service": SERVICE,
            "state": "running",
            "partitions": sorted(self.batcher.partitions),
            "records_done": sum(done.values()),
            "done": dict(done),
            "enrollments_sent": self.outbox.acknowledged,
            "dead_letters": self.dead_letters.sent,
            "active_workflows": len(self._catalog.index) if self._catalog else 0,
        }

    async def close(self) -> None:
        """Stop the definition log and the Redis client (after the worker stops)."""
        if self._definitions is not None:
            await self._definitions.stop()
        if self._redis is not None:
            await self._redis.aclose()


def _credentials(settings: Settings) -> Any:
    kafka = settings.kafka
    if kafka.security_protocol == "PLAINTEXT":
        return None
    context = kafka.ssl_context() if "SSL" in kafka.security_protocol else None
    if kafka.security_protocol == "SSL":
        return faust.SSLCredentials(context)
    password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
    return faust.SASLCredentials(
        username=kafka.sasl_username,
        password=password,
        mechanism=kafka.sasl_mechanism,
        ssl_context=context,
    )
