"""Loopback ports: which are free, and waiting for one to accept connections."""

from __future__ import annotations

import random
import socket
import time

LOOPBACK = "127.0.0.1"

# Below Linux's default ephemeral range (32768-60999), so a client's outgoing
# connection is unlikely to hold a port picked here.
_SEARCH_LOW = 20_000
_SEARCH_HIGH = 32_000


def port_is_free(port: int, *, host: str = LOOPBACK) -> bool:
    """Return whether a TCP listener could bind `host:port` right now.

    Like the JVM's and Redis's listeners, the probe sets SO_REUSEADDR, so a port
    held only by connections in TIME_WAIT (a killed broker's) counts as free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port_block(size: int, *, attempts: int = 200) -> int:
    """Return the first of `size` consecutive free loopback ports.

    The ports are free when checked; nothing reserves them, so the caller binds them
    soon after. Raises OSError when no block was found in `attempts` random tries.
    """
    if size < 1:
        raise ValueError(f"expected a block size of at least 1, got {size!r}")
    for _ in range(attempts):
        first = random.randrange(_SEARCH_LOW, _SEARCH_HIGH - size)
        if all(port_is_free(first + offset) for offset in range(size)):
            return first
    raise OSError(f"found no {size} consecutive free ports on {LOOPBACK}")


def port_accepts(port: int, *, host: str = LOOPBACK, timeout_s: float = 0.5) -> bool:
    """Return whether something accepts TCP connections on `host:port`."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_until_accepting(port: int, *, timeout_s: float, host: str = LOOPBACK) -> bool:
    """Wait up to `timeout_s` for `host:port` to accept; return whether it did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_accepts(port, host=host):
            return True
        time.sleep(0.1)
    return False
