#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A TCP proxy on 127.0.0.1 that delays every piece of data by --delay-ms in
each direction, to give loopback the round-trip time of a real link (for the
concurrency benchmark).  Prints its port; stops after --lifetime seconds."""
import argparse
import asyncio
import sys


async def pipe(reader, writer, delay):
    loop = asyncio.get_running_loop()
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            loop.call_later(delay, writer.write, data)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        await asyncio.sleep(delay)
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream-port", type=int, required=True)
    ap.add_argument("--delay-ms", type=float, default=25)
    ap.add_argument("--lifetime", type=float, default=600)
    a = ap.parse_args()
    delay = a.delay_ms / 1000

    async def handle(cr, cw):
        ur, uw = await asyncio.open_connection("127.0.0.1", a.upstream_port)
        await asyncio.gather(pipe(cr, uw, delay), pipe(ur, cw, delay))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await asyncio.sleep(a.lifetime)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
