"""The floor: the same requests over plain sockets, no library in the way.

Run inside the lab's client namespace (``benchmarks/run.py`` does). Subcommands:

- ``msearch``: unicast (and multicast) M-SEARCH to the router, time to the first answer.
- ``desc``: GET the root description over a fresh TCP connection.
- ``soap``: one GetExternalIPAddress POST over a fresh TCP connection (blocking socket,
  asyncio streams: the best an asyncio client can do, and one tuned aiohttp session: the
  best a client on aiohttp can do).
- ``mapdel``: AddPortMapping + GetSpecificPortMappingEntry, then DeletePortMapping (blocking
  socket, and the same over one tuned aiohttp session).
- ``bulk``: N adds then N deletes, sequentially.
- ``prefill`` / ``wipe``: fill the router's table with N mappings / empty it (one
  DeletePortMapping at a time: a DeletePortMappingRange over >= 133 mappings crashes
  miniupnpd 2.3.1).

Also imported by ``coldrun.py`` for its cleanup deletes.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
import sys
import time
from urllib.parse import urlsplit

from _common import BENCH_DESCRIPTION, emit, now, tcp_active_opens

SSDP = ("239.255.255.250", 1900)
IGD_ST = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
_SERVICE = re.compile(r"<service>(.*?)</service>", re.S)
_TAG = re.compile(r"<(\w+)>([^<]*)</\1>")


class Soap:
    """GET/POST over a fresh TCP connection per request, like every client must here."""

    def __init__(self, location: str) -> None:
        parts = urlsplit(location)
        self.host = parts.hostname or ""
        self.port = parts.port or 80
        self.location = location
        desc = self.get(parts.path or "/")[1].decode()
        self.service, self.control = "", ""
        for block in _SERVICE.findall(desc):
            fields = dict(_TAG.findall(block))
            if "WANIPConnection" in fields.get("serviceType", ""):
                self.service, self.control = fields["serviceType"], fields["controlURL"]
                break
        if not self.control:
            raise SystemExit(f"no WANIPConnection in {location}")

    def _exchange(self, request: bytes) -> tuple[int, bytes]:
        with socket.create_connection((self.host, self.port), timeout=10) as sock:
            sock.sendall(request)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        data = b"".join(chunks)
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, body

    def get(self, path: str) -> tuple[int, bytes]:
        req = f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nConnection: close\r\n\r\n"
        return self._exchange(req.encode())

    def body(self, action: str, args: list[tuple[str, str]] | None = None) -> bytes:
        """The SOAP envelope of one action."""
        inner = "".join(f"<{k}>{v}</{k}>" for k, v in args or [])
        return (
            '<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/'
            'envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
            f'<u:{action} xmlns:u="{self.service}">{inner}</u:{action}></s:Body></s:Envelope>'
        ).encode()

    def headers(self, action: str) -> dict[str, str]:
        return {
            "Content-Type": 'text/xml; charset="utf-8"',
            "SOAPAction": f'"{self.service}#{action}"',
        }

    def add_args(
        self, port: int, client: str, description: str = BENCH_DESCRIPTION
    ) -> list[tuple[str, str]]:
        return [
            ("NewRemoteHost", ""),
            ("NewExternalPort", str(port)),
            ("NewProtocol", "TCP"),
            ("NewInternalPort", str(port)),
            ("NewInternalClient", client),
            ("NewEnabled", "1"),
            ("NewPortMappingDescription", description),
            ("NewLeaseDuration", "3600"),
        ]

    def request(self, action: str, args: list[tuple[str, str]] | None = None) -> bytes:
        """The whole HTTP request (headers + SOAP body) for one action."""
        body = self.body(action, args)
        head = (
            f"POST {self.control} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            'Content-Type: text/xml; charset="utf-8"\r\n'
            f'SOAPAction: "{self.service}#{action}"\r\n'
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        return head + body

    def call(self, action: str, args: list[tuple[str, str]] | None = None) -> dict[str, str]:
        """POST one action; returns its out arguments, raises RuntimeError on a fault."""
        status, reply = self._exchange(self.request(action, args))
        text = reply.decode(errors="replace")
        if status != 200:
            code = re.search(r"<errorCode>(\d+)</errorCode>", text)
            raise RuntimeError(f"{action}: HTTP {status} UPnP {code.group(1) if code else '?'}")
        return dict(_TAG.findall(text))

    def add(self, port: int, client: str, description: str = BENCH_DESCRIPTION) -> None:
        self.call("AddPortMapping", self.add_args(port, client, description))

    def key(self, port: int) -> list[tuple[str, str]]:
        return [("NewRemoteHost", ""), ("NewExternalPort", str(port)), ("NewProtocol", "TCP")]

    def delete(self, port: int) -> None:
        self.call("DeletePortMapping", self.key(port))

    def specific(self, port: int) -> dict[str, str]:
        return self.call("GetSpecificPortMappingEntry", self.key(port))

    def wipe(self, limit: int = 2000) -> int:
        """Delete every mapping, entry 0 first, one at a time; returns how many."""
        removed = 0
        for _ in range(limit):
            try:
                entry = self.call("GetGenericPortMappingEntry", [("NewPortMappingIndex", "0")])
            except RuntimeError:
                break  # 713: the table is empty
            self.call(
                "DeletePortMapping",
                [
                    ("NewRemoteHost", entry.get("NewRemoteHost", "")),
                    ("NewExternalPort", entry["NewExternalPort"]),
                    ("NewProtocol", entry["NewProtocol"]),
                ],
            )
            removed += 1
        return removed


def local_ip(host: str) -> str:
    """This host's address on the route to ``host`` (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, 1900))
        return str(s.getsockname()[0])


def msearch_rtt(target: tuple[str, int], timeout: float = 2.0) -> float:
    """Send one M-SEARCH and return ms until the first answer (NaN on timeout)."""
    msg = (
        f'M-SEARCH * HTTP/1.1\r\nHOST: {SSDP[0]}:{SSDP[1]}\r\nMAN: "ssdp:discover"\r\n'
        f"MX: 1\r\nST: {IGD_ST}\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
        sock.settimeout(timeout)
        sock.bind(("0.0.0.0", 0))
        t0 = now()
        sock.sendto(msg, target)
        try:
            sock.recvfrom(2048)
        except TimeoutError:
            return float("nan")
        return now() - t0


async def asyncio_soap(soap: Soap, n: int) -> list[float]:
    """GetExternalIPAddress over asyncio streams, a fresh connection each: the best case
    for an asyncio client (no HTTP library, no XML parser)."""
    req = soap.request("GetExternalIPAddress")
    samples = []
    for _ in range(n):
        t0 = now()
        reader, writer = await asyncio.open_connection(soap.host, soap.port)
        writer.write(req)
        data = await reader.read()
        writer.close()
        samples.append(now() - t0)
        if b" 200 " not in data.split(b"\r\n", 1)[0]:
            raise RuntimeError("GetExternalIPAddress failed")
    return samples


class AiohttpSoap:
    """The same POSTs over one aiohttp session tuned as aioigd's is (no DNS cache, no
    cookie jar, no User-Agent or Accept-Encoding, no decompression, no timeout object):
    what aiohttp itself costs per request, with no SOAP or XML code at all."""

    def __init__(self, soap: Soap) -> None:
        import aiohttp
        import yarl

        self.soap = soap
        self.url = yarl.URL(f"http://{soap.host}:{soap.port}{soap.control}")
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None),
            connector=aiohttp.TCPConnector(use_dns_cache=False),
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def post(self, action: str, args: list[tuple[str, str]] | None = None) -> bytes:
        body = self.soap.body(action, args)
        async with self.session.post(self.url, data=body, headers=self.soap.headers(action)) as r:
            data = await r.read()
            if r.status != 200:
                raise RuntimeError(f"{action}: HTTP {r.status}")
            return data

    async def close(self) -> None:
        await self.session.close()


async def aiohttp_soap(soap: Soap, n: int) -> list[float]:
    ah = AiohttpSoap(soap)
    samples = []
    try:
        for _ in range(n):
            t0 = now()
            await ah.post("GetExternalIPAddress")
            samples.append(now() - t0)
    finally:
        await ah.close()
    return samples


async def aiohttp_mapdel(soap: Soap, n: int, port: int, client: str) -> dict[str, list[float]]:
    ah = AiohttpSoap(soap)
    series: dict[str, list[float]] = {"map_aiohttp": [], "delete_aiohttp": []}
    try:
        for _ in range(n):
            t0 = now()
            await ah.post("AddPortMapping", soap.add_args(port, client))
            await ah.post("GetSpecificPortMappingEntry", soap.key(port))
            t1 = now()
            await ah.post("DeletePortMapping", soap.key(port))
            series["map_aiohttp"].append(t1 - t0)
            series["delete_aiohttp"].append(now() - t1)
    finally:
        await ah.close()
    return series


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("what")
    p.add_argument("--location", required=True)
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--port", type=int, default=23000)
    p.add_argument("--gap", type=float, default=0.05)
    a = p.parse_args()
    soap = Soap(a.location)
    series: dict[str, list[float]] = {}
    info: dict[str, object] = {}
    if a.what == "msearch":
        series = {"unicast": [], "multicast": []}
        for _ in range(a.n):
            for name, target in (("unicast", (soap.host, 1900)), ("multicast", SSDP)):
                series[name].append(msearch_rtt(target))
                time.sleep(a.gap)
    elif a.what == "desc":
        series["desc"] = []
        path = urlsplit(a.location).path
        for _ in range(a.n):
            t0 = now()
            soap.get(path)
            series["desc"].append(now() - t0)
    elif a.what == "soap":
        series["extip"] = []
        for _ in range(a.n):
            t0 = now()
            soap.call("GetExternalIPAddress")
            series["extip"].append(now() - t0)
        series["extip_asyncio"] = asyncio.run(asyncio_soap(soap, a.n))
        series["extip_aiohttp"] = asyncio.run(aiohttp_soap(soap, a.n))
    elif a.what == "mapdel":
        client = local_ip(soap.host)
        series = {"map": [], "delete": []}
        for _ in range(a.n):
            t0 = now()
            soap.add(a.port, client)
            soap.specific(a.port)
            t1 = now()
            soap.delete(a.port)
            series["map"].append(t1 - t0)
            series["delete"].append(now() - t1)
        series.update(asyncio.run(aiohttp_mapdel(soap, a.n, a.port, client)))
    elif a.what == "bulk":
        client = local_ip(soap.host)
        ports = range(a.port, a.port + a.n)
        opens0 = tcp_active_opens()
        t0 = now()
        for port in ports:
            soap.add(port, client)
        t1 = now()
        for port in ports:
            soap.delete(port)
        t2 = now()
        series = {"add": [t1 - t0], "delete": [t2 - t1], "total": [t2 - t0]}
        info["active_opens"] = tcp_active_opens() - opens0
        info["actions"] = 2 * a.n
    elif a.what == "prefill":
        client = local_ip(soap.host)
        for port in range(a.port, a.port + a.n):
            soap.add(port, client, description="prefill")
        info["added"] = a.n
    elif a.what == "wipe":
        info["removed"] = soap.wipe()
    else:
        sys.exit(f"unknown subcommand {a.what}")
    emit(series, **info)


if __name__ == "__main__":
    main()
