"""SSDP discovery on asyncio: search concurrently, return on the first usable gateway.

One :class:`SsdpProtocol` per socket: a socket per IPv4 interface for the
multicast search (``IP_MULTICAST_IF``, TTL 2) and one for unicast searches to
the host's default gateways and any addresses the caller gives. The protocol
only parses and forwards; the coroutine decides. Nothing sleeps for MX: the
first answer whose description parses wins (``discover``), or every answer
until the timeout is kept (``discover_all``).

Bounds: datagrams over :data:`~aioigd.proto.ssdp.MAX_DATAGRAM` are refused,
at most :data:`MAX_ANSWERS` answers are queued and :data:`MAX_LOCATIONS`
distinct descriptions fetched per search, so a flood costs nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import itertools
import logging
import socket
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from .errors import GatewayNotFound, IGDConnectionError, IGDError, RemoteProtocolError
from .gateway import Gateway
from .httpclient import start_loading_aiohttp
from .models import SearchResponse
from .netguard import check_destination
from .netutil import default_gateways, default_gateways_v6
from .proto.ssdp import (
    IGD_SEARCH_TARGETS,
    SSDP_ADDR,
    SSDP_ADDR_V6,
    SSDP_PORT,
    build_msearch,
    parse_ssdp,
)
from .proto.urls import same_host, url_host, with_zone
from .session import DEFAULT_TIMEOUT
from .tasks import stop_task

__all__ = [
    "discover",
    "discover_all",
    "search",
    "rediscover",
    "rediscovery_options",
    "ssdp_presence",
    "SearchOptions",
    "SsdpProtocol",
    "multicast_interfaces",
    "ipv6_multicast_interfaces",
    "MAX_ANSWERS",
    "MAX_LOCATIONS",
]

log = logging.getLogger("aioigd")

MAX_ANSWERS = 256
MAX_LOCATIONS = 16
#: When each M-SEARCH is sent again (s after the first); then every _RESEND_EVERY s until
#: the search window ends: under heavy loss a copy still arrives late in the window.
_RESEND_AFTER = (0.25, 0.75, 1.5)
_RESEND_EVERY = 0.75

Target = str | tuple[str, int]


@dataclass
class SearchOptions:
    """Where and how to search.

    Args:
        timeout: seconds before giving up.
        multicast: send to 239.255.255.250 on every IPv4 interface (or ``interfaces``).
        interfaces: local IPv4 addresses to multicast from (default: all but loopback).
        unicast: extra ``host``, ``host:port`` or ``(host, port)`` targets.
        default_gateways: also unicast to the host's default gateways (:mod:`aioigd.platform`).
        search_targets: the STs to search for.
        allow_foreign_location: accept a LOCATION on another host than the sender.
        mx: the MX header for multicast searches.
        http_timeout: timeout of each description fetch and SOAP call.
        ipv6: also search over IPv6: ``[ff02::c]`` on every interface with an
            IPv6 link-local address and unicast to the IPv6 default routers.
        ipv4: search over IPv4 (set False with ``ipv6=True`` to find only gateways
            reachable over IPv6, as pinholes need).
    """

    timeout: float = 3.0
    multicast: bool = True
    interfaces: Sequence[str] | None = None
    unicast: Sequence[Target] = ()
    default_gateways: bool = True
    search_targets: Sequence[str] = IGD_SEARCH_TARGETS
    allow_foreign_location: bool = False
    mx: int = 2
    http_timeout: float = DEFAULT_TIMEOUT
    ipv6: bool = False
    ipv4: bool = True
    #: When the first usable gateway is not a default gateway, how long ``discover()``
    #: waits for one that is (a mesh extender or second router may answer first).
    prefer_window: float = 0.3
    #: Filled in during a search: why answers were refused (for the error message).
    refused: list[str] = field(default_factory=list)
    #: Filled in during a search: where M-SEARCHes went (for the error message).
    tried: list[str] = field(default_factory=list)


class SsdpProtocol(asyncio.DatagramProtocol):
    """Parses SSDP datagrams and queues the valid answers; nothing else.

    With ``seen``, only the first answer of each (sender, LOCATION) is queued: a router
    answers every search target, on every socket it was asked on, and its copies
    would only be parsed again and thrown away, while the description is fetched.
    """

    def __init__(
        self, queue: asyncio.Queue[SearchResponse], seen: set[tuple[str, str]] | None = None
    ) -> None:
        self.queue = queue
        self.seen = seen
        self.transport: asyncio.DatagramTransport | None = None
        self.invalid = 0
        self.dropped = 0
        self.repeats = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        try:
            answer = parse_ssdp(data, sender=str(addr[0]))
        except RemoteProtocolError:
            self.invalid += 1
            return
        if answer is None or answer.is_notify:
            return
        if self.seen is not None:
            key = (answer.sender, answer.location)
            if key in self.seen:
                self.repeats += 1
                return
            if len(self.seen) < MAX_ANSWERS:
                self.seen.add(key)
        try:
            self.queue.put_nowait(answer)
        except asyncio.QueueFull:
            self.dropped += 1

    def error_received(self, exc: Exception) -> None:
        log.debug("SSDP socket error: %s", exc)


#: Seconds a listing of the host's subnets is reused: the searches of one multi-layer
#: map run side by side, and the listing (ifaddr, through ctypes) costs ~0.5 ms each.
#: It only ranks answers, so a listing a moment old does no harm.
_NETWORKS_TTL = 2.0
_networks: tuple[float, tuple[ipaddress.IPv4Network, ...]] | None = None


def _local_networks(now: float | None = None) -> tuple[ipaddress.IPv4Network, ...]:
    """The host's IPv4 subnets (from ifaddr, at most ``_NETWORKS_TTL`` seconds old)."""
    global _networks
    now = time.monotonic() if now is None else now
    if _networks is None or not 0 <= now - _networks[0] < _NETWORKS_TTL:
        _networks = (now, tuple(_list_networks()))
    return _networks[1]


def _list_networks() -> list[ipaddress.IPv4Network]:
    import ifaddr

    networks: list[ipaddress.IPv4Network] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                with contextlib.suppress(ValueError):
                    networks.append(
                        ipaddress.IPv4Network(f"{ip.ip}/{ip.network_prefix}", strict=False)
                    )
    return networks


def multicast_interfaces() -> list[str]:
    """Every non-loopback IPv4 address of this host (via ifaddr)."""
    import ifaddr

    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ip.ip.startswith("127.") and ip.ip not in found:
                found.append(ip.ip)
    return found


def _parse_target(target: Target) -> tuple[str, int]:
    if isinstance(target, tuple):
        return target[0], int(target[1])
    if target.startswith("["):  # [v6]:port or [v6]
        host, _, rest = target[1:].partition("]")
        port = rest.lstrip(":")
        return host, int(port) if port.isdigit() else SSDP_PORT
    host, sep, port = target.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return target, SSDP_PORT


def _sockaddr(host: str, port: int) -> tuple[Any, ...]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    info = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST)
    return tuple(info[0][4])


def _host_header(host: str, port: int) -> str:
    return f"[{host.split('%', 1)[0]}]:{port}" if ":" in host else f"{host}:{port}"


def _multicast_socket(local_ip: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(local_ip))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
        sock.bind((local_ip, 0))
    except OSError:
        sock.close()
        raise
    return sock


def _multicast_socket_v6(ifindex: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 2)
        sock.bind(("::", 0))
    except OSError:
        sock.close()
        raise
    return sock


def ipv6_multicast_interfaces() -> list[int]:
    """Indexes of the non-loopback interfaces that have an IPv6 link-local address."""
    import ifaddr

    found: list[int] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, tuple) and ip.ip[0].lower().startswith("fe80:"):
                if adapter.index is not None and adapter.index not in found:
                    found.append(int(adapter.index))
    return found


_Send = tuple[tuple[Any, ...], bytes]


def _udp_socket(family: socket.AddressFamily) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    # Client sockets on an ephemeral port; answers come back to them.
    sock.bind(("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0))  # noqa: S104
    return sock


def _unicast_plans(
    options: SearchOptions, gateways: Sequence[str] | None = None
) -> list[tuple[socket.socket, list[_Send]]]:
    targets = [_parse_target(t) for t in options.unicast]
    if options.default_gateways:
        if options.ipv4:
            gateways = default_gateways() if gateways is None else gateways
            targets += [(gw, SSDP_PORT) for gw in gateways]
        if options.ipv6:
            targets += [(gw, SSDP_PORT) for gw in default_gateways_v6()]
    targets = [
        (h, p) for h, p in dict.fromkeys(targets) if (options.ipv6 if ":" in h else options.ipv4)
    ]
    for host, _ in targets:
        check_destination(host, "SSDP search")
    # The multicast group too, here: every destination is refused before anything is sent.
    if options.multicast:
        check_destination(SSDP_ADDR if options.ipv4 else SSDP_ADDR_V6, "SSDP multicast")
    plans: list[tuple[socket.socket, list[_Send]]] = []
    try:
        for family in (socket.AF_INET, socket.AF_INET6):
            mine = [(h, p) for h, p in targets if (":" in h) == (family == socket.AF_INET6)]
            if mine:
                sends = [
                    (_sockaddr(h, p), build_msearch(st, host=_host_header(h, p), mx=1))
                    for h, p in mine
                    for st in options.search_targets
                ]
                plans.append((_udp_socket(family), sends))
                options.tried.extend(_host_header(h, p) for h, p in mine)
    except BaseException:
        for sock, _ in plans:
            sock.close()
        raise
    return plans


def _multicast_plans(options: SearchOptions) -> list[tuple[socket.socket, list[_Send]]]:
    plans: list[tuple[socket.socket, list[_Send]]] = []
    try:
        if options.multicast and options.ipv4:
            interfaces = options.interfaces
            for local_ip in interfaces if interfaces is not None else multicast_interfaces():
                try:
                    sock = _multicast_socket(local_ip)
                except OSError as exc:
                    log.debug("no multicast on %s: %s", local_ip, exc)
                    continue
                sends: list[_Send] = [
                    ((SSDP_ADDR, SSDP_PORT), build_msearch(st, mx=options.mx))
                    for st in options.search_targets
                ]
                plans.append((sock, sends))
                options.tried.append(f"multicast from {local_ip}")
        if options.multicast and options.ipv6:
            for index in ipv6_multicast_interfaces():
                try:
                    sock = _multicast_socket_v6(index)
                except OSError as exc:
                    log.debug("no IPv6 multicast on interface %d: %s", index, exc)
                    continue
                host = f"[{SSDP_ADDR_V6}]:{SSDP_PORT}"
                sends = [
                    (
                        (SSDP_ADDR_V6, SSDP_PORT, 0, index),
                        build_msearch(st, host=host, mx=options.mx),
                    )
                    for st in options.search_targets
                ]
                plans.append((sock, sends))
                options.tried.append(f"[{SSDP_ADDR_V6}] on interface {index}")
    except BaseException:
        for sock, _ in plans:
            sock.close()
        raise
    return plans


@contextlib.asynccontextmanager
async def _endpoints(
    options: SearchOptions,
    queue: asyncio.Queue[SearchResponse],
    seen: set[tuple[str, str]] | None,
    gateways: Sequence[str] | None,
) -> AsyncIterator[list[tuple[SsdpProtocol, list[_Send]]]]:
    """Open every socket of the search and send its first M-SEARCHes: the unicast ones
    (the default gateway, which answers first) before the interfaces are even listed."""
    loop = asyncio.get_running_loop()
    opened: list[tuple[SsdpProtocol, list[_Send]]] = []
    unowned: list[socket.socket] = []
    try:
        for first in (True, False):
            try:
                plans = _unicast_plans(options, gateways) if first else _multicast_plans(options)
            except OSError as exc:
                raise IGDConnectionError(f"cannot open an SSDP socket: {exc}") from None
            unowned = [sock for sock, _ in plans]
            for sock, sends in plans:
                _, protocol = await loop.create_datagram_endpoint(
                    lambda: SsdpProtocol(queue, seen), sock=sock
                )
                unowned.remove(sock)  # its transport closes it now
                opened.append((protocol, sends))
                _send(protocol, sends, first=True)
        yield opened
    except OSError as exc:
        raise IGDConnectionError(f"cannot open an SSDP socket: {exc}") from None
    finally:
        for sock in unowned:
            sock.close()
        for protocol, _ in opened:
            if protocol.transport is not None:
                protocol.transport.close()


def _send(protocol: SsdpProtocol, sends: list[_Send], *, first: bool = False) -> None:
    if protocol.transport is None or protocol.transport.is_closing():
        return
    for sockaddr, data in sends:
        protocol.transport.sendto(data, sockaddr)
        if first and log.isEnabledFor(logging.DEBUG):
            local = protocol.transport.get_extra_info("sockname") or ("?",)
            log.debug("M-SEARCH %s -> %s (from %s)", _st_of(data), sockaddr[:2], local[:2])


async def _sender(endpoints: list[tuple[SsdpProtocol, list[_Send]]]) -> None:
    """Send every search again and again across the window in case UDP lost it (the
    first copies went out as each socket opened; the search ends this task)."""
    elapsed = 0.0
    for at in itertools.chain(
        _RESEND_AFTER, itertools.count(_RESEND_AFTER[-1] + _RESEND_EVERY, _RESEND_EVERY)
    ):
        await asyncio.sleep(at - elapsed)
        elapsed = at
        for protocol, sends in endpoints:
            _send(protocol, sends)


def _st_of(data: bytes) -> str:
    for line in data.split(b"\r\n"):
        if line[:3].upper() == b"ST:":
            return line[3:].strip().decode("ascii", "replace")
    return "?"


def _needs_confirmation(answer: SearchResponse, host: str) -> bool:
    # IPv6 routers answer ff02::c from their link-local address but announce their
    # global/ULA LOCATION (miniupnpd does): ask that address directly, and accept it
    # only if it answers for itself.
    try:
        sender = ipaddress.IPv6Address(answer.sender.split("%", 1)[0])
        return sender.is_link_local and ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


async def _confirm(
    host: str, st: str, queue: asyncio.Queue[SearchResponse]
) -> asyncio.BaseTransport:
    """Send one unicast M-SEARCH to ``host`` (answers land in ``queue``)."""
    check_destination(host, "SSDP search")
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: SsdpProtocol(queue), sock=_udp_socket(socket.AF_INET6)
    )
    data = build_msearch(st, host=_host_header(host, SSDP_PORT), mx=1)
    transport.sendto(data, _sockaddr(host, SSDP_PORT))
    return transport


class _Presence(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.result: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            answer = parse_ssdp(data, str(addr[0]))
        except IGDError:
            return
        if answer is not None and not self.result.done():
            self.result.set_result(True)

    def error_received(self, exc: Exception) -> None:
        if not self.result.done():
            self.result.set_result(False)  # ICMP port unreachable: nothing on 1900


async def ssdp_presence(host: str, timeout: float) -> bool | None:
    """Does ``host`` answer SSDP at all? One M-SEARCH on a connected socket, so that
    an ICMP port-unreachable says "no" at once (an unconnected search socket never
    hears it). True: it answered; False: nothing listens; None: no word in time."""
    check_destination(host, "SSDP search")
    loop = asyncio.get_running_loop()
    transport, presence = await loop.create_datagram_endpoint(
        _Presence, remote_addr=(host, SSDP_PORT)
    )
    try:
        msearch = build_msearch(IGD_SEARCH_TARGETS[0], host=_host_header(host, SSDP_PORT), mx=1)
        transport.sendto(msearch)
        async with asyncio.timeout(timeout):
            return await presence.result
    except TimeoutError:
        return None
    finally:
        transport.close()


async def search(
    options: SearchOptions | None = None,
    *,
    first_per_location: bool = False,
    gateways: Sequence[str] | None = None,
) -> AsyncIterator[SearchResponse]:
    """Yield SSDP answers as they arrive until ``options.timeout``.

    Answers whose LOCATION host is not their sender are dropped (recorded in
    ``options.refused``) unless ``allow_foreign_location`` is set; an IPv6
    link-local responder's global LOCATION is confirmed by asking it directly.
    ``first_per_location``: only the first answer of each sender for each LOCATION
    (the others differ only in search target and USN). ``gateways``: the IPv4 default
    gateways, when the caller has just read them (else they are read here).
    """
    options = options or SearchOptions()
    if not options.multicast and not options.unicast and not options.default_gateways:
        raise ValueError("nothing to search: multicast, unicast and default_gateways are all off")
    queue: asyncio.Queue[SearchResponse] = asyncio.Queue(MAX_ANSWERS)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + options.timeout
    confirming: set[str] = set()
    confirmers: list[asyncio.BaseTransport] = []
    options.tried.clear()
    seen: set[tuple[str, str]] | None = set() if first_per_location else None
    async with _endpoints(options, queue, seen, gateways) as endpoints:
        if not endpoints:
            return
        sender = asyncio.create_task(_sender(endpoints))
        try:
            while True:
                try:
                    # Not wait_for: on 3.11 it can swallow a cancellation that races
                    # with a completed get(), and the search would run to its timeout.
                    async with asyncio.timeout_at(deadline):
                        answer = await queue.get()
                except TimeoutError:
                    return
                host = url_host(answer.location)
                log.debug(
                    "SSDP answer from %s: %s at %s", answer.sender, answer.st, answer.location
                )
                if not options.allow_foreign_location and not same_host(host, answer.sender):
                    if _needs_confirmation(answer, host) and host not in confirming:
                        confirming.add(host)
                        confirmers.append(await _confirm(host, answer.st, queue))
                        continue
                    why = f"{answer.sender} announced LOCATION on another host ({host})"
                    log.debug("refused: %s", why)
                    if len(options.refused) < 16:
                        options.refused.append(why)
                    continue
                yield answer
        finally:
            await stop_task(sender)
            for transport in confirmers:
                transport.close()


async def _fetch(answer: SearchResponse, options: SearchOptions) -> Gateway:
    # A link-local LOCATION is only reachable with the zone of the interface it came in on.
    location = with_zone(answer.location, answer.sender)
    return await Gateway.from_location(
        location,
        http_timeout=options.http_timeout,
        allow_foreign_urls=options.allow_foreign_location,
        search=answer,
    )


def _rank(gw: Gateway, defaults: set[str]) -> int:
    """0: the host's default gateway (the router in the path); 1: on one of the host's
    subnets; 2: anything else."""
    host = gw.host.strip("[]").split("%", 1)[0]
    if host in defaults:
        return 0
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return 2
    return 1 if any(ip in net for net in _local_networks()) else 2


def _why(rank: int) -> str:
    return ("the host's default gateway", "on the host's subnet", "answered first")[rank]


async def _collect(options: SearchOptions, *, first: bool) -> list[Gateway]:
    gateways: list[Gateway] = []
    extras: list[Gateway] = []
    errors: list[str] = []
    fetches: set[asyncio.Task[None]] = set()
    found = asyncio.Event()
    # Several IGDs may answer (a mesh extender, a second router, a rogue device): the
    # default gateway wins, then one on our subnet; the first answer wins only when no
    # default gateway was asked, or it did not answer within prefer_window.
    start_loading_aiohttp()  # in a thread, while the search waits for answers
    routers = default_gateways() if options.default_gateways and options.ipv4 else []
    defaults = set(routers)
    # The host's subnets are listed only when an answer is not the default gateway, and
    # after it was fetched: listing them must not delay the search or the first fetch.
    ranked: list[tuple[int, int, Gateway]] = []
    loop = asyncio.get_running_loop()
    settle_at: float | None = None

    async def fetch(answer: SearchResponse) -> None:
        nonlocal settle_at
        try:
            gw = await _fetch(answer, options)
        except IGDError as exc:
            log.debug("refused %s: %s", answer.location, exc)
            errors.append(str(exc))
            return
        log.debug("%s is %r, using %s", gw.location, gw.friendly_name, gw.service.service_type)
        seen = gateways + [g for _, _, g in ranked]
        if gw.udn and any(g.udn == gw.udn for g in seen):
            extras.append(gw)
            return
        if not first:
            gateways.append(gw)
            return
        rank = _rank(gw, defaults)
        ranked.append((rank, len(ranked), gw))
        if rank == 0 or not defaults:
            found.set()
        elif settle_at is None:
            settle_at = loop.time() + options.prefer_window
            loop.call_at(settle_at, found.set)

    async def pump() -> None:
        seen: set[str] = set()
        async for answer in search(options, first_per_location=True, gateways=routers):
            if answer.location in seen or len(seen) >= MAX_LOCATIONS:
                continue
            seen.add(answer.location)
            task = asyncio.create_task(fetch(answer))
            fetches.add(task)
            task.add_done_callback(fetches.discard)
        # The search window is over; in-flight fetches have their own timeout.
        while fetches:
            await asyncio.wait(set(fetches))

    pumper = asyncio.create_task(pump())
    waiter = asyncio.create_task(found.wait())
    ok = False
    try:
        await asyncio.wait({pumper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if pumper.done():
            pumper.result()  # re-raise what broke the search
        ok = True
    finally:
        tasks = [pumper, waiter, *fetches]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Every fetch has ended: what was found is final now.
        ranked.sort(key=lambda r: (r[0], r[1]))
        if ok and ranked:
            (rank, _, best), rest = ranked[0], ranked[1:]
            best.discovery_reason = _why(rank) + (
                f"; also answered: {', '.join(g.host for _, _, g in rest)}" if rest else ""
            )
            if rest:
                log.info("chose %s (%s)", best.location, best.discovery_reason)
            else:
                log.debug("chose %s (%s)", best.location, best.discovery_reason)
            gateways.append(best)
            extras.extend(g for _, _, g in rest)
        else:
            extras.extend(g for _, _, g in ranked)
        if not ok:
            extras.extend(gateways)
            gateways.clear()
        for gw in extras:
            await gw.close()
    if not gateways:
        why = "; ".join((errors + options.refused)[:3])
        tried = ", ".join(options.tried[:6]) + (" ..." if len(options.tried) > 6 else "")
        raise GatewayNotFound(
            f"no UPnP gateway answered within {options.timeout:g} s"
            + (f" (searched: {tried})" if tried else " (no interface to search from)")
            + (f" ({why})" if why else "")
        )
    return gateways


#: Seconds a search for a gateway that stopped answering takes by default.
REDISCOVERY_TIMEOUT = 2.0


def rediscovery_options(
    host: str, *, given: SearchOptions | None, http_timeout: float
) -> SearchOptions:
    """How to look for the gateway at ``host`` again: a copy of ``given`` (its ``refused``
    list fresh), else a unicast M-SEARCH to ``host`` plus multicast, in its family."""
    if given is not None:
        return dataclasses.replace(given, refused=[], tried=[])
    host = host.strip("[]")
    v6 = ":" in host
    return SearchOptions(
        timeout=REDISCOVERY_TIMEOUT,
        multicast=True,
        default_gateways=False,
        unicast=[(host, SSDP_PORT)],
        http_timeout=http_timeout,
        ipv4=not v6,
        ipv6=v6,
    )


async def rediscover(udn: str, options: SearchOptions) -> Gateway:
    """Find the device ``udn`` again (after a reboot its LOCATION may have a new port).

    Only answers whose USN names that device are fetched, and the description
    must carry the same UDN.

    Raises:
        GatewayNotFound: it did not answer within ``options.timeout``.
    """
    seen: set[str] = set()
    wanted = udn.lower()
    async for answer in search(options):
        usn = answer.usn.lower()
        if not (usn == wanted or usn.startswith(wanted + "::")) or answer.location in seen:
            continue
        if len(seen) >= MAX_LOCATIONS:
            break
        seen.add(answer.location)
        try:
            gw = await _fetch(answer, options)
        except IGDError as exc:
            log.debug("%s answered from %s but: %s", udn, answer.location, exc)
            continue
        if gw.udn.lower() == wanted:
            return gw
        await gw.close()
    raise GatewayNotFound(f"{udn} did not answer within {options.timeout:g} s")


def _options(options: SearchOptions | None, given: dict[str, Any]) -> SearchOptions:
    """``options``, or one built from the keywords given (``None`` = not given)."""
    fields = {k: v for k, v in given.items() if v is not None}
    if options is not None:
        if fields:
            raise TypeError(
                f"pass either options= or keywords, not both (got {', '.join(sorted(fields))})"
            )
        return options
    return SearchOptions(**fields)


async def discover(
    options: SearchOptions | None = None,
    *,
    timeout: float | None = None,
    multicast: bool | None = None,
    interfaces: Sequence[str] | None = None,
    unicast: Sequence[Target] | None = None,
    default_gateways: bool | None = None,
    search_targets: Sequence[str] | None = None,
    allow_foreign_location: bool | None = None,
    mx: int | None = None,
    http_timeout: float | None = None,
    ipv6: bool | None = None,
    ipv4: bool | None = None,
    prefer_window: float | None = None,
) -> Gateway:
    """Find the first usable gateway and return it as soon as its description parses.

    Takes a :class:`SearchOptions` or its fields as keywords (``None``: the
    :class:`SearchOptions` default), e.g. ``discover(timeout=2, unicast=["192.168.1.1"])``.

    Raises:
        GatewayNotFound: nothing usable answered within the timeout.
        TypeError: both ``options`` and keywords were given.
    """
    opts = _options(
        options,
        dict(
            timeout=timeout,
            multicast=multicast,
            interfaces=interfaces,
            unicast=unicast,
            default_gateways=default_gateways,
            search_targets=search_targets,
            allow_foreign_location=allow_foreign_location,
            mx=mx,
            http_timeout=http_timeout,
            ipv6=ipv6,
            ipv4=ipv4,
            prefer_window=prefer_window,
        ),
    )
    first = await _collect(opts, first=True)
    return first[0]


async def discover_all(
    options: SearchOptions | None = None,
    *,
    timeout: float | None = None,
    multicast: bool | None = None,
    interfaces: Sequence[str] | None = None,
    unicast: Sequence[Target] | None = None,
    default_gateways: bool | None = None,
    search_targets: Sequence[str] | None = None,
    allow_foreign_location: bool | None = None,
    mx: int | None = None,
    http_timeout: float | None = None,
    ipv6: bool | None = None,
    ipv4: bool | None = None,
) -> list[Gateway]:
    """Collect every gateway that answers before the timeout (deduplicated by UDN and
    LOCATION). Options as for :func:`discover`."""
    opts = _options(
        options,
        dict(
            timeout=timeout,
            multicast=multicast,
            interfaces=interfaces,
            unicast=unicast,
            default_gateways=default_gateways,
            search_targets=search_targets,
            allow_foreign_location=allow_foreign_location,
            mx=mx,
            http_timeout=http_timeout,
            ipv6=ipv6,
            ipv4=ipv4,
        ),
    )
    return await _collect(opts, first=False)
