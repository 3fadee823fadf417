"""HTTP for one gateway: description fetches and SOAP calls over one aiohttp session.

Invariants: every request has a total timeout; every body is read under a
size cap (Content-Length is checked first, then the bytes actually read);
redirects are never followed; URLs must stay on the gateway's host; every
aiohttp/OSError is translated into the aioigd error tree here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp

from .errors import (
    ConnectionReset,
    IGDConnectionError,
    IGDError,
    IGDTimeoutError,
    RemoteProtocolError,
    ResponseTooLarge,
)
from .netguard import check_destination
from .proto import soap
from .proto.description import MAX_DESCRIPTION_SIZE
from .proto.urls import check_url, url_host

__all__ = ["SoapSession", "SessionStats", "DEFAULT_TIMEOUT"]

log = logging.getLogger("aioigd.traffic")

#: Seconds for one whole HTTP exchange (connect, send, read the capped body).
DEFAULT_TIMEOUT = 5.0
#: Concurrent connections to one gateway. miniupnpd listens with a backlog of 5:
#: more parallel connects overflow it and stall in SYN retransmits (1 s each).
MAX_CONNECTIONS = 4
_CHUNK = 65536
_RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})
#: Actions that must not be sent twice: a second AddAnyPortMapping may map a second port.
_NOT_RETRIED = frozenset({"AddAnyPortMapping"})


@dataclass
class SessionStats:
    """Counters for benchmarks and leak checks."""

    requests: int = 0
    connections: int = 0


@contextlib.contextmanager
def _map_exceptions(what: str, timeout: float) -> Iterator[None]:
    try:
        yield
    except IGDError:
        raise
    except TimeoutError:
        raise IGDTimeoutError(f"{what}: no answer within {timeout:g} s") from None
    except aiohttp.ClientPayloadError as exc:
        raise RemoteProtocolError(f"{what}: truncated or malformed body ({exc})") from None
    except aiohttp.ClientResponseError as exc:
        raise RemoteProtocolError(f"{what}: malformed HTTP reply ({exc.message})") from None
    except aiohttp.InvalidURL as exc:
        raise RemoteProtocolError(f"{what}: invalid URL {exc}") from None
    except (aiohttp.ServerDisconnectedError, ConnectionResetError, BrokenPipeError) as exc:
        raise ConnectionReset(f"{what}: {str(exc) or type(exc).__name__}") from None
    except (aiohttp.ClientError, OSError) as exc:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, aiohttp.ClientOSError) and exc.errno in _RESET_ERRNOS:
            raise ConnectionReset(f"{what}: {reason}") from None
        raise IGDConnectionError(f"{what}: {reason}") from None


class SoapSession:
    """One aiohttp session per gateway, reused for every action.

    Args:
        host: the gateway's address; every URL must be on it unless ``None``.
        timeout: seconds for each whole request.
        max_body: cap on any response body in bytes.
        local_addr: source address for connections (pinhole requests must come
            from the internal client's own IPv6 address).
    """

    def __init__(
        self,
        host: str | None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_body: int = max(soap.MAX_SOAP_SIZE, MAX_DESCRIPTION_SIZE),
        local_addr: str | None = None,
    ) -> None:
        self.host = host
        self.local_addr = local_addr
        self.timeout = timeout
        self.max_body = max_body
        self.stats = SessionStats()
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)

    def _client(self) -> aiohttp.ClientSession:
        if self._closed:
            # Never resurrect a session after close(): it would never be closed again.
            raise IGDConnectionError("the gateway session is closed")
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None),
                connector=aiohttp.TCPConnector(
                    limit=MAX_CONNECTIONS,
                    limit_per_host=MAX_CONNECTIONS,
                    use_dns_cache=False,
                    local_addr=(self.local_addr, 0) if self.local_addr else None,
                    # Counting sockets here is ~10x cheaper per request than a TraceConfig.
                    socket_factory=self._new_socket,
                ),
                skip_auto_headers=("User-Agent",),
                auto_decompress=False,
            )
        return self._session

    def _new_socket(self, addr_info: tuple[Any, ...]) -> socket.socket:
        family, type_, proto = addr_info[:3]
        sock = socket.socket(family, type_, proto)
        self.stats.connections += 1
        return sock

    async def _request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None,
        data: bytes | None,
        what: str,
    ) -> tuple[int, bytes]:
        check_url(url, allowed_host=self.host)
        check_destination(url_host(url), what)
        # The timeout starts once a connection slot is ours: a request that waited for
        # its turn behind others was never sent, and must not time out as "unknown".
        async with self._slots:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.timeout
            retry = what not in _NOT_RETRIED
            while True:
                self.stats.requests += 1
                try:
                    return await self._exchange(
                        method,
                        url,
                        headers=headers,
                        data=data,
                        what=what,
                        budget=deadline - loop.time(),
                    )
                except ConnectionReset as exc:
                    # The connection was reset or closed before an answer: every action
                    # aioigd sends but AddAnyPortMapping is safe to send again (the same
                    # add, delete or question), once, within the same timeout. A timeout
                    # is not retried: TCP already retransmits lost segments, and cutting
                    # an attempt short to retry measured worse under 20% loss
                    # (benchmarks/lossy.py).
                    if not retry or deadline - loop.time() < 0.2:
                        raise
                    retry = False
                    log.debug("%s: %s; sending it again", what, exc)

    async def _exchange(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None,
        data: bytes | None,
        what: str,
        budget: float,
    ) -> tuple[int, bytes]:
        with _map_exceptions(what, self.timeout):
            async with asyncio.timeout(budget):
                async with self._client().request(
                    method, url, headers=headers, data=data, allow_redirects=False
                ) as resp:
                    if 300 <= resp.status < 400:
                        raise RemoteProtocolError(
                            f"{what}: HTTP {resp.status} redirect refused "
                            f"(to {resp.headers.get('Location', '?')[:80]!r})"
                        )
                    length = resp.content_length
                    if length is not None and length > self.max_body:
                        raise ResponseTooLarge(
                            f"{what}: Content-Length {length} exceeds {self.max_body} bytes"
                        )
                    body = bytearray()
                    while chunk := await resp.content.read(_CHUNK):
                        body += chunk
                        if len(body) > self.max_body:
                            raise ResponseTooLarge(f"{what}: body exceeds {self.max_body} bytes")
                    return resp.status, bytes(body)

    async def get(self, url: str, *, what: str = "description") -> bytes:
        """GET ``url`` and return its body (status 200 only)."""
        status, body = await self._request("GET", url, headers=None, data=None, what=what)
        if status != 200:
            raise RemoteProtocolError(f"{what}: HTTP {status} from {url[:80]}")
        return body

    async def call(
        self,
        control_url: str,
        service_type: str,
        action: str,
        args: Sequence[tuple[str, str]] = (),
    ) -> dict[str, str]:
        """POST one SOAP action and return its out arguments.

        Raises:
            UPnPError: a fault from the gateway (subclass chosen by code).
            RemoteProtocolError: malformed, oversized or redirected reply.
            IGDConnectionError / IGDTimeoutError: transport failures.
        """
        headers, body = soap.build_request(service_type, action, args)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("-> %s %s %r", control_url, action, list(args))
        status, reply = await self._request(
            "POST", control_url, headers=headers, data=body, what=action
        )
        if log.isEnabledFor(logging.DEBUG):
            log.debug("<- %s %s HTTP %d %d bytes", control_url, action, status, len(reply))
        return soap.parse_response(status, reply, service_type, action, limit=self.max_body)

    async def close(self) -> None:
        """Close the aiohttp session and its connections; later calls fail."""
        self._closed = True
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> SoapSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
