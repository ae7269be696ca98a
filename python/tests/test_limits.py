"""The run's client must not cap concurrency: every agent's request is in flight at once."""

import asyncio

from chimeraforge_py.child import new_client

N = 150  # more than httpx's default limit of 100 connections


async def _all_at_once() -> list:
    arrived = 0
    everyone_in = asyncio.Event()

    async def handle(reader, writer):
        nonlocal arrived
        await reader.readuntil(b"\r\n\r\n")
        arrived += 1
        if arrived >= N:
            everyone_in.set()
        try:
            # Reply only once all N requests are here: a capped client never gets there.
            await asyncio.wait_for(everyone_in.wait(), timeout=10)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        except asyncio.TimeoutError:
            writer.write(b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=N * 2)
    port = server.sockets[0].getsockname()[1]
    async with server, new_client(5.0) as client:
        responses = await asyncio.gather(
            *(client.get(f"http://127.0.0.1:{port}/", headers={"connection": "close"}) for _ in range(N))
        )
    return [r.status_code for r in responses]


def test_no_connection_limit():
    codes = asyncio.run(_all_at_once())
    assert codes == [200] * N, f"{codes.count(503)} of {N} requests were not in flight together"
