"""PortMapper: the seed's mapping flow done safely, and mappings kept alive.

Flow of :meth:`PortMapper.map_port` (seed notes, ``shared/seed``):
external IP and the mapping table (enumerated once, then cached and kept up
to date by our own adds/deletes) are fetched concurrently; the wanted port is
checked against the table; the mapping is added (another port on conflict
unless ``strict``; lease 0 on 725); one GetSpecificPortMappingEntry verifies
it; only then are our own stale entries for the same internal endpoint removed.

:meth:`PortMapper.keep` (and :meth:`PortMapper.mapped`) hand the mapping to a
:class:`~aioigd.keeper.Keeper`: renewed on the lease the gateway granted,
checked between renewals (still there? same external address?), re-created
after a router reboot, found again by its UDN when the router comes back on
another HTTP port, and every change told to the application as an event.

Invariants: a mapping we may have created is never left behind by a
cancellation or a transport failure mid-add (we check it is ours, then delete
it); we never delete an entry whose internal client is not ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import random
from collections.abc import AsyncIterator, Coroutine, Hashable
from dataclasses import replace
from types import TracebackType
from typing import Any, TypeVar

from .discovery import SearchOptions, rediscover
from .errors import (
    ActionFailed,
    BehindAnotherNAT,
    ConflictInMappingEntry,
    ConflictWithOtherMechanisms,
    ExternalIPUnavailable,
    IGDError,
    IGDTimeoutError,
    InvalidArgs,
    MappingFailed,
    MappingRefused,
    NoSuchEntryInArray,
    OnlyPermanentLeasesSupported,
    PortInUse,
    RemoteProtocolError,
    UPnPError,
)
from .gateway import DEFAULT_DESCRIPTION, DEFAULT_LEASE, Gateway
from .keeper import (
    CLEANUP_TIMEOUT,
    EventHub,
    EventIterator,
    Keeper,
    Kept,
    Leftover,
    Outcome,
    warn_leftovers,
)
from .lifecycle import Action, Event, effective_lease
from .models import Mapping, PortMappingEntry, Protocol
from .proto.ssdp import SSDP_PORT
from .tasks import stop_task

__all__ = [
    "PortMapper",
    "KeptMapping",
    "PortInUse",
    "DEFAULT_LEASE",
    "DEFAULT_DESCRIPTION",
    "DEFAULT_CHECK_INTERVAL",
]

log = logging.getLogger("aioigd")

#: Seconds between checks of a kept mapping between renewals (is it still there, what
#: is the external address): a router reboot or WAN change is noticed within this.
DEFAULT_CHECK_INTERVAL = 300.0
#: Seconds the external address is reused across map_port calls: a burst of maps (an
#: application opening several ports at start) asks for it once, yet it is never stale
#: for long after a WAN reconnect.
EXTERNAL_IP_TTL = 10.0
#: Seconds a search for the gateway takes when it stopped answering.
REDISCOVERY_TIMEOUT = 2.0
_MAX_PORT_ATTEMPTS = 8

_TableKey = tuple[Protocol, int]
_T = TypeVar("_T")


#: WAN addresses that mean "behind another NAT": RFC 1918, RFC 6598 shared (CGNAT) space,
#: link-local. Not every non-global address (documentation ranges are no such sign).
_INNER_NETWORKS = tuple(
    ipaddress.IPv4Network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")
)


def _inner_address(address: str) -> bool:
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        return False
    return any(ip in net for net in _INNER_NETWORKS)


class KeptMapping(Kept[Mapping]):
    """A port mapping aioigd keeps alive; its fields are those of :attr:`current`."""

    @property
    def external_ip(self) -> str | None:
        """The gateway's external address as last seen (``None``: it has none)."""
        return self.current.external_ip

    @property
    def external_port(self) -> int:
        """The external port (may change if the port had to be moved)."""
        return self.current.external_port

    @property
    def internal_client(self) -> str:
        return self.current.internal_client

    @property
    def internal_port(self) -> int:
        return self.current.internal_port

    @property
    def protocol(self) -> Protocol:
        return self.current.protocol

    @property
    def lease(self) -> int:
        """The lease renewals are scheduled by (0 = permanent)."""
        return self.current.lease

    @property
    def gateway(self) -> str:
        """The LOCATION of the gateway that holds it."""
        return self.current.gateway

    def as_dict(self) -> dict[str, Any]:
        """The current mapping's fields plus ``state``."""
        return {**self.current.as_dict(), "state": self.state.value}

    def __repr__(self) -> str:
        return f"<KeptMapping {self.state.value} {_describe(self.current)}>"


def _describe(m: Mapping) -> str:
    return (
        f"{m.protocol.value} {m.external_ip or '?'}:{m.external_port} -> "
        f"{m.internal_client}:{m.internal_port}"
    )


class PortMapper:
    """Creates, verifies and keeps port mappings on one gateway.

    Args:
        gateway: the gateway to map on (an action client; not closed by the
            mapper unless ``own_gateway``).
        rediscovery: how to look for the gateway again when it stops answering
            (default: a unicast M-SEARCH to its address and a multicast one).
        check_interval: seconds between checks of kept mappings between renewals
            (``None``: only renew).
        own_gateway: close ``gateway`` on :meth:`close`.

    Use it as an async context manager: leaving it deletes what it keeps.
    """

    def __init__(
        self,
        gateway: Gateway,
        *,
        rediscovery: SearchOptions | None = None,
        check_interval: float | None = DEFAULT_CHECK_INTERVAL,
        own_gateway: bool = False,
    ) -> None:
        self.gateway = gateway
        self.rediscovery = rediscovery
        self._owned: list[Gateway] = [gateway] if own_gateway else []
        self._table: dict[_TableKey, PortMappingEntry] | None = None
        #: False when the table was too big to read: it holds only what we learned.
        self._table_complete = False
        self._ext_ip: tuple[str | None, float] | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._hub: EventHub[Event[Mapping]] = EventHub()
        self._keeper: Keeper[Mapping] = Keeper(
            self, name=f"aioigd-keeper-{gateway.host}", check_interval=check_interval, hub=self._hub
        )

    # -- Backend (for the keeper) -------------------------------------------------
    @property
    def location(self) -> str:
        """The current gateway's LOCATION."""
        return self.gateway.location

    def endpoint(self, subject: Mapping) -> Hashable:
        return (subject.external_ip, subject.external_port)

    def describe(self, subject: Mapping) -> str:
        return _describe(subject)

    # -- table cache --------------------------------------------------------
    async def table(self, *, refresh: bool = False) -> dict[_TableKey, PortMappingEntry]:
        """What is known of the gateway's mapping table, read once and then kept in step.

        A small table is read whole; a big one (100 entries or more) is not read at
        all — each request slows down as a router's table grows, and reading 1,000
        entries one by one takes miniupnpd ~19 s — so mapping one port takes a
        bounded number of requests whatever the table's size: the wanted port is
        asked about by itself, conflicts are found by the add (718).
        """
        if self._table is None or refresh:
            try:
                entries = await self.gateway.small_table()
            except UPnPError as exc:
                # Listing is an optimisation (conflicts are retried on 718 anyway); a
                # gateway that will not list (606 without NewManage rights) still maps.
                log.info("cannot list the mapping table (%s); mapping without it", exc)
                entries = None
            for reason in self.gateway.skipped_entries:
                log.info("left a malformed entry out of the table: %s", reason)
            self._table_complete = entries is not None
            self._table = {(e.protocol, e.external_port): e for e in entries or ()}
        return self._table

    async def _explain_501(
        self, exc: ActionFailed, ext_task: asyncio.Future[str | None]
    ) -> IGDError:
        """A 501 from a router whose WAN address is private, shared or missing is the
        common double NAT (miniupnpd refuses to forward then): say so, and what helps."""
        try:
            external = await asyncio.wait_for(asyncio.shield(ext_task), CLEANUP_TIMEOUT)
        except (IGDError, TimeoutError):
            return exc
        if external is not None and not _inner_address(external):
            return exc
        where = f"its WAN address is {external}" if external else "it reports no WAN address"
        return BehindAnotherNAT(
            f"the router at {self.gateway.host} refuses to forward ({exc}): {where}, so it "
            "sits behind another NAT (double NAT or carrier-grade NAT) and will not map a "
            "port nobody outside could reach. Map through the upper router as well "
            "(`aioigd map PORT --layers auto`, or --via its address), put this router in "
            "bridge or DMZ mode behind the upper one, or ask the ISP for a public address",
            external,
        )

    async def _ask_holder(self, proto: Protocol, port: int) -> PortMappingEntry | None:
        """Who holds ``port`` now, asked fresh after a conflict (remembered). When the
        question itself fails, an unknown holder stands in for "another client"."""
        try:
            entry = await self.gateway.get_specific_port_mapping_entry(port, proto)
        except NoSuchEntryInArray:
            self._forget(proto, port)
            return None
        except IGDError as exc:
            log.debug("who holds %s %d: %s", proto.value, port, exc)
            entry = PortMappingEntry(port, proto, 0, "?", description="(held by another client)")
        self._remember(entry)
        return entry

    async def _holder(
        self, table: dict[_TableKey, PortMappingEntry], proto: Protocol, port: int
    ) -> PortMappingEntry | None:
        """Who holds ``port``: from the table when it is complete, else asked (once)."""
        held = table.get((proto, port))
        if held is not None or self._table_complete:
            return held
        try:
            entry = await self.gateway.get_specific_port_mapping_entry(port, proto)
        except NoSuchEntryInArray:
            return None
        self._remember(entry)
        return entry

    def _remember(self, entry: PortMappingEntry) -> None:
        if self._table is not None:
            self._table[(entry.protocol, entry.external_port)] = entry

    def _forget(self, protocol: Protocol, port: int) -> None:
        if self._table is not None:
            self._table.pop((protocol, port), None)

    # -- mapping ------------------------------------------------------------
    async def map_port(
        self,
        internal_port: int,
        external_port: int | None = None,
        protocol: Protocol | str = Protocol.TCP,
        *,
        lease: int = DEFAULT_LEASE,
        description: str = DEFAULT_DESCRIPTION,
        internal_client: str | None = None,
        strict: bool = False,
        remove_stale: bool = False,
    ) -> Mapping:
        """Map ``internal_port`` on this host (or ``internal_client``) and verify it, once.

        The mapping is not renewed: it stays until its lease ends (like ``upnpc -a``).
        Use :meth:`keep` or :meth:`mapped` to keep it alive.

        Args:
            internal_port: the local port to expose.
            external_port: the wanted external port (default: ``internal_port``).
            protocol: ``"TCP"`` or ``"UDP"``.
            lease: seconds; 0 asks for a permanent mapping. Retried as 0 when the
                gateway only supports permanent leases (725).
            description: stored on the gateway; also how our stale entries are found.
            internal_client: the LAN address to forward to (default: this host's
                address towards the gateway).
            strict: fail with :class:`PortInUse` instead of choosing another port.
            remove_stale: once the new mapping works, also delete our other entries
                for the same internal endpoint and description (leftovers of an earlier
                run). Off by default: only the entry on the wanted port is replaced.

        Returns:
            The verified :class:`Mapping`; its ``lease`` is what renewals would be
            scheduled by (the requested lease when the gateway reports 0).

        Raises:
            PortInUse: ``strict`` and the port is held by another client.
            MappingRefused: the gateway refuses this internal client (secure mode).
            MappingFailed: the gateway accepted the add but verification failed,
                or no free port was found.
            UPnPError: any other fault.
        """
        mapping, _ = await self._map(
            internal_port,
            external_port,
            protocol,
            lease=lease,
            description=description,
            internal_client=internal_client,
            strict=strict,
            remove_stale=remove_stale,
        )
        return mapping

    async def keep(
        self,
        internal_port: int,
        external_port: int | None = None,
        protocol: Protocol | str = Protocol.TCP,
        *,
        lease: int = DEFAULT_LEASE,
        description: str = DEFAULT_DESCRIPTION,
        internal_client: str | None = None,
        strict: bool = False,
        remove_stale: bool = False,
    ) -> KeptMapping:
        """Map like :meth:`map_port`, then keep the mapping alive until released.

        With ``strict`` the external port never changes: if another host takes it,
        the mapping ends ``failed`` instead of moving to another port.
        """
        mapping, granted = await self._map(
            internal_port,
            external_port,
            protocol,
            lease=lease,
            description=description,
            internal_client=internal_client,
            strict=strict,
            remove_stale=remove_stale,
        )
        for old in self._keeper.kept():
            if (old.current.protocol, old.current.external_port) == (
                mapping.protocol,
                mapping.external_port,
            ):
                self._keeper.forget(old)  # the same mapping again: keep one
        kept = self._keeper.keep(
            mapping,
            requested_lease=0 if mapping.permanent_only else lease,
            granted_lease=granted,
            strict=strict,
            cls=KeptMapping,
        )
        assert isinstance(kept, KeptMapping)
        return kept

    async def _map(
        self,
        internal_port: int,
        external_port: int | None,
        protocol: Protocol | str,
        *,
        lease: int,
        description: str,
        internal_client: str | None,
        strict: bool,
        remove_stale: bool = False,
    ) -> tuple[Mapping, int]:
        """The seed flow; returns the mapping and the lease the gateway reported."""
        if self._closed:
            raise RuntimeError("this PortMapper is closed")
        proto = Protocol.parse(protocol)
        if not isinstance(internal_port, int) or not 1 <= internal_port <= 65535:
            raise ValueError(f"internal_port must be in 1..65535, not {internal_port!r}")
        if external_port is not None and not 1 <= external_port <= 65535:
            raise ValueError(f"external_port must be in 1..65535, not {external_port!r}")
        if not isinstance(lease, int) or lease < 0:
            raise ValueError(f"lease must be whole seconds >= 0, not {lease!r}")
        client_ip = internal_client or self.gateway.local_address()
        wanted = external_port or internal_port

        async with self._lock:
            # The external address is only reported, so it is fetched alongside the
            # table, add and verify rather than before them: one round trip less.
            ext_task = asyncio.ensure_future(self._external_ip())
            try:
                table = await self.table()
                try:
                    port, granted_lease, permanent_only = await self._add(
                        table, proto, wanted, internal_port, client_ip, description, lease, strict
                    )
                except ActionFailed as exc:
                    raise await self._explain_501(exc, ext_task) from exc
                try:
                    entry = await self._verify(proto, port, internal_port, client_ip)
                    ext_ip = await ext_task
                except BaseException as exc:
                    # The router acted: whatever failed afterwards (a garbage reply, a
                    # timeout, a cancellation), do not leave the mapping behind.
                    exc.add_note(await self._cleanup_uncertain(proto, port, client_ip))
                    raise
            finally:
                if not ext_task.done():
                    await stop_task(ext_task)
                elif not ext_task.cancelled():
                    ext_task.exception()  # retrieved: the error that stopped the map wins
            try:
                # Only once the new mapping works: a failed map must not cost a working one.
                if remove_stale:
                    await self._remove_stale(
                        table, proto, internal_port, client_ip, description, port
                    )
            except asyncio.CancelledError as exc:
                # The caller will never see this mapping: do not leave it behind.
                exc.add_note(await self._cleanup_uncertain(proto, port, client_ip))
                raise
            reported = entry.lease
            mapping = Mapping(
                external_ip=ext_ip,
                external_port=port,
                internal_client=client_ip,
                internal_port=internal_port,
                protocol=proto,
                lease=effective_lease(granted_lease, reported),
                description=description,
                gateway=self.gateway.location,
                permanent_only=permanent_only,
                wanted_port=wanted,
            )
            if port != wanted:
                log.info("%s port %d was taken; mapped %d instead", proto.value, wanted, port)
            return mapping, reported

    async def _external_ip(self, *, max_age: float | None = None) -> str | None:
        loop = asyncio.get_running_loop()
        cached = self._ext_ip
        limit = EXTERNAL_IP_TTL if max_age is None else max_age
        if cached is not None and loop.time() - cached[1] < limit:
            return cached[0]
        try:
            address: str | None = await self.gateway.get_external_ip_address()
        except ExternalIPUnavailable:
            address = None
        self._ext_ip = (address, loop.time())
        return address

    async def _remove_stale(
        self,
        table: dict[_TableKey, PortMappingEntry],
        proto: Protocol,
        internal_port: int,
        client_ip: str,
        description: str,
        keep: int,
    ) -> None:
        """Delete our own leftovers (same client, port, protocol, description) elsewhere."""
        if not description:
            return
        stale = [
            e
            for (p, port), e in table.items()
            if p is proto
            and port != keep
            and e.internal_client == client_ip
            and e.internal_port == internal_port
            and e.description == description
            and not self._is_kept(proto, port)
        ]
        for entry in stale:
            log.info("removing our stale mapping %s %d", proto.value, entry.external_port)
            try:
                await self.gateway.delete_port_mapping(entry.external_port, proto)
            except NoSuchEntryInArray:
                pass
            except IGDError as exc:  # best effort: the new mapping already works
                log.warning("could not remove stale mapping %d: %s", entry.external_port, exc)
                continue
            self._forget(proto, entry.external_port)

    def _candidates(
        self, table: dict[_TableKey, PortMappingEntry], proto: Protocol, wanted: int, client: str
    ) -> list[int]:
        def free(port: int) -> bool:
            held = table.get((proto, port))
            return held is None or held.internal_client == client

        ports = [wanted] if free(wanted) else []
        rng = random.Random(wanted)  # noqa: S311 - port choice, not security
        probe = [wanted + i for i in range(1, 64)] + [rng.randint(1024, 65535) for _ in range(64)]
        ports += [p for p in probe if 1024 <= p <= 65535 and free(p)]
        return ports[:_MAX_PORT_ATTEMPTS]

    async def _add(
        self,
        table: dict[_TableKey, PortMappingEntry],
        proto: Protocol,
        wanted: int,
        internal_port: int,
        client_ip: str,
        description: str,
        lease: int,
        strict: bool,
    ) -> tuple[int, int, bool]:
        holder = await self._holder(table, proto, wanted)
        if holder is not None and holder.internal_client != client_ip and strict:
            raise PortInUse(
                f"{proto.value} port {wanted} is mapped to {holder.internal_client}:"
                f"{holder.internal_port} ({holder.description!r})",
                holder,
            )
        candidates = [wanted] if strict else self._candidates(table, proto, wanted, client_ip)
        last: IGDError | None = None
        for port in candidates:
            try:
                granted = await self._add_one(
                    proto, port, internal_port, client_ip, description, lease
                )
                return port, granted, granted == 0 and lease != 0
            except (ConflictInMappingEntry, ConflictWithOtherMechanisms) as exc:
                last = exc
                holder = await self._ask_holder(proto, port)
                if holder is None or holder.internal_client == client_ip:
                    # The port is free (or already ours), yet "conflict": not a conflict
                    # but a refusal for this internal client (miniupnpd's secure mode only
                    # lets a host map for itself). Other ports would be refused alike.
                    raise MappingRefused(
                        f"the gateway refuses to map {proto.value} {port} to {client_ip} "
                        f"although the port is free ({exc}): it only maps for a host that "
                        "asks for itself (secure mode), or not to this client"
                    ) from exc
                if strict:
                    raise PortInUse(
                        f"{proto.value} port {port} is mapped to {holder.internal_client}:"
                        f"{holder.internal_port} ({holder.description!r})",
                        holder,
                    ) from exc
        if self.gateway.is_v2 and not strict:
            # Let the gateway choose (AddAnyPortMapping, WANIPConnection:2 §2.5.16).
            port = await self._guarded(
                proto,
                wanted,
                client_ip,
                self.gateway.add_any_port_mapping(
                    wanted, proto, internal_port, client_ip, description=description, lease=lease
                ),
            )
            return port, lease, False
        raise MappingFailed(f"no free external {proto.value} port found near {wanted}: {last}")

    async def _add_one(
        self,
        proto: Protocol,
        port: int,
        internal_port: int,
        client_ip: str,
        description: str,
        lease: int,
    ) -> int:
        """AddPortMapping with the 725 (and 402-on-lease) fallback to lease 0."""
        try:
            await self._guarded(
                proto,
                port,
                client_ip,
                self.gateway.add_port_mapping(
                    port, proto, internal_port, client_ip, description=description, lease=lease
                ),
            )
            return lease
        except (OnlyPermanentLeasesSupported, InvalidArgs) as exc:
            if lease == 0:
                raise
            log.warning(
                "gateway refused lease %d s (%s); retrying with a permanent lease", lease, exc
            )
            await self._guarded(
                proto,
                port,
                client_ip,
                self.gateway.add_port_mapping(
                    port, proto, internal_port, client_ip, description=description, lease=0
                ),
            )
            return 0

    async def _guarded(
        self, proto: Protocol, port: int, client_ip: str, add: Coroutine[Any, Any, _T]
    ) -> _T:
        """Run an add; if it failed in any way but a fault (the router refused, so it
        created nothing), delete what it may have created."""
        try:
            return await add
        except BaseException as exc:
            if not isinstance(exc, UPnPError):
                exc.add_note(await self._cleanup_uncertain(proto, port, client_ip))
            raise

    async def _cleanup_uncertain(self, proto: Protocol, port: int, client_ip: str) -> str:
        """Delete ``port`` if the gateway forwards it to ``client_ip`` (bounded, best
        effort); returns what happened, for the error that made it necessary."""
        what = f"{proto.value} {port}"
        try:
            async with asyncio.timeout(CLEANUP_TIMEOUT):
                try:
                    entry = await self.gateway.get_specific_port_mapping_entry(port, proto)
                except NoSuchEntryInArray:
                    return f"aioigd checked: {what} was not created"
                except (RemoteProtocolError, IGDTimeoutError):
                    # The question failed like the answer before it. The add was for this
                    # client and the router did not refuse it (another host's entry would
                    # have been a 718), so what is on that port now is ours to remove.
                    entry = None
                if entry is not None and entry.internal_client != client_ip:
                    return f"aioigd checked: {what} belongs to {entry.internal_client}, left alone"
                await self.gateway.delete_port_mapping(port, proto)
                self._forget(proto, port)
                return f"aioigd removed the {what} mapping it may have created"
        except (IGDError, TimeoutError, asyncio.CancelledError) as exc:
            log.info("could not remove %s after a failed add: %r", what, exc)
            return f"aioigd could not remove {what}, which it may have created: {exc!r}"

    async def _verify(
        self, proto: Protocol, port: int, internal_port: int, client_ip: str
    ) -> PortMappingEntry:
        try:
            entry = await self.gateway.get_specific_port_mapping_entry(port, proto)
        except NoSuchEntryInArray:
            raise MappingFailed(
                f"gateway accepted {proto.value} {port} but does not list it"
            ) from None
        if entry.internal_client != client_ip or entry.internal_port != internal_port:
            raise MappingFailed(
                f"{proto.value} {port} maps to {entry.internal_client}:{entry.internal_port}, "
                f"not {client_ip}:{internal_port}"
            )
        self._remember(entry)
        return entry

    # -- keeping (the keeper's backend) -----------------------------------------
    def _is_kept(self, proto: Protocol, port: int) -> bool:
        return any(
            k.current.protocol is proto and k.current.external_port == port
            for k in self._keeper.kept()
        )

    async def refresh(self, kept: Kept[Mapping], action: Action) -> Outcome[Mapping]:
        """Renew or check one kept mapping (see :class:`~aioigd.keeper.Backend`).

        A check asks whether the entry is still ours and what the external address
        is; a renewal also re-adds it. An entry the gateway forgot (reboot) is
        re-added either way; one another host took moves to another port, or
        ends the mapping (``PortInUse``) when it is strict.
        """
        m = kept.current
        gw = self.gateway
        ext_task = asyncio.ensure_future(self._external_ip(max_age=0.0))
        try:
            try:
                entry: PortMappingEntry | None = await gw.get_specific_port_mapping_entry(
                    m.external_port, m.protocol
                )
            except NoSuchEntryInArray:
                entry = None
            if entry is not None and (entry.internal_client, entry.internal_port) != (
                m.internal_client,
                m.internal_port,
            ):
                return await self._move(kept, entry)
            granted: int | None = None
            if entry is None or action is Action.RENEW:
                requested = 0 if m.permanent_only else kept.requested_lease
                try:
                    granted = await self._add_one(
                        m.protocol,
                        m.external_port,
                        m.internal_port,
                        m.internal_client,
                        m.description,
                        requested,
                    )
                except (ConflictInMappingEntry, ConflictWithOtherMechanisms):
                    return await self._move(kept, None)
                self._remember(
                    PortMappingEntry(
                        m.external_port,
                        m.protocol,
                        m.internal_port,
                        m.internal_client,
                        description=m.description,
                        lease=granted,
                    )
                )
            try:
                ext_ip = await ext_task
            except (UPnPError, RemoteProtocolError) as exc:
                # The mapping itself is renewed; only the address question failed.
                log.debug("GetExternalIPAddress failed during renewal: %s", exc)
                ext_ip = m.external_ip
        finally:
            if not ext_task.done():
                await stop_task(ext_task)
            elif not ext_task.cancelled():
                ext_task.exception()
        lease = m.lease if granted is None else effective_lease(kept.requested_lease, granted)
        subject = replace(m, external_ip=ext_ip, lease=lease, gateway=gw.location)
        return Outcome(subject, granted, recreated=entry is None)

    async def _move(self, kept: Kept[Mapping], holder: PortMappingEntry | None) -> Outcome[Mapping]:
        m = kept.current
        who = f"{holder.internal_client}:{holder.internal_port}" if holder else "another client"
        if kept.strict:
            raise PortInUse(f"{m.protocol.value} port {m.external_port} was taken by {who}", holder)
        log.info(
            "%s port %d was taken by %s; mapping another", m.protocol.value, m.external_port, who
        )
        self._table = None  # what we knew of the table is out of date
        moved, granted = await self._map(
            m.internal_port,
            m.external_port,
            m.protocol,
            lease=kept.requested_lease,
            description=m.description,
            internal_client=m.internal_client,
            strict=False,
        )
        return Outcome(moved, granted, recreated=True)

    async def remove(self, subject: Mapping, *, verify: bool = False) -> None:
        """Delete one of our mappings (already gone is fine); with ``verify`` only if
        the gateway still forwards it to our internal client."""
        try:
            if verify:
                entry = await self.gateway.get_specific_port_mapping_entry(
                    subject.external_port, subject.protocol
                )
                if (entry.internal_client, entry.internal_port) != (
                    subject.internal_client,
                    subject.internal_port,
                ):
                    return
            await self.gateway.delete_port_mapping(subject.external_port, subject.protocol)
        except NoSuchEntryInArray:
            pass
        self._forget(subject.protocol, subject.external_port)

    async def reconnect(self) -> bool:
        """Find the gateway again by its UDN; a new LOCATION (new HTTP port after a
        reboot) gives a new :class:`Gateway` that every later request goes to."""
        old = self.gateway
        if not old.udn:
            return False
        found = await rediscover(old.udn, self._rediscovery_options())
        if found.location == old.location:
            await found.close()
            return True
        log.info("%s is back at %s", old.udn, found.location)
        self.gateway = found
        self._owned.append(found)
        self._table = None
        self._ext_ip = None
        if old in self._owned:
            self._owned.remove(old)
            await old.close()
        return True

    def _rediscovery_options(self) -> SearchOptions:
        if self.rediscovery is not None:
            return dataclasses.replace(self.rediscovery, refused=[])
        host = self.gateway.host
        v6 = ":" in host
        return SearchOptions(
            timeout=REDISCOVERY_TIMEOUT,
            multicast=True,
            default_gateways=False,
            unicast=[(host, SSDP_PORT)],
            http_timeout=self.gateway.session.timeout,
            ipv4=not v6,
            ipv6=v6,
        )

    # -- the application's view ------------------------------------------------
    def kept(self) -> list[KeptMapping]:
        """The mappings being kept, in creation order."""
        return [k for k in self._keeper.kept() if isinstance(k, KeptMapping)]

    def active(self) -> list[Mapping]:
        """The kept mappings' current values."""
        return [k.current for k in self._keeper.kept()]

    def events(self) -> EventIterator[Event[Mapping]]:
        """Events of every mapping kept from now on, until :meth:`close`."""
        return self._hub.subscribe()

    async def release(
        self, mapping: Kept[Mapping] | Mapping, *, timeout: float = CLEANUP_TIMEOUT
    ) -> None:
        """Stop keeping ``mapping`` and delete it (within ``timeout`` seconds).

        Takes a kept mapping or a :class:`Mapping` value (kept or from
        :meth:`map_port`). A cancellation during the delete lets it finish first
        (bounded), so a Ctrl-C here still leaves nothing on the gateway.

        Raises:
            IGDError: the deletion failed (the gateway is gone, or timed out).
        """
        if isinstance(mapping, Kept):
            leftover = await self._keeper.release(mapping, timeout=timeout)
        else:
            kept = next(
                (
                    k
                    for k in self._keeper.kept()
                    if (k.current.protocol, k.current.external_port)
                    == (mapping.protocol, mapping.external_port)
                ),
                None,
            )
            if kept is not None:
                leftover = await self._keeper.release(kept, timeout=timeout)
            else:
                # Not kept: it may be an old value, or its port may belong to someone else
                # by now, so delete it only if the gateway still forwards it to us.
                leftover = await self._keeper.delete(mapping, timeout=timeout, verify=True)
        if leftover is not None:
            raise leftover.error

    async def close(self, *, release: bool = True) -> list[Leftover[Mapping]]:
        """Stop keeping; delete every kept mapping unless ``release=False``.

        Never raises for a gateway that is gone: what could not be deleted is
        returned, with the reason. Closes the gateways the mapper owns.
        """
        self._closed = True
        try:
            return await self._keeper.close(release=release)
        finally:
            self._hub.close()
            owned, self._owned = self._owned, []
            for gw in owned:
                await gw.close()

    @contextlib.asynccontextmanager
    async def mapped(
        self,
        internal_port: int,
        external_port: int | None = None,
        protocol: Protocol | str = Protocol.TCP,
        *,
        lease: int = DEFAULT_LEASE,
        description: str = DEFAULT_DESCRIPTION,
        internal_client: str | None = None,
        strict: bool = False,
        remove_stale: bool = False,
    ) -> AsyncIterator[KeptMapping]:
        """Map on enter, keep alive inside, delete on exit, error or cancellation."""
        kept = await self.keep(
            internal_port,
            external_port,
            protocol,
            lease=lease,
            description=description,
            internal_client=internal_client,
            strict=strict,
            remove_stale=remove_stale,
        )
        try:
            yield kept
        finally:
            warn_leftovers([await self._keeper.release(kept)])

    async def __aenter__(self) -> PortMapper:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        warn_leftovers(await self.close())
