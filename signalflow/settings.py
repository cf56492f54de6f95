"""One settings object for every process, read from the environment.

Kafka settings use the `KAFKA_` prefix (`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_SASL_*`,
`KAFKA_SSL_*`), Redis is `REDIS_URL`, and everything of signalflow's own uses the
`SIGNALFLOW_` prefix. The README lists every variable. Security settings are passed
through unchanged to both Kafka clients the services use: librdkafka (confluent-kafka)
and aiokafka (faust).
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(BaseSettings):
    """Where the cluster is and how to authenticate to it."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        description="Comma-separated host:port list. When set, no local broker starts.",
    )
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = Field(
        default=None, description="PEM file of the CA that signed the brokers."
    )
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr | None = None

    def librdkafka_config(self) -> dict[str, Any]:
        """Return the connection part of a confluent-kafka client configuration."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            config["ssl.ca.location"] = str(self.ssl_ca_location)
        if self.ssl_certificate_location:
            config["ssl.certificate.location"] = str(self.ssl_certificate_location)
        if self.ssl_key_location:
            config["ssl.key.location"] = str(self.ssl_key_location)
        if self.ssl_key_password is not None:
            config["ssl.key.password"] = self.ssl_key_password.get_secret_value()
        return config

    def aiokafka_config(self) -> dict[str, Any]:
        """Return the same connection settings as keyword arguments for aiokafka."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            config["sasl_mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            config["sasl_plain_username"] = self.sasl_username
        if self.sasl_password is not None:
            config["sasl_plain_password"] = self.sasl_password.get_secret_value()
        if self.security_protocol in ("SSL", "SASL_SSL"):
            config["ssl_context"] = self.ssl_context()
        return config

    def ssl_context(self) -> ssl.SSLContext:
        """Build the TLS context aiokafka needs from the same PEM files."""
        context = ssl.create_default_context(
            cafile=str(self.ssl_ca_location) if self.ssl_ca_location else None
        )
        if self.ssl_certificate_location:
            password = (
                self.ssl_key_password.get_secret_value()
                if self.ssl_key_password
                else None
            )
            context.load_cert_chain(
                str(self.ssl_certificate_location),
                keyfile=str(self.ssl_key_location) if self.ssl_key_location else None,
                password=password,
            )
        return context


class RedisSettings(BaseSettings):
    """The Redis server shared by every replica."""

    model_config = SettingsConfigDict(env_prefix="REDIS_", extra="ignore")

    url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="The Redis server. When set, no local server starts.",
    )


class Settings(BaseSettings):
    """Settings shared by every signalflow process.

    Service-specific settings (ports, concurrency) live beside each service and use
    the prefix `SIGNALFLOW_<SERVICE>_`.
    """

    model_config = SettingsConfigDict(env_prefix="SIGNALFLOW_", extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    topic_prefix: str = Field(
        default="",
        description="Prepended to every topic name, e.g. 'staging.'.",
    )
    default_partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    state_dir: Path = Field(
        default=Path.home() / ".cache" / "signalflow",
        description="Where the local broker's jars, data and process ids live.",
    )
    log_level: str = "INFO"
    local_kafka_port: int = Field(
        default=9092,
        description="Port of the broker `signalflow up` starts; the controller "
        "listens on the next one.",
    )
    local_redis_port: int = Field(
        default=6379, description="Port of the Redis server `signalflow up` starts."
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment once."""
    return Settings()
