"""The Apache Kafka broker's jars: fetched once from Maven Central, then cached.

`deploy/local/pom.xml` pins the broker version and its logging bridge; Maven copies
them with every runtime dependency into `<state_dir>/kafka-<version>/libs`, outside
the repository, and the broker runs from there with `java -cp '<libs>/*'`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from signalflow.local.errors import LocalInfraError
from signalflow.local.processes import exclusive
from signalflow.local.tools import MAVEN_PACKAGE, require_program

logger = logging.getLogger(__name__)

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "local"

_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
_PROPERTY = re.compile(r"\$\{([^}]+)\}")
_FETCH_TIMEOUT_S = 900


@dataclass(frozen=True)
class KafkaDistribution:
    """The broker version and files `deploy/local` describes.

    `jars` are the file names of the pom's direct dependencies; the cache counts as
    present when all of them are there.
    """

    deploy_dir: Path
    version: str
    jars: tuple[str, ...]

    @classmethod
    def from_deploy_dir(cls, deploy_dir: Path = DEPLOY_DIR) -> KafkaDistribution:
        """Read the pinned versions from `deploy_dir/pom.xml`.

        Raises LocalInfraError when the pom is absent (an installed package without
        its source checkout) or names no `kafka.version`.
        """
        pom = deploy_dir / "pom.xml"
        if not pom.is_file():
            raise LocalInfraError(
                f"expected the local broker's build file at {str(pom)!r}; the local "
                "broker runs from a source checkout of signalflow"
            )
        root = ElementTree.parse(pom).getroot()
        properties = _pom_properties(root)
        version = properties.get("kafka.version")
        if not version:
            raise LocalInfraError(f"expected a kafka.version property in {str(pom)!r}")
        return cls(deploy_dir, version, _direct_jars(root, properties))

    @property
    def pom(self) -> Path:
        return self.deploy_dir / "pom.xml"

    @property
    def log4j_config(self) -> Path:
        return self.deploy_dir / "log4j2.xml"

    @property
    def properties_template(self) -> Path:
        return self.deploy_dir / "server.properties.template"

    def libs_dir(self, state_dir: Path) -> Path:
        """Return where this version's jars are cached under `state_dir`."""
        return state_dir / f"kafka-{self.version}" / "libs"

    def has_libs(self, libs: Path) -> bool:
        """Return whether `libs` holds every jar the pom asks for."""
        return all((libs / jar).is_file() for jar in self.jars)

    def ensure_libs(self, state_dir: Path) -> Path:
        """Return the cached jar directory, running Maven first if it is incomplete.

        Waits for Maven (minutes on a cold Maven cache). Concurrent callers on the
        same state dir wait for one another. Raises MissingToolError without `mvn`
        and LocalInfraError when Maven fails.
        """
        libs = self.libs_dir(state_dir)
        if self.has_libs(libs):
            return libs
        with exclusive(libs.parent / ".fetch.lock"):
            if not self.has_libs(libs):
                self._fetch_into(libs)
        return libs

    def _fetch_into(self, libs: Path) -> None:
        mvn = require_program(
            "mvn", package=MAVEN_PACKAGE, purpose="fetching the Kafka broker"
        )
        partial = libs.with_name(f"{libs.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        logger.info("fetching Kafka %s jars into %s", self.version, libs)
        command = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(self.pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}",
        ]
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=_FETCH_TIMEOUT_S,
            check=False,
        )
        if completed.returncode != 0 or not self.has_libs(partial):
            shutil.rmtree(partial, ignore_errors=True)
            output = (completed.stdout + completed.stderr).strip()[-2000:]
            raise LocalInfraError(
                f"expected Maven to copy {', '.join(self.jars)} into {str(partial)!r}; "
                f"it exited {completed.returncode}:\n{output}"
            )
        _swap_in(partial, libs)


def _swap_in(partial: Path, libs: Path) -> None:
    # An incomplete directory may be in use by a broker started from it: move it
    # aside rather than writing into it.
    stale = libs.with_name(f"{libs.name}.stale-{os.getpid()}")
    if libs.exists():
        libs.rename(stale)
    partial.rename(libs)
    shutil.rmtree(stale, ignore_errors=True)


def _pom_properties(root: ElementTree.Element) -> dict[str, str]:
    properties = root.find("m:properties", _POM_NS)
    if properties is None:
        return {}
    return {
        element.tag.split("}", 1)[1]: (element.text or "").strip()
        for element in properties
    }


def _direct_jars(
    root: ElementTree.Element, properties: dict[str, str]
) -> tuple[str, ...]:
    jars = []
    for dependency in root.iterfind("m:dependencies/m:dependency", _POM_NS):
        artifact = dependency.findtext("m:artifactId", default="", namespaces=_POM_NS)
        version = dependency.findtext("m:version", default="", namespaces=_POM_NS)
        resolved = _PROPERTY.sub(lambda m: properties.get(m[1], m[0]), version.strip())
        jars.append(f"{artifact.strip()}-{resolved}.jar")
    return tuple(jars)
