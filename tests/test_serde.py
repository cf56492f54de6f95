"""Single-object encoding: the wire layout, the fingerprint, and every decode error."""

from __future__ import annotations

import io
import json
import random
from collections import Counter

import pytest
from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from signalflow.contracts import (
    MARKER,
    BadMarkerError,
    Codec,
    ContractError,
    CorruptBodyError,
    DecodeError,
    EncodeError,
    TruncatedBodyError,
    UnknownFingerprintError,
    examples,
)
from signalflow.topics import TOPIC_SPECS

# Fingerprints Apache Avro publishes with its specification's test data
# (share/test/data/schema-tests.txt), as the Java longs
# SchemaNormalization.parsingFingerprint64 returns.
AVRO_REFERENCE_FINGERPRINTS = [
    ('"null"', 7195948357588979594),
    ('"string"', -8142146995180207161),
    ('{"type": "array", "items": {"type": "null"}}', -589620603366471059),
    ('{"type": "map", "values": "string"}', -8732877298790414990),
    (
        '{"fields": [], "type": "record", "name": "foo", "namespace": "x.y"}',
        5916914534497305771,
    ),
    (
        '{"namespace": "x.y.z", "type": "enum", "name": "foo", "doc": "foo bar",'
        ' "symbols": ["A1", "A2"]}',
        -4448647247586288245,
    ),
    (
        '{"fields": [{"type": "boolean", "name": "f1", "default": true},'
        ' {"name": "f2", "doc": "Hello", "type": "int"}],'
        ' "type": "record", "name": "foo"}',
        -4860222112080293046,
    ),
]


def crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO as the Avro specification spells it, independent of fastavro."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    result = empty
    for byte in data:
        result = (result >> 8) ^ table[(result ^ byte) & 0xFF]
    return result


def java_long_to_wire(value: int) -> bytes:
    """The 8 bytes Java's BinaryMessageEncoder writes for a fingerprint long."""
    return (value & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "little")


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.load()


@pytest.mark.parametrize(("schema", "java_long"), AVRO_REFERENCE_FINGERPRINTS)
def test_fingerprint_matches_avro_reference_vectors(
    schema: str, java_long: int
) -> None:
    canonical = to_parsing_canonical_form(json.loads(schema))

    assert crc64_avro(canonical.encode()) == java_long & 0xFFFF_FFFF_FFFF_FFFF
    assert bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")) == java_long_to_wire(
        java_long
    )


def test_encoded_message_is_marker_fingerprint_then_body(codec: Codec) -> None:
    record = examples.signal(7)
    writer = codec.writer_schema("signal")

    data = codec.encode("signal", record)

    assert data[:2] == MARKER == b"\xc3\x01"
    expected_fp = crc64_avro(writer.canonical_form.encode()).to_bytes(8, "little")
    assert data[2:10] == expected_fp
    assert codec.decode("signal", data) == record


def test_canonical_form_spells_full_names_and_inlines_shared_types(
    codec: Codec,
) -> None:
    canonical = codec.writer_schema("step_command").canonical_form

    assert canonical.startswith('{"name":"dev.signalflow.StepCommand","type":"record"')
    # Profile is defined where first used (person) and named afterwards (account).
    assert canonical.count('{"name":"dev.signalflow.Profile","type":"record"') == 1
    assert '"type":["null","dev.signalflow.Profile"]' in canonical
    assert '"doc"' not in canonical and "logicalType" not in canonical


def test_every_topic_schema_exists(codec: Codec) -> None:
    names = set(codec.registry.names())

    assert {spec.schema for spec in TOPIC_SPECS} <= names


@pytest.mark.parametrize("name", sorted({spec.schema for spec in TOPIC_SPECS}))
def test_every_schema_round_trips_synthesized_records(codec: Codec, name: str) -> None:
    parsed = codec.writer_schema(name).parsed
    for seed in range(20):
        record = examples.synthesize(parsed, seed=seed)

        assert codec.decode(name, codec.encode(name, record)) == record


def test_bad_marker_raises_bad_marker_error(codec: Codec) -> None:
    data = codec.encode("signal", examples.signal(1))

    with pytest.raises(BadMarkerError, match="C3 01"):
        codec.decode("signal", b"\xc3\x02" + data[2:])
    with pytest.raises(BadMarkerError):
        codec.decode("signal", b'{"signal_id": "json"}')
    with pytest.raises(BadMarkerError):
        codec.decode("signal", b"")


def test_unknown_fingerprint_raises_and_quotes_it_in_hex(codec: Codec) -> None:
    data = codec.encode("signal", examples.signal(1))
    forged = bytes.fromhex("0123456789abcdef")

    with pytest.raises(UnknownFingerprintError, match="0123456789abcdef") as caught:
        codec.decode("signal", MARKER + forged + data[10:])
    assert caught.value.fingerprint == forged


def test_message_of_another_schema_is_an_unknown_fingerprint(codec: Codec) -> None:
    profile = examples.synthesize(codec.writer_schema("profile").parsed, seed=1)
    data = codec.encode("profile", profile)

    with pytest.raises(UnknownFingerprintError, match="'signal'"):
        codec.decode("signal", data)


def test_every_truncation_raises_truncated_body_error(codec: Codec) -> None:
    data = codec.encode("signal", examples.signal(3))

    for length in range(2, len(data)):
        with pytest.raises(TruncatedBodyError):
            codec.decode("signal", data[:length])


@pytest.mark.parametrize(
    ("label", "corrupt"),
    [
        ("trailing bytes", lambda body: body + b"\x00"),
        ("invalid utf-8", lambda body: b"\x04\xff\xfe" + body[1 + body[0] // 2 :]),
    ],
)
def test_corrupt_body_raises_corrupt_body_error(
    codec: Codec, label: str, corrupt
) -> None:  # type: ignore[no-untyped-def]
    data = codec.encode("signal", examples.signal(5))

    with pytest.raises(CorruptBodyError):
        codec.decode("signal", data[:10] + corrupt(data[10:]))


def test_random_bodies_raise_only_decode_errors(codec: Codec) -> None:
    header = codec.encode("signal", examples.signal(0))[:10]
    rng = random.Random(42)
    outcomes: Counter[str] = Counter()

    for _ in range(2000):
        body = rng.randbytes(rng.randint(0, 60))
        try:
            codec.decode("signal", header + body)
            outcomes["decoded"] += 1
        except DecodeError as exc:
            outcomes[type(exc).__name__] += 1

    assert outcomes["TruncatedBodyError"] > 0
    assert outcomes["CorruptBodyError"] > 0


def test_encode_error_names_the_nested_field_path(codec: Codec) -> None:
    command = examples.synthesize(codec.writer_schema("step_command").parsed, seed=3)
    command["enrollment"]["person"]["kind"] = "ROBOT"

    with pytest.raises(EncodeError, match="enrollment.person.kind") as caught:
        codec.encode("step_command", command)
    assert caught.value.field == "enrollment.person.kind"
    assert "'ROBOT'" in str(caught.value)


def test_encode_error_names_a_missing_required_field(codec: Codec) -> None:
    record = examples.signal(2)
    del record["account_key"]

    with pytest.raises(EncodeError) as caught:
        codec.encode("signal", record)
    assert caught.value.field == "account_key"


def test_unknown_schema_name_raises_contract_error(codec: Codec) -> None:
    with pytest.raises(ContractError, match="'sigs'"):
        codec.encode("sigs", {})
    with pytest.raises(ContractError, match="'sigs'"):
        codec.decode("sigs", b"\xc3\x01")


def test_decode_errors_form_one_hierarchy() -> None:
    for error in (BadMarkerError, UnknownFingerprintError, TruncatedBodyError):
        assert issubclass(error, DecodeError)
    assert issubclass(CorruptBodyError, DecodeError)
    assert issubclass(DecodeError, ContractError)
    assert issubclass(EncodeError, ContractError)
    assert not ContractError.retryable


@pytest.mark.parametrize("name", sorted({spec.schema for spec in TOPIC_SPECS}))
def test_codec_body_is_what_fastavro_public_api_writes(codec: Codec, name: str) -> None:
    parsed = codec.writer_schema(name).parsed
    record = examples.synthesize(parsed, seed=11)
    expected = io.BytesIO()
    schemaless_writer(expected, parsed, record)

    data = codec.encode(name, record)

    assert data[10:] == expected.getvalue()
    assert schemaless_reader(io.BytesIO(data[10:]), parsed) == codec.decode(name, data)
