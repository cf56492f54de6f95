"""Settings of the metrics service (environment prefix `SIGNALFLOW_METRICS_`)."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class MetricsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNALFLOW_METRICS_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8001
