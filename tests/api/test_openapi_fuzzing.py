"""The OpenAPI document is complete, and fuzzing every operation finds no 5xx.

Schemathesis generates requests from the document (bodies, paths, queries) and
sends them with a token to a live server on the real broker and Redis; each
answer must be a documented status, of the documented content type and schema.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from api_harness import TOKEN, api_settings, environment
from api_samples import audience_body, workflow_body
from hypothesis import HealthCheck, settings
from matcher_stand_in import PreviewAnswerer
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.api.app import create_app
from signalflow.kafka.admin import delete_topics
from signalflow.settings import Settings
from signalflow.workflow import Audience, Workflow

AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class ServerThread:
    """uvicorn in a thread of its own, with its own event loop and lifespan."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None)
        )
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the api server did not start; see its log")
            self._thread.join(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self._thread.join(30)


@pytest.fixture(scope="module")
def live_api(kafka_bootstrap: str, redis_url: str) -> Iterator[str]:
    settings_ = environment(kafka_bootstrap, redis_url)
    app = create_app(settings_, api_settings(preview_timeout_s=10))
    every_partition = {
        partition: (1, [f"person-{partition}"]) for partition in range(3)
    }
    with (
        ServerThread(app) as base_url,
        PreviewAnswerer(settings_, None, every_partition),
    ):
        seed(base_url)
        yield base_url
    delete_topics(settings_)


def seed(base_url: str) -> None:
    """Save the audience and workflow the document's examples name, so the
    examples phase reaches existing objects and not only 404s."""
    with httpx.Client(base_url=base_url, headers=AUTH, timeout=30) as http:
        audience = http.post("/audiences", json=audience_body(SEED_AUDIENCE))
        assert audience.status_code == 201, audience.text
        body = workflow_body(SEED_AUDIENCE, SEED_WORKFLOW)
        workflow = http.post("/workflows", json=body)
        assert workflow.status_code == 201, workflow.text


# The document does not depend on the environment: build it once, at import, so
# that the operations become test parameters.
DOCUMENT = create_app(Settings(), api_settings()).openapi()
MAX_EXAMPLES = 5


def path_example(path: str, name: str) -> str:
    parameters = DOCUMENT["paths"][path]["get"]["parameters"]
    parameter = next(p for p in parameters if p["name"] == name)
    return str(parameter["schema"]["examples"][0])


SEED_AUDIENCE = path_example("/audiences/{audience_id}", "audience_id")
SEED_WORKFLOW = path_example("/workflows/{workflow_id}", "workflow_id")
# Valid and invalid inputs both; the coverage phase (hundreds of boundary cases per
# operation) would take the run far past its time budget.
CONFIG = schemathesis.Config.from_dict(
    {
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES},
    }
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_a_server_error(case: Any, live_api: str) -> None:
    if case.method == "DELETE":
        spare_the_seed(case, live_api)
    case.call_and_validate(base_url=live_api, headers=AUTH, checks=CHECKS, timeout=30)


def spare_the_seed(case: Any, base_url: str) -> None:
    """Point a deletion of a seeded object at a fresh copy, so the operations
    fuzzed after it still find the seed (ids are never reused)."""
    parameters = case.path_parameters or {}
    with httpx.Client(base_url=base_url, headers=AUTH, timeout=30) as http:
        if parameters.get("audience_id") == SEED_AUDIENCE:
            created = http.post("/audiences", json=audience_body())
            parameters["audience_id"] = created.json()["id"]
        if parameters.get("workflow_id") == SEED_WORKFLOW:
            body = workflow_body(SEED_AUDIENCE)
            parameters["workflow_id"] = http.post("/workflows", json=body).json()["id"]


def test_the_live_document_is_the_one_fuzzed(live_api: str) -> None:
    served = httpx.get(f"{live_api}/openapi.json", timeout=10)

    assert served.json() == DOCUMENT


def test_the_document_describes_every_answer() -> None:
    document = DOCUMENT
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "One of the tokens configured in SIGNALFLOW_API_TOKENS.",
    }
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            assert operation.get("tags"), where
            assert operation.get("summary"), where
            answers = operation["responses"]
            success = [code for code in answers if code.startswith("2")]
            assert success, where
            if path != "/health":
                assert operation.get("security") == [{"bearerAuth": []}], where
                assert "401" in answers, where
            for code in success:
                content = answers[code].get("content", {})
                assert any("schema" in media for media in content.values()), where
    submission = document["components"]["schemas"]["WorkflowSubmission"]
    assert "version" not in submission["properties"]
    assert "id" not in submission.get("required", [])
    # The body examples are definitions the model accepts.
    workflow_example = submission["examples"][0]
    Workflow.model_validate({**workflow_example, "id": "wf_example"})
    audience_example = document["components"]["schemas"]["AudienceSubmission"]
    Audience.model_validate({**audience_example["examples"][0], "id": "aud_example"})
    assert workflow_example["audience_id"] == SEED_AUDIENCE
