"""Round trips through a real broker and through Apache Avro for Java, byte for byte."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from schemas import SCHEMA_DIR
from signalflow.contracts import Codec, examples
from signalflow.kafka.clients import make_producer
from signalflow.settings import Settings
from signalflow.topics import Topics

SIGNALS = 10_000


def read_partitions_from_start(settings: Settings, topic: str, count: int) -> list[Any]:
    """Read `count` messages from the beginning of every partition, or fail in 60 s."""
    consumer = Consumer(
        {
            **settings.kafka.librdkafka_config(),
            "group.id": f"test-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    messages: list[Any] = []
    deadline = time.monotonic() + 60
    try:
        while len(messages) < count and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=1.0):
                assert message.error() is None, message.error()
                messages.append(message)
    finally:
        consumer.close()
    return messages


def test_ten_thousand_signals_come_back_byte_exact_and_equal(
    settings: Settings, topics: Topics
) -> None:
    codec = Codec.load()
    old_writer = codec.pinned({"signal": 1})
    topic = topics.name("signals")
    sent: dict[str, tuple[bytes, bytes, dict[str, Any]]] = {}
    producer = make_producer(settings)

    for index in range(SIGNALS):
        record = examples.signal(index)
        # Every tenth signal comes from an integrator still writing version 1.
        if index % 10 == 0:
            del record["source_url"]
            value = old_writer.encode("signal", record)
            record = {**record, "source_url": None}
        else:
            value = codec.encode("signal", record)
        key = record["account_key"].encode()
        producer.produce(topic, value=value, key=key)
        sent[record["signal_id"]] = (key, value, record)
        producer.poll(0)
    assert producer.flush(60) == 0

    received = read_partitions_from_start(settings, topic, SIGNALS)

    assert len(received) == SIGNALS
    for message in received:
        decoded = codec.decode("signal", message.value())
        key, value, record = sent.pop(decoded["signal_id"])
        assert message.key() == key
        assert message.value() == value
        assert decoded == record
    assert sent == {}


AVRO_JAVA_VERSION = "1.12.0"
AVRO_JAVA_POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.signalflow.test</groupId>
  <artifactId>avro-java</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.avro</groupId>
      <artifactId>avro</artifactId>
      <version>{AVRO_JAVA_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""

# Parses the newest schema files in dependency order with one parser, prints each
# fingerprint as Java computes it, writes a signal with BinaryMessageEncoder, and
# decodes then re-encodes the messages Python wrote.
JAVA_PEER = """
import java.io.File;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;

public class AvroPeer {
  static String hex(byte[] bytes) {
    StringBuilder out = new StringBuilder();
    for (byte b : bytes) out.append(String.format("%02x", b));
    return out.toString();
  }

  static byte[] array(ByteBuffer buffer) {
    byte[] out = new byte[buffer.remaining()];
    buffer.get(out);
    return out;
  }

  static Schema parse(Schema.Parser parser, String path) throws Exception {
    return parser.parse(new File(path));
  }

  public static void main(String[] args) throws Exception {
    Path dir = Path.of(args[0]);
    Schema.Parser parser = new Schema.Parser();
    Schema profile = parse(parser, args[1]);
    Schema signal = parse(parser, args[2]);
    Schema enrollment = parse(parser, args[3]);
    Schema step = parse(parser, args[4]);
    Schema signalV1 = new Schema.Parser().parse(new File(args[5]));
    String[] names = {"profile", "signal", "enrollment", "step_command"};
    Schema[] schemas = {profile, signal, enrollment, step};
    for (int i = 0; i < names.length; i++) {
      byte[] fp = SchemaNormalization.parsingFingerprint("CRC-64-AVRO", schemas[i]);
      System.out.println(names[i] + " " + hex(fp));
    }

    GenericRecord record = new GenericData.Record(signal);
    record.put("signal_id", "java-1");
    record.put("type", "funding");
    Schema scope = signal.getField("scope").schema();
    record.put("scope", new GenericData.EnumSymbol(scope, "COMPANY"));
    record.put("account_key", "acme");
    record.put("person_key", null);
    record.put("occurred_at", 1714555800123L);
    record.put("source", "java");
    record.put("attributes", Map.of("amount", "5M"));
    record.put("source_url", "https://news.example/java");
    var signals = new BinaryMessageEncoder<GenericRecord>(GenericData.get(), signal);
    Files.write(dir.resolve("java_signal.bin"), array(signals.encode(record)));

    var reader = new BinaryMessageDecoder<GenericRecord>(GenericData.get(), signal);
    reader.addSchema(signalV1);
    for (String name : new String[] {"py_signal", "py_signal_v1"}) {
      byte[] message = Files.readAllBytes(dir.resolve(name + ".bin"));
      GenericRecord decoded = reader.decode(message);
      Files.write(dir.resolve(name + ".java.bin"), array(signals.encode(decoded)));
    }
    var stepReader = new BinaryMessageDecoder<GenericRecord>(GenericData.get(), step);
    var steps = new BinaryMessageEncoder<GenericRecord>(GenericData.get(), step);
    byte[] stepMessage = Files.readAllBytes(dir.resolve("py_step.bin"));
    GenericRecord command = stepReader.decode(stepMessage);
    Files.write(dir.resolve("py_step.java.bin"), array(steps.encode(command)));
  }
}
"""


def avro_java_classpath(settings_dir: Path) -> str:
    """Fetch Apache Avro for Java once into the state dir; return its classpath."""
    libs = settings_dir / f"avro-java-{AVRO_JAVA_VERSION}"
    if not (libs / f"avro-{AVRO_JAVA_VERSION}.jar").exists():
        partial = libs.with_name(f"{libs.name}.partial-{uuid.uuid4().hex[:6]}")
        pom = settings_dir / f"avro-java-{AVRO_JAVA_VERSION}.pom.xml"
        settings_dir.mkdir(parents=True, exist_ok=True)
        pom.write_text(AVRO_JAVA_POM)
        run(
            ["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies"]
            + [f"-DoutputDirectory={partial}"]
        )
        partial.replace(libs)
    return f"{libs}/*"


def run(command: list[str]) -> str:
    completed = subprocess.run(
        command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def newest_file(codec: Codec, name: str) -> str:
    return str(SCHEMA_DIR / name / f"v{codec.registry.versions(name)[-1]}.avsc")


@pytest.mark.slow
def test_apache_avro_java_and_the_codec_read_each_others_messages(
    tmp_path: Path,
) -> None:
    if not all(shutil.which(tool) for tool in ("java", "javac", "mvn")):
        pytest.skip("needs java, javac and mvn to run Apache Avro for Java")
    codec = Codec.load()
    classpath = avro_java_classpath(Settings().state_dir)
    (tmp_path / "AvroPeer.java").write_text(JAVA_PEER)
    run(
        [
            "javac",
            "-cp",
            classpath,
            "-d",
            str(tmp_path),
            str(tmp_path / "AvroPeer.java"),
        ]
    )
    signal = examples.signal(3)
    old_signal = examples.signal(4)
    del old_signal["source_url"]
    command = examples.synthesize(codec.writer_schema("step_command").parsed, seed=4)
    written = {
        "py_signal": codec.encode("signal", signal),
        "py_signal_v1": codec.pinned({"signal": 1}).encode("signal", old_signal),
        "py_step": codec.encode("step_command", command),
    }
    for name, data in written.items():
        (tmp_path / f"{name}.bin").write_bytes(data)

    output = run(
        ["java", "-cp", f"{classpath}:{tmp_path}", "AvroPeer", str(tmp_path)]
        + [newest_file(codec, name) for name in ("profile", "signal", "enrollment")]
        + [newest_file(codec, "step_command"), str(SCHEMA_DIR / "signal" / "v1.avsc")]
    )

    java_fingerprints = dict(line.split() for line in output.splitlines() if line)
    assert set(java_fingerprints) == {"profile", "signal", "enrollment", "step_command"}
    for name, fingerprint in java_fingerprints.items():
        assert codec.writer_schema(name).fingerprint.hex() == fingerprint, name
    from_java = codec.decode("signal", (tmp_path / "java_signal.bin").read_bytes())
    assert from_java["signal_id"] == "java-1"
    assert from_java["occurred_at"] == datetime(
        2024, 5, 1, 9, 30, 0, 123000, tzinfo=UTC
    )
    assert from_java["attributes"] == {"amount": "5M"}
    assert (tmp_path / "py_signal.java.bin").read_bytes() == written["py_signal"]
    assert (tmp_path / "py_step.java.bin").read_bytes() == written["py_step"]
    upgraded = codec.decode("signal", (tmp_path / "py_signal_v1.java.bin").read_bytes())
    assert upgraded == {**old_signal, "source_url": None}
