"""PmpMapper: port mappings through PCP or NAT-PMP, kept alive by the same keeper as UPnP's.

It has :class:`~aioigd.PortMapper`'s shape (``map_port``, ``keep``, ``mapped``,
``release``, ``close``, ``events``), so :class:`~aioigd.MultiLayerMapper` can
use either at any layer. The mapping is for ``internal_client`` — the source
address the gateway sees: this host at the first layer, the lower NAT's
external address above it — and its internal port.

Renewals are MAP requests with the same nonce (the gateway returns the same
mapping, or creates it again after a restart). Every answer's epoch is
checked; when one shows that the gateway lost its state, every mapping kept
on it is renewed at once and reported ``recovered``.

The nonce is derived from (client address, protocol, internal port) and a
secret (default: a fixed one), so that another aioigd process — a later
``aioigd delete`` — can renew or delete the mapping; like UPnP IGD, that lets
any host able to send from the client's address do the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator, Hashable
from dataclasses import replace

from .errors import PmpNotAuthorized
from .gateway import DEFAULT_DESCRIPTION, DEFAULT_LEASE
from .keeper import Kept, Outcome
from .keptmapping import DEFAULT_CHECK_INTERVAL, KeptMapping, MappingKeeper, describe_mapping
from .lifecycle import Action, State, effective_lease
from .models import PortMapping, Transport, TransportLike
from .pmp import BACKGROUND_TIMEOUT, FOREGROUND_TIMEOUT, PmpClient, PmpGrant
from .proto import pcp

__all__ = ["PmpMapper", "PERMANENT_LIFETIME", "derive_nonce"]

log = logging.getLogger("aioigd")

#: What is asked for when a permanent mapping (lease 0) is wanted: PCP and NAT-PMP
#: have no permanent mappings (lifetime 0 deletes), so a day, renewed.
PERMANENT_LIFETIME = 86400
_DEFAULT_SECRET = b"aioigd PCP nonce v1"


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def _key(m: PortMapping) -> tuple[Transport, str, int]:
    return (m.protocol, m.internal_client, m.internal_port)


def derive_nonce(secret: bytes, client_ip: str, protocol: Transport, internal_port: int) -> bytes:
    """The 12-byte PCP nonce for one internal endpoint."""
    message = f"{client_ip}|{protocol.value}|{internal_port}".encode()
    return hmac.new(secret, message, hashlib.sha256).digest()[: pcp.NONCE_SIZE]


class PmpMapper(MappingKeeper):
    """Creates and keeps port mappings on one PCP or NAT-PMP gateway.

    Args:
        client: the gateway's client (opened on first use; closed by :meth:`close`
            unless ``own_client`` is False).
        check_interval: seconds between checks between renewals (``None``: only renew).
        secret: mixed into the mapping nonces (default: a fixed one, see above).
        request_timeout: seconds a foreground request (map, delete) waits for an answer.
        behind_nat: the gateway sees this host through another NAT (an upper layer):
            ``internal_client`` is then that NAT's external address, the source the
            gateway sees. Otherwise an ``internal_client`` other than this host is a
            PCP THIRD_PARTY mapping (NAT-PMP cannot make one).
    """

    def __init__(
        self,
        client: PmpClient,
        *,
        check_interval: float | None = DEFAULT_CHECK_INTERVAL,
        own_client: bool = True,
        secret: bytes = _DEFAULT_SECRET,
        request_timeout: float = FOREGROUND_TIMEOUT,
        behind_nat: bool = False,
    ) -> None:
        self.client = client
        self.behind_nat = behind_nat
        self.request_timeout = request_timeout
        self._own = own_client
        self._secret = secret
        #: Per internal endpoint: the client's restart count when it was last mapped.
        self._seen: dict[tuple[Transport, str, int], int] = {}
        self._restarts_handled = client.restarts
        super().__init__(
            self, name=f"aioigd-{client.mechanism}-{client.host}", check_interval=check_interval
        )

    @property
    def mechanism(self) -> str:
        """``"pcp"`` or ``"natpmp"``."""
        return self.client.mechanism

    @property
    def host(self) -> str:
        """The gateway's address."""
        return self.client.host

    # -- Backend (for the keeper) -------------------------------------------------
    @property
    def location(self) -> str:
        return self.client.location

    def endpoint(self, subject: PortMapping) -> Hashable:
        return (subject.external_ip, subject.external_port)

    def describe(self, subject: PortMapping) -> str:
        return describe_mapping(subject)

    def _nonce(self, client_ip: str, protocol: Transport, internal_port: int) -> bytes:
        return derive_nonce(self._secret, client_ip, protocol, internal_port)

    async def _send(
        self,
        protocol: Transport,
        internal_port: int,
        internal_client: str | None,
        *,
        lifetime: int,
        suggested_port: int = 0,
        strict: bool = False,
        background: bool = False,
    ) -> tuple[str, PmpGrant]:
        """One MAP (lifetime 0: a delete) for ``internal_client`` (default: this host);
        returns the internal client and what was granted."""
        await self.client.open()
        local = self.client.local_address
        client_ip = internal_client or local
        # Another LAN host is a THIRD_PARTY mapping; behind another NAT the gateway sees
        # that NAT's address as the sender, which is then the client address itself.
        third = not (self.behind_nat or _same_address(client_ip, local))
        grant = await self.client.map(
            protocol,
            internal_port,
            lifetime=lifetime,
            nonce=self._nonce(client_ip, protocol, internal_port),
            suggested_port=suggested_port,
            client_ip=None if third else client_ip,
            third_party=client_ip if third else None,
            prefer_failure=strict,
            request_timeout=BACKGROUND_TIMEOUT if background else self.request_timeout,
            background=background,
        )
        return client_ip, grant

    async def _map(
        self,
        internal_port: int,
        external_port: int | None,
        protocol: TransportLike,
        *,
        lease: int,
        description: str,
        internal_client: str | None,
        strict: bool,
        background: bool = False,
    ) -> tuple[PortMapping, int]:
        self._check_open()
        if not 1 <= internal_port <= 65535:
            raise ValueError(f"internal port must be 1..65535, not {internal_port}")
        proto = Transport.parse(protocol)
        wanted = internal_port if external_port is None else external_port
        requested = lease if lease > 0 else PERMANENT_LIFETIME
        client_ip, grant = await self._send(
            proto,
            internal_port,
            internal_client,
            lifetime=requested,
            suggested_port=wanted,
            strict=strict,
            background=background,
        )
        mapping = PortMapping(
            external_ip=grant.external_ip,
            external_port=grant.external_port,
            internal_client=client_ip,
            internal_port=internal_port,
            protocol=proto,
            lease=effective_lease(requested, grant.lifetime),
            description=description,
            gateway=self.client.location,
            wanted_port=wanted,
            mechanism=self.client.mechanism,
        )
        log.debug("%s granted %s for %d s", self.mechanism, self.describe(mapping), grant.lifetime)
        if self.client.restarts != self._restarts_handled:
            # This answer showed a restart: everything else kept here is gone too.
            self._restarts_handled = self.client.restarts
            self._keeper.retry_all_now()
        return mapping, grant.lifetime

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
    ) -> PortMapping:
        """Map once (not renewed: it ends with its lifetime); see :meth:`PortMapper.map_port`.

        ``lease`` 0 asks for :data:`PERMANENT_LIFETIME` (these protocols have no
        permanent mappings). ``strict`` sends PREFER_FAILURE (PCP) or gives back a
        different port (NAT-PMP) and raises :class:`PortInUse`.
        """
        mapping, _ = await self._map(
            internal_port,
            external_port,
            protocol,
            lease=lease,
            description=description,
            internal_client=internal_client,
            strict=strict,
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
    ) -> KeptMapping:
        """Map like :meth:`map_port`, then keep the mapping alive until released."""
        mapping, granted = await self._map(
            internal_port,
            external_port,
            protocol,
            lease=lease,
            description=description,
            internal_client=internal_client,
            strict=strict,
        )
        self._seen[_key(mapping)] = self.client.restarts
        return self._start_keeping(
            mapping,
            requested_lease=lease if lease > 0 else PERMANENT_LIFETIME,
            granted=granted,
            strict=strict,
        )

    @staticmethod
    def _same(a: PortMapping, b: PortMapping) -> bool:
        # PCP and NAT-PMP key a mapping by its internal endpoint.
        return (a.protocol, a.internal_client, a.internal_port) == (
            b.protocol,
            b.internal_client,
            b.internal_port,
        )

    async def refresh(self, kept: Kept[PortMapping], action: Action) -> Outcome[PortMapping]:
        """Renew (a check is a renewal too: one datagram each way) with the same nonce."""
        del action
        m = kept.current
        mapping, granted = await self._map(
            m.internal_port,
            m.external_port,
            m.protocol,
            lease=kept.requested_lease,
            description=m.description,
            internal_client=m.internal_client,
            strict=kept.strict,
            background=True,
        )
        # Recreated when a restart was seen since this one was last mapped (by any
        # answer: the first renewal after a reboot tells for every mapping).
        seen = self._seen.get(_key(m), self.client.restarts)
        self._seen[_key(m)] = self.client.restarts
        recreated = seen != self.client.restarts or kept.state is State.LOST
        if mapping.external_port != m.external_port:
            log.info(
                "%s moved %s port %d to %d",
                self.mechanism,
                m.protocol.value,
                m.external_port,
                mapping.external_port,
            )
        return Outcome(replace(mapping, wanted_port=m.wanted_port), granted, recreated=recreated)

    async def remove(self, subject: PortMapping, *, verify: bool = False) -> None:
        """Delete one of our mappings (lifetime 0, same nonce); a mapping the gateway
        says is not ours (NOT_AUTHORIZED: another nonce) is left alone."""
        self._seen.pop(_key(subject), None)
        try:
            await self._send(
                subject.protocol, subject.internal_port, subject.internal_client, lifetime=0
            )
        except PmpNotAuthorized:
            if not verify:
                raise

    async def delete(
        self,
        internal_port: int,
        protocol: TransportLike = Transport.TCP,
        *,
        internal_client: str | None = None,
    ) -> None:
        """Delete the mapping of ``internal_port`` made by aioigd (this or another
        process) for ``internal_client`` (default: this host)."""
        await self._send(Transport.parse(protocol), internal_port, internal_client, lifetime=0)

    async def reconnect(self) -> bool:
        # A PCP/NAT-PMP gateway is an address: nothing to look for; retries follow the
        # lifecycle's schedule.
        return False

    async def _close_transport(self) -> None:
        if self._own:
            await self.client.close()

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
        )
        try:
            yield kept
        finally:
            await self._release_quietly(kept)
