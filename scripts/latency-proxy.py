#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that adds a round trip to every request (stdlib only).

Usage: latency-proxy.py LISTEN_PORT TARGET_HOST:PORT RTT_MS

Each chunk a client sends is held RTT_MS before it is forwarded, so every HTTP
request on a kept-alive connection costs one round trip, as it would against a
Prometheus in another room or site. Connections are independent: requests in
flight on different connections wait concurrently, as on a real network.
Prints `ready` once listening; runs until killed.
"""
import asyncio
import sys


async def pipe(reader, writer, delay_s):
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            if delay_s:
                await asyncio.sleep(delay_s)
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main():
    port, target, rtt_ms = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    host, target_port = target.rsplit(":", 1)

    async def handle(client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_connection(host, int(target_port))
        await asyncio.gather(
            pipe(client_reader, server_writer, rtt_ms / 1000.0),
            pipe(server_reader, client_writer, 0.0),
        )

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
