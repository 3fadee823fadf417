"""The seed's mapping flow on one gateway, done safely and in bounded requests (no keeping).

Flow of :meth:`MapFlow.map` (seed notes, ``shared/seed``): the external IP and what is
known of the table are fetched concurrently; the wanted port is checked; the mapping is
added (another port on conflict unless ``strict``; lease 0 on 725); one
GetSpecificPortMappingEntry verifies it; with ``remove_stale``, our own leftovers for the
same internal endpoint are removed only then.

Invariants: a mapping we may have created is never left behind by whatever fails after
the add was sent (we check it is ours, then delete it); we never delete an entry whose
internal client is not ours; a table of 100 entries or more is never read.
:class:`~aioigd.mapper.PortMapper` keeps what this creates alive.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

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
from .gateway import Gateway
from .keeper import CLEANUP_TIMEOUT
from .lifecycle import effective_lease
from .models import PortMapping, PortMappingEntry, Transport, TransportLike
from .tasks import settle

__all__ = ["MapFlow", "EXTERNAL_IP_TTL"]

log = logging.getLogger("aioigd")

#: Seconds the external address is reused across map calls: a burst of maps (an
#: application opening several ports at start) asks for it once, yet it is never stale
#: for long after a WAN reconnect.
EXTERNAL_IP_TTL = 10.0
_MAX_PORT_ATTEMPTS = 8

_TableKey = tuple[Transport, int]
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


class MapFlow:
    """Maps ports on one gateway, once each; caches what it learned of the table.

    Args:
        gateway: the action client.
        is_kept: whether a (protocol, external port) is a mapping being kept alive
            (never removed as stale).
    """

    def __init__(
        self, gateway: Gateway, *, is_kept: Callable[[Transport, int], bool] = lambda p, n: False
    ) -> None:
        self.gateway = gateway
        self._is_kept = is_kept
        self._table: dict[_TableKey, PortMappingEntry] | None = None
        #: False when the table was too big to read (or not read: see :meth:`prepare`): it
        #: holds only what we learned.
        self._table_complete = False
        #: Ports just asked about and found free (used by the next add of that port).
        self._free: set[_TableKey] = set()
        self._ext_ip: tuple[str | None, float] | None = None
        self._lock = asyncio.Lock()

    def forget_table(self) -> None:
        """What we knew of the table is out of date (it is read again when needed)."""
        self._table = None
        self._free.clear()

    def forget_external_ip(self) -> None:
        """Ask for the external address again at the next map."""
        self._ext_ip = None

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

    async def _ask_holder(self, proto: Transport, port: int) -> PortMappingEntry | None:
        """Who holds ``port`` now, asked fresh after a conflict (remembered). When the
        question itself fails, an unknown holder stands in for "another client"."""
        try:
            entry = await self.gateway.get_specific_port_mapping_entry(port, proto)
        except NoSuchEntryInArray:
            self.forget(proto, port)
            return None
        except IGDError as exc:
            log.debug("who holds %s %d: %s", proto.value, port, exc)
            entry = PortMappingEntry(port, proto, 0, "?", description="(held by another client)")
        self.remember(entry)
        return entry

    async def _holder(
        self, table: dict[_TableKey, PortMappingEntry], proto: Transport, port: int
    ) -> PortMappingEntry | None:
        """Who holds ``port``: from the table when it is complete, else asked (once)."""
        held = table.get((proto, port))
        if held is not None or self._table_complete:
            return held
        if (proto, port) in self._free:
            self._free.discard((proto, port))  # asked a moment ago (prepare)
            return None
        try:
            entry = await self.gateway.get_specific_port_mapping_entry(port, proto)
        except NoSuchEntryInArray:
            return None
        self.remember(entry)
        return entry

    def remember(self, entry: PortMappingEntry) -> None:
        self._free.discard((entry.protocol, entry.external_port))
        if self._table is not None:
            self._table[(entry.protocol, entry.external_port)] = entry

    def forget(self, protocol: Transport, port: int) -> None:
        if self._table is not None:
            self._table.pop((protocol, port), None)

    async def map(
        self,
        internal_port: int,
        external_port: int | None,
        protocol: TransportLike,
        *,
        lease: int,
        description: str,
        internal_client: str | None,
        strict: bool,
        remove_stale: bool = False,
    ) -> tuple[PortMapping, int]:
        """The seed flow; returns the mapping and the lease the gateway reported."""
        proto = Transport.parse(protocol)
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
            ext_task = asyncio.ensure_future(self.external_ip())
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
                await settle(ext_task)  # the error that stopped the map wins
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
            mapping = PortMapping(
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

    async def prepare(self, protocol: TransportLike, wanted: int) -> str | None:
        """Ask who holds ``wanted`` and the external address, at once, so that a map of
        ``wanted`` that follows sends only its add and the check; returns the external
        address. The table is not listed (unless it was already): a multi-layer climb maps
        one port per gateway, and prepares the upper gateways while the lower ones map.
        """
        proto = Transport.parse(protocol)
        async with self._lock:
            if self._table is None:
                self._table, self._table_complete = {}, False  # only what we learn
            holder, address = await asyncio.gather(
                self._holder(self._table, proto, wanted),
                self.external_ip(),
                return_exceptions=True,
            )
            if holder is None:
                self._free.add((proto, wanted))
        for result in (holder, address):
            if isinstance(result, BaseException):
                raise result
        assert not isinstance(address, BaseException)
        return address

    def expected_port(self, protocol: TransportLike, wanted: int, client_ip: str) -> int | None:
        """``wanted`` when it is known to be free (or ``client_ip``'s already): the port a
        map will then most likely get; else None."""
        key = (Transport.parse(protocol), wanted)
        if key in self._free:
            return wanted
        held = self._table.get(key) if self._table is not None else None
        if held is None:
            return wanted if self._table is not None and self._table_complete else None
        return wanted if held.internal_client == client_ip else None

    async def external_ip(self, *, max_age: float | None = None) -> str | None:
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
        proto: Transport,
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
                # INFO: handled; the new mapping works, the stale one expires with its lease.
                log.info("could not remove stale mapping %d: %s", entry.external_port, exc)
                continue
            self.forget(proto, entry.external_port)

    def _candidates(
        self, table: dict[_TableKey, PortMappingEntry], proto: Transport, wanted: int, client: str
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
        proto: Transport,
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
                granted = await self.add_one(
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
                    wanted,
                    protocol=proto,
                    internal_port=internal_port,
                    internal_client=client_ip,
                    description=description,
                    lease=lease,
                ),
            )
            return port, lease, False
        raise MappingFailed(f"no free external {proto.value} port found near {wanted}: {last}")

    async def add_one(
        self,
        proto: Transport,
        port: int,
        internal_port: int,
        client_ip: str,
        description: str,
        lease: int,
    ) -> int:
        """AddPortMapping with the 725 (and 402-on-lease) fallback to lease 0."""

        async def add(lease: int) -> int:
            await self._guarded(
                proto,
                port,
                client_ip,
                self.gateway.add_port_mapping(
                    port,
                    protocol=proto,
                    internal_port=internal_port,
                    internal_client=client_ip,
                    description=description,
                    lease=lease,
                ),
            )
            return lease

        try:
            return await add(lease)
        except (OnlyPermanentLeasesSupported, InvalidArgs) as exc:
            if lease == 0:
                raise
            # INFO: handled (the permanent lease is reported as PortMapping.permanent_only).
            log.info("gateway refused lease %d s (%s); retrying with a permanent lease", lease, exc)
            return await add(0)

    async def _guarded(
        self, proto: Transport, port: int, client_ip: str, add: Coroutine[Any, Any, _T]
    ) -> _T:
        """Run an add; if it failed in any way but a fault (the router refused, so it
        created nothing), delete what it may have created."""
        try:
            return await add
        except BaseException as exc:
            if not isinstance(exc, UPnPError):
                exc.add_note(await self._cleanup_uncertain(proto, port, client_ip))
            raise

    async def _cleanup_uncertain(self, proto: Transport, port: int, client_ip: str) -> str:
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
                self.forget(proto, port)
                return f"aioigd removed the {what} mapping it may have created"
        except (IGDError, TimeoutError, asyncio.CancelledError) as exc:
            log.info("could not remove %s after a failed add: %r", what, exc)
            return f"aioigd could not remove {what}, which it may have created: {exc!r}"

    async def _verify(
        self, proto: Transport, port: int, internal_port: int, client_ip: str
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
        self.remember(entry)
        return entry
