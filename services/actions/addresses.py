"""Keeping user-configured URLs away from the network the services run in.

A webhook URL is typed by a user, so a webhook step must not become a way to reach
the cluster's own services (a metadata endpoint, Redis, an admin port). Before a
connection is made, the host is resolved and every address it resolves to is
checked; loopback, private, link-local, shared, reserved and multicast addresses
are refused unless an allowlist in settings names them. The check lives in the
connection itself (`GuardedNetworkBackend`), which then connects to an address it
checked, so a DNS answer that changes between check and connect (rebinding) cannot
slip through, and neither can a redirect (redirects are not followed either).
"""

from __future__ import annotations

import asyncio
import ipaddress
import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from services.actions.errors import PermanentError

KEEPALIVE_EXPIRY_S = 5.0

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class RefusedAddressError(PermanentError):
    """A URL's host resolves to an address the services may not call."""


class AddressPolicy:
    """Decides which resolved addresses outbound calls may connect to.

    Args:
        allowlist: addresses or networks (`127.0.0.1`, `10.1.0.0/16`) allowed even
            though they are not public.

    Raises ValueError naming an allowlist entry that is neither.
    """

    def __init__(self, allowlist: Iterable[str] = ()) -> None:
        self._allowed: tuple[IpNetwork, ...] = tuple(
            _parse_network(entry) for entry in allowlist
        )

    def refusal(self, address: IpAddress) -> str | None:
        """Say why `address` is refused, or None when it may be called."""
        if any(address in network for network in self._allowed):
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            return self.refusal(address.ipv4_mapped)
        if address.is_loopback:
            return "a loopback address"
        if address.is_link_local:
            return "a link-local address"
        if address.is_private:
            return "a private address"
        if address.is_multicast:
            return "a multicast address"
        if not address.is_global:
            return "an address that is not public"
        return None

    async def resolve(self, host: str, port: int) -> list[IpAddress]:
        """Resolve `host` and return its addresses, all of them allowed.

        Raises RefusedAddressError when any address is refused (one bad answer is
        enough to refuse the host), and when the host does not resolve.
        """
        addresses = await _resolve(host, port)
        for address in addresses:
            reason = self.refusal(address)
            if reason is not None:
                raise RefusedAddressError(
                    f"refusing to call {host!r}: it resolves to {address}, {reason}; "
                    "add it to the allowlist in settings if it is meant to be called"
                )
        return addresses


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses a policy allows."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._policy.resolve(host, port)
        last_error: Exception | None = None
        for address in addresses:
            try:
                stream = await self._backend.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                last_error = error
                continue
            return _PooledStream(stream)
        raise last_error or httpcore.ConnectError(f"{host!r} has no address")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedAddressError(f"refusing to connect to the unix socket {path!r}")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _PooledStream(httpcore.AsyncNetworkStream):
    """A connection that answers the pool's liveness checks cheaply.

    httpcore asks every idle pooled connection whether its socket is readable
    each time it places a request; through anyio that rebuilds a dict of socket
    attributes (with a `getpeername` call) per question. The raw socket does not
    change for the life of the connection, TLS included, so it is looked up once.
    """

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._socket: socket.socket | None = stream.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        secured = await self._stream.start_tls(ssl_context, server_hostname, timeout)
        return _PooledStream(secured)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return _readable(self._socket)
        return self._stream.get_extra_info(info)


def _readable(sock: socket.socket | None) -> bool:
    """Whether a read would return at once (data, or the end of a closed socket)."""
    descriptor = -1 if sock is None else sock.fileno()
    if descriptor < 0:
        return True
    probe = select.poll()
    probe.register(descriptor, select.POLLIN)
    return bool(probe.poll(0))


def guarded_transport(
    policy: AddressPolicy, *, max_connections: int = 100
) -> httpx.AsyncHTTPTransport:
    """Return an httpx transport whose every connection goes through `policy`.

    Proxies from the environment are ignored, since a proxy would make the
    connection on our behalf to an address we never checked.
    """
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=KEEPALIVE_EXPIRY_S,
    )
    transport = httpx.AsyncHTTPTransport(trust_env=False, limits=limits)
    # httpx offers no argument for a network backend, so the pool it built is
    # replaced by one with the same TLS context and limits and the guarded backend.
    ssl_context = transport._pool._ssl_context
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedNetworkBackend(policy),
    )
    return transport


async def _resolve(host: str, port: int) -> list[IpAddress]:
    literal = _literal_address(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise RefusedAddressError(f"cannot resolve host {host!r}: {error}") from error
    unique: dict[IpAddress, None] = {}
    for _family, _type, _proto, _name, sockaddr in infos:
        unique[ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])] = None
    return list(unique)


def _literal_address(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _parse_network(entry: str) -> IpNetwork:
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError as error:
        raise ValueError(
            f"expected an IP address or network in the allowlist, got {entry!r}"
        ) from error
