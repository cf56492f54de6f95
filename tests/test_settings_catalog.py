"""`signalflow settings` lists every settings class the code defines."""

from __future__ import annotations

import importlib
import pkgutil

from pydantic_settings import BaseSettings

import services
import signalflow
from signalflow.settings_catalog import SETTINGS_CLASSES, variables


def defined_settings_classes() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for package in (signalflow, services):
        prefix = package.__name__ + "."
        for module_info in pkgutil.walk_packages(package.__path__, prefix):
            if ".emulators" in module_info.name or module_info.name.endswith(
                "__main__"
            ):
                continue
            module = importlib.import_module(module_info.name)
            for value in vars(module).values():
                if (
                    isinstance(value, type)
                    and issubclass(value, BaseSettings)
                    and value.__module__ == module.__name__
                    and value.model_fields
                    and "env_prefix" in value.model_config
                    # A base that others derive from reads nothing itself.
                    and not value.__subclasses__()
                ):
                    found.add((value.__module__, value.__name__))
    return found


def test_every_settings_class_is_in_the_catalog() -> None:
    listed = {(module, name) for _, module, name in SETTINGS_CLASSES}
    assert defined_settings_classes() - listed == set()


def test_variables_carry_their_prefix_and_hide_secrets() -> None:
    by_name = {variable.name: variable for variable in variables()}

    assert by_name["KAFKA_BOOTSTRAP_SERVERS"].default == "127.0.0.1:9092"
    assert by_name["SIGNALFLOW_API_TOKENS"].default == "(secret)"
    assert by_name["SIGNALFLOW_DISPATCHER_PORT"].default == "8003"
