"""Delay envelopes: wrapping a message that must wait, and opening it when due.

A message waiting in a `delays.<tier>` topic is a `delay_envelope` record (due time,
target topic, key, payload, headers). A relay passes the value on unchanged from
tier to tier and reads only what it needs: the due time and target are the body's
first two fields, read straight from the Avro bytes when the writer is the schema
version it knows (`routing()`); only when a record reaches its target is the rest
read, as far as the payload and headers (`open()`). Any other writer version falls
back to the codec. The Kafka headers repeat the due time and the target, so other
tools (and readers of a future version) can route without decoding at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from signalflow.contracts import Codec, DecodeError, TruncatedBodyError

DUE_HEADER = "signalflow-due-at"
TARGET_HEADER = "signalflow-target"
SCHEMA = "delay_envelope"
_HEADER_SIZE = 10  # C3 01 and the 8-byte fingerprint

Headers = list[tuple[str, bytes]]
HeadersOf = Sequence[tuple[str, bytes]] | Callable[[], Any] | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a relay produces on the target topic when a wait is over."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers | None


@dataclass(frozen=True, slots=True)
class Routing:
    """Where a waiting record goes and when.

    `rest_at` is where the body's remaining fields start when the routing was
    read from the body, so `open()` goes on from there; -1 otherwise.
    """

    due_ms: int
    target: str
    rest_at: int = field(default=-1, compare=False)


class Envelopes:
    """Wraps payloads into delay envelopes and opens them again."""

    def __init__(self, codec: Codec) -> None:
        self._codec = codec
        self._known = b"\xc3\x01" + codec.writer_schema(SCHEMA).fingerprint

    def wrap(
        self,
        *,
        due_ms: int,
        target_topic: str,
        key: bytes | None,
        payload: bytes,
        now_ms: int,
        headers: Mapping[str, bytes] | None = None,
    ) -> tuple[bytes, Headers]:
        """Return the envelope's bytes and the Kafka headers a relay routes by."""
        value = self._codec.encode(
            SCHEMA,
            {
                "due_at": due_ms,
                "target_topic": target_topic,
                "key": key,
                "payload": payload,
                "headers": dict(headers or {}),
                "created_at": now_ms,
            },
        )
        return value, routing_headers(due_ms, target_topic)

    def routing(self, value: bytes, headers: HeadersOf = None) -> Routing:
        """The due time and target of a waiting record.

        Read from the first two fields of the body when the writer's schema is the
        known version (no decoding of the rest), else from the Kafka headers (a
        list, or a function returning it, called only then), else by decoding.
        Raises DecodeError for a value that is no envelope.
        """
        if value[:_HEADER_SIZE] == self._known:
            try:
                due_at, position = _read_long(value, _HEADER_SIZE)
                length, position = _read_long(value, position)
                topic = value[position : position + length].decode()
                return Routing(due_at, topic, position + length)
            except (IndexError, ValueError, UnicodeDecodeError):
                pass  # the codec says what is wrong with it
        due: int | None = None
        target: str | None = None
        listed = headers() if callable(headers) else headers
        for name, data in listed or ():
            if name == DUE_HEADER:
                due = int(data)
            elif name == TARGET_HEADER:
                target = data.decode()
        if due is not None and target is not None:
            return Routing(due, target)
        record = self._codec.decode(SCHEMA, value)
        return Routing(_epoch_ms(record["due_at"]), record["target_topic"])

    def delivery_if_due(self, value: bytes, now_ms: int) -> Delivery | None:
        """The relays' fast path: the message `value` carries when it is due by
        `now_ms` and written with the known schema version; None otherwise (not
        due, another version, or bytes that do not read: `routing()` and `open()`
        then take over and say what is wrong)."""
        if value[:_HEADER_SIZE] != self._known:
            return None
        try:
            position = _HEADER_SIZE
            byte = value[position]
            due = byte & 0x7F
            shift = 7
            position += 1
            while byte >= 0x80:
                byte = value[position]
                position += 1
                due |= (byte & 0x7F) << shift
                shift += 7
            if (due >> 1) ^ -(due & 1) > now_ms:
                return None
            length = value[position]
            if length >= 0x80:  # a topic name of 64 characters or more
                return None
            start = position + 1
            end = start + (length >> 1)
            return _read_rest(value, end, value[start:end].decode())
        except (IndexError, ValueError, UnicodeDecodeError):
            return None

    def open(self, value: bytes, routing: Routing | None = None) -> Delivery:
        """Return the message the envelope `value` carries; given the `routing()`
        of the same value, reading goes on where it stopped.

        Raises DecodeError for bytes that are no delay envelope.
        """
        if value[:_HEADER_SIZE] == self._known:
            try:
                if routing is not None and routing.rest_at >= 0:
                    return _read_rest(value, routing.rest_at, routing.target)
                return _read_known(value)
            except (IndexError, ValueError, UnicodeDecodeError) as error:
                raise TruncatedBodyError(
                    f"delay envelope of {len(value)} bytes does not decode: {error}",
                    schema=SCHEMA,
                ) from error
        record = self._codec.decode(SCHEMA, value)
        return Delivery(
            record["target_topic"],
            record["key"],
            record["payload"],
            list(record["headers"].items()) or None,
        )


def routing_headers(due_ms: int, target_topic: str) -> Headers:
    """The Kafka headers of a waiting record."""
    return [(DUE_HEADER, str(due_ms).encode()), (TARGET_HEADER, target_topic.encode())]


def _epoch_ms(value: Any) -> int:
    """fastavro returns timestamp-millis as an aware datetime."""
    if isinstance(value, int):
        return value
    return int(value.timestamp() * 1000)


def _read_known(data: bytes) -> Delivery:
    """Read the fields of a version-1 envelope that forwarding needs.

    The body is: due_at (long), target_topic (string), key (union null|bytes),
    payload (bytes), headers (map of bytes), created_at (long). Longs are zigzag
    varints; strings and bytes are a length and the bytes.
    """
    position = _skip_long(data, _HEADER_SIZE)
    length, position = _read_long(data, position)
    target = data[position : position + length].decode()
    return _read_rest(data, position + length, target)


def _read_rest(data: bytes, position: int, target: str) -> Delivery:
    """Read key, payload and headers, which start at `position`.

    Lengths below 64 are one byte (`2 * n` zigzagged), read inline.
    """
    branch = data[position]
    position += 1
    key: bytes | None = None
    if branch == 2:  # union branch 1: bytes
        length = data[position]
        if length < 0x80:
            length, position = length >> 1, position + 1
        else:
            length, position = _read_long(data, position)
        key = data[position : position + length]
        position += length
    elif branch != 0:
        raise ValueError(f"expected key branch 0 or 1, got {branch!r}")
    length = data[position]
    if length < 0x80:
        length, position = length >> 1, position + 1
    elif data[position + 1] < 0x80:  # payloads below 8 KiB: two bytes
        length = ((length & 0x7F) | data[position + 1] << 7) >> 1
        position += 2
    else:
        length, position = _read_long(data, position)
    if length < 0 or position + length > len(data):
        raise ValueError("payload runs past the end of the envelope")
    payload = data[position : position + length]
    position += length
    if data[position] == 0:  # no headers: an empty map is one zero byte
        return Delivery(target, key, payload, None)
    headers, _ = _read_headers(data, position)
    return Delivery(target, key, payload, headers or None)


def _read_headers(data: bytes, position: int) -> tuple[Headers, int]:
    headers: Headers = []
    while True:
        count, position = _read_long(data, position)
        if count == 0:
            return headers, position
        if count < 0:  # a block written with its size in bytes after the count
            count = -count
            _, position = _read_long(data, position)
        for _ in range(count):
            length, position = _read_long(data, position)
            name = data[position : position + length].decode()
            position += length
            length, position = _read_long(data, position)
            headers.append((name, data[position : position + length]))
            position += length


def _read_long(data: bytes, position: int) -> tuple[int, int]:
    byte = data[position]
    if byte < 0x80:  # the common case: one byte
        return (byte >> 1) ^ -(byte & 1), position + 1
    shift = 0
    accumulated = 0
    while True:
        byte = data[position]
        position += 1
        accumulated |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (accumulated >> 1) ^ -(accumulated & 1), position
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _skip_long(data: bytes, position: int) -> int:
    while data[position] >= 0x80:
        position += 1
    return position + 1


__all__ = [
    "DUE_HEADER",
    "TARGET_HEADER",
    "DecodeError",
    "Delivery",
    "Envelopes",
    "Routing",
    "routing_headers",
]
