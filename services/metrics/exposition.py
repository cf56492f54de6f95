"""The figures in Prometheus' text exposition format."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.metrics.store import WorkflowFigures

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Snapshot(Collector):
    """Yields the metric families of one snapshot of the figures."""

    def __init__(
        self, figures: Sequence[WorkflowFigures], dead_letters: dict[str, Any]
    ) -> None:
        self._figures = figures
        self._dead_letters = dead_letters

    def collect(self) -> Iterator[Metric]:
        yield from self._workflow_families(self._figures)
        dead = CounterMetricFamily(
            "signalflow_dead_letters",
            "Records sent to dead-letters, by source topic.",
            labels=["source_topic"],
        )
        for topic, count in self._dead_letters["by_source_topic"].items():
            dead.add_metric([topic], count)
        yield dead

    @staticmethod
    def _workflow_families(figures: Iterable[WorkflowFigures]) -> Iterator[Metric]:
        labels = ["workflow", "mode"]
        pending = GaugeMetricFamily(
            "signalflow_pending", "Matches waiting for a run.", labels=labels
        )
        runs = CounterMetricFamily(
            "signalflow_runs", "Runs finished, by outcome.", labels=[*labels, "outcome"]
        )
        enrolled = CounterMetricFamily(
            "signalflow_enrolled", "Prospects enrolled.", labels=labels
        )
        last_run = GaugeMetricFamily(
            "signalflow_last_run_timestamp_seconds",
            "When the workflow's schedule last ran.",
            labels=labels,
        )
        steps = CounterMetricFamily(
            "signalflow_steps",
            "Step outcomes.",
            labels=[*labels, "step", "outcome"],
        )
        for figure in figures:
            key = [figure.workflow_id, figure.mode]
            pending.add_metric(key, figure.pending)
            enrolled.add_metric(key, figure.totals.get("enrolled", 0))
            for outcome in ("ok", "error"):
                runs.add_metric([*key, outcome], figure.totals.get(outcome, 0))
            if figure.last_run_at is not None:
                last_run.add_metric(key, figure.last_run_at.timestamp())
            for step_id, outcomes in figure.steps.items():
                for outcome, count in outcomes.items():
                    steps.add_metric([*key, step_id, outcome], count)
        yield from (pending, enrolled, runs, last_run, steps)


def render_prometheus(
    figures: Sequence[WorkflowFigures], dead_letters: dict[str, Any]
) -> tuple[bytes, str]:
    """Return the exposition body and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(figures, dead_letters))
    return generate_latest(registry), CONTENT_TYPE
