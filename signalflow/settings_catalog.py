"""Every environment variable of every settings class, for `signalflow settings`.

The list is read from the pydantic-settings classes themselves, so it cannot drift
from what the services actually read. Secrets show no default value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import import_module

from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings

#: Where each settings class lives, in the order the catalog lists them.
SETTINGS_CLASSES: tuple[tuple[str, str, str], ...] = (
    ("shared", "signalflow.settings", "KafkaSettings"),
    ("shared", "signalflow.settings", "RedisSettings"),
    ("shared", "signalflow.settings", "Settings"),
    ("api", "services.api.settings", "ApiSettings"),
    ("matcher", "services.matcher.settings", "MatcherSettings"),
    ("dispatcher", "services.dispatcher.settings", "DispatcherSettings"),
    ("metrics", "services.metrics.settings", "MetricsSettings"),
    ("actions", "services.actions.settings", "ActionSettings"),
    ("actions", "services.actions.settings", "CrmExportSettings"),
    ("actions", "services.actions.settings", "WebhookSettings"),
    ("actions", "services.actions.settings", "SequenceSettings"),
    ("connectors", "services.actions.connectors.salesforce", "SalesforceSettings"),
    ("connectors", "services.actions.connectors.hubspot", "HubSpotSettings"),
    ("connectors", "services.actions.connectors.slack", "SlackSettings"),
    ("connectors", "services.actions.connectors.smtp", "SmtpSettings"),
    ("connectors", "services.actions.connectors.outreach", "OutreachSettings"),
    ("connectors", "services.actions.connectors.salesloft", "SalesloftSettings"),
    ("connectors", "services.actions.connectors.openai", "OpenAISettings"),
)


@dataclass(frozen=True)
class Variable:
    """One environment variable: who reads it, its default and what it means."""

    group: str
    name: str
    default: str
    description: str


def variables() -> Iterator[Variable]:
    """Yield every variable, nested settings models excepted (their own prefix)."""
    for group, module, name in SETTINGS_CLASSES:
        cls: type[BaseSettings] = getattr(import_module(module), name)
        prefix = str(cls.model_config.get("env_prefix", "")).upper()
        for field_name, field in cls.model_fields.items():
            if _is_nested_settings(field.annotation):
                continue
            yield Variable(
                group=group,
                name=prefix + field_name.upper(),
                default=_default_of(field.annotation, field.get_default()),
                description=(field.description or "").replace("\n", " "),
            )


def _is_nested_settings(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _default_of(annotation: object, default: object) -> str:
    if (
        annotation is SecretStr
        or isinstance(default, SecretStr)
        or "Secret" in str(annotation)
    ):
        return "(secret)"
    if default is None:
        return ""
    return str(default)
