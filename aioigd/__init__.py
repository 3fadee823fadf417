"""aioigd: asyncio UPnP IGD client."""
