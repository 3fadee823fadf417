"""async-upnp-client (IgdDevice profile) side of the benchmarks; run in the client namespace.

``python benchmarks/worker_async_upnp_client.py FIGURE --location URL [...]`` prints one
JSON line. Figures: discover, extip, mapdel, bulk, seed.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta
from ipaddress import IPv4Address
from typing import Any

import aiohttp
from _common import BENCH_DESCRIPTION, emit, now, tcp_active_opens
from async_upnp_client.aiohttp import AiohttpRequester, AiohttpSessionRequester
from async_upnp_client.client import UpnpRequester
from async_upnp_client.client_factory import UpnpFactory
from async_upnp_client.exceptions import UpnpActionResponseError
from async_upnp_client.profiles.igd import IgdDevice
from async_upnp_client.search import SsdpSearchListener

ANY = IPv4Address("0.0.0.0")  # the profile sends remote_host.exploded; miniupnpd takes it as ""
LEASE = timedelta(seconds=3600)


async def device(location: str, requester: UpnpRequester | None = None) -> IgdDevice:
    """Root description + every SCPD, as the library always does before the first action."""
    factory = UpnpFactory(requester or AiohttpRequester())
    return IgdDevice(await factory.async_create_device(location), None)


async def first_answer(timeout: float = 4.0) -> str:
    """Return the LOCATION of the first IGD answer: hand-written SsdpSearchListener code
    (the library's own ``async_search`` always sleeps its whole timeout)."""
    loop = asyncio.get_running_loop()
    found: asyncio.Future[str] = loop.create_future()

    async def on_response(headers: Any) -> None:
        if headers.get("st") in IgdDevice.DEVICE_TYPES and not found.done():
            found.set_result(headers["location"])

    async def on_connect() -> None:
        listener.async_search()

    listener = SsdpSearchListener(
        async_callback=on_response, async_connect_callback=on_connect, loop=loop
    )
    await listener.async_start()
    try:
        return await asyncio.wait_for(found, timeout)
    finally:
        listener.async_stop()


async def fig_discover(a: argparse.Namespace) -> None:
    """Variant by --variant: default (async_search(), 4 s), t1 (timeout=1), listener."""
    samples = []
    for _ in range(a.n):
        t0 = now()
        if a.variant == "listener":
            location = await first_answer()
        else:
            timeout = 1 if a.variant == "t1" else None
            found = await (
                IgdDevice.async_search(timeout=timeout) if timeout else IgdDevice.async_search()
            )
            location = sorted(found, key=lambda h: h["location"])[0]["location"]
        igd = await device(location)
        samples.append(now() - t0)
        assert igd.device.services
        await asyncio.sleep(a.gap)
    emit({f"discover_{a.variant}": samples})


async def fig_extip(a: argparse.Namespace) -> None:
    series: dict[str, list[float]] = {"extip": [], "extip_session": []}
    info: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:
        for name, requester in (
            ("extip", AiohttpRequester()),
            ("extip_session", AiohttpSessionRequester(session)),
        ):
            igd = await device(a.location, requester)
            opens0 = tcp_active_opens()
            for _ in range(a.n):
                t0 = now()
                await igd.async_get_external_ip_address()
                series[name].append(now() - t0)
            info[f"{name}_opens_per_call"] = (tcp_active_opens() - opens0) / a.n
    emit(series, **info)


async def fig_mapdel(a: argparse.Namespace) -> None:
    igd = await device(a.location)
    client = IPv4Address(a.client)
    series: dict[str, list[float]] = {"map": [], "delete": []}
    for _ in range(a.n):
        t0 = now()
        await igd.async_add_port_mapping(
            ANY, a.port, "TCP", a.port, client, True, BENCH_DESCRIPTION, LEASE
        )
        entry = await igd.async_get_specific_port_mapping_entry(None, a.port, "TCP")
        t1 = now()
        await igd.async_delete_port_mapping(ANY, a.port, "TCP")
        series["map"].append(t1 - t0)
        series["delete"].append(now() - t1)
        assert entry is not None and entry.internal_client == client
    emit(series)


async def fig_bulk(a: argparse.Namespace) -> None:
    igd = await device(a.location)
    client = IPv4Address(a.client)
    ports = range(a.port, a.port + a.n)
    opens0 = tcp_active_opens()
    t0 = now()
    for port in ports:
        await igd.async_add_port_mapping(
            ANY, port, "TCP", port, client, True, BENCH_DESCRIPTION, LEASE
        )
    t1 = now()
    for port in ports:
        await igd.async_delete_port_mapping(ANY, port, "TCP")
    t2 = now()
    emit(
        {"add": [t1 - t0], "delete": [t2 - t1], "total": [t2 - t0]},
        active_opens=tcp_active_opens() - opens0,
        actions=2 * a.n,
    )


async def fig_seed(a: argparse.Namespace) -> None:
    """The seed flow by hand with the profile's calls (table enumerated entry by entry)."""
    client = IPv4Address(a.client)
    samples, requests, opens = [], [], []
    for _ in range(a.n):
        igd = await device(a.location)
        o0 = tcp_active_opens()
        t0 = now()
        await igd.async_get_external_ip_address()
        table, index = {}, 0
        while True:
            try:
                entry = await igd.async_get_generic_port_mapping_entry(index)
            except UpnpActionResponseError:
                break  # 713 SpecifiedArrayIndexInvalid: end of the table
            assert entry is not None
            table[(entry.protocol, entry.external_port)] = entry
            index += 1
        holder = table.get(("TCP", a.port))
        assert holder is None or holder.internal_client == client
        await igd.async_add_port_mapping(
            ANY, a.port, "TCP", a.port, client, True, BENCH_DESCRIPTION, LEASE
        )
        assert await igd.async_get_specific_port_mapping_entry(None, a.port, "TCP")
        samples.append(now() - t0)
        requests.append(1 + (index + 1) + 2)
        opens.append(tcp_active_opens() - o0)
        await igd.async_delete_port_mapping(ANY, a.port, "TCP")
    emit({"seed": samples}, requests=requests, active_opens=opens)


FIGURES = {
    "discover": fig_discover,
    "extip": fig_extip,
    "mapdel": fig_mapdel,
    "bulk": fig_bulk,
    "seed": fig_seed,
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("figure", choices=FIGURES)
    p.add_argument("--location", default="")
    p.add_argument("--client", default="192.168.1.2", help="this host's LAN address")
    p.add_argument("--n", type=int, default=5)
    p.add_argument("--port", type=int, default=22000)
    p.add_argument("--gap", type=float, default=0.1)
    p.add_argument("--variant", default="default", choices=("default", "t1", "listener"))
    a = p.parse_args()
    asyncio.run(FIGURES[a.figure](a))


if __name__ == "__main__":
    main()
