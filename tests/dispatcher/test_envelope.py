"""Wrapping a message in a delay envelope and opening it again."""

from __future__ import annotations

import pytest

from services.dispatcher.envelope import (
    DUE_HEADER,
    TARGET_HEADER,
    Delivery,
    Envelopes,
    Routing,
)
from signalflow.contracts import Codec, DecodeError

CODEC = Codec.load()
ENVELOPES = Envelopes(CODEC)


@pytest.mark.parametrize(
    ("key", "payload", "headers"),
    [
        (b"run-1", b"\xc3\x01payload", {}),
        (None, b"", {}),
        (b"k" * 300, bytes(range(256)) * 40, {"trace": b"abc", "empty": b""}),
    ],
)
def test_open_returns_what_was_wrapped(
    key: bytes | None, payload: bytes, headers: dict[str, bytes]
) -> None:
    value, _ = ENVELOPES.wrap(
        due_ms=1_700_000_000_123,
        target_topic="p.actions.slack",
        key=key,
        payload=payload,
        now_ms=1_700_000_000_000,
        headers=headers,
    )

    delivery = ENVELOPES.open(value)

    assert delivery == Delivery(
        "p.actions.slack", key, payload, list(headers.items()) or None
    )


def test_open_agrees_with_the_codec_on_long_lengths_and_far_due_times() -> None:
    value, _ = ENVELOPES.wrap(
        due_ms=2**45,
        target_topic="t" * 200,
        key=b"x" * 70_000,
        payload=b"y" * 200_000,
        now_ms=1,
    )
    record = CODEC.decode("delay_envelope", value)

    delivery = ENVELOPES.open(value)

    assert (delivery.topic, delivery.key, delivery.value) == (
        record["target_topic"],
        record["key"],
        record["payload"],
    )


def test_routing_is_read_from_the_body_or_else_the_headers() -> None:
    value, headers = ENVELOPES.wrap(
        due_ms=42_000, target_topic="p.step-results", key=None, payload=b"", now_ms=0
    )

    assert dict(headers) == {DUE_HEADER: b"42000", TARGET_HEADER: b"p.step-results"}
    assert ENVELOPES.routing(value) == Routing(42_000, "p.step-results")
    assert ENVELOPES.routing(b"written by another tool", headers) == Routing(
        42_000, "p.step-results"
    )
    assert ENVELOPES.routing(b"written by another tool", lambda: headers) == Routing(
        42_000, "p.step-results"
    )


def test_a_body_that_does_not_read_falls_back_to_headers_then_to_the_codec() -> None:
    value, headers = ENVELOPES.wrap(
        due_ms=42_000, target_topic="p.step-results", key=None, payload=b"", now_ms=0
    )
    cut = value[:11]

    assert ENVELOPES.routing(cut, headers) == Routing(42_000, "p.step-results")
    with pytest.raises(DecodeError):
        ENVELOPES.routing(cut)


def test_a_cut_envelope_raises_a_decode_error() -> None:
    value, _ = ENVELOPES.wrap(
        due_ms=42_000,
        target_topic="p.step-results",
        key=b"k",
        payload=b"abc" * 9,
        now_ms=0,
    )

    with pytest.raises(DecodeError):
        ENVELOPES.open(value[:20])


def test_bytes_that_are_no_envelope_raise_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        ENVELOPES.open(b"plain text")


def test_a_due_envelope_opens_on_the_fast_path_and_a_later_one_does_not() -> None:
    value, _ = ENVELOPES.wrap(
        due_ms=1_700_000_000_123,
        target_topic="p.actions.slack",
        key=b"run-1",
        payload=b"body",
        now_ms=0,
        headers={"trace": b"t"},
    )

    assert ENVELOPES.delivery_if_due(value, 1_700_000_000_122) is None
    assert ENVELOPES.delivery_if_due(value, 1_700_000_000_123) == ENVELOPES.open(value)
    assert ENVELOPES.delivery_if_due(b"not an envelope", 2**60) is None
