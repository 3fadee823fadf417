"""What every port mapper shares: :class:`KeptMapping` and the application's view of them.

:class:`~aioigd.PortMapper` (UPnP IGD) and :class:`~aioigd.PmpMapper` (PCP,
NAT-PMP) differ in how they talk to the gateway (each is the keeper's
:class:`~aioigd.keeper.Backend`); what the application sees — the kept
mappings, their events, release and close — is this one class,
:class:`MappingKeeper`, so both behave alike.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from .keeper import (
    CLEANUP_TIMEOUT,
    Backend,
    EventHub,
    EventIterator,
    Keeper,
    Kept,
    KeptEndpoint,
    Leftover,
    warn_leftovers,
)
from .lifecycle import Event
from .models import PortMapping

__all__ = ["KeptMapping", "MappingKeeper", "describe_mapping", "DEFAULT_CHECK_INTERVAL"]

#: Seconds between checks of a kept mapping between renewals (is it still there, what
#: is the external address): a router reboot or WAN change is noticed within this.
DEFAULT_CHECK_INTERVAL = 300.0


class KeptMapping(KeptEndpoint[PortMapping]):
    """A port mapping aioigd keeps alive; its fields are those of :attr:`current`."""

    @property
    def external_ip(self) -> str | None:
        """The gateway's external address as last seen (``None``: it has none)."""
        return self.current.external_ip

    @property
    def external_port(self) -> int:
        """The external port (may change if the port had to be moved)."""
        return self.current.external_port

    def __repr__(self) -> str:
        return f"<KeptMapping {self.state.value} {describe_mapping(self.current)}>"


def describe_mapping(m: PortMapping) -> str:
    """``TCP 203.0.113.7:8000 -> 192.168.1.2:8000`` (``pcp TCP …`` when not UPnP)."""
    head = "" if m.mechanism == "upnp" else f"{m.mechanism} "
    return (
        f"{head}{m.protocol.value} {m.external_ip or '?'}:{m.external_port} -> "
        f"{m.internal_client}:{m.internal_port}"
    )


class MappingKeeper:
    """The kept mappings of one gateway, their events, release and close.

    Subclasses are the keeper's backend and say which mappings are the same one
    (:meth:`_same`) and what to close with the mapper (:meth:`_close_transport`).
    """

    def __init__(self, backend: Backend[PortMapping], *, name: str, check_interval: float | None):
        self._closed = False
        self._hub: EventHub[Event[PortMapping]] = EventHub()
        self._keeper: Keeper[PortMapping] = Keeper(
            backend, name=name, check_interval=check_interval, hub=self._hub
        )

    @staticmethod
    def _same(a: PortMapping, b: PortMapping) -> bool:
        """Do ``a`` and ``b`` name the same mapping on the gateway?"""
        return (a.protocol, a.external_port) == (b.protocol, b.external_port)

    async def _close_transport(self) -> None:
        """Close what the mapper owns (gateways, sockets) after the release."""

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"this {type(self).__name__} is closed")

    def _start_keeping(
        self, mapping: PortMapping, *, requested_lease: int, granted: int | None, strict: bool
    ) -> KeptMapping:
        for old in self._keeper.kept():
            if self._same(old.current, mapping):
                self._keeper.forget(old)  # the same mapping again: keep one
        kept = self._keeper.keep(
            mapping,
            requested_lease=requested_lease,
            granted_lease=granted,
            strict=strict,
            cls=KeptMapping,
        )
        assert isinstance(kept, KeptMapping)
        return kept

    def kept(self) -> list[KeptMapping]:
        """The mappings being kept, in creation order."""
        return [k for k in self._keeper.kept() if isinstance(k, KeptMapping)]

    def active(self) -> list[PortMapping]:
        """The kept mappings' current values."""
        return [k.current for k in self._keeper.kept()]

    def events(self) -> EventIterator[Event[PortMapping]]:
        """Events of every mapping kept from now on, until :meth:`close`."""
        return self._hub.subscribe()

    async def release(
        self, mapping: Kept[PortMapping] | PortMapping, *, cleanup_timeout: float = CLEANUP_TIMEOUT
    ) -> None:
        """Stop keeping ``mapping`` and delete it (within ``cleanup_timeout`` seconds).

        Takes a kept mapping or a :class:`PortMapping` value (kept or from
        ``map_port``). A cancellation during the delete lets it finish first
        (bounded), so a Ctrl-C here still leaves nothing on the gateway.

        Raises:
            IGDError: the deletion failed (the gateway is gone, or timed out).
        """
        if isinstance(mapping, Kept):
            leftover = await self._keeper.release(mapping, cleanup_timeout=cleanup_timeout)
        else:
            kept = next((k for k in self._keeper.kept() if self._same(k.current, mapping)), None)
            if kept is not None:
                leftover = await self._keeper.release(kept, cleanup_timeout=cleanup_timeout)
            else:
                # Not kept: it may be an old value, or its port may belong to someone else
                # by now, so delete it only if the gateway still forwards it to us.
                leftover = await self._keeper.delete(
                    mapping, cleanup_timeout=cleanup_timeout, verify=True
                )
        if leftover is not None:
            raise leftover.error

    async def _release_quietly(self, kept: KeptMapping) -> None:
        warn_leftovers([await self._keeper.release(kept)])

    async def close(self, *, release: bool = True) -> list[Leftover[PortMapping]]:
        """Stop keeping; delete every kept mapping unless ``release=False``.

        Never raises for a gateway that is gone: what could not be deleted is
        returned, with the reason. Closes what the mapper owns.
        """
        self._closed = True
        try:
            return await self._keeper.close(release=release)
        finally:
            self._hub.close()
            await self._close_transport()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        warn_leftovers(await self.close())
