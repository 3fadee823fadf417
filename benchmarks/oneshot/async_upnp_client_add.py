"""One-shot async-upnp-client script, gateway URL known: description (+ SCPDs), external IP,
add, verify, exit. ``python async_upnp_client_add.py LOCATION PORT CLIENT_IP``.
"""

import asyncio
import sys
from datetime import timedelta
from ipaddress import IPv4Address

from async_upnp_client.aiohttp import AiohttpRequester
from async_upnp_client.client_factory import UpnpFactory
from async_upnp_client.profiles.igd import IgdDevice


async def main(location: str, port: int, client: IPv4Address) -> None:
    factory = UpnpFactory(AiohttpRequester())
    igd = IgdDevice(await factory.async_create_device(location), None)
    external_ip = await igd.async_get_external_ip_address()
    await igd.async_add_port_mapping(
        IPv4Address("0.0.0.0"), port, "TCP", port, client, True, "bench", timedelta(seconds=3600)
    )
    entry = await igd.async_get_specific_port_mapping_entry(None, port, "TCP")
    if entry is None or entry.internal_client != client:
        sys.exit("verification failed")
    print(f"{external_ip}:{port} -> {client}:{port}")


asyncio.run(main(sys.argv[1], int(sys.argv[2]), IPv4Address(sys.argv[3])))
