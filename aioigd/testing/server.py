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
import uuid
from types import TracebackType
from typing import Any, cast
from xml.sax.saxutils import escape

from ..proto.xmlsafe import child, local_name, parse_xml
from .firewall import FIREWALL_PATH as _FIREWALL_PATH
from .firewall import FIREWALL_TYPE as _FIREWALL_TYPE
from .firewall import FirewallActions
from .model import FakeMapping, FakePinhole, Fault, Quirks, Recorded, fault_body
from .wan import WanActions

_COMMON_TYPE = "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1"
_COMMON_PATH = "/ctl/CmnIfCfg"

__all__ = ["FakeIGD"]

_MAX_REQUEST = 64 * 1024
_DEAD_PATH = "/ctl/DeadConn"


def _dead_wan(action: str) -> list[tuple[str, str]] | None:
    """A disconnected WAN connection's answers (None: 501 ActionFailed)."""
    if action == "GetStatusInfo":
        return [
            ("NewConnectionStatus", "Disconnected"),
            ("NewLastConnectionError", "ERROR_NO_CARRIER"),
            ("NewUptime", "0"),
        ]
    if action == "GetExternalIPAddress":
        return [("NewExternalIPAddress", "")]
    return None


class FakeIGD(WanActions, FirewallActions):
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
        #: WANCommonInterfaceConfig's totals (GetTotalBytesSent ...); a name left out
        #: answers 401, as on a router without that optional action.
        self.traffic: dict[str, int] = {
            "BytesSent": 123456789,
            "BytesReceived": 987654321,
            "PacketsSent": 1234,
            "PacketsReceived": 5678,
        }
        self.pinholes: dict[int, FakePinhole] = {}
        self._next_pinhole = 1
        self.mappings: dict[tuple[str, int], FakeMapping] = {}
        self.requests: list[Recorded] = []
        self.connections = 0
        self.searches = 0
        self.http_port = 0
        self.ssdp_port = 0
        self.boot_id = 1
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
        await self._start_http()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _SsdpResponder(self), local_addr=(self.host, 0)
        )
        self._ssdp = transport
        self.ssdp_port = transport.get_extra_info("sockname")[1]
        return self

    async def _start_http(self) -> None:
        self._stopping = asyncio.Event()
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.http_port = self._server.sockets[0].getsockname()[1]

    async def restart(self, *, new_port: bool = True) -> None:
        """A router reboot: HTTP down, every mapping and pinhole gone, a new BOOTID,
        and (as many consumer routers do) a new HTTP port; SSDP keeps its port."""
        old = self.http_port
        await self._stop_http()
        self.mappings.clear()
        self.pinholes.clear()
        self.boot_id += 1
        while True:
            await self._start_http()
            if not new_port or self.http_port != old:
                return
            await self._stop_http()

    async def stop_http(self) -> None:
        """The router is gone: its HTTP server stops (SSDP stops answering too)."""
        await self._stop_http()
        if self._ssdp is not None:
            self._ssdp.close()
            self._ssdp = None

    async def stop(self) -> None:
        if self._ssdp is not None:
            self._ssdp.close()
            self._ssdp = None
        await self._stop_http()

    async def _stop_http(self) -> None:
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
            f"ST: {st}\r\nUSN: {self.udn}::{st}\r\nBOOTID.UPNP.ORG: {self.boot_id}\r\n\r\n"
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
        if action and q.lose_requests > 0 and q.lose_action in ("", action):
            q.lose_requests -= 1  # the request (or its answer) is lost: the peer sees a reset
            writer.transport.abort()
            return False
        if q.delay:
            await self._pause(q.delay)
        if action in q.hang_actions or (method == "GET" and "GET" in q.hang_actions):
            await self._pause(3600)
        if action in q.action_delay:
            await self._pause(q.action_delay[action])
        if action == "AddPortMapping" and args.get("NewExternalPort", "").isdigit():
            claimer = q.claim_before_add.pop(int(args["NewExternalPort"]), None)
            if claimer is not None:
                port, proto = int(args["NewExternalPort"]), args.get("NewProtocol", "TCP")
                self.mappings[(proto, port)] = FakeMapping(
                    "", port, proto, port, claimer, True, "another host", 0, None
                )
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
        if method == "POST" and path == _DEAD_PATH and q.dead_wan_first:
            out = _dead_wan(action)
            if out is None:
                return await self._send(writer, 500, fault_body(501), version)
            kind = "WANPPPConnection" if q.dead_wan_first == "ppp" else "WANIPConnection"
            body = self._response_body(action, out, f"urn:schemas-upnp-org:service:{kind}:1")
            return await self._send(writer, 200, body, version)
        if method == "POST" and path == _COMMON_PATH:
            what = action.removeprefix("GetTotal")
            if not action.startswith("GetTotal") or what not in self.traffic:
                return await self._send(writer, 500, fault_body(401), version)
            out = [(f"NewTotal{what}", str(self.traffic[what]))]
            return await self._send(
                writer, 200, self._response_body(action, out, _COMMON_TYPE), version
            )
        if method == "POST" and path in (self.control_path, _FIREWALL_PATH):
            if q.soap_body is not None:
                return await self._send(writer, 200, q.soap_body, version)
            service = self.service_type if path == self.control_path else _FIREWALL_TYPE
            try:
                if path == _FIREWALL_PATH and self.firewall:
                    out = self._firewall(action, args, peer)
                else:
                    out = self._dispatch(action, args)
            except Fault as fault:
                return await self._send(writer, 500, fault_body(fault.code), version)
            if action in q.garbage_after:  # the router acted; its reply is unreadable
                return await self._send(writer, 200, b"<s:Envelope><broken", version)
            if action in q.hang_after:  # the router acted; the reply never comes
                await self._pause(3600)
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
        dead = ""
        if self.quirks.dead_wan_first:
            kind = "WANPPPConnection" if self.quirks.dead_wan_first == "ppp" else "WANIPConnection"
            dead = (
                f"<device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1"
                f"</deviceType><friendlyName>dead WAN</friendlyName><UDN>{self.udn}-dead</UDN>"
                f"<serviceList><service><serviceType>urn:schemas-upnp-org:service:{kind}:1"
                f"</serviceType><serviceId>urn:upnp-org:serviceId:Dead1</serviceId>"
                f"<SCPDURL>/dead.xml</SCPDURL><controlURL>{_DEAD_PATH}</controlURL>"
                "<eventSubURL>/evt/dead</eventSubURL></service></serviceList></device>"
            )
        return (
            '<?xml version="1.0"?>\r\n<root xmlns="urn:schemas-upnp-org:device-1-0">'
            "<specVersion><major>1</major><minor>1</minor></specVersion><device>"
            f"<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:{v}</deviceType>"
            f"<friendlyName>FakeIGD {escape(self.host)}</friendlyName><manufacturer>aioigd"
            f"</manufacturer><modelName>FakeIGD</modelName><UDN>{self.udn}</UDN><deviceList>"
            f"<device><deviceType>urn:schemas-upnp-org:device:WANDevice:{v}</deviceType>"
            f"<friendlyName>WANDevice</friendlyName><UDN>{self.udn}-wan</UDN>"
            f"<serviceList><service><serviceType>{_COMMON_TYPE}</serviceType><serviceId>"
            "urn:upnp-org:serviceId:WANCommonIFC1</serviceId><SCPDURL>/cmn.xml</SCPDURL>"
            f"<controlURL>{_COMMON_PATH}</controlURL><eventSubURL>/evt/cmn</eventSubURL>"
            f"</service></serviceList><deviceList>{dead}"
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
        if self.igd.quirks.ignore_searches > 0:
            self.igd.quirks.ignore_searches -= 1
            return
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
