"""Which protocol maps at a gateway: UPnP IGD, PCP and NAT-PMP asked at once.

:func:`probe` sends an SSDP search, a PCP ANNOUNCE and a NAT-PMP external
address request together and returns what answered, in the caller's order of
preference (``protocols``, default upnp, pcp, natpmp). It does not wait for a
slow preferred protocol for ever: once any protocol has answered, the ones
preferred to it get ``prefer_window`` seconds more. :func:`map_first` then maps
with each answering protocol in turn until one maps. A gateway is never asked
for the same mapping twice: the next protocol is tried only after a definite
refusal, never after a timeout (the first request may have created it).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .discovery import SearchOptions, discover, ssdp_presence
from .errors import (
    IGDConnectionError,
    IGDError,
    IGDTimeoutError,
    MappingRefused,
    NetworkPolicyError,
    PortInUse,
)
from .gateway import Gateway
from .mapper import PortMapper
from .models import DEFAULT_PROTOCOLS, MappingProtocol, parse_protocols
from .netutil import default_gateways
from .pmp import Mechanism, PmpClient, client_for
from .pmpmapper import PmpMapper
from .proto.ssdp import SSDP_PORT

__all__ = [
    "MappingProtocol",
    "DEFAULT_PROTOCOLS",
    "LayerMapper",
    "Candidate",
    "Probe",
    "probe_gateway",
    "probe_search",
    "pcp_host",
    "map_first",
    "parse_protocols",
    "PREFER_WINDOW",
]

log = logging.getLogger("aioigd")

#: Seconds a preferred protocol may still answer after a less preferred one did.
PREFER_WINDOW = 0.5
LayerMapper = PortMapper | PmpMapper
T = TypeVar("T")


@dataclass
class Candidate:
    """A gateway that answered in one protocol: a UPnP :class:`Gateway` or a PCP /
    NAT-PMP client, not yet used."""

    protocol: MappingProtocol
    host: str
    gateway: Gateway | None = None
    client: PmpClient | None = None
    _mapper: LayerMapper | None = field(default=None, repr=False)

    def mapper(
        self,
        *,
        check_interval: float | None,
        rediscovery: SearchOptions | None = None,
        behind_nat: bool = False,
    ) -> LayerMapper:
        """The mapper that owns this candidate's gateway or client (``behind_nat``: see
        :class:`~aioigd.pmpmapper.PmpMapper`): made on the first call, the same after."""
        if self._mapper is None:
            if self.gateway is not None:
                self._mapper = PortMapper(
                    self.gateway,
                    rediscovery=rediscovery,
                    check_interval=check_interval,
                    own_gateway=True,
                )
            else:
                assert self.client is not None
                self._mapper = PmpMapper(
                    self.client, check_interval=check_interval, behind_nat=behind_nat
                )
        return self._mapper

    async def aclose(self) -> None:
        """Close what this candidate holds (when it is not used)."""
        if self.gateway is not None:
            await self.gateway.close()
        if self.client is not None:
            await self.client.close()


@dataclass
class Probe:
    """What one gateway address answered: the usable candidates in order of
    preference, and why each other protocol did not qualify."""

    host: str | None
    candidates: list[Candidate] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def speaks(self) -> list[str]:
        """The protocols that answered, in order of preference."""
        return [c.protocol for c in self.candidates]

    def why_not(self) -> str:
        """``upnp: no answer; pcp: ...`` for an error message."""
        return "; ".join(f"{p}: {why}" for p, why in self.failures.items()) or "nothing asked"

    async def aclose(self) -> None:
        """Close every candidate."""
        for c in self.candidates:
            await c.aclose()
        self.candidates.clear()


async def _ask_pmp(mechanism: Mechanism, host: str, timeout: float) -> Candidate:
    client = client_for(mechanism, host)
    try:
        await client.probe(request_timeout=timeout)
    except BaseException:
        await client.close()
        raise
    return Candidate(mechanism, host, client=client)


async def probe_gateway(
    host: str | None,
    *,
    protocols: Sequence[MappingProtocol] = DEFAULT_PROTOCOLS,
    upnp: Callable[[], Awaitable[Gateway]] | None = None,
    search_timeout: float = 2.0,
    prefer_window: float = PREFER_WINDOW,
    wait_all: bool = False,
) -> Probe:
    """Ask ``host`` in every protocol at once.

    Args:
        host: the gateway's address for PCP / NAT-PMP (``None``: only UPnP).
        protocols: which to ask, most preferred first.
        upnp: how to find the UPnP gateway (a search); ``None`` skips UPnP.
        search_timeout: seconds each protocol may take.
        prefer_window: see the module docstring.
        wait_all: wait for every protocol's answer (to list what the gateway
            speaks) instead of stopping at the most preferred one that answered.
    """
    result = Probe(host)
    jobs: dict[MappingProtocol, asyncio.Task[Candidate]] = {}

    async def ask_upnp() -> Candidate:
        assert upnp is not None
        async with asyncio.timeout(search_timeout):
            gw = await upnp()
        return Candidate("upnp", gw.host, gateway=gw)

    presence: asyncio.Task[bool | None] | None = None
    for proto in protocols:
        if proto == "upnp":
            if upnp is not None:
                jobs[proto] = asyncio.create_task(ask_upnp())
                if host is not None:
                    presence = asyncio.create_task(ssdp_presence(host, search_timeout))
        elif host is not None:
            jobs[proto] = asyncio.create_task(_ask_pmp(proto, host, search_timeout))
        else:
            result.failures[proto] = "no gateway address to ask"
    order = [p for p in protocols if p in jobs]
    window_ends: float | None = None
    loop = asyncio.get_running_loop()
    upnp_heard = upnp_absent = False
    try:
        while True:
            if presence is not None and presence.done():
                heard = None if presence.cancelled() or presence.exception() else presence.result()
                presence = None
                upnp_heard = heard is True
                # Nothing on the gateway's SSDP port: once another protocol answers there
                # is no point waiting (a multicast answer from elsewhere is not in the path).
                upnp_absent = heard is False
            answered = [p for p in order if jobs[p].done() and _ok(jobs[p])]
            if answered and not wait_all:
                best = answered[0]
                preferred = order[: order.index(best)]
                if all(jobs[p].done() for p in preferred):
                    break
                if window_ends is None or upnp_absent:
                    window_ends = loop.time() + (0.0 if upnp_absent else prefer_window)
            pending: list[asyncio.Future[Any]] = [t for t in jobs.values() if not t.done()]
            if not pending:
                break
            if presence is not None:
                pending.append(presence)
            # A gateway that answered SSDP speaks UPnP: wait for its description.
            limited = window_ends is not None and not upnp_heard
            wait = max(0.0, window_ends - loop.time()) if limited and window_ends else None
            if wait == 0.0:
                if "upnp" in jobs and upnp_absent:
                    result.failures["upnp"] = f"nothing listens on {host}:{SSDP_PORT}"
                break
            await asyncio.wait(pending, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in [*jobs.values(), *([presence] if presence is not None else [])]:
            if not task.done():
                task.cancel()
        await asyncio.gather(*jobs.values(), return_exceptions=True)
        if presence is not None:
            await asyncio.gather(presence, return_exceptions=True)
    for proto in order:
        task = jobs[proto]
        if task.cancelled():
            result.failures.setdefault(proto, "no answer in time")
        elif (exc := task.exception()) is not None:
            result.failures[proto] = _reason(exc)
        else:
            result.candidates.append(task.result())
    log.debug(
        "gateway %s speaks %s (%s)",
        host or "(search)",
        result.speaks or "nothing",
        result.why_not(),
    )
    return result


def pcp_host(search: SearchOptions) -> str | None:
    """Where the first layer is asked in PCP / NAT-PMP: the first unicast target of
    ``search`` given as an address, else the default gateway (if ``search`` may use it)."""
    for target in search.unicast:
        if isinstance(target, tuple):
            host = target[0]
        else:
            host = target.rpartition(":")[0] if target.count(":") == 1 else target
        try:
            return str(ipaddress.ip_address(host.strip("[]")))
        except ValueError:
            continue
    if not search.default_gateways:
        return None
    defaults = default_gateways()
    return defaults[0] if defaults else None


async def probe_search(
    search: SearchOptions,
    *,
    protocols: Sequence[MappingProtocol] = DEFAULT_PROTOCOLS,
    search_timeout: float = 2.0,
) -> Probe:
    """The first layer: what ``search`` finds over UPnP and :func:`pcp_host` over PCP and
    NAT-PMP, asked at once (see :func:`probe_gateway`)."""
    return await probe_gateway(
        pcp_host(search),
        protocols=protocols,
        upnp=(lambda: discover(search)) if "upnp" in protocols else None,
        search_timeout=search_timeout,
    )


def _ok(task: asyncio.Task[Candidate]) -> bool:
    return not task.cancelled() and task.exception() is None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | IGDTimeoutError):
        return "no answer"
    if isinstance(exc, IGDConnectionError | ConnectionError):
        return f"unreachable ({exc})"
    return str(exc) or type(exc).__name__


def _definite(exc: IGDError) -> bool:
    """A refusal that proves nothing was created and that another protocol might not
    get: not a timeout (it may have been created), not a port conflict or a refusal
    of this client (UPnP, PCP and NAT-PMP share one table and one policy)."""
    return not isinstance(exc, IGDConnectionError | NetworkPolicyError | PortInUse | MappingRefused)


async def map_first(
    found: Probe,
    do_map: Callable[[LayerMapper], Awaitable[T]],
    *,
    check_interval: float | None,
    rediscovery: SearchOptions | None = None,
    behind_nat: bool = False,
) -> tuple[LayerMapper, T]:
    """Map with the first candidate of ``found`` that maps (see the module docstring).

    The mapper that mapped is returned (it owns its gateway or client); every other
    candidate is closed. Raises the last error when none mapped.
    """
    errors: list[str] = []
    try:
        while found.candidates:
            candidate = found.candidates.pop(0)
            mapper = candidate.mapper(
                check_interval=check_interval, rediscovery=rediscovery, behind_nat=behind_nat
            )
            try:
                mapping = await do_map(mapper)
            except IGDError as exc:
                errors.append(f"{candidate.protocol}: {exc}")
                with contextlib.suppress(IGDError):
                    await mapper.close()
                if not _definite(exc) or not found.candidates:
                    raise
                log.info(
                    "%s did not map at %s (%s); trying %s",
                    candidate.protocol,
                    candidate.host,
                    exc,
                    found.candidates[0].protocol,
                )
                continue
            except BaseException:
                await mapper.close()
                raise
            return mapper, mapping
        raise IGDError(f"no protocol answered at {found.host or 'the gateway'}: {found.why_not()}")
    finally:
        await found.aclose()
