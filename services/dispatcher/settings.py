"""Settings of the dispatcher (environment prefix `SIGNALFLOW_DISPATCHER_`)."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class DispatcherSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SIGNALFLOW_DISPATCHER_", extra="ignore"
    )

    host: str = "127.0.0.1"
    port: int = 8003
