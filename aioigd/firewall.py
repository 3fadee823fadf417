"""IPv6 pinholes: WANIPv6FirewallControl:1 actions and managed pinholes.

miniupnpd (and the spec's recommended policy) only lets a host open pinholes
to itself: the request must come from the InternalClient address. So
:class:`FirewallControl` uses its own SOAP session bound to that address,
and the gateway must have been reached over IPv6 (an IPv6 control URL).
Pinholes are never permanent (1..86400 s): managed ones are renewed with
UpdatePinhole at half their lease and re-added if the gateway forgot them
(704); they are deleted on release, on close and on cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from types import TracebackType
from urllib.parse import urlsplit

from .errors import (
    ActionNotSupported,
    IGDConnectionError,
    IGDError,
    IGDTimeoutError,
    InvalidArgs,
    NoSuchPinhole,
    NoTrafficReceived,
)
from .mapper import CLEANUP_TIMEOUT, renew_delay, retry_delay
from .models import FirewallStatus, Pinhole, Protocol, Service
from .netutil import global_ipv6_for
from .proto import firewall as fw
from .proto.urls import url_host
from .session import DEFAULT_TIMEOUT, SoapSession
from .tasks import finish, stop_task

__all__ = ["FirewallControl", "FirewallUnavailable", "DEFAULT_PINHOLE_LEASE"]

log = logging.getLogger("aioigd")

DEFAULT_PINHOLE_LEASE = 3600


class FirewallUnavailable(IGDError):
    """The gateway's IPv6 firewall is off (nothing to open) or refuses inbound pinholes."""

    def __init__(self, message: str, status: FirewallStatus | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Managed:
    pinhole: Pinhole
    task: asyncio.Task[None] | None = None


def _key(p: Pinhole) -> tuple[int, Protocol, str | None, int]:
    """What identifies a pinhole across renewals (its UniqueID may change on re-add)."""
    return (p.internal_port, p.protocol, p.remote_host, p.remote_port)


class FirewallControl:
    """The WANIPv6FirewallControl service of one gateway.

    Args:
        service: the firewall service from the description (IPv6 control URL).
        location: the gateway's LOCATION (recorded in each :class:`Pinhole`).
        internal_client: this host's IPv6 address to open pinholes for; default:
            its global (else unique-local) address on the interface towards the gateway.
        timeout: per-request timeout.
    """

    def __init__(
        self,
        service: Service,
        location: str,
        *,
        internal_client: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
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
        self.session = SoapSession(host, timeout=timeout, local_addr=self.internal_client)
        self._managed: dict[tuple[int, Protocol, str | None, int], _Managed] = {}

    async def _call(self, action: str, args: list[tuple[str, str]] | None = None) -> dict[str, str]:
        return await self.session.call(
            self.service.control_url, self.service.service_type, action, args or []
        )

    # -- actions --------------------------------------------------------------
    async def get_firewall_status(self) -> FirewallStatus:
        """GetFirewallStatus."""
        return fw.parse_firewall_status(await self._call("GetFirewallStatus"))

    async def get_outbound_pinhole_timeout(
        self,
        internal_port: int,
        protocol: Protocol | str = Protocol.TCP,
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
                protocol=Protocol.parse(protocol),
                remote_host=remote_host,
                remote_port=remote_port,
            ),
        )
        return fw.parse_outbound_timeout(out)

    async def add_pinhole(
        self,
        internal_port: int,
        protocol: Protocol | str = Protocol.TCP,
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
                protocol=Protocol.parse(protocol),
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

    # -- managed pinholes ---------------------------------------------------------
    async def open_pinhole(
        self,
        internal_port: int,
        protocol: Protocol | str = Protocol.TCP,
        *,
        remote_host: str | None = None,
        remote_port: int = 0,
        lease: int = DEFAULT_PINHOLE_LEASE,
        managed: bool = True,
    ) -> Pinhole:
        """Check the firewall, open a pinhole to this host, renew it while managed.

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
        proto = Protocol.parse(protocol)
        try:
            unique_id = await self.add_pinhole(
                internal_port, proto, lease=lease, remote_host=remote_host, remote_port=remote_port
            )
        except asyncio.CancelledError:
            # The add may have gone through; without its UniqueID we cannot delete it,
            # but the same 5-tuple returns the same id, so ask once more and delete.
            await self._cleanup_uncertain(internal_port, proto, remote_host, remote_port)
            raise
        pinhole = Pinhole(
            unique_id=unique_id,
            internal_client=self.internal_client,
            internal_port=internal_port,
            protocol=proto,
            lease=lease,
            remote_host=remote_host,
            remote_port=remote_port,
            gateway=self.location,
        )
        if managed:
            record = _Managed(pinhole)
            self._managed[_key(pinhole)] = record
            record.task = asyncio.create_task(
                self._renew_loop(record), name=f"aioigd-pinhole-{unique_id}"
            )
        return pinhole

    async def _cleanup_uncertain(
        self, internal_port: int, proto: Protocol, remote_host: str | None, remote_port: int
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

    async def renew(self, pinhole: Pinhole) -> Pinhole:
        """Extend ``pinhole`` by its lease; re-add it if the gateway forgot it (704)."""
        record = self._managed.get(_key(pinhole))
        try:
            await self.update_pinhole(pinhole.unique_id, pinhole.lease)
            return pinhole
        except (NoSuchPinhole, InvalidArgs):
            # miniupnpd 2.3.1 answers 402, not 704, for a UniqueID it no longer has.
            unique_id = await self.add_pinhole(
                pinhole.internal_port,
                pinhole.protocol,
                lease=pinhole.lease,
                remote_host=pinhole.remote_host,
                remote_port=pinhole.remote_port,
            )
        renewed = replace(pinhole, unique_id=unique_id)
        if record is not None:
            record.pinhole = renewed
        return renewed

    async def _renew_loop(self, record: _Managed) -> None:
        failures = 0
        while True:
            lease = record.pinhole.lease
            await asyncio.sleep(retry_delay(failures, lease) if failures else renew_delay(lease))
            try:
                record.pinhole = await self.renew(record.pinhole)
                failures = 0
            except IGDError as exc:
                failures += 1
                log.warning("renewing pinhole %d failed (%s)", record.pinhole.unique_id, exc)

    def active(self) -> list[Pinhole]:
        """The managed pinholes, as last renewed."""
        return [r.pinhole for r in self._managed.values()]

    async def release(self, pinhole: Pinhole, *, timeout: float = CLEANUP_TIMEOUT) -> None:
        """Stop renewing ``pinhole`` and delete it (704 = already gone, fine).

        A cancellation during the delete lets it finish first (bounded).
        """
        await finish(self._release(pinhole, timeout), timeout)

    async def _release(self, pinhole: Pinhole, timeout: float) -> None:
        record = self._managed.pop(_key(pinhole), None)
        unique_id = record.pinhole.unique_id if record else pinhole.unique_id
        if record is not None and record.task is not None:
            await stop_task(record.task)
        try:
            async with asyncio.timeout(timeout):
                await self.delete_pinhole(unique_id)
        except (NoSuchPinhole, InvalidArgs):
            pass  # gone already (miniupnpd 2.3.1 says 402 for an unknown UniqueID)
        except TimeoutError:
            raise IGDTimeoutError(f"deleting pinhole {unique_id} timed out") from None

    async def close(self, *, release: bool = True) -> list[tuple[Pinhole, IGDError]]:
        """Stop renewals, delete managed pinholes (unless ``release=False``), close the session."""
        failed: list[tuple[Pinhole, IGDError]] = []
        try:
            records = list(self._managed.values())
            for record in records:
                if record.task is not None:
                    await stop_task(record.task)
                    record.task = None
            if release:
                for record in records:
                    try:
                        await self.release(record.pinhole)
                    except IGDError as exc:
                        failed.append((record.pinhole, exc))
            self._managed.clear()
        finally:
            await self.session.close()
        return failed

    @contextlib.asynccontextmanager
    async def pinhole(
        self,
        internal_port: int,
        protocol: Protocol | str = Protocol.TCP,
        *,
        remote_host: str | None = None,
        remote_port: int = 0,
        lease: int = DEFAULT_PINHOLE_LEASE,
    ) -> AsyncIterator[Pinhole]:
        """Open on enter, renew inside, delete on exit, error or cancellation."""
        hole = await self.open_pinhole(
            internal_port, protocol, remote_host=remote_host, remote_port=remote_port, lease=lease
        )
        try:
            yield hole
        finally:
            try:
                await self.release(hole)
            except IGDError as exc:
                log.warning("could not delete pinhole %d: %s", hole.unique_id, exc)

    async def __aenter__(self) -> FirewallControl:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
