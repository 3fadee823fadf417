"""IPv6 pinholes: WANIPv6FirewallControl:1 actions and managed pinholes.

miniupnpd (and the spec's recommended policy) only lets a host open pinholes
to itself: the request must come from the InternalClient address. So
:class:`FirewallControl` uses its own SOAP session bound to that address,
and the gateway must have been reached over IPv6 (an IPv6 control URL).
Pinholes are never permanent (1..86400 s): kept ones are handed to a
:class:`~aioigd.keeper.Keeper` (renewed with UpdatePinhole on their lease,
re-added if the gateway forgot them, found again by the gateway's UDN when it
comes back on a new HTTP port); they are deleted on release, on close and on
cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Hashable
from dataclasses import replace
from types import TracebackType
from urllib.parse import urlsplit

from .discovery import SearchOptions, rediscover, rediscovery_options
from .errors import (
    ActionNotSupported,
    FirewallUnavailable,
    IGDConnectionError,
    IGDError,
    InvalidArgs,
    NoSuchPinhole,
    NoTrafficReceived,
    UPnPError,
)
from .gateway import Gateway
from .keeper import (
    CLEANUP_TIMEOUT,
    EventHub,
    EventIterator,
    Keeper,
    Kept,
    KeptEndpoint,
    Leftover,
    Outcome,
    warn_leftovers,
)
from .lifecycle import Action, Event
from .models import FirewallStatus, Pinhole, Service, Transport, TransportLike
from .netutil import global_ipv6_for
from .proto import firewall as fw
from .proto.table import check_action
from .proto.urls import url_host
from .session import DEFAULT_TIMEOUT, SoapSession

__all__ = ["FirewallControl", "FirewallUnavailable", "KeptPinhole", "DEFAULT_PINHOLE_LEASE"]

log = logging.getLogger("aioigd")
_traffic = logging.getLogger("aioigd.traffic")

DEFAULT_PINHOLE_LEASE = 3600


def _key(p: Pinhole) -> tuple[int, Transport, str | None, int]:
    """What identifies a pinhole across renewals (its UniqueID may change on re-add)."""
    return (p.internal_port, p.protocol, p.remote_host, p.remote_port)


def _describe(p: Pinhole) -> str:
    return f"pinhole {p.unique_id} ({p.protocol.value} [{p.internal_client}]:{p.internal_port})"


class KeptPinhole(KeptEndpoint[Pinhole]):
    """A pinhole aioigd keeps open; its fields are those of :attr:`current`."""

    @property
    def unique_id(self) -> int:
        """The gateway's UniqueID (changes when the pinhole had to be re-added)."""
        return self.current.unique_id


class FirewallControl:
    """The WANIPv6FirewallControl service of one gateway.

    Args:
        service: the firewall service from the description (IPv6 control URL).
        location: the gateway's LOCATION (recorded in each :class:`Pinhole`).
        internal_client: this host's IPv6 address to open pinholes for; default:
            its global (else unique-local) address on the interface towards the gateway.
        http_timeout: per-request timeout.
        udn: the gateway's UDN, to find it again when it stops answering.
        rediscovery: how to search for it then (default: unicast M-SEARCH to
            its address, and multicast on ``[ff02::c]``).
    """

    def __init__(
        self,
        service: Service,
        location: str,
        *,
        internal_client: str | None = None,
        http_timeout: float = DEFAULT_TIMEOUT,
        udn: str = "",
        rediscovery: SearchOptions | None = None,
    ) -> None:
        host = url_host(service.control_url)
        if ":" not in host:
            raise ActionNotSupported(
                "pinholes must be requested over IPv6, but the firewall control URL is "
                f"{service.control_url}; find the gateway over IPv6 (discover(ipv6=True))"
            )
        self.service = service
        self.location = location
        self.gateway_host = host
        raw_host = (urlsplit(service.control_url).hostname or host).replace("%25", "%")
        try:
            client = internal_client or global_ipv6_for(raw_host)
        except OSError as exc:
            raise IGDConnectionError(f"cannot pick this host's IPv6 address: {exc}") from None
        self.internal_client = fw.canonical_ipv6(client, "internal_client")
        self.session = SoapSession(host, timeout=http_timeout, local_addr=self.internal_client)
        self.udn = udn
        self.rediscovery = rediscovery
        self._hub: EventHub[Event[Pinhole]] = EventHub()
        self._keeper: Keeper[Pinhole] = Keeper(self, name=f"aioigd-pinholes-{host}", hub=self._hub)

    @classmethod
    def from_gateway(
        cls,
        gateway: Gateway,
        *,
        internal_client: str | None = None,
        http_timeout: float | None = None,
        rediscovery: SearchOptions | None = None,
    ) -> FirewallControl:
        """The IPv6 pinhole service of ``gateway`` (which must have been reached over IPv6).

        Raises:
            ActionNotSupported: no WANIPv6FirewallControl service, or only an IPv4 URL.
        """
        if gateway.firewall is None:
            raise ActionNotSupported(f"{gateway.location} has no WANIPv6FirewallControl service")
        return cls(
            gateway.firewall,
            gateway.location,
            internal_client=internal_client,
            http_timeout=gateway.session.timeout if http_timeout is None else http_timeout,
            udn=gateway.udn,
            rediscovery=rediscovery,
        )

    async def _call(self, action: str, args: list[tuple[str, str]] | None = None) -> dict[str, str]:
        check_action(action, self.service)
        try:
            return await self.session.call(
                self.service.control_url, self.service.service_type, action, args or []
            )
        except UPnPError as exc:
            # The traffic log's "HTTP 500 n bytes" line says that it failed; this, why.
            _traffic.debug("<- %s fault: %s", self.service.control_url, exc)
            raise

    # -- actions --------------------------------------------------------------
    async def get_firewall_status(self) -> FirewallStatus:
        """GetFirewallStatus."""
        return fw.parse_firewall_status(await self._call("GetFirewallStatus"))

    async def get_outbound_pinhole_timeout(
        self,
        internal_port: int,
        protocol: TransportLike = Transport.TCP,
        *,
        remote_host: str | None = None,
        remote_port: int = 0,
    ) -> int:
        """GetOutboundPinholeTimeout (optional; miniupnpd does not implement it)."""
        out = await self._call(
            "GetOutboundPinholeTimeout",
            fw.outbound_timeout_args(
                internal_client=self.internal_client,
                internal_port=internal_port,
                protocol=Transport.parse(protocol),
                remote_host=remote_host,
                remote_port=remote_port,
            ),
        )
        return fw.parse_outbound_timeout(out)

    async def add_pinhole(
        self,
        internal_port: int,
        protocol: TransportLike = Transport.TCP,
        *,
        lease: int = DEFAULT_PINHOLE_LEASE,
        remote_host: str | None = None,
        remote_port: int = 0,
    ) -> int:
        """AddPinhole → UniqueID (the same 5-tuple again extends it and returns its id)."""
        out = await self._call(
            "AddPinhole",
            fw.pinhole_args(
                internal_client=self.internal_client,
                internal_port=internal_port,
                protocol=Transport.parse(protocol),
                lease=lease,
                remote_host=remote_host,
                remote_port=remote_port,
            ),
        )
        return fw.parse_unique_id(out)

    async def update_pinhole(self, unique_id: int, lease: int) -> None:
        """UpdatePinhole: set a new lease (1..86400 s)."""
        await self._call("UpdatePinhole", fw.update_args(unique_id, lease))

    async def delete_pinhole(self, unique_id: int) -> None:
        """DeletePinhole."""
        await self._call("DeletePinhole", fw.id_args(unique_id))

    async def get_pinhole_packets(self, unique_id: int) -> int:
        """GetPinholePackets: packets that went through the pinhole."""
        return fw.parse_pinhole_packets(
            await self._call("GetPinholePackets", fw.id_args(unique_id))
        )

    async def check_pinhole_working(self, unique_id: int) -> bool:
        """CheckPinholeWorking; False when no traffic has passed yet (709)."""
        try:
            out = await self._call("CheckPinholeWorking", fw.id_args(unique_id))
        except NoTrafficReceived:
            return False
        return fw.parse_is_working(out)

    # -- kept pinholes ------------------------------------------------------------
    async def open_pinhole(
        self,
        internal_port: int,
        protocol: TransportLike = Transport.TCP,
        *,
        remote_host: str | None = None,
        remote_port: int = 0,
        lease: int = DEFAULT_PINHOLE_LEASE,
    ) -> Pinhole:
        """Check the firewall and open a pinhole to this host, once (not renewed).

        Raises:
            FirewallUnavailable: the firewall is disabled (inbound already passes) or
                inbound pinholes are not allowed.
            UPnPError: any fault (606 when the request did not come from the client).
        """
        status = await self.get_firewall_status()
        if not status.firewall_enabled:
            raise FirewallUnavailable(
                "the gateway's IPv6 firewall is disabled: inbound traffic is not filtered, "
                "no pinhole is needed",
                status,
            )
        if not status.inbound_pinhole_allowed:
            raise FirewallUnavailable("the gateway does not allow inbound pinholes", status)
        proto = Transport.parse(protocol)
        try:
            unique_id = await self.add_pinhole(
                internal_port, proto, lease=lease, remote_host=remote_host, remote_port=remote_port
            )
        except asyncio.CancelledError:
            # The add may have gone through; without its UniqueID we cannot delete it,
            # but the same 5-tuple returns the same id, so ask once more and delete.
            await self._cleanup_uncertain(internal_port, proto, remote_host, remote_port)
            raise
        return Pinhole(
            unique_id=unique_id,
            internal_client=self.internal_client,
            internal_port=internal_port,
            protocol=proto,
            lease=lease,
            remote_host=remote_host,
            remote_port=remote_port,
            gateway=self.location,
        )

    async def keep_pinhole(
        self,
        internal_port: int,
        protocol: TransportLike = Transport.TCP,
        *,
        remote_host: str | None = None,
        remote_port: int = 0,
        lease: int = DEFAULT_PINHOLE_LEASE,
    ) -> KeptPinhole:
        """Open a pinhole like :meth:`open_pinhole` and keep it open until released."""
        hole = await self.open_pinhole(
            internal_port, protocol, remote_host=remote_host, remote_port=remote_port, lease=lease
        )
        for old in self._keeper.kept():
            if _key(old.current) == _key(hole):
                self._keeper.forget(old)  # the same pinhole again: keep one
        kept = self._keeper.keep(hole, requested_lease=lease, granted_lease=lease, cls=KeptPinhole)
        assert isinstance(kept, KeptPinhole)
        return kept

    async def _cleanup_uncertain(
        self, internal_port: int, proto: Transport, remote_host: str | None, remote_port: int
    ) -> None:
        try:
            async with asyncio.timeout(CLEANUP_TIMEOUT):
                unique_id = await self.add_pinhole(
                    internal_port,
                    proto,
                    lease=fw.MIN_PINHOLE_LEASE,
                    remote_host=remote_host,
                    remote_port=remote_port,
                )
                await self.delete_pinhole(unique_id)
        except (IGDError, TimeoutError, asyncio.CancelledError) as exc:
            log.debug("cleanup after an interrupted AddPinhole: %r", exc)

    # -- Backend (for the keeper) -------------------------------------------------
    def endpoint(self, subject: Pinhole) -> Hashable:
        return (subject.internal_client, subject.internal_port)

    def describe(self, subject: Pinhole) -> str:
        return _describe(subject)

    async def refresh(self, kept: Kept[Pinhole], action: Action) -> Outcome[Pinhole]:
        """UpdatePinhole (a check is a renewal: there is no cheaper question);
        AddPinhole again when the gateway forgot it."""
        pinhole = kept.current
        lease = kept.requested_lease
        try:
            await self.update_pinhole(pinhole.unique_id, lease)
            return Outcome(replace(pinhole, lease=lease, gateway=self.location), lease)
        except (NoSuchPinhole, InvalidArgs):
            # miniupnpd 2.3.1 answers 402, not 704, for a UniqueID it no longer has.
            unique_id = await self.add_pinhole(
                pinhole.internal_port,
                pinhole.protocol,
                lease=lease,
                remote_host=pinhole.remote_host,
                remote_port=pinhole.remote_port,
            )
        renewed = replace(pinhole, unique_id=unique_id, lease=lease, gateway=self.location)
        return Outcome(renewed, lease, recreated=True)

    async def remove(self, subject: Pinhole, *, verify: bool = False) -> None:
        """DeletePinhole (704, or miniupnpd's 402: gone already). A UniqueID names
        our own pinhole only, so there is nothing to verify."""
        with contextlib.suppress(NoSuchPinhole, InvalidArgs):
            await self.delete_pinhole(subject.unique_id)

    async def reconnect(self) -> bool:
        """Find the gateway again by its UDN; point the session at its new control URL."""
        if not self.udn:
            return False
        options = rediscovery_options(
            self.gateway_host, given=self.rediscovery, http_timeout=self.session.timeout
        )
        gw = await rediscover(self.udn, options)
        try:
            service = gw.firewall
            if service is None or service.control_url == self.service.control_url:
                return service is not None
            log.info("%s is back at %s", self.udn, gw.location)
            session = SoapSession(
                url_host(service.control_url),
                timeout=self.session.timeout,
                local_addr=self.internal_client,
            )
            old, self.session = self.session, session
            self.service, self.location = service, gw.location
            self.gateway_host = url_host(service.control_url)
            await old.close()
            return True
        finally:
            await gw.close()

    # -- the application's view ------------------------------------------------
    def kept(self) -> list[KeptPinhole]:
        """The pinholes being kept, in creation order."""
        return [k for k in self._keeper.kept() if isinstance(k, KeptPinhole)]

    def active(self) -> list[Pinhole]:
        """The kept pinholes' current values."""
        return [k.current for k in self._keeper.kept()]

    def events(self) -> EventIterator[Event[Pinhole]]:
        """Events of every pinhole kept from now on, until :meth:`close`."""
        return self._hub.subscribe()

    async def release(
        self, pinhole: Kept[Pinhole] | Pinhole, *, cleanup_timeout: float = CLEANUP_TIMEOUT
    ) -> None:
        """Stop keeping ``pinhole`` and delete it (gone already is fine).

        A cancellation during the delete lets it finish first (bounded).

        Raises:
            IGDError: the deletion failed (the gateway is gone, or timed out).
        """
        if isinstance(pinhole, Kept):
            kept: Kept[Pinhole] | None = pinhole
        else:
            key = _key(pinhole)
            kept = next((k for k in self._keeper.kept() if _key(k.current) == key), None)
        if kept is None:
            assert isinstance(pinhole, Pinhole)
            leftover = await self._keeper.delete(pinhole, cleanup_timeout=cleanup_timeout)
        else:
            leftover = await self._keeper.release(kept, cleanup_timeout=cleanup_timeout)
        if leftover is not None:
            raise leftover.error

    async def close(self, *, release: bool = True) -> list[Leftover[Pinhole]]:
        """Stop keeping; delete kept pinholes (unless ``release=False``); close the session.

        Returns what could not be deleted, with the reason.
        """
        try:
            return await self._keeper.close(release=release)
        finally:
            self._hub.close()
            await self.session.close()

    @contextlib.asynccontextmanager
    async def pinhole(
        self,
        internal_port: int,
        protocol: TransportLike = Transport.TCP,
        *,
        remote_host: str | None = None,
        remote_port: int = 0,
        lease: int = DEFAULT_PINHOLE_LEASE,
    ) -> AsyncIterator[KeptPinhole]:
        """Open on enter, keep open inside, delete on exit, error or cancellation."""
        hole = await self.keep_pinhole(
            internal_port, protocol, remote_host=remote_host, remote_port=remote_port, lease=lease
        )
        try:
            yield hole
        finally:
            warn_leftovers([await self._keeper.release(hole)])

    async def __aenter__(self) -> FirewallControl:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        warn_leftovers(await self.close())
