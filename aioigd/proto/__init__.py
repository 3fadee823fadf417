"""Sans-I/O core: pure functions from bytes to values and back.

Nothing in this package imports asyncio, aiohttp or socket (a test checks it).
"""
