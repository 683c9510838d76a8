#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A TCP proxy on 127.0.0.1 that cuts every connection at regular intervals.

Forwards each connection on --listen-port to 127.0.0.1:--upstream-port, and
every --cut-every seconds aborts every connection open at that moment, on both
sides, with a TCP RST (SO_LINGER 0, then close) - what a flaky link or a NAT
box that drops its state looks like to both ends.

The port is printed on stdout on one line as soon as the proxy listens.  Every
cut connection is logged (to --log FILE, else stderr) as one line
"cut <seconds since start> conn=<n> up=<bytes to upstream> down=<bytes to client>".
The proxy stops by itself after --lifetime seconds, and on SIGTERM or SIGINT.
"""
import argparse
import asyncio
import signal
import socket
import struct
import sys
import time

LINGER_0 = struct.pack("ii", 1, 0)


class Conn:
    def __init__(self, n, cw, uw):
        self.n = n
        self.client_writer = cw
        self.upstream_writer = uw
        self.up = 0    # bytes client -> upstream
        self.down = 0  # bytes upstream -> client
        self.tasks = []

    def abort(self):
        for w in (self.client_writer, self.upstream_writer):
            sock = w.get_extra_info("socket")
            try:
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
            except OSError:
                pass
            w.transport.abort()
        for t in self.tasks:
            t.cancel()


class Proxy:
    def __init__(self, opts):
        self.opts = opts
        self.conns = set()
        self.serial = 0
        self.t0 = time.monotonic()
        self.log_file = open(opts.log, "a", buffering=1) if opts.log else sys.stderr

    def log(self, line):
        try:
            self.log_file.write(line + "\n")
            self.log_file.flush()
        except (OSError, ValueError):
            pass

    async def pump(self, conn, reader, writer, direction):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if direction == "up":
                    conn.up += len(data)
                else:
                    conn.down += len(data)
                writer.write(data)
                await writer.drain()
        except asyncio.CancelledError:
            return
        except (ConnectionError, OSError):
            # one side failed: the other one goes too
            writer.transport.abort()
            return
        # pass a clean end of stream on as a half-close
        try:
            if writer.can_write_eof() and not writer.transport.is_closing():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass

    async def handle(self, client_reader, client_writer):
        self.serial += 1
        n = self.serial
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.opts.upstream_port), timeout=10)
        except (OSError, asyncio.TimeoutError) as e:
            self.log("upstream-failed conn=%d %s" % (n, e))
            client_writer.transport.abort()
            return
        conn = Conn(n, client_writer, up_writer)
        self.conns.add(conn)
        conn.tasks = [
            asyncio.ensure_future(self.pump(conn, client_reader, up_writer, "up")),
            asyncio.ensure_future(self.pump(conn, up_reader, client_writer, "down")),
        ]
        try:
            await asyncio.gather(*conn.tasks, return_exceptions=True)
        finally:
            self.conns.discard(conn)
            for w in (client_writer, up_writer):
                if not w.transport.is_closing():
                    w.close()

    async def cutter(self):
        while True:
            await asyncio.sleep(self.opts.cut_every)
            for conn in list(self.conns):
                self.log("cut %.2f conn=%d up=%d down=%d" % (time.monotonic() - self.t0, conn.n, conn.up, conn.down))
                self.conns.discard(conn)
                conn.abort()

    async def run(self):
        server = await asyncio.start_server(self.handle, "127.0.0.1", self.opts.listen_port)
        print(server.sockets[0].getsockname()[1], flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        cutter = asyncio.ensure_future(self.cutter())
        try:
            await asyncio.wait_for(stop.wait(), timeout=self.opts.lifetime)
        except asyncio.TimeoutError:
            pass
        cutter.cancel()
        server.close()
        for conn in list(self.conns):
            conn.abort()
        self.conns.clear()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen-port", type=int, default=0, help="port on 127.0.0.1 (0: pick one)")
    ap.add_argument("--upstream-port", type=int, required=True, help="port on 127.0.0.1 to forward to")
    ap.add_argument("--cut-every", type=float, default=3.0, help="seconds between cuts")
    ap.add_argument("--lifetime", type=float, default=120.0, help="stop after this many seconds")
    ap.add_argument("--log", help="append the cut log to this file instead of stderr")
    opts = ap.parse_args()
    if opts.cut_every <= 0:
        ap.error("--cut-every must be positive")
    asyncio.run(Proxy(opts).run())


if __name__ == "__main__":
    main()
