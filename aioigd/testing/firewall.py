"""FakeIGD's WANIPv6FirewallControl actions over an in-memory set of pinholes."""

from __future__ import annotations

import time

from .model import FakePinhole, Fault, Quirks, canon

__all__ = ["FirewallActions", "FIREWALL_TYPE", "FIREWALL_PATH"]

FIREWALL_TYPE = "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1"
FIREWALL_PATH = "/ctl/IP6FCtl"


class FirewallActions:
    """Pinhole handlers; FakeIGD supplies the state declared here."""

    quirks: Quirks
    pinholes: dict[int, FakePinhole]
    _next_pinhole: int

    def _firewall(self, action: str, a: dict[str, str], peer: str) -> list[tuple[str, str]]:
        q = self.quirks
        if action in q.fail_actions:
            raise Fault(q.fail_actions[action])
        if action == "GetFirewallStatus":
            return [
                ("FirewallEnabled", "1" if q.firewall_enabled else "0"),
                ("InboundPinholeAllowed", "1" if q.inbound_pinhole_allowed else "0"),
            ]
        if action == "GetOutboundPinholeTimeout":
            raise Fault(602)
        if not q.firewall_enabled:
            raise Fault(702)
        if not q.inbound_pinhole_allowed:
            raise Fault(703)
        if action == "AddPinhole":
            return self._add_pinhole(a, peer)
        try:
            unique_id = int(a.get("UniqueID", ""))
        except ValueError:
            raise Fault(402) from None
        hole = self.pinholes.get(unique_id)
        if hole is None or hole.expires <= time.monotonic():
            self.pinholes.pop(unique_id, None)
            raise Fault(704)
        if q.pinhole_owner_check and canon(hole.internal_client) != canon(peer):
            raise Fault(606)
        if action == "UpdatePinhole":
            hole.expires = time.monotonic() + self._pinhole_lease(a.get("NewLeaseTime", ""))
            return []
        if action == "DeletePinhole":
            del self.pinholes[unique_id]
            return []
        if action == "GetPinholePackets":
            return [("PinholePackets", str(hole.packets))]
        if action == "CheckPinholeWorking":
            if not hole.packets:
                raise Fault(709)
            return [("IsWorking", "1")]
        raise Fault(401)

    def _pinhole_lease(self, text: str) -> int:
        try:
            lease = int(text)
        except ValueError:
            raise Fault(402) from None
        if not 1 <= lease <= 86400:
            raise Fault(402)
        return lease

    def _add_pinhole(self, a: dict[str, str], peer: str) -> list[tuple[str, str]]:
        client = a.get("InternalClient", "")
        if client in ("", "*"):
            raise Fault(708)
        if self.quirks.pinhole_owner_check and canon(client) != canon(peer):
            raise Fault(606)
        try:
            port, proto = int(a.get("InternalPort", "")), int(a.get("Protocol", ""))
            remote_port = int(a.get("RemotePort", "0") or "0")
        except ValueError:
            raise Fault(402) from None
        if port == 0:
            raise Fault(706)
        if proto == 65535:
            raise Fault(707)
        if proto not in (6, 17, 136):
            raise Fault(705)
        lease = self._pinhole_lease(a.get("LeaseTime", ""))
        key = (a.get("RemoteHost", ""), remote_port, canon(client), port, proto)
        for unique_id, hole in self.pinholes.items():
            if hole.key == key:
                hole.expires = time.monotonic() + lease
                return [("UniqueID", str(unique_id))]
        unique_id = self._next_pinhole
        self._next_pinhole += 1
        self.pinholes[unique_id] = FakePinhole(key, client, time.monotonic() + lease)
        return [("UniqueID", str(unique_id))]
