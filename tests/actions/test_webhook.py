"""The webhook action through the real consumer, against a loopback HTTP server."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging

import pytest

from services.actions.resources import Resources
from signalflow.topics import ActionType

from .conftest import Answer, HookServer, step_command

SECRET = "s3cr3t-signing-key"


def hook_params(server: HookServer, **overrides: object) -> dict[str, object]:
    params: dict[str, object] = {
        "url": server.url + "/leads/${Company Domain}",
        "method": "POST",
        "headers": {"X-Campaign": "funding $Company Name"},
        "query": {"source": "signalflow", "title": "$Current Title"},
        "payload": '{"email": "$Email", "name": "$First Name $Last Name", '
        '"company": "$Company Name", "note": "He said \\"hi\\" & <b>"}',
        "response_fields": {"lead_id": "data.id", "score": "data.score"},
    }
    params.update(overrides)
    return params


async def test_webhook_sends_rendered_request_and_reports_response_fields(
    harness_factory, resources: Resources, hook_server: HookServer
) -> None:
    harness = await harness_factory(ActionType.WEBHOOK, resources)

    result = await harness.run(
        step_command(ActionType.WEBHOOK, hook_params(hook_server))
    )

    assert result["status"] == "OK", result
    assert result["outputs"] == {"status": "200", "lead_id": "hook-1", "score": "7"}
    (request,) = hook_server.requests
    assert request["method"] == "POST"
    assert request["path"] == "/leads/acme.io"
    assert request["query"] == {"source": "signalflow", "title": "VP Sales"}
    assert request["headers"]["X-Campaign"] == "funding Acme"
    assert request["headers"]["X-Signalflow-Mode"] == "LIVE"
    assert json.loads(request["body"]) == {
        "email": "dana@acme.io",
        "name": "Dana Reyes",
        "company": "Acme",
        "note": 'He said "hi" & <b>',
    }
    assert result["command"].startswith(b"\xc3\x01")


async def test_webhook_signature_verifies_and_secret_never_leaks(
    harness_factory,
    resources: Resources,
    hook_server: HookServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    harness = await harness_factory(ActionType.WEBHOOK, resources)
    hook_server.queued.append(Answer(400, {"error": f"bad secret {SECRET}"}))
    params = hook_params(hook_server, signing_secret="partner")

    failed = await harness.run(step_command(ActionType.WEBHOOK, params))
    signed = await harness.run(step_command(ActionType.WEBHOOK, params))

    assert failed["status"] == "ERROR" and not failed["retryable"]
    assert signed["status"] == "OK"
    request = hook_server.requests[-1]
    timestamp = request["headers"]["X-Signalflow-Timestamp"]
    expected = hmac.new(
        SECRET.encode(), timestamp.encode() + b"." + request["body"], hashlib.sha256
    ).hexdigest()
    assert request["headers"]["X-Signalflow-Signature"] == f"sha256={expected}"
    for result in (failed, signed):
        assert SECRET not in repr(result)
    assert SECRET not in caplog.text


async def test_webhook_to_private_address_is_refused(
    harness_factory, resources: Resources, hook_server: HookServer
) -> None:
    harness = await harness_factory(ActionType.WEBHOOK, resources)

    result = await harness.run(
        step_command(
            ActionType.WEBHOOK, hook_params(hook_server, url="http://10.1.2.3/hook")
        )
    )
    metadata = await harness.run(
        step_command(
            ActionType.WEBHOOK,
            hook_params(hook_server, url="http://169.254.169.254/latest"),
        )
    )

    assert result["status"] == "ERROR" and not result["retryable"]
    assert "10.1.2.3" in result["error"] and "private address" in result["error"]
    assert "link-local" in metadata["error"]
    assert hook_server.requests == []


async def test_webhook_429_and_500_are_retryable_and_succeed_when_resent(
    harness_factory, resources: Resources, hook_server: HookServer
) -> None:
    harness = await harness_factory(ActionType.WEBHOOK, resources)
    hook_server.queued += [
        Answer(429, {"error": "slow down"}, {"Retry-After": "1"}),
        Answer(503, {"error": "maintenance"}),
    ]
    command = step_command(ActionType.WEBHOOK, hook_params(hook_server))

    limited = await harness.run(command)
    early = await harness.run({**command, "attempt": 2})
    # The host asked for a second's pause; the dispatcher waits at least that long.
    await asyncio.sleep(1.1)
    unavailable = await harness.run({**command, "attempt": 3})
    passed = await harness.run({**command, "attempt": 4})

    assert (limited["status"], limited["retryable"]) == ("ERROR", True)
    assert limited["retry_after_ms"] == 1000
    assert early["retryable"] and 0 < early["retry_after_ms"] <= 1000
    assert "rate limiting" in early["error"]
    assert (unavailable["status"], unavailable["retryable"]) == ("ERROR", True)
    assert unavailable["retry_after_ms"] is None
    assert passed["status"] == "OK" and passed["attempt"] == 4
    # The early attempt never reached the host.
    assert len(hook_server.requests) == 3


async def test_webhook_dry_run_shows_request_without_sending(
    harness_factory, resources: Resources, hook_server: HookServer
) -> None:
    harness = await harness_factory(ActionType.WEBHOOK, resources)

    result = await harness.run(
        step_command(
            ActionType.WEBHOOK,
            hook_params(hook_server, signing_secret="partner"),
            mode="DRY_RUN",
        )
    )

    assert result["status"] == "OK"
    outputs = result["outputs"]
    assert outputs["would_send.url"] == hook_server.url + "/leads/acme.io"
    assert outputs["would_send.method"] == "POST"
    assert json.loads(outputs["would_send.payload"])["email"] == "dana@acme.io"
    assert outputs["would_send.signed_with"] == "partner"
    assert SECRET not in json.dumps(outputs)
    assert hook_server.requests == []


async def test_the_same_command_delivered_twice_calls_the_webhook_once(
    harness_factory, resources: Resources, hook_server: HookServer
) -> None:
    harness = await harness_factory(ActionType.WEBHOOK, resources)
    command = step_command(ActionType.WEBHOOK, hook_params(hook_server))

    harness.send(command)
    harness.send(command)
    first, second = await harness.results.wait_for(2, key=command["idempotency_key"])

    assert (
        first["outputs"]
        == second["outputs"]
        == {
            "status": "200",
            "lead_id": "hook-1",
            "score": "7",
        }
    )
    assert len(hook_server.requests) == 1
    assert harness.service.health()["replayed"] == 1


async def test_a_redelivery_racing_the_first_delivery_waits_and_acts_once(
    harness_factory, resources: Resources, hook_server: HookServer
) -> None:
    harness = await harness_factory(ActionType.WEBHOOK, resources)
    hook_server.default = Answer(200, {"data": {"id": "slow"}}, delay_s=0.8)
    command = step_command(ActionType.WEBHOOK, hook_params(hook_server))

    # Keyed differently, the two copies land in different partitions and run
    # at the same time: the second finds the first one's claim and waits for it.
    harness.send(command)
    harness.send({**command, "run_id": command["run_id"] + "-copy"})
    results = await harness.results.wait_for(2, key=command["idempotency_key"])

    assert [r["status"] for r in results] == ["OK", "OK"]
    assert len(hook_server.requests) == 1


async def test_a_slow_webhook_times_out_as_retryable(
    harness_factory, resources: Resources, hook_server: HookServer
) -> None:
    harness = await harness_factory(ActionType.WEBHOOK, resources)
    hook_server.queued.append(Answer(200, {}, delay_s=2.0))

    result = await harness.run(
        step_command(ActionType.WEBHOOK, hook_params(hook_server, timeout_s=0.5))
    )

    assert (result["status"], result["retryable"]) == ("ERROR", True)
    assert "did not answer within 0.5s" in result["error"]


async def test_a_response_larger_than_the_cap_is_refused(
    harness_factory, resources: Resources, hook_server: HookServer
) -> None:
    resources.webhook.max_response_bytes = 1024
    harness = await harness_factory(ActionType.WEBHOOK, resources)
    hook_server.queued.append(Answer(200, {"blob": "x" * 5000}))

    result = await harness.run(
        step_command(ActionType.WEBHOOK, hook_params(hook_server))
    )

    assert (result["status"], result["retryable"]) == ("ERROR", False)
    assert "more than 1024 bytes" in result["error"]


async def test_get_with_query_and_test_mode_header(
    harness_factory, resources: Resources, hook_server: HookServer
) -> None:
    harness = await harness_factory(ActionType.WEBHOOK, resources)

    result = await harness.run(
        step_command(
            ActionType.WEBHOOK,
            {
                "url": hook_server.url + "/lookup",
                "method": "get",
                "query": {"email": "$Email", "company": "$Company Name & Co"},
            },
            mode="TEST",
        )
    )

    (request,) = hook_server.requests
    assert result["status"] == "OK"
    assert request["method"] == "GET" and request["body"] == b""
    assert request["query"] == {"email": "dana@acme.io", "company": "Acme & Co"}
    assert request["headers"]["X-Signalflow-Mode"] == "TEST"
    assert request["headers"]["Idempotency-Key"] == result["idempotency_key"]
