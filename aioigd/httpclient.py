"""The two HTTP clients under :class:`aioigd.session.SoapSession`: aiohttp and asyncio streams.

Both do one exchange (send, read the capped body) and translate every transport
error into the aioigd error tree; checks, timeouts and retries are the
session's. aiohttp (the library's default: keep-alive, a mature parser) is
imported with :mod:`aioigd.session` when no loop runs, and otherwise in a worker
thread, so a host application's loop never stalls on its ~0.2 s import. The
streams client needs nothing beyond asyncio: short-lived processes (the CLI)
choose it first (:func:`set_default_transport`) and never import aiohttp at all.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import importlib
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .errors import (
    ConnectionReset,
    IGDConnectionError,
    IGDError,
    RemoteProtocolError,
    ResponseTooLarge,
)
from .proto import http1

if TYPE_CHECKING:
    import aiohttp
    import yarl

__all__ = [
    "Target",
    "HttpClient",
    "AiohttpClient",
    "StreamsClient",
    "TransportName",
    "load_aiohttp",
    "start_loading_aiohttp",
    "prepare_aiohttp",
    "set_default_transport",
    "using_transport",
    "default_transport",
    "new_client",
]

TransportName = Literal["aiohttp", "stdlib"]

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


@contextlib.contextmanager
def _os_errors(what: str) -> Iterator[None]:
    try:
        yield
    except IGDError:
        raise
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as exc:
        raise ConnectionReset(f"{what}: {str(exc) or type(exc).__name__}") from None
    except OSError as exc:
        if exc.errno in _RESET_ERRNOS:
            raise ConnectionReset(f"{what}: {exc}") from None
        raise IGDConnectionError(f"{what}: {str(exc) or type(exc).__name__}") from None


# -- asyncio streams ---------------------------------------------------------------------------


class StreamsClient(HttpClient):
    """HTTP/1.1 over ``asyncio.open_connection``: one connection per request."""

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
        request = http1.build_request(
            method, target.request_target, target.host_header, headers or {}, data
        )
        with _os_errors(what):
            self.on_connect()
            reader, writer = await asyncio.open_connection(
                target.host,
                target.port,
                local_addr=(self.local_addr, 0) if self.local_addr else None,
                limit=http1.MAX_HEAD_SIZE,
            )
            try:
                writer.write(request)
                return await _read_reply(reader, what=what, max_body=max_body)
            finally:
                # Not wait_closed(): under loss it could outlast the request's deadline.
                writer.close()


async def _read_line(reader: asyncio.StreamReader, what: str) -> bytes:
    try:
        return await reader.readline()
    except ValueError:  # over the reader's limit
        raise RemoteProtocolError(
            f"{what}: HTTP head line over {http1.MAX_HEAD_SIZE} bytes"
        ) from None


async def _read_reply(
    reader: asyncio.StreamReader, *, what: str, max_body: int
) -> tuple[int, bytes]:
    try:
        # The whole head in one read: a gateway's head is a few hundred bytes.
        lines = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")[:-2]
    except asyncio.LimitOverrunError:
        lines = []  # nothing consumed: read it line by line below
    except asyncio.IncompleteReadError as exc:
        # Closed before a CRLF CRLF: nothing at all, or a head with bare LF line ends
        # (the whole reply is in hand then: read the body from what is left).
        data = exc.partial
        if not data:
            raise ConnectionReset(f"{what}: the connection closed before a reply") from None
        ends = [(i, len(sep)) for sep in (b"\n\n", b"\n\r\n") if (i := data.find(sep)) >= 0]
        if not ends:
            raise RemoteProtocolError(
                f"{what}: the connection closed inside the HTTP head"
            ) from None
        end, sep_len = min(ends)
        lines = data[:end].replace(b"\r\n", b"\n").split(b"\n")
        rest = data[end + sep_len :]
        reader = asyncio.StreamReader()
        reader.feed_data(rest)
        reader.feed_eof()
    try:
        if not lines:
            lines = await _read_head_lines(reader, what)
        status = http1.parse_status_line(lines[0])
        head = http1.head_from_lines(status, [ln for ln in lines[1:] if ln.strip()])
    except RemoteProtocolError as exc:
        raise RemoteProtocolError(f"{what}: {exc}") from None
    if 300 <= head.status < 400:
        raise _redirect(what, head.status, head.location or "?")
    try:
        if head.chunked:
            body = await _read_chunked(reader, what=what, max_body=max_body)
        elif head.content_length is not None:
            if head.content_length > max_body:
                raise ResponseTooLarge(
                    f"{what}: Content-Length {head.content_length} exceeds {max_body} bytes"
                )
            body = await reader.readexactly(head.content_length)
        else:  # framed by the end of the connection
            body = await reader.read(max_body + 1)
            while len(body) <= max_body and (more := await reader.read(max_body + 1 - len(body))):
                body += more
            if len(body) > max_body:
                raise _too_large(what, max_body)
    except asyncio.IncompleteReadError:
        raise RemoteProtocolError(f"{what}: truncated or malformed body") from None
    return head.status, body


async def _read_head_lines(reader: asyncio.StreamReader, what: str) -> list[bytes]:
    """The status line and header lines, one line at a time (a head over the limit)."""
    line = await _read_line(reader, what)
    lines = [line]
    size = len(line)
    while (line := await _read_line(reader, what)).strip():
        size += len(line)
        if size > http1.MAX_HEAD_SIZE or len(lines) > http1.MAX_HEADERS:
            raise RemoteProtocolError(f"HTTP head over {http1.MAX_HEAD_SIZE} bytes")
        lines.append(line)
    if not line:
        raise RemoteProtocolError("the connection closed inside the HTTP head")
    return lines


async def _read_chunked(reader: asyncio.StreamReader, *, what: str, max_body: int) -> bytes:
    body = bytearray()
    while True:
        try:
            size = http1.parse_chunk_size(await _read_line(reader, what))
        except RemoteProtocolError as exc:
            raise RemoteProtocolError(f"{what}: truncated or malformed body ({exc})") from None
        if size == 0:
            break
        if len(body) + size > max_body:
            raise _too_large(what, max_body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)  # the chunk's CRLF
    for _ in range(http1.MAX_HEADERS):  # trailers, up to the empty line or the end
        line = await _read_line(reader, what)
        if not line.strip():
            break
    return bytes(body)


# -- aiohttp -----------------------------------------------------------------------------------


_import: concurrent.futures.Future[Any] | None = None
_default_transport: TransportName = "aiohttp"


def set_default_transport(name: TransportName) -> None:
    """Choose the HTTP client of sessions created without one: ``"aiohttp"`` (the
    default) or ``"stdlib"`` (asyncio streams: no aiohttp import, one connection per
    request; for short-lived processes such as the CLI)."""
    global _default_transport
    if name not in ("aiohttp", "stdlib"):
        raise ValueError(f"transport must be 'aiohttp' or 'stdlib', not {name!r}")
    _default_transport = name


@contextlib.contextmanager
def using_transport(name: TransportName) -> Iterator[None]:
    """:func:`set_default_transport` inside the block only (the previous one after)."""
    previous = _default_transport
    set_default_transport(name)
    try:
        yield
    finally:
        set_default_transport(previous)


def default_transport() -> TransportName:
    """The HTTP client new sessions use unless told otherwise."""
    return _default_transport


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
    module = sys.modules.get("aiohttp")
    # Present but without ClientSession: another thread is importing it right now.
    return module if getattr(module, "ClientSession", None) is not None else None


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
    name: TransportName,
    *,
    max_connections: int,
    local_addr: str | None,
    on_connect: Callable[[], None],
) -> HttpClient:
    """The client called ``name``."""
    cls: type[HttpClient] = StreamsClient if name == "stdlib" else AiohttpClient
    return cls(max_connections=max_connections, local_addr=local_addr, on_connect=on_connect)
