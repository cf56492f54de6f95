"""The programs local infrastructure runs, found on PATH or explained when absent."""

from __future__ import annotations

import re
import shutil
import subprocess

from signalflow.local.errors import MissingToolError

MIN_JAVA = 17
JAVA_PACKAGE = "openjdk-17-jre-headless"
MAVEN_PACKAGE = "maven"
REDIS_PACKAGE = "redis-server"

# `java -version` prints e.g. `openjdk version "17.0.15" 2025-04-15` or, for old
# runtimes, `java version "1.8.0_402"`.
_JAVA_VERSION = re.compile(r'version "(?P<major>\d+)(?:\.(?P<minor>\d+))?')


def require_program(name: str, *, package: str, purpose: str) -> str:
    """Return the absolute path of `name` on PATH.

    Raises MissingToolError naming the Debian package to install when it is absent.
    """
    path = shutil.which(name)
    if path is None:
        raise MissingToolError(
            f"{purpose} needs {name!r} on PATH; install it, e.g. on Debian: "
            f"apt-get install {package}"
        )
    return path


def require_java() -> str:
    """Return the path of a `java` of version 17 or newer.

    Raises MissingToolError naming the package to install when java is absent, too
    old, or its version cannot be read.
    """
    java = require_program("java", package=JAVA_PACKAGE, purpose="the local broker")
    major = java_major_version(java)
    if major is None or major < MIN_JAVA:
        raise MissingToolError(
            f"the local broker needs java {MIN_JAVA} or newer, found version "
            f"{major!r} at {java!r}; install e.g. on Debian: apt-get install "
            f"{JAVA_PACKAGE}"
        )
    return java


def java_major_version(java: str) -> int | None:
    """Return the major version `java -version` reports, or None if unreadable."""
    completed = subprocess.run(
        [java, "-version"], capture_output=True, text=True, timeout=60, check=False
    )
    match = _JAVA_VERSION.search(completed.stderr + completed.stdout)
    if match is None:
        return None
    major = int(match["major"])
    # Before Java 9 the major version came second: "1.8" is Java 8.
    if major == 1 and match["minor"] is not None:
        return int(match["minor"])
    return major
