"""MultiLayerMapper: map one port through up to four stacked NATs.

Layer 1 is the gateway discovery finds (the host's default gateway). After
mapping there, its external address tells whether another NAT sits above:
while it is private, shared (100.64.0.0/10) or otherwise not global, the next
IGD is looked for among the routers an in-process traceroute found (unicast
M-SEARCH to every hop at once, the nearest answering hop wins) or in the
caller's per-layer ``via`` list, and the port is mapped there with the
previous layer's external address and port as internal client and port.

Each layer's mapping is kept by its own :class:`~aioigd.PortMapper` (renewed,
re-added after a router reboot, its router found again on a new HTTP port).
When a layer's external endpoint changes (a new external address, or a new
port after recovery), the layer above it is mapped again to forward to the
new endpoint, and so on up. :meth:`MultiLayerMapper.events` tells the
application about every layer (:class:`LayerEvent`). Release goes outermost
first, innermost last, also on error and on cancellation; a layer that failed
leaves nothing behind, and layers below it stay as a partial result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Literal

from .anymapper import (
    DEFAULT_PROTOCOLS,
    Candidate,
    LayerMapper,
    MappingProtocol,
    Probe,
    map_first,
    parse_protocols,
    pcp_host,
    probe_gateway,
    probe_search,
)
from .deadlines import without_deadline
from .discovery import SearchOptions, discover
from .errors import GatewayNotFound, HopsUnavailable, IGDError, NextLayerNotFound
from .gateway import DEFAULT_DESCRIPTION, DEFAULT_LEASE, Gateway
from .keeper import EventHub, EventIterator, Leftover, merged, warn_leftovers
from .lifecycle import Event, ExternalAddressChanged, Recovered, State
from .mapper import DEFAULT_CHECK_INTERVAL, KeptMapping, PortMapper
from .models import PortMapping, StopReason, Transport, TransportLike, is_global_address
from .netutil import default_gateways
from .platform import subnet_gateway_candidates
from .proto.ssdp import SSDP_PORT
from .proto.urls import url_host
from .tasks import stop_task
from .traceroute import DEFAULT_PROBE_TARGET, check_target, probe_hop

__all__ = ["MultiLayerMapper", "LayeredMapping", "LayerEvent", "StopReason", "MAX_LAYERS"]

log = logging.getLogger("aioigd")

MAX_LAYERS = 4

#: A traced hop's address and what answered there (None where no hop answered).
_Hop = tuple[str | None, Probe | None]


@dataclass(frozen=True)
class LayeredMapping:
    """The result of a multi-layer mapping: one :class:`PortMapping` per layer, inside out.

    ``complete`` is False when climbing stopped early; ``stopped_at`` is then
    the layer number (1-based) that could not be mapped, ``reason`` says why and
    ``stop_reason`` is the why as a :class:`StopReason`.
    """

    layers: tuple[PortMapping, ...]
    complete: bool = True
    stopped_at: int | None = None
    reason: str = ""
    stop_reason: StopReason | None = None

    @property
    def public_ip(self) -> str | None:
        """The outermost layer's external address."""
        return self.layers[-1].external_ip if self.layers else None

    @property
    def public_port(self) -> int | None:
        """The outermost layer's external port."""
        return self.layers[-1].external_port if self.layers else None

    @property
    def is_global(self) -> bool:
        """True when the outermost external address is globally routable."""
        return is_global_address(self.public_ip)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"layers": [...], "public": {...}, "global": ...}``."""
        out: dict[str, Any] = {
            "layers": [m.as_dict() for m in self.layers],
            "public": {"ip": self.public_ip, "port": self.public_port},
            "global": self.is_global,
            "complete": self.complete,
        }
        if not self.complete:
            out["stopped_at"] = self.stopped_at
            out["reason"] = self.reason
            out["stop_reason"] = self.stop_reason.value if self.stop_reason else None
        return out


@dataclass(frozen=True)
class LayerEvent:
    """An event of one layer's mapping (``layer`` counts from 1, the host's router)."""

    layer: int
    event: Event[PortMapping]

    @property
    def name(self) -> str:
        """The event's name (``renewed``, ``lost``, ``recovered`` …)."""
        return self.event.name

    @property
    def mapping(self) -> PortMapping:
        """The layer's mapping after the event."""
        return self.event.subject


@dataclass
class _State:
    #: One per layer whose gateway was found (a failed layer's too, to close it).
    mappers: list[LayerMapper] = field(default_factory=list)
    kept: list[KeptMapping] = field(default_factory=list)
    complete: bool = True
    stopped_at: int | None = None
    reason: str = ""
    stop_reason: StopReason | None = None


#: Where a layer's port is reached from the layer above: (external address, port).
_Endpoint = tuple[str | None, int]


@dataclass(eq=False)
class _Step:
    """One layer of a climb in progress."""

    layer: int
    found: Probe
    #: The layer's endpoint: predicted from its table and external address read ahead,
    #: else what its mapping got; ``None`` once it failed (its task says why).
    endpoint: asyncio.Future[_Endpoint | None]
    #: The address it is reported by, and every address and UDN it answered with.
    host: str
    hosts: frozenset[str]
    udns: frozenset[str]
    task: asyncio.Task[tuple[LayerMapper, KeptMapping]] | None = None


class MultiLayerMapper:
    """Map ``internal_port`` through every UPnP NAT layer above this host.

    Args:
        internal_port: the local port to expose.
        protocol: ``"TCP"`` or ``"UDP"``.
        layers: ``"auto"`` stops at the first global external address;
            an int N keeps climbing while a next IGD answers, up to N.
        external_port: the external port wanted at layer 1 (default: ``internal_port``);
            each layer above forwards the port of the layer below.
        max_layers: cap for ``"auto"`` (default 4).
        lease / description / internal_client: as for :meth:`PortMapper.keep`.
        via: per-layer gateway hints: each item is a LOCATION URL, an address
            (``host`` or ``host:port`` for SSDP), or ``None`` to find that layer
            by discovery (layer 1) or traceroute (layers 2+).
        probe_target: where the traceroute probes are aimed; ``None`` disables
            tracing, so only ``via`` hints are followed above layer 1.
        search: discovery options for layer 1 (default: multicast + default gateways).
        rediscovery: how to find layer 1's gateway again when it stops answering
            (default: unicast to its address and multicast); an upper layer found by
            an SSDP hint or a traced hop is searched for at that address again.
        check_interval: seconds between checks of each layer between renewals.
        search_timeout: seconds to wait for each layer's gateway to answer (each search).
        http_timeout: per-request timeout.
        protocols: what each layer may be mapped with, most preferred first
            (``"upnp"``, ``"pcp"``, ``"natpmp"``); every layer is asked in all of
            them at once and mapped with the first that maps.
    """

    def __init__(
        self,
        internal_port: int,
        protocol: TransportLike = Transport.TCP,
        *,
        layers: Literal["auto"] | int = "auto",
        external_port: int | None = None,
        max_layers: int = MAX_LAYERS,
        lease: int = DEFAULT_LEASE,
        description: str = DEFAULT_DESCRIPTION,
        internal_client: str | None = None,
        via: Sequence[str | None] = (),
        probe_target: str | None = DEFAULT_PROBE_TARGET,
        search: SearchOptions | None = None,
        search_timeout: float = 2.0,
        http_timeout: float = 5.0,
        rediscovery: SearchOptions | None = None,
        check_interval: float | None = DEFAULT_CHECK_INTERVAL,
        protocols: Sequence[MappingProtocol] | str = DEFAULT_PROTOCOLS,
    ) -> None:
        if layers != "auto" and not (isinstance(layers, int) and 1 <= layers <= MAX_LAYERS):
            raise ValueError(f"layers must be 'auto' or 1..{MAX_LAYERS}, not {layers!r}")
        if not 1 <= max_layers <= MAX_LAYERS:
            raise ValueError(f"max_layers must be in 1..{MAX_LAYERS}")
        self.internal_port = internal_port
        self.external_port = external_port
        self.protocol = Transport.parse(protocol)
        self.layers = layers
        self.max_layers = layers if isinstance(layers, int) else max_layers
        self.lease = lease
        self.description = description
        self.internal_client = internal_client
        self.via = list(via)
        self.probe_target = probe_target
        self.search = search
        self.search_timeout = search_timeout
        self.http_timeout = http_timeout
        self.rediscovery = rediscovery
        self.check_interval = check_interval
        self.protocols = parse_protocols(protocols)
        self.result: LayeredMapping | None = None
        self._state = _State()
        self._probes: list[asyncio.Task[_Hop]] | None = None
        self._hub: EventHub[LayerEvent] = EventHub()
        self._watcher: asyncio.Task[None] | None = None
        self._following = False
        self._closing = False
        #: Per layer: the SSDP target it was found at (for finding it again).
        self._found_at: dict[Gateway, tuple[str, int]] = {}
        #: The layers of the climb under way (their gateways are taken).
        self._steps: list[_Step] = []
        #: Hosts layer 1's own search asks: a traced hop there is not asked again.
        self._layer1_hosts: frozenset[str] | None = None

    # -- finding gateways ------------------------------------------------------
    def _hint(self, layer: int) -> str | None:
        return self.via[layer - 1] if layer <= len(self.via) else None

    async def _from_hint(self, hint: str) -> Gateway:
        if hint.startswith(("http://", "https://")):
            return await Gateway.from_location(hint, http_timeout=self.http_timeout)
        host, port = _split_hint(hint)
        gw = await discover(
            SearchOptions(
                timeout=self.search_timeout,
                multicast=False,
                default_gateways=False,
                unicast=[hint],
                http_timeout=self.http_timeout,
            )
        )
        self._found_at[gw] = (host, port)
        return gw

    async def _ask(self, host: str | None, upnp: Any) -> Probe:
        return await probe_gateway(
            host,
            protocols=self.protocols,
            upnp=upnp if "upnp" in self.protocols else None,
            search_timeout=self.search_timeout,
        )

    async def _probe_hint(self, hint: str) -> Probe:
        if hint.startswith(("http://", "https://")):
            found = Probe(None)
            try:
                gw = await self._from_hint(hint)
            except IGDError as exc:
                found.failures["upnp"] = str(exc)
            else:
                found.candidates.append(Candidate("upnp", gw.host, gateway=gw))
            return found
        host, _ = _split_hint(hint)
        return await self._ask(host, lambda: self._from_hint(hint))

    async def _first_layer(self) -> Probe:
        hint = self._hint(1)
        if hint:
            return await self._probe_hint(hint)
        search = self.search or SearchOptions(http_timeout=self.http_timeout)
        return await probe_search(
            search, protocols=self.protocols, search_timeout=self.search_timeout
        )

    def _start_probes(self, target: str) -> list[asyncio.Task[_Hop]]:
        """One task per TTL: find that hop, then ask it in every protocol — all at once,
        and each hop is asked as soon as it answers."""
        check_target(target)
        return [
            asyncio.create_task(self._probe(target, ttl)) for ttl in range(1, self.max_layers + 2)
        ]

    async def _probe(self, target: str, ttl: int) -> _Hop:
        hop = await probe_hop(target, ttl)  # HopsUnavailable where no hop finder works here
        if hop is None or hop.reached_target:
            return None, None
        if self._layer1_hosts is None:
            self._layer1_hosts = self._layer1_asks()
        if hop.address in self._layer1_hosts:
            return hop.address, None  # layer 1's search asks it already, in every protocol
        found = await self._ask(hop.address, lambda: self._from_hint(f"{hop.address}:{SSDP_PORT}"))
        if ttl <= self.max_layers:
            # Read its table and external address now, while the layers below still map
            # (a farther hop is only used where a nearer one is no gateway). Never layer 1.
            await self._prepare(found, 2, self.external_port or self.internal_port)
        return hop.address, found

    def _layer1_asks(self) -> frozenset[str]:
        """The addresses layer 1's own probe sends to (UPnP unicast and PCP / NAT-PMP)."""
        hint = self._hint(1)
        if hint:
            return frozenset({url_host(hint) if "://" in hint else _split_hint(hint)[0]})
        search = self.search or SearchOptions()
        # Its first unicast address (PCP / NAT-PMP are asked there), and the default
        # gateways, read once (PCP asks the first of them when no address is given).
        unicast = pcp_host(replace(search, default_gateways=False))
        hosts = {unicast.strip("[]")} if unicast else set()
        if search.default_gateways:
            hosts.update(default_gateways())
        return frozenset(hosts)

    def _is_mapped_host(self, host: str, found: Probe) -> bool:
        udns = _udns(found)
        return any(host in s.hosts or not udns.isdisjoint(s.udns) for s in self._steps)

    async def _next_layer(self, layer: int, below_ip: str) -> Probe:
        """What answers for layer ``layer``: the caller's hint, else the nearest answering
        hop, else the .1/.254 of the layer below's external /24 (``below_ip``)."""
        hint = self._hint(layer)
        if hint:
            return await self._probe_hint(hint)
        if self.probe_target is None:
            raise NextLayerNotFound(
                f"no gateway given for layer {layer} and tracing is off", StopReason.TRACING_OFF
            )
        try:
            return await self._traced_layer()
        except NextLayerNotFound as exc:
            found, tried = await self._subnet_layer(below_ip)
            if found is None and tried:
                raise NextLayerNotFound(
                    f"{exc}; no gateway at {' or '.join(tried)}", exc.reason
                ) from exc
            if found is None:
                raise
            log.info("layer %d: %s; found %s in the /24 below instead", layer, exc, found.host)
            return found

    async def _traced_layer(self) -> Probe:
        assert self.probe_target is not None
        if self._probes is None:
            self._probes = self._start_probes(self.probe_target)
        tried: list[str] = []
        # Nearest hop first: a farther gateway must not be mistaken for this layer's.
        for task in list(self._probes):
            try:
                host, found = await task
            except HopsUnavailable as exc:
                raise NextLayerNotFound(str(exc), StopReason.HOPS_UNAVAILABLE) from exc
            if host is None or found is None:
                continue
            if not found.candidates or self._is_mapped_host(host, found):
                tried.append(f"{host} ({found.why_not()})" if not found.candidates else host)
                continue
            self._probes.remove(task)  # it is ours now; the rest are closed after map()
            return found
        if not tried:
            raise NextLayerNotFound(
                f"traceroute towards {self.probe_target} found no further router",
                StopReason.NO_FURTHER_ROUTER,
            )
        raise NextLayerNotFound(f"no further gateway answered (hops tried: {', '.join(tried)})")

    async def _subnet_layer(self, below: str) -> tuple[Probe | None, list[str]]:
        """The .1 or .254 of the private /24 the layer below sits in (``below``: its
        external address), asked in every protocol (the cheap guess where hops cannot be
        traced or did not answer), and the addresses tried."""
        used = set().union(*(s.hosts for s in self._steps))
        hosts = [h for h in subnet_gateway_candidates(below) if h not in used]
        answers = await asyncio.gather(
            *(self._ask(h, lambda h=h: self._from_hint(f"{h}:{SSDP_PORT}")) for h in hosts),
            return_exceptions=True,
        )
        chosen: Probe | None = None
        for host, found in zip(hosts, answers, strict=True):
            if isinstance(found, BaseException):
                if not isinstance(found, IGDError):
                    raise found
            elif chosen is None and found.candidates and not self._is_mapped_host(host, found):
                chosen = found  # .1 before .254
            else:
                await found.aclose()
        return chosen, hosts

    async def _close_probes(self) -> None:
        probes, self._probes = self._probes or [], None
        for task in probes:
            task.cancel()
        for task in probes:
            with contextlib.suppress(BaseException):
                _, found = await task
                if found is not None:
                    await found.aclose()

    # -- mapping ---------------------------------------------------------------
    def _rediscovery(self, gw: Gateway | None, layer: int) -> SearchOptions | None:
        rediscovery = self.rediscovery if layer == 1 else None
        found_at = self._found_at.get(gw) if gw is not None else None
        if rediscovery is None and found_at is not None:
            rediscovery = SearchOptions(
                timeout=self.search_timeout,
                multicast=False,
                default_gateways=False,
                unicast=[found_at],
                http_timeout=self.http_timeout,
            )
        return rediscovery

    def _mapper_for(self, candidate: Candidate, layer: int) -> LayerMapper:
        return candidate.mapper(
            check_interval=self.check_interval,
            rediscovery=self._rediscovery(candidate.gateway, layer),
            behind_nat=layer > 1,
        )

    async def _prepare(
        self, found: Probe, layer: int, wanted: int
    ) -> tuple[str | None, PortMapper] | None:
        """Where UPnP comes first: make its mapper and ask who holds ``wanted`` there and
        its external address (kept, so a second call for that port sends nothing). None
        where that failed: the map itself then asks again and reports why."""
        if not found.candidates or found.candidates[0].protocol != "upnp":
            return None
        mapper = self._mapper_for(found.candidates[0], layer)
        assert isinstance(mapper, PortMapper)
        try:
            return await mapper.prepare(wanted, self.protocol), mapper
        except IGDError as exc:
            log.debug("could not read %s ahead: %s", mapper.gateway.host, exc)
            return None

    async def _map_layer(
        self, found: Probe, layer: int, internal_port: int, internal_client: str | None
    ) -> tuple[LayerMapper, KeptMapping]:
        """Map at the first protocol of ``found`` that maps."""

        external = internal_port if layer > 1 else self.external_port

        async def keep(mapper: LayerMapper) -> KeptMapping:
            return await self._keep(mapper, internal_port, external, internal_client)

        gw = found.candidates[0].gateway if found.candidates else None
        mapper, kept = await map_first(
            found,
            keep,
            check_interval=self.check_interval,
            rediscovery=self._rediscovery(gw, layer),
            behind_nat=layer > 1,
        )
        log.info("layer %d mapped with %s at %s", layer, kept.current.mechanism, _host_of(mapper))
        return mapper, kept

    def _start_step(self, layer: int, found: Probe, internal: _Endpoint) -> _Step:
        hosts = {c.host for c in found.candidates} | ({found.host} if found.host else set())
        step = _Step(
            layer,
            found,
            asyncio.get_running_loop().create_future(),
            found.host or (found.candidates[0].host if found.candidates else "?"),
            frozenset(hosts),
            _udns(found),
        )
        self._steps.append(step)
        step.task = asyncio.create_task(self._run_step(step, internal))
        return step

    async def _run_step(self, step: _Step, internal: _Endpoint) -> tuple[LayerMapper, KeptMapping]:
        """Map one layer. Its endpoint is told as soon as it can be predicted: the layer
        above then maps at the same time (a wrong guess is put right afterwards)."""
        client, port = internal
        wanted = port if step.layer > 1 else (self.external_port or port)
        try:
            prepared = await self._prepare(step.found, step.layer, wanted)
            if prepared is not None:
                external_ip, upnp = prepared
                expected = upnp.flow.expected_port(
                    self.protocol, wanted, client or upnp.gateway.local_address()
                )
                if external_ip is not None and expected is not None:
                    step.endpoint.set_result((external_ip, expected))
            mapper, kept = await self._map_layer(step.found, step.layer, port, client)
        except BaseException:
            if not step.endpoint.done():
                step.endpoint.set_result(None)
            raise
        if not step.endpoint.done():
            step.endpoint.set_result((kept.current.external_ip, kept.current.external_port))
        return mapper, kept

    async def map(self) -> LayeredMapping:
        """Map every layer; returns a complete or partial :class:`LayeredMapping`.

        Raises only when layer 1 cannot be mapped at all (nothing was created).
        On cancellation every layer already mapped is released before re-raising.
        """
        if self._state.kept:
            raise RuntimeError("already mapped; release() first")
        target = self.probe_target
        self._layer1_hosts = None
        unhinted = any(self._hint(k) is None for k in range(2, self.max_layers + 1))
        if target is not None and unhinted and isinstance(self.layers, int):
            # Climbing is certain: trace and probe every hop while layer 1 maps, so the
            # upper gateways are ready by the time each layer needs them. ("auto" waits
            # for layer 1's address: a host behind one router sends no probes at all.)
            self._probes = self._start_probes(target)
        try:
            first = await self._first_layer()
            if not first.candidates:
                raise GatewayNotFound(f"no gateway answered for layer 1: {first.why_not()}")
            return await self._climb(first)
        except BaseException:
            await self.release()
            raise
        finally:
            self._steps = []
            await self._close_probes()

    async def _climb(self, first: Probe) -> LayeredMapping:
        """Map layer 1 and each layer above as soon as its gateway is found and the
        endpoint of the layer below is known, so the layers' adds run side by side."""
        steps = [self._start_step(1, first, (self.internal_client, self.internal_port))]
        stop: tuple[int, str, StopReason | None] | None = None
        try:
            while len(steps) < self.max_layers:
                below = steps[-1]
                reached = await below.endpoint
                if reached is None:
                    break  # that layer failed; its task says why
                external_ip, port = reached
                layer = below.layer + 1
                if self.layers == "auto" and is_global_address(external_ip):
                    break
                if external_ip is None:
                    why = f"layer {layer - 1} reports no external address"
                    stop = (layer, why, StopReason.NO_EXTERNAL_ADDRESS)
                    break
                try:
                    found = await self._next_layer(layer, external_ip)
                except IGDError as exc:
                    reason = exc.reason if isinstance(exc, NextLayerNotFound) else None
                    stop = (layer, f"no gateway found: {exc}", reason)
                    break
                steps.append(self._start_step(layer, found, (external_ip, port)))
            done: list[tuple[LayerMapper, KeptMapping]] = []
            for step in steps:
                assert step.task is not None
                try:
                    done.append(await step.task)
                except IGDError as exc:
                    if step.layer == 1:
                        raise
                    why = f"mapping at {step.host} failed: {exc}"
                    stop = (step.layer, why, StopReason.MAPPING_FAILED)
                    await _discard(steps[step.layer :])
                    break
        except BaseException:
            await _discard(steps)
            raise
        stop = await self._correct(done) or stop
        self._state.mappers = [m for m, _ in done]
        self._state.kept = [k for _, k in done]
        return self._finish(*stop) if stop else self._finish()

    async def _remap(
        self, layer: int, mapper: LayerMapper, old: KeptMapping, ip: str | None, port: int
    ) -> KeptMapping:
        """Delete layer ``layer``'s mapping and map it again towards ``ip``:``port`` (the
        endpoint of the layer below); a failed delete is only logged."""
        try:
            await old.release()
        except IGDError as exc:
            log.info("could not delete layer %d's old mapping: %s", layer, exc)
        return await self._keep(mapper, port, port, ip)

    async def _keep(
        self, mapper: LayerMapper, port: int, external_port: int | None, client: str | None
    ) -> KeptMapping:
        """Keep one layer's mapping of ``port`` (towards ``client``) with this mapper's
        protocol, lease and description."""
        return await mapper.keep(
            port,
            external_port=external_port,
            protocol=self.protocol,
            lease=self.lease,
            description=self.description,
            internal_client=client,
        )

    async def _correct(
        self, done: list[tuple[LayerMapper, KeptMapping]]
    ) -> tuple[int, str, StopReason] | None:
        """Map again each layer that was mapped towards a predicted endpoint the layer
        below did not get (its port was taken meanwhile); a failure ends the climb."""
        for i in range(1, len(done)):
            below = done[i - 1][1].current
            mapper, kept = done[i]
            if (kept.internal_client, kept.internal_port) == (
                below.external_ip,
                below.external_port,
            ):
                continue
            log.info(
                "layer %d got %s:%d, not the port predicted; mapping layer %d again",
                i,
                below.external_ip,
                below.external_port,
                i + 1,
            )
            try:
                kept = await self._remap(
                    i + 1, mapper, kept, below.external_ip, below.external_port
                )
            except IGDError as exc:
                await _close_mappers(m for m, _ in done[i:])
                del done[i:]
                why = f"mapping at {_host_of(mapper)} failed: {exc}"
                return i + 1, why, StopReason.MAPPING_FAILED
            except BaseException:
                await _close_mappers(m for m, _ in done)
                done.clear()
                raise
            done[i] = (mapper, kept)
        return None

    def _finish(
        self, layer: int | None = None, reason: str = "", stop: StopReason | None = None
    ) -> LayeredMapping:
        if layer is not None:
            # INFO: the caller gets it in the result (complete=False, stopped_at, reason).
            log.info("multi-layer mapping stopped at layer %d: %s", layer, reason)
            self._state.complete, self._state.stopped_at = False, layer
            self._state.reason = reason
            self._state.stop_reason = stop or StopReason.NO_GATEWAY
        self._update_result()
        self._watcher = asyncio.create_task(
            self._watch(), name="aioigd-multilayer", context=without_deadline()
        )
        assert self.result is not None
        return self.result

    def _update_result(self) -> None:
        st = self._state
        self.result = LayeredMapping(
            tuple(k.current for k in st.kept),
            complete=st.complete,
            stopped_at=st.stopped_at,
            reason=st.reason,
            stop_reason=st.stop_reason,
        )

    # -- keeping every layer in step ------------------------------------------------
    def events(self) -> EventIterator[LayerEvent]:
        """Events of every layer from now on (also those of re-mapped upper layers),
        until :meth:`close`: ``async for event in mapper.events(): ...``."""
        return self._hub.subscribe()

    async def _watch(self) -> None:
        async def tagged(layer: int, it: EventIterator[Event[PortMapping]]) -> Any:
            async for event in it:
                yield LayerEvent(layer, event)

        streams = [tagged(i, m.events()) for i, m in enumerate(self._state.mappers, 1)]
        async for item in merged(*streams):
            assert isinstance(item, LayerEvent)
            self._update_result()
            self._hub.publish(item)
            if isinstance(item.event, ExternalAddressChanged | Recovered) and not self._closing:
                self._following = True
                try:
                    await self._follow(item.layer)
                finally:
                    self._following = False

    async def _follow(self, layer: int) -> None:
        """Re-map the layers above ``layer`` while they forward to a stale endpoint."""
        st = self._state
        while layer < len(st.kept):
            below, above = st.kept[layer - 1], st.kept[layer]
            if below.state not in (State.ACTIVE, State.RECOVERED, State.RENEWING):
                return
            if (above.internal_client, above.internal_port) == (
                below.external_ip,
                below.external_port,
            ) or below.external_ip is None:
                return
            log.info(
                "layer %d moved to %s:%d; mapping layer %d again",
                layer,
                below.external_ip,
                below.external_port,
                layer + 1,
            )
            before = (above.external_ip, above.external_port)
            mapper = st.mappers[layer]
            try:
                kept = await self._remap(
                    layer + 1, mapper, above, below.external_ip, below.external_port
                )
            except IGDError as exc:
                # WARNING: in the background, and the app's endpoint no longer reaches it.
                log.warning("layer %d could not be mapped again: %s", layer + 1, exc)
                del st.kept[layer:]
                st.complete, st.stopped_at = False, layer + 1
                st.reason = f"re-mapping at {_host_of(mapper)} failed: {exc}"
                st.stop_reason = StopReason.REMAP_FAILED
                self._update_result()
                return
            st.kept[layer] = kept
            self._update_result()
            if (kept.external_ip, kept.external_port) == before:
                return
            layer += 1

    @property
    def gateways(self) -> list[Gateway]:
        """The UPnP gateway of each layer mapped with UPnP, inside out."""
        return [m.gateway for m in self._state.mappers if isinstance(m, PortMapper)]

    @property
    def mappers(self) -> list[LayerMapper]:
        """Each mapped layer's mapper (UPnP, PCP or NAT-PMP), inside out."""
        return list(self._state.mappers)

    @property
    def kept(self) -> list[KeptMapping]:
        """Each layer's kept mapping, inside out."""
        return list(self._state.kept)

    async def release(self) -> list[Leftover[PortMapping]]:
        """Delete every layer, outermost first, and close the gateways.

        Returns what could not be deleted (the gateway was gone), never raises for it.
        """
        return await self.close(release=True)

    async def close(self, *, release: bool = True) -> list[Leftover[PortMapping]]:
        """Stop renewing and close the gateways; ``release=False`` leaves the
        mappings on the routers until their leases run out."""
        watcher, self._watcher = self._watcher, None
        self._closing = True
        if watcher is not None and self._following:
            await stop_task(watcher)  # never re-map a layer while they are being removed
        failed: list[Leftover[PortMapping]] = []
        try:
            for mapper in reversed(self._state.mappers):
                failed += await mapper.close(release=release)
        finally:
            if watcher is not None:
                # Every layer's events end with its release: pass those on, then stop.
                await asyncio.wait({watcher}, timeout=1.0)
                await stop_task(watcher)
            self._state = _State()
            self._hub.close()
            self._hub = EventHub()
            self._closing = False
        return failed

    async def __aenter__(self) -> LayeredMapping:
        return await self.map()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        warn_leftovers(await self.release())


def _split_hint(hint: str) -> tuple[str, int]:
    host, _, port = hint.rpartition(":") if hint.count(":") == 1 else (hint, "", "")
    return host, int(port) if port.isdigit() else SSDP_PORT


def _host_of(mapper: LayerMapper) -> str:
    return mapper.gateway.host if isinstance(mapper, PortMapper) else mapper.host


async def _close_mappers(mappers: Iterable[LayerMapper]) -> None:
    """Close each mapper, deleting what it maps (a gateway that is gone is skipped)."""
    for mapper in mappers:
        with contextlib.suppress(IGDError):
            await mapper.close()


def _udns(found: Probe) -> frozenset[str]:
    """The UDNs of the UPnP gateways that answered in ``found``."""
    return frozenset(
        c.gateway.udn for c in found.candidates if c.gateway is not None and c.gateway.udn
    )


async def _discard(steps: Sequence[_Step]) -> None:
    """Stop the climb's steps and remove whatever they mapped."""
    tasks = [s.task for s in steps if s.task is not None]
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await _close_mappers(r[0] for r in results if isinstance(r, tuple))
    for step in steps:
        await step.found.aclose()  # what a step that never ran still holds
