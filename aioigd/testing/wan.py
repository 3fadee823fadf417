"""FakeIGD's WANIPConnection / WANPPPConnection actions over an in-memory table."""

from __future__ import annotations

import time
from xml.sax.saxutils import escape

from .model import FakeMapping, Fault, Quirks

__all__ = ["WanActions"]


class WanActions:
    """Action handlers; FakeIGD supplies the state declared here."""

    quirks: Quirks
    version: int
    external_ip: str
    max_lease: int
    mappings: dict[tuple[str, int], FakeMapping]

    def _dispatch(self, action: str, a: dict[str, str]) -> list[tuple[str, str]]:
        if action in self.quirks.fail_actions:
            raise Fault(self.quirks.fail_actions[action])
        v2_only = {"AddAnyPortMapping", "DeletePortMappingRange", "GetListOfPortMappings"}
        if action in v2_only and self.version < 2:
            raise Fault(401)
        handler = getattr(self, f"_do_{action}", None)
        if handler is None:
            raise Fault(401)
        result: list[tuple[str, str]] = handler(a)
        return result

    def _do_GetExternalIPAddress(self, a: dict[str, str]) -> list[tuple[str, str]]:  # noqa: N802
        value = self.quirks.external_ip_value
        return [("NewExternalIPAddress", self.external_ip if value is None else value)]

    def _do_GetStatusInfo(self, a: dict[str, str]) -> list[tuple[str, str]]:  # noqa: N802
        return [
            ("NewConnectionStatus", "Connected"),
            ("NewLastConnectionError", "ERROR_NONE"),
            ("NewUptime", "1234"),
        ]

    def _do_GetConnectionTypeInfo(self, a: dict[str, str]) -> list[tuple[str, str]]:  # noqa: N802
        return [("NewConnectionType", "IP_Routed"), ("NewPossibleConnectionTypes", "IP_Routed")]

    def _do_GetNATRSIPStatus(self, a: dict[str, str]) -> list[tuple[str, str]]:  # noqa: N802
        return [("NewRSIPAvailable", "0"), ("NewNATEnabled", "1")]

    def _key(self, a: dict[str, str]) -> tuple[str, int]:
        try:
            port = int(a.get("NewExternalPort", ""))
        except ValueError:
            raise Fault(402) from None
        proto = a.get("NewProtocol", "")
        if proto not in ("TCP", "UDP") or not 0 <= port <= 65535:
            raise Fault(402)
        return proto, port

    def _add(self, a: dict[str, str], port: int) -> int:
        proto, _ = self._key(a)
        try:
            internal_port = int(a.get("NewInternalPort", ""))
            lease = int(a.get("NewLeaseDuration", ""))
        except ValueError:
            raise Fault(402) from None
        client = a.get("NewInternalClient", "")
        if internal_port == 0:
            raise Fault(732 if self.version >= 2 else 402)
        if not client:
            raise Fault(402)
        if self.quirks.permanent_only and lease != 0:
            raise Fault(725)
        held = self.mappings.get((proto, port))
        if held is not None and held.internal_client != client:
            raise Fault(718)
        if self.version >= 2 and (lease == 0 or lease > self.max_lease):
            lease = self.max_lease
        self.mappings[(proto, port)] = FakeMapping(
            a.get("NewRemoteHost", ""),
            port,
            proto,
            internal_port,
            client,
            a.get("NewEnabled", "1") == "1",
            a.get("NewPortMappingDescription", ""),
            lease,
            None if lease == 0 else time.monotonic() + lease,
        )
        return port

    def _do_AddPortMapping(self, a: dict[str, str]) -> list[tuple[str, str]]:  # noqa: N802
        _, port = self._key(a)
        if port == 0:
            raise Fault(716)
        self._add(a, port)
        return []

    def _do_AddAnyPortMapping(self, a: dict[str, str]) -> list[tuple[str, str]]:  # noqa: N802
        proto, port = self._key(a)
        client = a.get("NewInternalClient", "")
        port = port or 1024
        for candidate in [port, *range(max(port, 1024), 65536), *range(1024, port)]:
            held = self.mappings.get((proto, candidate))
            if held is None or held.internal_client == client:
                return [("NewReservedPort", str(self._add(a, candidate)))]
        raise Fault(728)

    def _do_DeletePortMapping(self, a: dict[str, str]) -> list[tuple[str, str]]:  # noqa: N802
        if self.mappings.pop(self._key(a), None) is None and not self.quirks.delete_missing_ok:
            raise Fault(714)
        return []

    def _do_DeletePortMappingRange(self, a: dict[str, str]) -> list[tuple[str, str]]:  # noqa: N802
        start, end = int(a.get("NewStartPort", "0")), int(a.get("NewEndPort", "0"))
        if start > end:
            raise Fault(733)
        keys = [k for k in self.mappings if k[0] == a.get("NewProtocol") and start <= k[1] <= end]
        if not keys:
            raise Fault(730)
        for k in keys:
            del self.mappings[k]
        return []

    def _entries(self) -> list[FakeMapping]:
        now = time.monotonic()
        for k, m in list(self.mappings.items()):
            if m.expires is not None and m.expires <= now:
                del self.mappings[k]
        return sorted(self.mappings.values(), key=lambda m: (m.protocol, m.external_port))

    def _entry_args(self, m: FakeMapping | None, *, key: bool) -> list[tuple[str, str]]:
        if m is None:  # the Broadcom placeholder
            blank = [("NewRemoteHost", ""), ("NewExternalPort", "0"), ("NewProtocol", "")]
            return [*blank, ("NewInternalPort", "0"), ("NewInternalClient", ""),
                    ("NewEnabled", "0"), ("NewPortMappingDescription", ""),
                    ("NewLeaseDuration", "0")]  # fmt: skip
        out = [("NewRemoteHost", m.remote_host), ("NewExternalPort", str(m.external_port)),
               ("NewProtocol", m.protocol)] if key else []  # fmt: skip
        return out + [
            ("NewInternalPort", str(m.internal_port)),
            ("NewInternalClient", m.internal_client),
            ("NewEnabled", "1" if m.enabled else "0"),
            ("NewPortMappingDescription", m.description),
            ("NewLeaseDuration", "0" if self.quirks.report_lease_zero
             else str(m.remaining(time.monotonic()))),
        ]  # fmt: skip

    def _do_GetGenericPortMappingEntry(self, a: dict[str, str]) -> list[tuple[str, str]]:  # noqa: N802
        try:
            index = int(a.get("NewPortMappingIndex", ""))
        except ValueError:
            raise Fault(402) from None
        if self.quirks.endless_entries:
            return self._entry_args(None, key=True)
        entries: list[FakeMapping | None] = list(self._entries())
        if self.quirks.empty_entry_at_zero:
            entries.insert(0, None)
        if not 0 <= index < len(entries):
            raise Fault(713)
        return self._entry_args(entries[index], key=True)

    def _do_GetSpecificPortMappingEntry(self, a: dict[str, str]) -> list[tuple[str, str]]:  # noqa: N802
        self._entries()
        m = self.mappings.get(self._key(a))
        if m is None:
            raise Fault(714)
        return self._entry_args(m, key=False)

    def _do_GetListOfPortMappings(self, a: dict[str, str]) -> list[tuple[str, str]]:  # noqa: N802
        start, end = int(a.get("NewStartPort", "0")), int(a.get("NewEndPort", "0"))
        proto = a.get("NewProtocol", "")
        if start > end:
            raise Fault(733)
        found = [
            m for m in self._entries() if m.protocol == proto and start <= m.external_port <= end
        ]
        if not found:
            raise Fault(730)
        now = time.monotonic()
        items = "".join(
            f"<p:PortMappingEntry><p:NewRemoteHost>{escape(m.remote_host)}</p:NewRemoteHost>"
            f"<p:NewExternalPort>{m.external_port}</p:NewExternalPort><p:NewProtocol>"
            f"{m.protocol}</p:NewProtocol><p:NewInternalPort>{m.internal_port}"
            f"</p:NewInternalPort><p:NewInternalClient>{m.internal_client}</p:NewInternalClient>"
            f"<p:NewEnabled>{int(m.enabled)}</p:NewEnabled><p:NewDescription>"
            f"{escape(m.description)}</p:NewDescription><p:NewLeaseTime>{m.remaining(now)}"
            "</p:NewLeaseTime></p:PortMappingEntry>"
            for m in found
        )
        listing = (
            '<p:PortMappingList xmlns:p="urn:schemas-upnp-org:gw:WANIPConnection">'
            f"{items}</p:PortMappingList>"
        )
        return [("NewPortListing", listing)]
