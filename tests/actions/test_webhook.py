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
