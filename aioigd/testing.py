"""FakeIGD: an in-process Internet Gateway Device on loopback, for tests and the demo.

It speaks SSDP (unicast, on its own UDP port) and HTTP/SOAP over a raw
asyncio server, keeps a stateful mapping table, records every request, and
has switchable quirks and hostile behaviours that real routers show and
miniupnpd cannot (HTTP/1.0, empty 200 entries, permanent-only leases, XML
bombs, hangs, trickling, lies). It is a raw asyncio server rather than
aiohttp.web because those quirks need byte-level control of the status line
and framing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, cast
from xml.sax.saxutils import escape

from .proto.xmlsafe import child, local_name, parse_xml

__all__ = ["FakeIGD", "Quirks", "Recorded", "FakeMapping", "FakePinhole"]

_MAX_REQUEST = 64 * 1024
_FIREWALL_TYPE = "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1"
_FIREWALL_PATH = "/ctl/IP6FCtl"


@dataclass
class Quirks:
    """Switchable misbehaviour. Defaults give a well-behaved IGD."""

    http10: bool = False  #: answer HTTP/1.0 + Connection: close (the seed's router)
    octet_stream: bool = False  #: Content-Type application/octet-stream
    connection_close: bool = False  #: close after each response (like miniupnpd)
    chunked: bool = False  #: Transfer-Encoding: chunked bodies
    empty_entry_at_zero: bool = False  #: index 0 is a 200 OK empty entry (Broadcom)
    endless_entries: bool = False  #: never answer 713, every index an empty entry
    permanent_only: bool = False  #: 725 for any non-zero lease
    delay: float = 0.0  #: seconds before every HTTP answer
    hang_actions: frozenset[str] = frozenset()  #: actions never answered
    trickle: float = 0.0  #: seconds between body bytes
    short_body: bool = False  #: Content-Length larger than the body, then close
    garbage_http: bool = False  #: answer bytes that are not HTTP
    redirect_to: str = ""  #: answer every request with a 302 to this URL
    description_body: bytes | None = None  #: serve this instead of the description
    soap_body: bytes | None = None  #: answer every action with this body (HTTP 200)
    external_ip_value: str | None = None  #: raw NewExternalIPAddress text (lies)
    huge_body: int = 0  #: stream this many bytes of padding instead of the reply
    ssdp_location: str | None = None  #: LOCATION to announce instead of our own
    ssdp_reply: bytes | None = None  #: raw SSDP answer instead of a valid one
    ssdp_copies: int = 1  #: answers per M-SEARCH (floods, duplicates)
    fail_actions: dict[str, int] = field(default_factory=dict)  #: action → fault code
    firewall_enabled: bool = True  #: GetFirewallStatus FirewallEnabled
    inbound_pinhole_allowed: bool = True  #: GetFirewallStatus InboundPinholeAllowed
    pinhole_owner_check: bool = True  #: 606 unless InternalClient is the requester (miniupnpd)


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    action: str
    args: dict[str, str]
    peer: str


@dataclass
class FakeMapping:
    """One entry of the fake's table."""

    remote_host: str
    external_port: int
    protocol: str
    internal_port: int
    internal_client: str
    enabled: bool
    description: str
    lease: int
    expires: float | None

    def remaining(self, now: float) -> int:
        return 0 if self.expires is None else max(int(self.expires - now + 0.999), 0)


_FAULT_NAMES = {
    401: "Invalid Action",
    402: "Invalid Args",
    501: "Action Failed",
    606: "Action not authorized",
    713: "SpecifiedArrayIndexInvalid",
    714: "NoSuchEntryInArray",
    716: "WildCardNotPermittedInExtPort",
    718: "ConflictInMappingEntry",
    602: "Optional Action Not Implemented",
    702: "FirewallDisabled",
    703: "InboundPinholeNotAllowed",
    704: "NoSuchEntry",
    705: "ProtocolNotSupported",
    706: "InternalPortWildcardingNotAllowed",
    707: "ProtocolWildcardingNotAllowed",
    708: "WildCardNotPermittedInSrcIP",
    709: "NoTrafficReceived",
    725: "OnlyPermanentLeasesSupported",
    728: "NoPortMapsAvailable",
    730: "PortMappingNotFound",
    732: "WildCardNotPermittedInIntPort",
    733: "InconsistentParameters",
}


class _Fault(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class FakeIGD:
    """An IGD on ``host`` (a loopback address) with an SSDP responder.

    Args:
        host: address to serve on; use distinct 127.0.0.x hosts for stacked layers.
        version: 1 or 2 (WANIPConnection version and IGD device version).
        ppp: serve WANPPPConnection:1 instead of WANIPConnection.
        external_ip: what GetExternalIPAddress answers.
        quirks: misbehaviours, changeable at any time through ``self.quirks``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        version: int = 2,
        ppp: bool = False,
        external_ip: str = "203.0.113.7",
        quirks: Quirks | None = None,
        max_lease: int = 604800,
        firewall: bool = False,
    ) -> None:
        self.host = host.strip("[]")
        self.version = 1 if ppp else version
        self.ppp = ppp
        self.external_ip = external_ip
        self.quirks = quirks or Quirks()
        self.max_lease = max_lease
        self.udn = f"uuid:{uuid.uuid4()}"
        self.firewall = firewall
        self.pinholes: dict[int, FakePinhole] = {}
        self._next_pinhole = 1
        self.mappings: dict[tuple[str, int], FakeMapping] = {}
        self.requests: list[Recorded] = []
        self.connections = 0
        self.searches = 0
        self.http_port = 0
        self.ssdp_port = 0
        self._server: asyncio.Server | None = None
        self._ssdp: asyncio.DatagramTransport | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._stopping: asyncio.Event | None = None

    # -- lifecycle ------------------------------------------------------------
    @property
    def service_type(self) -> str:
        kind = "WANPPPConnection" if self.ppp else "WANIPConnection"
        return f"urn:schemas-upnp-org:service:{kind}:{self.version}"

    @property
    def location(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.http_port}/rootDesc.xml"

    @property
    def control_path(self) -> str:
        return "/ctl/PPPConn" if self.ppp else "/ctl/IPConn"

    async def _pause(self, seconds: float) -> None:
        """Sleep, but end the connection at once when the fake stops."""
        assert self._stopping is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        if self._stopping.is_set():
            raise ConnectionResetError("fake stopped")

    async def start(self) -> FakeIGD:
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.http_port = self._server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _SsdpResponder(self), local_addr=(self.host, 0)
        )
        self._ssdp = transport
        self.ssdp_port = transport.get_extra_info("sockname")[1]
        return self

    async def stop(self) -> None:
        if self._ssdp is not None:
            self._ssdp.close()
            self._ssdp = None
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            if self._stopping is not None:
                self._stopping.set()
            # Not cancel(): asyncio's stream callback logs an error for a cancelled handler.
            handlers = list(self._handlers)
            if handlers:
                await asyncio.wait(handlers, timeout=2)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def __aenter__(self) -> FakeIGD:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def actions(self) -> list[str]:
        """The SOAP actions received so far, in order."""
        return [r.action for r in self.requests if r.action]

    def reboot(self) -> None:
        """Forget every mapping, as a router reboot does."""
        self.mappings.clear()

    # -- SSDP -------------------------------------------------------------------
    def ssdp_answer(self, st: str) -> bytes:
        if self.quirks.ssdp_reply is not None:
            return self.quirks.ssdp_reply
        location = self.quirks.ssdp_location or self.location
        return (
            "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nEXT:\r\n"
            f"LOCATION: {location}\r\nSERVER: Linux/5 UPnP/1.1 FakeIGD/1\r\n"
            f"ST: {st}\r\nUSN: {self.udn}::{st}\r\nBOOTID.UPNP.ORG: 1\r\n\r\n"
        ).encode()

    # -- HTTP -------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        peer = str(writer.get_extra_info("peername")[0])
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                method, path, version, body = request
                keep = await self._respond(writer, method, path, version, body, peer)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            if task is not None:
                self._handlers.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(
        self,
        writer: asyncio.StreamWriter,
        method: str,
        path: str,
        version: str,
        body: bytes,
        peer: str,
    ) -> bool:
        q = self.quirks
        action, args = "", dict[str, str]()
        if method == "POST":
            action, args = _parse_action(body)
        self.requests.append(Recorded(method, path, action, args, peer))
        if q.delay:
            await self._pause(q.delay)
        if action in q.hang_actions or (method == "GET" and "GET" in q.hang_actions):
            await self._pause(3600)
        if q.garbage_http:
            writer.write(b"\x00\x01garbage, not HTTP at all\r\n\r\n")
            await writer.drain()
            return False
        if q.redirect_to:
            await self._send(writer, 302, b"", version, extra={"Location": q.redirect_to})
            return False
        if q.huge_body:
            await self._send_huge(writer, version)
            return False
        if method == "GET" and path.split("?")[0] == "/rootDesc.xml":
            data = q.description_body if q.description_body is not None else self.description()
            return await self._send(writer, 200, data, version)
        if method == "POST" and path in (self.control_path, _FIREWALL_PATH):
            if q.soap_body is not None:
                return await self._send(writer, 200, q.soap_body, version)
            service = self.service_type if path == self.control_path else _FIREWALL_TYPE
            try:
                if path == _FIREWALL_PATH and self.firewall:
                    out = self._firewall(action, args, peer)
                else:
                    out = self._dispatch(action, args)
            except _Fault as fault:
                return await self._send(writer, 500, _fault_body(fault.code), version)
            return await self._send(writer, 200, self._response_body(action, out, service), version)
        return await self._send(writer, 404, b"not found", version)

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        version: str,
        extra: dict[str, str] | None = None,
    ) -> bool:
        q = self.quirks
        close = q.http10 or q.connection_close or version == "HTTP/1.0" or q.short_body
        reason = {200: "OK", 302: "Found", 404: "Not Found", 500: "Internal Server Error"}
        head = [f"{'HTTP/1.0' if q.http10 else 'HTTP/1.1'} {status} {reason.get(status, 'X')}"]
        ctype = "application/octet-stream" if q.octet_stream else 'text/xml; charset="utf-8"'
        head += [f"Content-Type: {ctype}", "Server: Linux/5 UPnP/1.1 FakeIGD/1"]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        if close:
            head.append("Connection: close")
        if q.chunked and not q.http10:
            head.append("Transfer-Encoding: chunked")
            payload = b"".join(
                b"%x\r\n%s\r\n" % (len(body[i : i + 100]), body[i : i + 100])
                for i in range(0, len(body), 100)
            )
            payload += b"0\r\n\r\n"
        else:
            length = len(body) + (1000 if q.short_body else 0)
            head.append(f"Content-Length: {length}")
            payload = body
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        if q.trickle:
            for i in range(len(payload)):
                writer.write(payload[i : i + 1])
                await writer.drain()
                await self._pause(q.trickle)
        else:
            writer.write(payload)
        await writer.drain()
        return not close

    async def _send_huge(self, writer: asyncio.StreamWriter, version: str) -> None:
        size = self.quirks.huge_body
        writer.write(
            f"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {size}\r\n\r\n".encode()
        )
        chunk = b"<a>" + b" " * 65530 + b"</a>"
        sent = 0
        while sent < size:
            part = chunk[: size - sent]
            writer.write(part)
            sent += len(part)
            await writer.drain()

    # -- description and SOAP -----------------------------------------------------
    def description(self) -> bytes:
        v = self.version
        wan_conn = (
            f"<service><serviceType>{self.service_type}</serviceType>"
            f"<serviceId>urn:upnp-org:serviceId:{'WANPPPConn1' if self.ppp else 'WANIPConn1'}"
            f"</serviceId><SCPDURL>/conn.xml</SCPDURL><controlURL>{self.control_path}"
            "</controlURL><eventSubURL>/evt/conn</eventSubURL></service>"
        )
        fw = (
            f"<service><serviceType>{_FIREWALL_TYPE}</serviceType><serviceId>"
            "urn:upnp-org:serviceId:WANIPv6Firewall1</serviceId><SCPDURL>/fw.xml</SCPDURL>"
            f"<controlURL>{_FIREWALL_PATH}</controlURL><eventSubURL>/evt/fw</eventSubURL>"
            "</service>"
            if self.firewall
            else ""
        )
        return (
            '<?xml version="1.0"?>\r\n<root xmlns="urn:schemas-upnp-org:device-1-0">'
            "<specVersion><major>1</major><minor>1</minor></specVersion><device>"
            f"<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:{v}</deviceType>"
            f"<friendlyName>FakeIGD {escape(self.host)}</friendlyName><manufacturer>aioigd"
            f"</manufacturer><modelName>FakeIGD</modelName><UDN>{self.udn}</UDN><deviceList>"
            f"<device><deviceType>urn:schemas-upnp-org:device:WANDevice:{v}</deviceType>"
            f"<friendlyName>WANDevice</friendlyName><UDN>{self.udn}-wan</UDN><deviceList>"
            f"<device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:{v}"
            f"</deviceType><friendlyName>WANConnectionDevice</friendlyName>"
            f"<UDN>{self.udn}-conn</UDN><serviceList>{wan_conn}{fw}</serviceList></device>"
            "</deviceList></device></deviceList></device></root>"
        ).encode()

    def _response_body(self, action: str, out: list[tuple[str, str]], service: str) -> bytes:
        args = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in out)
        return (
            '<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/'
            'envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
            f'<u:{action}Response xmlns:u="{service}">{args}</u:{action}Response>'
            "</s:Body></s:Envelope>\r\n"
        ).encode()

    def _dispatch(self, action: str, a: dict[str, str]) -> list[tuple[str, str]]:
        if action in self.quirks.fail_actions:
            raise _Fault(self.quirks.fail_actions[action])
        v2_only = {"AddAnyPortMapping", "DeletePortMappingRange", "GetListOfPortMappings"}
        if action in v2_only and self.version < 2:
            raise _Fault(401)
        handler = getattr(self, f"_do_{action}", None)
        if handler is None:
            raise _Fault(401)
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
            raise _Fault(402) from None
        proto = a.get("NewProtocol", "")
        if proto not in ("TCP", "UDP") or not 0 <= port <= 65535:
            raise _Fault(402)
        return proto, port

    def _add(self, a: dict[str, str], port: int) -> int:
        proto, _ = self._key(a)
        try:
            internal_port = int(a.get("NewInternalPort", ""))
            lease = int(a.get("NewLeaseDuration", ""))
        except ValueError:
            raise _Fault(402) from None
        client = a.get("NewInternalClient", "")
        if internal_port == 0:
            raise _Fault(732 if self.version >= 2 else 402)
        if not client:
            raise _Fault(402)
        if self.quirks.permanent_only and lease != 0:
            raise _Fault(725)
        held = self.mappings.get((proto, port))
        if held is not None and held.internal_client != client:
            raise _Fault(718)
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
            raise _Fault(716)
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
        raise _Fault(728)

    def _do_DeletePortMapping(self, a: dict[str, str]) -> list[tuple[str, str]]:  # noqa: N802
        if self.mappings.pop(self._key(a), None) is None:
            raise _Fault(714)
        return []

    def _do_DeletePortMappingRange(self, a: dict[str, str]) -> list[tuple[str, str]]:  # noqa: N802
        start, end = int(a.get("NewStartPort", "0")), int(a.get("NewEndPort", "0"))
        if start > end:
            raise _Fault(733)
        keys = [k for k in self.mappings if k[0] == a.get("NewProtocol") and start <= k[1] <= end]
        if not keys:
            raise _Fault(730)
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
            ("NewLeaseDuration", str(m.remaining(time.monotonic()))),
        ]

    def _do_GetGenericPortMappingEntry(self, a: dict[str, str]) -> list[tuple[str, str]]:  # noqa: N802
        try:
            index = int(a.get("NewPortMappingIndex", ""))
        except ValueError:
            raise _Fault(402) from None
        if self.quirks.endless_entries:
            return self._entry_args(None, key=True)
        entries: list[FakeMapping | None] = list(self._entries())
        if self.quirks.empty_entry_at_zero:
            entries.insert(0, None)
        if not 0 <= index < len(entries):
            raise _Fault(713)
        return self._entry_args(entries[index], key=True)

    def _do_GetSpecificPortMappingEntry(self, a: dict[str, str]) -> list[tuple[str, str]]:  # noqa: N802
        self._entries()
        m = self.mappings.get(self._key(a))
        if m is None:
            raise _Fault(714)
        return self._entry_args(m, key=False)

    def _do_GetListOfPortMappings(self, a: dict[str, str]) -> list[tuple[str, str]]:  # noqa: N802
        start, end = int(a.get("NewStartPort", "0")), int(a.get("NewEndPort", "0"))
        proto = a.get("NewProtocol", "")
        if start > end:
            raise _Fault(733)
        found = [
            m for m in self._entries() if m.protocol == proto and start <= m.external_port <= end
        ]
        if not found:
            raise _Fault(730)
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

    # -- WANIPv6FirewallControl ------------------------------------------------------
    def _firewall(self, action: str, a: dict[str, str], peer: str) -> list[tuple[str, str]]:
        q = self.quirks
        if action in q.fail_actions:
            raise _Fault(q.fail_actions[action])
        if action == "GetFirewallStatus":
            return [
                ("FirewallEnabled", "1" if q.firewall_enabled else "0"),
                ("InboundPinholeAllowed", "1" if q.inbound_pinhole_allowed else "0"),
            ]
        if action == "GetOutboundPinholeTimeout":
            raise _Fault(602)
        if not q.firewall_enabled:
            raise _Fault(702)
        if not q.inbound_pinhole_allowed:
            raise _Fault(703)
        if action == "AddPinhole":
            return self._add_pinhole(a, peer)
        try:
            unique_id = int(a.get("UniqueID", ""))
        except ValueError:
            raise _Fault(402) from None
        hole = self.pinholes.get(unique_id)
        if hole is None or hole.expires <= time.monotonic():
            self.pinholes.pop(unique_id, None)
            raise _Fault(704)
        if q.pinhole_owner_check and _canon(hole.internal_client) != _canon(peer):
            raise _Fault(606)
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
                raise _Fault(709)
            return [("IsWorking", "1")]
        raise _Fault(401)

    def _pinhole_lease(self, text: str) -> int:
        try:
            lease = int(text)
        except ValueError:
            raise _Fault(402) from None
        if not 1 <= lease <= 86400:
            raise _Fault(402)
        return lease

    def _add_pinhole(self, a: dict[str, str], peer: str) -> list[tuple[str, str]]:
        client = a.get("InternalClient", "")
        if client in ("", "*"):
            raise _Fault(708)
        if self.quirks.pinhole_owner_check and _canon(client) != _canon(peer):
            raise _Fault(606)
        try:
            port, proto = int(a.get("InternalPort", "")), int(a.get("Protocol", ""))
            remote_port = int(a.get("RemotePort", "0") or "0")
        except ValueError:
            raise _Fault(402) from None
        if port == 0:
            raise _Fault(706)
        if proto == 65535:
            raise _Fault(707)
        if proto not in (6, 17, 136):
            raise _Fault(705)
        lease = self._pinhole_lease(a.get("LeaseTime", ""))
        key = (a.get("RemoteHost", ""), remote_port, _canon(client), port, proto)
        for unique_id, hole in self.pinholes.items():
            if hole.key == key:
                hole.expires = time.monotonic() + lease
                return [("UniqueID", str(unique_id))]
        unique_id = self._next_pinhole
        self._next_pinhole += 1
        self.pinholes[unique_id] = FakePinhole(key, client, time.monotonic() + lease)
        return [("UniqueID", str(unique_id))]


@dataclass
class FakePinhole:
    """One pinhole of the fake's firewall."""

    key: tuple[str, int, str, int, int]
    internal_client: str
    expires: float
    packets: int = 0


def _canon(address: str) -> str:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).compressed
    except ValueError:
        return address


class _SsdpResponder(asyncio.DatagramProtocol):
    def __init__(self, igd: FakeIGD) -> None:
        self.igd = igd
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        text = data.decode("latin-1")
        if not text.startswith("M-SEARCH") or self.transport is None:
            return
        self.igd.searches += 1
        st = ""
        for line in text.split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "st":
                st = value.strip()
        for _ in range(self.igd.quirks.ssdp_copies):
            self.transport.sendto(self.igd.ssdp_answer(st or "upnp:rootdevice"), addr)


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, str, bytes] | None:
    head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
    if not head:
        return None
    if len(head) > _MAX_REQUEST:
        raise ValueError("request head too large")
    lines = head.decode("latin-1").split("\r\n")
    method, path, version = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length > _MAX_REQUEST:
        raise ValueError("request body too large")
    body = await reader.readexactly(length) if length else b""
    return method, path, version.strip(), body


def _parse_action(body: bytes) -> tuple[str, dict[str, str]]:
    try:
        envelope = parse_xml(body, limit=_MAX_REQUEST, what="request")
    except Exception:
        return "", {}
    soap_body = child(envelope, "Body")
    if soap_body is None or len(soap_body) == 0:
        return "", {}
    call = soap_body[0]
    return local_name(str(call.tag)), {local_name(str(c.tag)): (c.text or "") for c in call}


def _fault_body(code: int) -> bytes:
    return (
        '<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"'
        ' s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><s:Fault>'
        "<faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>"
        '<UPnPError xmlns="urn:schemas-upnp-org:control-1-0">'
        f"<errorCode>{code}</errorCode><errorDescription>{_FAULT_NAMES.get(code, 'Error')}"
        "</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>\r\n"
    ).encode()
