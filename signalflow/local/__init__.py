"""Local infrastructure for development and tests: a real Kafka cluster and Redis.

`LocalKafka` runs Apache Kafka in KRaft mode from jars Maven fetches once;
`LocalRedis` runs Debian's `redis-server`. Both record their pids in the state dir
and stop exactly those. `ensure_kafka` and `ensure_redis` honour
`KAFKA_BOOTSTRAP_SERVERS` and `REDIS_URL`: when set, nothing local starts.
"""

from signalflow.local.errors import (
    AlreadyRunningError,
    LocalInfraError,
    MissingToolError,
    StartupError,
)
from signalflow.local.kafka import (
    KafkaStatus,
    LocalKafka,
    NodeStatus,
    ensure_kafka,
    external_bootstrap,
)
from signalflow.local.ports import free_port_block
from signalflow.local.redis import (
    LocalRedis,
    RedisStatus,
    ensure_redis,
    external_redis_url,
)

__all__ = [
    "AlreadyRunningError",
    "KafkaStatus",
    "LocalInfraError",
    "LocalKafka",
    "LocalRedis",
    "MissingToolError",
    "NodeStatus",
    "RedisStatus",
    "StartupError",
    "ensure_kafka",
    "ensure_redis",
    "external_bootstrap",
    "external_redis_url",
    "free_port_block",
]
