"""PortMapper: the seed's mapping flow done safely, plus renewal and release.

Flow of :meth:`PortMapper.map_port` (seed notes, ``shared/seed``):
external IP and the mapping table (enumerated once, then cached and kept up
to date by our own adds/deletes) are fetched concurrently; the wanted port is
checked against the table; the mapping is added (another port on conflict
unless ``strict``; lease 0 on 725); one GetSpecificPortMappingEntry verifies
it; only then are our own stale entries for the same internal endpoint removed.

Invariants: a mapping we may have created is never left behind by a
cancellation or a transport failure mid-add (we check it is ours, then delete
it); we never delete an entry whose internal client is not ours; renewal
tasks belong to this object and are cancelled by :meth:`close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from typing import Protocol as TypingProtocol

from .errors import (
    ConflictInMappingEntry,
    ConflictWithOtherMechanisms,
    ExternalIPUnavailable,
    IGDConnectionError,
    IGDError,
    InvalidArgs,
    MappingFailed,
    NoSuchEntryInArray,
    OnlyPermanentLeasesSupported,
    UPnPError,
)
from .models import Mapping, PortMappingEntry, Protocol, Service
from .tasks import finish, stop_task

__all__ = [
    "PortMapper",
    "PortMappingClient",
    "PortInUse",
    "DEFAULT_LEASE",
    "DEFAULT_DESCRIPTION",
    "renew_delay",
    "retry_delay",
]

log = logging.getLogger("aioigd")

#: One hour: long enough to survive a missed renewal, short enough to expire after a crash.
DEFAULT_LEASE = 3600
DEFAULT_DESCRIPTION = "aioigd"
#: How often a permanent (lease 0) mapping is re-asserted, to survive router reboots.
PERMANENT_RECHECK = 1800.0
#: Seconds the external address is reused across map_port calls: a burst of maps (an
#: application opening several ports at start) asks for it once, yet it is never stale
#: for long after a WAN reconnect.
EXTERNAL_IP_TTL = 10.0
#: Seconds a cleanup (delete) may take before we give up on it.
CLEANUP_TIMEOUT = 3.0
_MAX_PORT_ATTEMPTS = 8

_TableKey = tuple[Protocol, int]
_T = TypeVar("_T")


class PortInUse(MappingFailed):
    """The wanted external port is held by another client (``strict`` mapping)."""

    def __init__(self, message: str, holder: PortMappingEntry | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class PortMappingClient(TypingProtocol):
    """What the mapper needs from a gateway (implemented by :class:`aioigd.Gateway`)."""

    @property
    def location(self) -> str: ...
    @property
    def is_v2(self) -> bool: ...
    @property
    def service(self) -> Service: ...
    def local_address(self) -> str: ...
    async def get_external_ip_address(self) -> str: ...
    async def port_mappings(self, *, max_entries: int = ...) -> list[PortMappingEntry]: ...
    async def add_port_mapping(
        self,
        external_port: int,
        protocol: Protocol | str,
        internal_port: int,
        internal_client: str,
        *,
        description: str = ...,
        lease: int = ...,
        remote_host: str | None = ...,
        enabled: bool = ...,
    ) -> None: ...
    async def add_any_port_mapping(
        self,
        external_port: int,
        protocol: Protocol | str,
        internal_port: int,
        internal_client: str,
        *,
        description: str = ...,
        lease: int = ...,
        remote_host: str | None = ...,
        enabled: bool = ...,
    ) -> int: ...
    async def delete_port_mapping(
        self, external_port: int, protocol: Protocol | str, *, remote_host: str | None = ...
    ) -> None: ...
    async def get_specific_port_mapping_entry(
        self, external_port: int, protocol: Protocol | str, *, remote_host: str | None = ...
    ) -> PortMappingEntry: ...


def renew_delay(lease: int, *, elapsed: float = 0.0) -> float:
    """Seconds until a mapping granted ``elapsed`` seconds ago should be renewed.

    Half the lease (at least 1 s before it runs out); permanent mappings are
    re-asserted every :data:`PERMANENT_RECHECK` seconds so a router reboot is
    noticed.
    """
    if lease <= 0:
        return max(PERMANENT_RECHECK - elapsed, 0.0)
    target = max(min(lease / 2, lease - 1.0), 0.5)
    return max(target - elapsed, 0.0)


def retry_delay(failures: int, lease: int) -> float:
    """Back-off after ``failures`` failed renewals: 2, 4, 8 … s, at least 1 s, at most
    half the lease (so a short lease still gets several tries)."""
    ceiling = lease / 2 if lease > 0 else PERMANENT_RECHECK
    return max(1.0, min(2.0 ** min(failures, 6), ceiling))


@dataclass
class _Managed:
    mapping: Mapping
    requested_lease: int
    task: asyncio.Task[None] | None = None
    failures: int = 0
    last_error: IGDError | None = field(default=None)


class PortMapper:
    """Creates, verifies, renews and releases port mappings on one gateway."""

    def __init__(self, client: PortMappingClient) -> None:
        self.client = client
        self._table: dict[_TableKey, PortMappingEntry] | None = None
        self._ext_ip: tuple[str | None, float] | None = None
        self._managed: dict[_TableKey, _Managed] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    # -- table cache --------------------------------------------------------
    async def table(self, *, refresh: bool = False) -> dict[_TableKey, PortMappingEntry]:
        """The gateway's mapping table, enumerated once and then kept in step."""
        if self._table is None or refresh:
            try:
                entries = await self.client.port_mappings()
            except UPnPError as exc:
                # Listing is an optimisation (conflicts are retried on 718 anyway); a
                # gateway that will not list (606 without NewManage rights) still maps.
                log.info("cannot list the mapping table (%s); mapping without it", exc)
                entries = []
            self._table = {(e.protocol, e.external_port): e for e in entries}
        return self._table

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
        managed: bool = True,
    ) -> Mapping:
        """Map ``internal_port`` on this host (or ``internal_client``) and verify it.

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
            managed: renew in the background until :meth:`release`/:meth:`close`.

        Returns:
            The verified :class:`Mapping`.

        Raises:
            PortInUse: ``strict`` and the port is held by another client.
            MappingFailed: the gateway accepted the add but verification failed,
                or no free port was found.
            UPnPError: any other fault.
        """
        if self._closed:
            raise RuntimeError("this PortMapper is closed")
        proto = Protocol.parse(protocol)
        if not isinstance(internal_port, int) or not 1 <= internal_port <= 65535:
            raise ValueError(f"internal_port must be in 1..65535, not {internal_port!r}")
        if external_port is not None and not 1 <= external_port <= 65535:
            raise ValueError(f"external_port must be in 1..65535, not {external_port!r}")
        if not isinstance(lease, int) or lease < 0:
            raise ValueError(f"lease must be whole seconds >= 0, not {lease!r}")
        client_ip = internal_client or self.client.local_address()
        wanted = external_port or internal_port

        async with self._lock:
            # The external address is only reported, so it is fetched alongside the
            # table, add and verify rather than before them: one round trip less.
            ext_task = asyncio.ensure_future(self._external_ip())
            try:
                table = await self.table()
                port, granted_lease, permanent_only = await self._add(
                    table, proto, wanted, internal_port, client_ip, description, lease, strict
                )
                entry = await self._verify(proto, port, internal_port, client_ip)
                ext_ip = await ext_task
            finally:
                if not ext_task.done():
                    await stop_task(ext_task)
                elif not ext_task.cancelled():
                    ext_task.exception()  # retrieved: the error that stopped the map wins
            try:
                # Only once the new mapping works: a failed map must not cost a working one.
                await self._remove_stale(table, proto, internal_port, client_ip, description, port)
            except asyncio.CancelledError:
                # The caller will never see this mapping: do not leave it behind.
                await self._cleanup_uncertain(proto, port, client_ip)
                raise
            mapping = Mapping(
                external_ip=ext_ip,
                external_port=port,
                internal_client=client_ip,
                internal_port=internal_port,
                protocol=proto,
                lease=entry.lease if entry.lease or granted_lease else 0,
                description=description,
                gateway=self.client.location,
                permanent_only=permanent_only,
            )
            if managed:
                previous = self._managed.pop((proto, port), None)
                if previous is not None and previous.task is not None:
                    await stop_task(previous.task)  # the same mapping again: one renewal
                record = _Managed(mapping, granted_lease)
                self._managed[(proto, port)] = record
                record.task = asyncio.create_task(
                    self._renew_loop(record), name=f"aioigd-renew-{proto.value}-{port}"
                )
            return mapping

    async def _external_ip(self) -> str | None:
        loop = asyncio.get_running_loop()
        cached = self._ext_ip
        if cached is not None and loop.time() - cached[1] < EXTERNAL_IP_TTL:
            return cached[0]
        try:
            address: str | None = await self.client.get_external_ip_address()
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
            and (p, port) not in self._managed
        ]
        for entry in stale:
            log.info("removing our stale mapping %s %d", proto.value, entry.external_port)
            try:
                await self.client.delete_port_mapping(entry.external_port, proto)
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
        holder = table.get((proto, wanted))
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
                if strict:
                    raise PortInUse(f"{proto.value} port {port} is taken: {exc}") from exc
                self._remember(
                    PortMappingEntry(port, proto, 0, "?", description="(held by another client)")
                )
        if self.client.is_v2 and not strict:
            # Let the gateway choose (AddAnyPortMapping, WANIPConnection:2 §2.5.16).
            port = await self._guarded(
                proto,
                wanted,
                client_ip,
                self.client.add_any_port_mapping(
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
                self.client.add_port_mapping(
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
                self.client.add_port_mapping(
                    port, proto, internal_port, client_ip, description=description, lease=0
                ),
            )
            return 0

    async def _guarded(
        self, proto: Protocol, port: int, client_ip: str, add: Coroutine[Any, Any, _T]
    ) -> _T:
        """Run an add; if cancelled or cut off mid-way, delete what it may have created."""
        try:
            return await add
        except (asyncio.CancelledError, IGDConnectionError):
            await self._cleanup_uncertain(proto, port, client_ip)
            raise

    async def _cleanup_uncertain(self, proto: Protocol, port: int, client_ip: str) -> None:
        try:
            async with asyncio.timeout(CLEANUP_TIMEOUT):
                entry = await self.client.get_specific_port_mapping_entry(port, proto)
                if entry.internal_client == client_ip:
                    await self.client.delete_port_mapping(port, proto)
                    self._forget(proto, port)
        except (IGDError, TimeoutError, asyncio.CancelledError) as exc:
            log.debug("cleanup of %s %d after an interrupted add: %r", proto.value, port, exc)

    async def _verify(
        self, proto: Protocol, port: int, internal_port: int, client_ip: str
    ) -> PortMappingEntry:
        try:
            entry = await self._guarded_verify(proto, port, client_ip)
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

    async def _guarded_verify(self, proto: Protocol, port: int, client_ip: str) -> PortMappingEntry:
        try:
            return await self.client.get_specific_port_mapping_entry(port, proto)
        except BaseException as exc:
            if not isinstance(exc, UPnPError):
                await self._cleanup_uncertain(proto, port, client_ip)
            raise

    # -- renewal ------------------------------------------------------------
    async def renew(self, mapping: Mapping) -> Mapping:
        """Re-add ``mapping`` now (extends its lease; re-creates it after a router reboot)."""
        record = self._managed.get((mapping.protocol, mapping.external_port))
        requested = record.requested_lease if record else mapping.lease
        await self.client.add_port_mapping(
            mapping.external_port,
            mapping.protocol,
            mapping.internal_port,
            mapping.internal_client,
            description=mapping.description,
            lease=requested,
        )
        renewed = replace(mapping, lease=requested)
        if record is not None:
            record.mapping = renewed
        self._remember(
            PortMappingEntry(
                mapping.external_port,
                mapping.protocol,
                mapping.internal_port,
                mapping.internal_client,
                description=mapping.description,
                lease=requested,
            )
        )
        return renewed

    async def _renew_loop(self, record: _Managed) -> None:
        loop = asyncio.get_running_loop()
        granted_at = loop.time()
        while True:
            if record.failures:
                delay = retry_delay(record.failures, record.mapping.lease)
            else:
                delay = renew_delay(record.mapping.lease, elapsed=loop.time() - granted_at)
            await asyncio.sleep(delay)
            try:
                await self.renew(record.mapping)
                record.failures, record.last_error = 0, None
                granted_at = loop.time()
            except IGDError as exc:
                record.failures += 1
                record.last_error = exc
                log.warning("renewing %s failed (%s); retrying", record.mapping.external_port, exc)

    def active(self) -> list[Mapping]:
        """The managed mappings, as last renewed."""
        return [r.mapping for r in self._managed.values()]

    # -- release ------------------------------------------------------------
    async def release(self, mapping: Mapping, *, timeout: float = CLEANUP_TIMEOUT) -> None:
        """Stop renewing ``mapping`` and delete it (within ``timeout`` seconds).

        A cancellation during the delete lets it finish first (bounded), so a
        Ctrl-C at this point still leaves nothing on the gateway.
        """
        await finish(self._release(mapping, timeout), timeout)

    async def _release(self, mapping: Mapping, timeout: float) -> None:
        key = (mapping.protocol, mapping.external_port)
        record = self._managed.pop(key, None)
        if record is not None and record.task is not None:
            await stop_task(record.task)
        try:
            async with asyncio.timeout(timeout):
                await self.client.delete_port_mapping(mapping.external_port, mapping.protocol)
        except NoSuchEntryInArray:
            pass
        except TimeoutError:
            raise IGDConnectionError(
                f"deleting {mapping.protocol.value} {mapping.external_port} timed out"
            ) from None
        self._forget(mapping.protocol, mapping.external_port)

    async def close(self, *, release: bool = True) -> list[tuple[Mapping, IGDError]]:
        """Stop every renewal; delete every managed mapping unless ``release=False``.

        Never raises for a gateway that is gone: the mappings that could not be
        deleted are returned with the reason.
        """
        self._closed = True
        records = list(self._managed.values())
        for record in records:
            if record.task is not None:
                await stop_task(record.task)
        failed: list[tuple[Mapping, IGDError]] = []
        if release:
            results = await asyncio.gather(
                *(self.release(r.mapping) for r in records), return_exceptions=True
            )
            for record, result in zip(records, results, strict=True):
                if isinstance(result, IGDError):
                    failed.append((record.mapping, result))
                elif isinstance(result, BaseException):
                    raise result
        self._managed.clear()
        return failed

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
    ) -> AsyncIterator[Mapping]:
        """Map on enter, renew while inside, delete on exit, error or cancellation."""
        mapping = await self.map_port(
            internal_port,
            external_port,
            protocol,
            lease=lease,
            description=description,
            internal_client=internal_client,
            strict=strict,
        )
        try:
            yield mapping
        finally:
            try:
                await self.release(mapping)
            except IGDError as exc:
                log.warning("could not delete %s: %s", mapping, exc)
