"""HTTP for one gateway: description fetches and SOAP calls, bounded, checked and retried.

Invariants: every request ends by its deadline (the session's timeout, or less
when a :func:`deadline` is set around a command); every body is read under a
size cap (Content-Length is checked first, then the bytes actually read);
redirects are never followed; URLs must stay on the gateway's host (checked once
per URL); every transport error is translated into the aioigd error tree (in
:mod:`aioigd.httpclient`); only idempotent requests are sent twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

from .deadlines import current_deadline, deadline
from .errors import (
    ConnectionReset,
    IGDConnectionError,
    IGDTimeoutError,
    RemoteProtocolError,
    UPnPError,
)
from .httpclient import (
    HttpClient,
    Target,
    new_client,
    prepare_aiohttp,
    start_loading_aiohttp,
)
from .netguard import check_destination
from .proto import soap
from .proto.description import MAX_DESCRIPTION_SIZE
from .proto.urls import check_url, url_host

__all__ = [
    "SoapSession",
    "SessionStats",
    "DEFAULT_TIMEOUT",
    "IDEMPOTENT_ACTIONS",
    "attempt_budget",
    "deadline",
]

log = logging.getLogger("aioigd.traffic")

#: Seconds for one whole request, every attempt included.
DEFAULT_TIMEOUT = 5.0
#: Concurrent connections to one gateway. miniupnpd listens with a backlog of 5:
#: more parallel connects overflow it and stall in SYN retransmits (1 s each).
MAX_CONNECTIONS = 4
#: Actions whose second copy does what the first did, so a lost reply can be asked
#: again: questions, and the add/delete of one key with the same arguments
#: (miniupnpd updates a mapping re-added for the same internal client). Never
#: AddAnyPortMapping or AddPinhole: a second copy may open a second port or pinhole.
IDEMPOTENT_ACTIONS = frozenset(
    {
        "GetExternalIPAddress",
        "GetStatusInfo",
        "GetConnectionTypeInfo",
        "GetNATRSIPStatus",
        "GetSpecificPortMappingEntry",
        "GetGenericPortMappingEntry",
        "GetListOfPortMappings",
        "AddPortMapping",
        "DeletePortMapping",
        "DeletePortMappingRange",
        "GetFirewallStatus",
        "GetOutboundPinholeTimeout",
        "GetPinholePackets",
        "CheckPinholeWorking",
        "UpdatePinhole",
        "DeletePinhole",
    }
)
#: A delete sent again answers "no such entry" when the lost first copy did the work.
_DONE_BY_AN_EARLIER_COPY = {"DeletePortMapping": 714, "DeletePinhole": 704}
#: Attempts per request at most, and the shortest one worth cutting short: a lost
#: SYN is sent again after 1 s, so an attempt shorter than that never sees it.
MAX_ATTEMPTS = 3
MIN_ATTEMPT = 1.1
#: No new attempt with less time than this left.
_MIN_RETRY = 0.2
_MAX_TARGETS = 64

# aiohttp comes with this module: imported here when no loop runs (as a top-level
# `from aioigd import discover` does), else in a thread, never on a running loop.
prepare_aiohttp()


def attempt_budget(remaining: float, attempt: int) -> float:
    """Seconds attempt number ``attempt`` (0 first) of an idempotent request may take.

    The early attempts are short (a quarter, then a third of the time left, at least
    :data:`MIN_ATTEMPT`); the last one gets everything left, at least half of the
    whole, so a router that is slow rather than lossy still gets its time. TCP
    already retransmits lost segments: an attempt is cut short only so that a
    connection stuck in backed-off retransmits (3 s for a second lost SYN) is
    replaced by a fresh one. Measured under 20 % loss (benchmarks/lossy.py).
    """
    if attempt >= MAX_ATTEMPTS - 1 or remaining < 2 * MIN_ATTEMPT:
        return remaining
    return max(MIN_ATTEMPT, remaining / (MAX_ATTEMPTS + 1 - attempt))


@dataclass
class SessionStats:
    """Counters for benchmarks and leak checks."""

    requests: int = 0
    connections: int = 0


class SoapSession:
    """One HTTP client per gateway, reused for every action.

    Args:
        host: the gateway's address; every URL must be on it unless ``None``.
        timeout: seconds for each whole request (every attempt included).
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
        start_loading_aiohttp()
        self._http: HttpClient | None = None
        self._closed = False
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self._targets: dict[str, tuple[Target, str]] = {}

    def _count_connection(self) -> None:
        self.stats.connections += 1

    def _client(self) -> HttpClient:
        if self._closed:
            # Never resurrect a session after close(): it would never be closed again.
            raise IGDConnectionError("the gateway session is closed")
        if self._http is None:
            self._http = new_client(
                max_connections=MAX_CONNECTIONS,
                local_addr=self.local_addr,
                on_connect=self._count_connection,
            )
        return self._http

    def _target(self, url: str) -> tuple[Target, str]:
        """``url`` checked and split, once per URL: (target, normalised host)."""
        found = self._targets.get(url)
        if found is None:
            check_url(url, allowed_host=self.host)
            found = (Target.from_url(url), url_host(url))
            if len(self._targets) < _MAX_TARGETS:
                self._targets[url] = found
        return found

    async def _request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None,
        data: bytes | None,
        what: str,
        idempotent: bool,
    ) -> tuple[int, bytes, int]:
        """(status, body, attempts before the one that answered)."""
        target, host = self._target(url)
        # Not cached: loopback-only mode can be switched on at any time.
        check_destination(host, what)
        client = self._client()
        await client.ready()  # e.g. aiohttp's first import: not within any attempt's time
        # The timeout starts once a connection slot is ours: a request that waited for
        # its turn behind others was never sent, and must not time out as "unknown".
        async with self._slots:
            loop = asyncio.get_running_loop()
            start = loop.time()
            end = start + self.timeout
            outer = current_deadline()
            if outer is not None:
                end = min(end, outer)
            attempt = 0
            while True:
                remaining = end - loop.time()
                if remaining <= 0:
                    raise IGDTimeoutError(f"{what}: the command's deadline has passed")
                budget = attempt_budget(remaining, attempt) if idempotent else remaining
                self.stats.requests += 1
                try:
                    async with asyncio.timeout(budget):
                        status, body = await client.exchange(
                            method, target, headers, data, what=what, max_body=self.max_body
                        )
                    return status, body, attempt
                except TimeoutError as exc:
                    if isinstance(exc, IGDTimeoutError):
                        raise
                    if not self._may_retry(idempotent, attempt, end - loop.time()):
                        tries = f" ({attempt + 1} attempts)" if attempt else ""
                        raise IGDTimeoutError(
                            f"{what}: no answer within {end - start:.3g} s{tries}"
                        ) from None
                    why = f"no answer within {budget:.2g} s"
                except ConnectionReset as exc:
                    # Reset or closed before an answer: the request may or may not
                    # have been acted on, so only an idempotent one is sent again.
                    if not self._may_retry(idempotent, attempt, end - loop.time()):
                        raise
                    why = str(exc)
                attempt += 1
                log.debug("%s: %s; sending it again (attempt %d)", what, why, attempt + 1)

    @staticmethod
    def _may_retry(idempotent: bool, attempt: int, left: float) -> bool:
        return idempotent and attempt + 1 < MAX_ATTEMPTS and left >= _MIN_RETRY

    async def get(self, url: str, *, what: str = "description") -> bytes:
        """GET ``url`` and return its body (status 200 only)."""
        status, body, _ = await self._request(
            "GET", url, headers=None, data=None, what=what, idempotent=True
        )
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
        template = soap.request_template(service_type, action)
        body = template.body(args)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("-> %s %s %r", control_url, action, list(args))
        status, reply, retried = await self._request(
            "POST",
            control_url,
            headers=template.headers,
            data=body,
            what=action,
            idempotent=action in IDEMPOTENT_ACTIONS,
        )
        if log.isEnabledFor(logging.DEBUG):
            log.debug("<- %s %s HTTP %d %d bytes", control_url, action, status, len(reply))
        try:
            return soap.parse_response(status, reply, service_type, action, limit=self.max_body)
        except UPnPError as exc:
            if retried and _DONE_BY_AN_EARLIER_COPY.get(action) == exc.code:
                log.debug("%s: %s after a lost reply: the first copy did it", action, exc)
                return {}
            raise

    async def close(self) -> None:
        """Close the HTTP client and its connections; later calls fail."""
        self._closed = True
        if self._http is not None:
            await self._http.close()
        self._http = None

    async def __aenter__(self) -> SoapSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
