"""The aiohttp client under :class:`aioigd.session.SoapSession`: one exchange at a time.

It sends one request, reads the capped body and translates every transport error
into the aioigd error tree; checks, timeouts and retries are the session's.
aiohttp is imported with :mod:`aioigd.session` when no loop runs, and otherwise
in a worker thread, so a host application's loop never stalls on its ~0.2 s
import.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import importlib
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import (
    ConnectionReset,
    IGDConnectionError,
    IGDError,
    RemoteProtocolError,
    ResponseTooLarge,
)

if TYPE_CHECKING:
    import aiohttp
    import yarl

__all__ = [
    "Target",
    "HttpClient",
    "AiohttpClient",
    "load_aiohttp",
    "start_loading_aiohttp",
    "prepare_aiohttp",
    "new_client",
]

_CHUNK = 65536
_RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})


@dataclass(frozen=True)
class Target:
    """A checked URL split once for every request sent to it."""

    url: str
    host: str
    port: int
    #: Path and query, as sent in the request line.
    request_target: str
    #: The Host header: the URL's host (zone id dropped) and port.
    host_header: str

    @classmethod
    def from_url(cls, url: str) -> Target:
        """Split an already checked http URL."""
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or 80
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        bare = host.split("%", 1)[0]
        shown = f"[{bare}]" if ":" in bare else bare
        return cls(url, host, port, path, shown if port == 80 else f"{shown}:{port}")


class HttpClient:
    """One exchange at a time per call; subclasses own their connections."""

    def __init__(
        self, *, max_connections: int, local_addr: str | None, on_connect: Callable[[], None]
    ) -> None:
        self.max_connections = max_connections
        self.local_addr = local_addr
        self.on_connect = on_connect

    async def exchange(
        self,
        method: str,
        target: Target,
        headers: Mapping[str, str] | None,
        data: bytes | None,
        *,
        what: str,
        max_body: int,
    ) -> tuple[int, bytes]:
        """Send one request; return its status and whole body (at most ``max_body``).

        Raises:
            RemoteProtocolError: a malformed, truncated or redirected reply.
            ResponseTooLarge: a body over ``max_body``.
            ConnectionReset: the connection was reset or closed before the reply.
            IGDConnectionError: any other transport failure.
        """
        raise NotImplementedError

    async def ready(self) -> None:
        """Make the client ready to send (outside any request's timeout)."""

    async def close(self) -> None:
        """Close every connection."""


def _redirect(what: str, status: int, location: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"{what}: HTTP {status} redirect refused (to {location[:80]!r})")


def _too_large(what: str, limit: int) -> ResponseTooLarge:
    return ResponseTooLarge(f"{what}: body exceeds {limit} bytes")


_import: concurrent.futures.Future[Any] | None = None


def prepare_aiohttp() -> None:
    """Import aiohttp now when no event loop runs in this thread, else start importing
    it in a worker thread (never on a running loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        if _import is None:
            importlib.import_module("aiohttp")
        return
    start_loading_aiohttp()


def _imported_aiohttp() -> Any:
    """aiohttp once its import has finished, else None.

    A module is in ``sys.modules`` from the moment its import starts: while another
    thread runs aiohttp's ``__init__`` it already has some names (``ClientSession``)
    and not yet others. ``__spec__._initializing`` is the flag CPython's own import
    system checks for that.
    """
    module = sys.modules.get("aiohttp")
    if module is None or getattr(getattr(module, "__spec__", None), "_initializing", False):
        return None
    return module


def start_loading_aiohttp() -> None:
    """Begin importing aiohttp in a worker thread (nothing if imported or under way).

    Its import takes ~0.2 s (it builds SSL contexts on purpose): inside a host
    application's running loop that would stall every other task. Sessions start it
    when created, discovery when it starts, so it overlaps the network wait.
    """
    global _import
    if _import is not None or _imported_aiohttp() is not None:
        return
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(importlib.import_module("aiohttp"))
        except BaseException as exc:  # handed to whoever awaits it
            future.set_exception(exc)

    _import = future
    threading.Thread(target=run, name="aioigd: import aiohttp", daemon=True).start()


async def load_aiohttp() -> Any:
    """aiohttp, imported off the event loop if it was not imported yet."""
    module = _imported_aiohttp()
    if module is not None:
        return module
    start_loading_aiohttp()
    assert _import is not None
    return await asyncio.wrap_future(_import)


class AiohttpClient(HttpClient):
    """One aiohttp ``ClientSession`` (keep-alive, at most ``max_connections``)."""

    def __init__(
        self, *, max_connections: int, local_addr: str | None, on_connect: Callable[[], None]
    ) -> None:
        super().__init__(
            max_connections=max_connections, local_addr=local_addr, on_connect=on_connect
        )
        self._aiohttp: Any = None
        self._session: aiohttp.ClientSession | None = None
        start_loading_aiohttp()
        self._urls: dict[str, yarl.URL] = {}

    def _new_socket(self, addr_info: tuple[Any, ...]) -> socket.socket:
        family, type_, proto = addr_info[:3]
        sock = socket.socket(family, type_, proto)
        # Counting sockets here is ~10x cheaper per request than a TraceConfig.
        self.on_connect()
        return sock

    async def ready(self) -> None:
        await self._client()

    async def _client(self) -> aiohttp.ClientSession:
        if self._aiohttp is None:
            self._aiohttp = await load_aiohttp()
        # Checked after the await: concurrent first requests must share one session.
        if self._session is None or self._session.closed:
            ah = self._aiohttp
            self._session = ah.ClientSession(
                timeout=ah.ClientTimeout(total=None),
                connector=ah.TCPConnector(
                    limit=self.max_connections,
                    limit_per_host=self.max_connections,
                    use_dns_cache=False,
                    local_addr=(self.local_addr, 0) if self.local_addr else None,
                    socket_factory=self._new_socket,
                ),
                # Nothing decompresses the body: advertising gzip would invite one.
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
                auto_decompress=False,
                # Gateways set no cookies; filtering the jar costs every request.
                cookie_jar=ah.DummyCookieJar(),
            )
        return self._session

    def _url(self, target: Target) -> yarl.URL:
        url = self._urls.get(target.url)
        if url is None:
            import yarl

            # Built once per URL: aiohttp would parse a str again on every request.
            url = yarl.URL(target.url)
            if len(self._urls) < 64:
                self._urls[target.url] = url
        return url

    async def exchange(
        self,
        method: str,
        target: Target,
        headers: Mapping[str, str] | None,
        data: bytes | None,
        *,
        what: str,
        max_body: int,
    ) -> tuple[int, bytes]:
        client = await self._client()
        ah = self._aiohttp
        try:
            async with client.request(
                method, self._url(target), headers=headers, data=data, allow_redirects=False
            ) as resp:
                if 300 <= resp.status < 400:
                    raise _redirect(what, resp.status, resp.headers.get("Location", "?"))
                length = resp.content_length
                if length is not None and length > max_body:
                    raise ResponseTooLarge(
                        f"{what}: Content-Length {length} exceeds {max_body} bytes"
                    )
                if length is not None:
                    # Within the cap already; one read (a short body is a payload error).
                    return resp.status, await resp.read()
                body = bytearray()
                while chunk := await resp.content.read(_CHUNK):
                    body += chunk
                    if len(body) > max_body:
                        raise _too_large(what, max_body)
                return resp.status, bytes(body)
        except IGDError:
            raise
        except ah.ClientPayloadError as exc:
            raise RemoteProtocolError(f"{what}: truncated or malformed body ({exc})") from None
        except ah.ClientResponseError as exc:
            raise RemoteProtocolError(f"{what}: malformed HTTP reply ({exc.message})") from None
        except ah.InvalidURL as exc:
            raise RemoteProtocolError(f"{what}: invalid URL {exc}") from None
        except (ah.ServerDisconnectedError, ConnectionResetError, BrokenPipeError) as exc:
            raise ConnectionReset(f"{what}: {str(exc) or type(exc).__name__}") from None
        except (ah.ClientError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, ah.ClientOSError) and exc.errno in _RESET_ERRNOS:
                raise ConnectionReset(f"{what}: {reason}") from None
            raise IGDConnectionError(f"{what}: {reason}") from None

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def new_client(
    *,
    max_connections: int,
    local_addr: str | None,
    on_connect: Callable[[], None],
) -> HttpClient:
    """A client for one gateway."""
    return AiohttpClient(
        max_connections=max_connections, local_addr=local_addr, on_connect=on_connect
    )
