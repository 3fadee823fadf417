"""PortMapper: the mapping flow of :mod:`aioigd.mapflow`, and the mappings kept alive.

:meth:`PortMapper.map_port` maps once (the seed's flow, in bounded requests).

:meth:`PortMapper.keep` (and :meth:`PortMapper.mapped`) hand the mapping to a
:class:`~aioigd.keeper.Keeper`: renewed on the lease the gateway granted,
checked between renewals (still there? same external address?), re-created
after a router reboot, found again by its UDN when the router comes back on
another HTTP port, and every change told to the application as an event.

Invariants: we never delete an entry whose internal client is not ours; a
renewal can never re-create what a release just deleted (the keeper's task is
stopped while anything is released).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Hashable
from dataclasses import replace
from typing import Any

from .discovery import SearchOptions, rediscover, rediscovery_options
from .errors import (
    ConflictInMappingEntry,
    ConflictWithOtherMechanisms,
    NoSuchEntryInArray,
    PortInUse,
    RemoteProtocolError,
    UPnPError,
)
from .gateway import DEFAULT_DESCRIPTION, DEFAULT_LEASE, Gateway
from .keeper import Kept, Outcome
from .keptmapping import DEFAULT_CHECK_INTERVAL, KeptMapping, MappingKeeper, describe_mapping
from .lifecycle import Action, effective_lease
from .mapflow import MapFlow
from .models import PortMapping, PortMappingEntry, Transport, TransportLike
from .tasks import settle

__all__ = [
    "PortMapper",
    "KeptMapping",
    "PortInUse",
    "DEFAULT_LEASE",
    "DEFAULT_DESCRIPTION",
    "DEFAULT_CHECK_INTERVAL",
]

log = logging.getLogger("aioigd")

_TableKey = tuple[Transport, int]


class PortMapper(MappingKeeper):
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
        #: The one-shot flow and what it learned of the gateway's table.
        self.flow = MapFlow(gateway, is_kept=self._is_kept)
        self.rediscovery = rediscovery
        self._owned: list[Gateway] = [gateway] if own_gateway else []
        super().__init__(self, name=f"aioigd-keeper-{gateway.host}", check_interval=check_interval)

    @property
    def gateway(self) -> Gateway:
        """The gateway every request goes to (a new one after it came back elsewhere)."""
        return self.flow.gateway

    async def table(self, *, refresh: bool = False) -> dict[_TableKey, PortMappingEntry]:
        """What is known of the gateway's mapping table (see :meth:`MapFlow.table`)."""
        return await self.flow.table(refresh=refresh)

    async def prepare(self, wanted: int, protocol: TransportLike = Transport.TCP) -> str | None:
        """Ask who holds ``wanted`` and the external address ahead of a map (see
        :meth:`MapFlow.prepare`); returns the external address."""
        self._check_open()
        return await self.flow.prepare(protocol, wanted)

    async def _map(self, *args: Any, **kwargs: Any) -> tuple[PortMapping, int]:
        self._check_open()
        return await self.flow.map(*args, **kwargs)

    # -- Backend (for the keeper) -------------------------------------------------
    @property
    def location(self) -> str:
        """The current gateway's LOCATION."""
        return self.gateway.location

    def endpoint(self, subject: PortMapping) -> Hashable:
        return (subject.external_ip, subject.external_port)

    def describe(self, subject: PortMapping) -> str:
        return describe_mapping(subject)

    # -- mapping ------------------------------------------------------------
    async def map_port(
        self,
        internal_port: int,
        *,
        external_port: int | None = None,
        protocol: TransportLike = Transport.TCP,
        lease: int = DEFAULT_LEASE,
        description: str = DEFAULT_DESCRIPTION,
        internal_client: str | None = None,
        strict: bool = False,
        remove_stale: bool = False,
    ) -> PortMapping:
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
            The verified :class:`PortMapping`; its ``lease`` is what renewals would be
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
        *,
        external_port: int | None = None,
        protocol: TransportLike = Transport.TCP,
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
        return self._start_keeping(
            mapping,
            requested_lease=0 if mapping.permanent_only else lease,
            granted=granted,
            strict=strict,
        )

    # -- keeping (the keeper's backend) -----------------------------------------
    def _is_kept(self, proto: Transport, port: int) -> bool:
        return any(
            k.current.protocol is proto and k.current.external_port == port
            for k in self._keeper.kept()
        )

    async def refresh(self, kept: Kept[PortMapping], action: Action) -> Outcome[PortMapping]:
        """Renew or check one kept mapping (see :class:`~aioigd.keeper.Backend`).

        A check asks whether the entry is still ours and what the external address
        is; a renewal also re-adds it. An entry the gateway forgot (reboot) is
        re-added either way; one another host took moves to another port, or
        ends the mapping (``PortInUse``) when it is strict.
        """
        m = kept.current
        gw = self.gateway
        ext_task = asyncio.ensure_future(self.flow.external_ip(max_age=0.0))
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
                    granted = await self.flow.add_one(
                        m.protocol,
                        m.external_port,
                        m.internal_port,
                        m.internal_client,
                        m.description,
                        requested,
                    )
                except (ConflictInMappingEntry, ConflictWithOtherMechanisms):
                    return await self._move(kept, None)
                self.flow.remember(
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
            await settle(ext_task)
        lease = m.lease if granted is None else effective_lease(kept.requested_lease, granted)
        subject = replace(m, external_ip=ext_ip, lease=lease, gateway=gw.location)
        return Outcome(subject, granted, recreated=entry is None)

    async def _move(
        self, kept: Kept[PortMapping], holder: PortMappingEntry | None
    ) -> Outcome[PortMapping]:
        m = kept.current
        who = f"{holder.internal_client}:{holder.internal_port}" if holder else "another client"
        if kept.strict:
            raise PortInUse(f"{m.protocol.value} port {m.external_port} was taken by {who}", holder)
        log.info(
            "%s port %d was taken by %s; mapping another", m.protocol.value, m.external_port, who
        )
        self.flow.forget_table()  # what we knew of the table is out of date
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

    async def remove(self, subject: PortMapping, *, verify: bool = False) -> None:
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
        self.flow.forget(subject.protocol, subject.external_port)

    async def reconnect(self) -> bool:
        """Find the gateway again by its UDN; a new LOCATION (new HTTP port after a
        reboot) gives a new :class:`Gateway` that every later request goes to."""
        old = self.gateway
        if not old.udn:
            return False
        options = rediscovery_options(
            old.host, given=self.rediscovery, http_timeout=old.session.timeout
        )
        found = await rediscover(old.udn, options)
        if found.location == old.location:
            await found.close()
            return True
        log.info("%s is back at %s", old.udn, found.location)
        self.flow = MapFlow(found, is_kept=self._is_kept)  # nothing learned there yet
        self._owned.append(found)
        if old in self._owned:
            self._owned.remove(old)
            await old.close()
        return True

    async def _close_transport(self) -> None:
        owned, self._owned = self._owned, []
        for gw in owned:
            await gw.close()

    @contextlib.asynccontextmanager
    async def mapped(
        self,
        internal_port: int,
        *,
        external_port: int | None = None,
        protocol: TransportLike = Transport.TCP,
        lease: int = DEFAULT_LEASE,
        description: str = DEFAULT_DESCRIPTION,
        internal_client: str | None = None,
        strict: bool = False,
        remove_stale: bool = False,
    ) -> AsyncIterator[KeptMapping]:
        """Map on enter, keep alive inside, delete on exit, error or cancellation."""
        kept = await self.keep(
            internal_port,
            external_port=external_port,
            protocol=protocol,
            lease=lease,
            description=description,
            internal_client=internal_client,
            strict=strict,
            remove_stale=remove_stale,
        )
        try:
            yield kept
        finally:
            await self._release_quietly(kept)
