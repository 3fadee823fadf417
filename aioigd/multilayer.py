"""MultiLayerMapper: map one port through up to four stacked NATs.

Layer 1 is the gateway discovery finds (the host's default gateway). After
mapping there, its external address tells whether another NAT sits above:
while it is private, shared (100.64.0.0/10) or otherwise not global, the next
IGD is looked for among the routers an in-process traceroute found (unicast
M-SEARCH to every hop at once, the nearest answering hop wins) or in the
caller's per-layer ``via`` list, and the port is mapped there with the
previous layer's external address and port as internal client and port.

Each layer's mapping is managed by its gateway's :class:`~aioigd.PortMapper`
(renewed, re-added after a router reboot). Release goes outermost first,
innermost last, also on error and on cancellation; a layer that failed
leaves nothing behind, and layers below it stay as a partial result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from .discovery import SearchOptions, discover
from .errors import IGDError
from .gateway import Gateway
from .mapper import DEFAULT_DESCRIPTION, DEFAULT_LEASE
from .models import Mapping, Protocol, is_global_address
from .proto.ssdp import SSDP_PORT
from .traceroute import DEFAULT_PROBE_TARGET, check_target, probe_hop

__all__ = ["MultiLayerMapper", "LayeredMapping", "MAX_LAYERS"]

log = logging.getLogger("aioigd")

MAX_LAYERS = 4

#: A traced hop's address and the IGD found there (None where nothing answered).
_Probe = tuple[str | None, Gateway | None]


@dataclass(frozen=True)
class LayeredMapping:
    """The result of a multi-layer mapping: one :class:`Mapping` per layer, inside out.

    ``complete`` is False when climbing stopped early; ``stopped_at`` is then
    the layer number (1-based) that could not be mapped and ``reason`` says why.
    """

    layers: tuple[Mapping, ...]
    complete: bool = True
    stopped_at: int | None = None
    reason: str = ""

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
        return out


@dataclass
class _State:
    gateways: list[Gateway] = field(default_factory=list)
    mappings: list[Mapping] = field(default_factory=list)


class MultiLayerMapper:
    """Map ``internal_port`` through every UPnP NAT layer above this host.

    Args:
        internal_port: the local port to expose.
        protocol: ``"TCP"`` or ``"UDP"``.
        layers: ``"auto"`` stops at the first global external address;
            an int N keeps climbing while a next IGD answers, up to N.
        max_layers: cap for ``"auto"`` (default 4).
        lease / description / internal_client: as for :meth:`Gateway.map_port`.
        via: per-layer gateway hints: each item is a LOCATION URL, an address
            (``host`` or ``host:port`` for SSDP), or ``None`` to find that layer
            by discovery (layer 1) or traceroute (layers 2+).
        probe_target: where the traceroute probes are aimed; ``None`` disables
            tracing, so only ``via`` hints are followed above layer 1.
        search: discovery options for layer 1 (default: multicast + default gateways).
        timeout: seconds to wait for each layer's gateway to answer.
        http_timeout: per-request timeout.
    """

    def __init__(
        self,
        internal_port: int,
        protocol: Protocol | str = Protocol.TCP,
        *,
        layers: Literal["auto"] | int = "auto",
        max_layers: int = MAX_LAYERS,
        lease: int = DEFAULT_LEASE,
        description: str = DEFAULT_DESCRIPTION,
        internal_client: str | None = None,
        via: Sequence[str | None] = (),
        probe_target: str | None = DEFAULT_PROBE_TARGET,
        search: SearchOptions | None = None,
        timeout: float = 2.0,
        http_timeout: float = 5.0,
    ) -> None:
        if layers != "auto" and not (isinstance(layers, int) and 1 <= layers <= MAX_LAYERS):
            raise ValueError(f"layers must be 'auto' or 1..{MAX_LAYERS}, not {layers!r}")
        if not 1 <= max_layers <= MAX_LAYERS:
            raise ValueError(f"max_layers must be in 1..{MAX_LAYERS}")
        self.internal_port = internal_port
        self.protocol = Protocol.parse(protocol)
        self.layers = layers
        self.max_layers = layers if isinstance(layers, int) else max_layers
        self.lease = lease
        self.description = description
        self.internal_client = internal_client
        self.via = list(via)
        self.probe_target = probe_target
        self.search = search
        self.timeout = timeout
        self.http_timeout = http_timeout
        self.result: LayeredMapping | None = None
        self._state = _State()
        self._probes: list[asyncio.Task[_Probe]] | None = None

    # -- finding gateways ------------------------------------------------------
    def _hint(self, layer: int) -> str | None:
        return self.via[layer - 1] if layer <= len(self.via) else None

    async def _from_hint(self, hint: str) -> Gateway:
        if hint.startswith(("http://", "https://")):
            return await Gateway.from_location(hint, timeout=self.http_timeout)
        return await discover(
            SearchOptions(
                timeout=self.timeout,
                multicast=False,
                default_gateways=False,
                unicast=[hint],
                http_timeout=self.http_timeout,
            )
        )

    async def _first_gateway(self) -> Gateway:
        hint = self._hint(1)
        if hint:
            return await self._from_hint(hint)
        return await discover(self.search or SearchOptions(http_timeout=self.http_timeout))

    def _start_probes(self, target: str) -> list[asyncio.Task[_Probe]]:
        """One task per TTL: find that hop, then ask it for an IGD — all at once, and
        each hop's SSDP search starts as soon as that hop answers."""
        check_target(target)
        return [
            asyncio.create_task(self._probe(target, ttl)) for ttl in range(1, self.max_layers + 2)
        ]

    async def _probe(self, target: str, ttl: int) -> _Probe:
        hop = await probe_hop(target, ttl)
        if hop is None or hop.reached_target:
            return None, None
        try:
            return hop.address, await self._from_hint(f"{hop.address}:{SSDP_PORT}")
        except IGDError:
            return hop.address, None

    async def _next_gateway(self, layer: int) -> Gateway:
        """Find layer ``layer``'s IGD: the caller's hint, else the nearest answering hop."""
        hint = self._hint(layer)
        if hint:
            return await self._from_hint(hint)
        if self.probe_target is None:
            raise IGDError(f"no gateway given for layer {layer} and tracing is off")
        if self._probes is None:
            self._probes = self._start_probes(self.probe_target)
        tried: list[str] = []
        # Nearest hop first: a farther IGD must not be mistaken for this layer's.
        for task in list(self._probes):
            host, gw = await task
            if host is None:
                continue
            if gw is None or any(
                g.host == host or (gw.udn and g.udn == gw.udn) for g in self._state.gateways
            ):
                tried.append(host)
                continue
            self._probes.remove(task)  # it is ours now; the rest are closed after map()
            return gw
        if not tried:
            raise IGDError(f"traceroute towards {self.probe_target} found no further router")
        raise IGDError(f"no further IGD answered (hops tried: {', '.join(tried)})")

    async def _close_probes(self) -> None:
        probes, self._probes = self._probes or [], None
        for task in probes:
            task.cancel()
        for task in probes:
            with contextlib.suppress(BaseException):
                _, gw = await task
                if gw is not None:
                    await gw.close()

    # -- mapping ---------------------------------------------------------------
    def _keep_climbing(self, layer: int, mapping: Mapping) -> bool:
        if layer >= self.max_layers:
            return False
        if self.layers == "auto":
            return not is_global_address(mapping.external_ip)
        return True

    async def map(self) -> LayeredMapping:
        """Map every layer; returns a complete or partial :class:`LayeredMapping`.

        Raises only when layer 1 cannot be mapped at all (nothing was created).
        On cancellation every layer already mapped is released before re-raising.
        """
        if self._state.mappings:
            raise RuntimeError("already mapped; release() first")
        state = self._state
        target = self.probe_target
        unhinted = any(self._hint(k) is None for k in range(2, self.max_layers + 1))
        if target is not None and unhinted and isinstance(self.layers, int):
            # Climbing is certain: trace and probe every hop while layer 1 maps, so the
            # upper gateways are ready by the time each layer needs them. ("auto" waits
            # for layer 1's address: a host behind one router sends no probes at all.)
            self._probes = self._start_probes(target)
        try:
            gw = await self._first_gateway()
            state.gateways.append(gw)
            mapping = await gw.map_port(
                self.internal_port,
                None,
                self.protocol,
                lease=self.lease,
                description=self.description,
                internal_client=self.internal_client,
            )
            state.mappings.append(mapping)
            layer = 1
            while self._keep_climbing(layer, mapping):
                layer += 1
                if mapping.external_ip is None:
                    return self._partial(layer, f"layer {layer - 1} reports no external address")
                try:
                    gw = await self._next_gateway(layer)
                except IGDError as exc:
                    return self._partial(layer, f"no gateway found: {exc}")
                state.gateways.append(gw)
                try:
                    mapping = await gw.map_port(
                        mapping.external_port,
                        mapping.external_port,
                        self.protocol,
                        lease=self.lease,
                        description=self.description,
                        internal_client=mapping.external_ip,
                    )
                except IGDError as exc:
                    return self._partial(layer, f"mapping at {gw.host} failed: {exc}")
                state.mappings.append(mapping)
            self.result = LayeredMapping(tuple(state.mappings))
            return self.result
        except BaseException:
            await self.release()
            raise
        finally:
            await self._close_probes()

    def _partial(self, layer: int, reason: str) -> LayeredMapping:
        log.warning("multi-layer mapping stopped at layer %d: %s", layer, reason)
        self.result = LayeredMapping(
            tuple(self._state.mappings), complete=False, stopped_at=layer, reason=reason
        )
        return self.result

    @property
    def gateways(self) -> list[Gateway]:
        """The gateway of each mapped layer (and of a failed one), inside out."""
        return list(self._state.gateways)

    async def release(self) -> list[tuple[Mapping, IGDError]]:
        """Delete every layer, outermost first, and close the gateways.

        Returns what could not be deleted (the gateway was gone), never raises for it.
        """
        return await self.close(release=True)

    async def close(self, *, release: bool = True) -> list[tuple[Mapping, IGDError]]:
        """Stop renewing and close the gateways; ``release=False`` leaves the
        mappings on the routers until their leases run out."""
        failed: list[tuple[Mapping, IGDError]] = []
        for gw in reversed(self._state.gateways):
            failed += await gw.close(release=release)
        self._state = _State()
        return failed

    async def __aenter__(self) -> LayeredMapping:
        return await self.map()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        failed = await self.release()
        for mapping, error in failed:
            log.warning("could not delete %s at %s: %s", mapping, mapping.gateway, error)
