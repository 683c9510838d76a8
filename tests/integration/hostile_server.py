#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A misbehaving HTTPS file server for the integration tests.

Serves the files under --root over HTTP/1.1 + TLS on 127.0.0.1, with
"Range: bytes=N-" (and "bytes=N-M") answered by 206 + Content-Range.  Requests
whose path contains --target are answered according to --mode:

  normal        served like any other path
  reset-always  headers and about half of the body, then the connection is
                aborted with a TCP RST (SO_LINGER 0, then close)
  reset-once    the first request for each such path is reset as above; later
                ones (Range requests included) are served correctly
  stall         headers, then nothing: the socket stays open until the client
                goes away
  endless-error 503 with a body that never ends (no Content-Length), sent
                as fast as the client reads it, until the client cuts the
                connection (logged "cut"; "done" if the server's lifetime
                ends first)
  drip          the body at --drip-rate bytes per second (logged "drip-cut" if
                the client cut the connection)
  drip-once     the first request for each such path drips as above; later
                ones are served correctly

The port is printed on stdout on one line as soon as the server listens.  The
server stops by itself after --lifetime seconds, and on SIGTERM or SIGINT.
Each request is logged on stderr (or --log FILE) as
"<path> <range-start> <status> <action> <bytes-sent>".
"""
import argparse
import http.server
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse

MODES = ("normal", "reset-always", "reset-once", "reset-once-norange", "stall", "endless-error", "drip",
         "drip-once")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, ctx, opts):
        super().__init__(addr, handler)
        self.ctx = ctx
        self.opts = opts
        self.lock = threading.Lock()
        self.seen = set()          # target paths already reset once
        self.stopping = threading.Event()
        self.log_lock = threading.Lock()
        self.log_file = open(opts.log, "a", buffering=1) if opts.log else sys.stderr

    def log(self, line):
        with self.log_lock:
            try:
                self.log_file.write(line + "\n")
                self.log_file.flush()
            except (OSError, ValueError):
                pass

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the connection's own thread, so that
        # a slow or broken client never holds up accept().
        request.settimeout(30)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.log("- - - handshake-failed %s" % e)
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except (ssl.SSLError, OSError):
            pass
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        pass  # clients that go away mid-transfer are expected here


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hostile/1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    def log_message(self, fmt, *args):
        pass

    def _resolve(self):
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        root = os.path.realpath(self.server.opts.root)
        full = os.path.realpath(os.path.join(root, path.lstrip("/")))
        if full != root and not full.startswith(root + os.sep):
            return path, None
        return path, full

    def _parse_range(self, size):
        """(start, end) inclusive, None for no Range, or "bad" when unsatisfiable."""
        h = self.headers.get("Range")
        if not h:
            return None
        h = h.strip()
        if not h.startswith("bytes=") or "," in h:
            return None  # not understood: serve the whole file
        spec = h[len("bytes="):]
        first, _, last = spec.partition("-")
        try:
            if first == "":
                n = int(last)  # suffix range: the last n bytes
                if n <= 0:
                    return "bad"
                return (max(0, size - n), size - 1)
            start = int(first)
            end = int(last) if last else size - 1
        except ValueError:
            return None
        if start >= size or end < start:
            return "bad"
        return (start, min(end, size - 1))

    def _abort(self):
        """Abort the connection with a TCP RST."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        # rfile holds a reference to the socket: drop it, or close() would
        # wait for it
        for f in (self.rfile, self.connection):
            try:
                f.close()
            except OSError:
                pass

    def _stall(self):
        """Keep the socket open and silent until the client closes it."""
        self.close_connection = True
        sock = self.connection
        sock.settimeout(0.5)
        deadline = time.monotonic() + self.server.opts.lifetime
        while time.monotonic() < deadline and not self.server.stopping.is_set():
            try:
                if not sock.recv(4096):
                    return
            except socket.timeout:
                continue
            except (ssl.SSLError, OSError):
                return

    def _endless_error(self, path):
        """503 with a body that never ends: returns when the client cuts."""
        self.close_connection = True
        self.send_response(503)
        self.send_header("Content-Type", "text/html")
        self.send_header("Connection", "close")
        self.end_headers()
        junk = b"<p>busy</p>" * 1500
        sent = 0
        deadline = time.monotonic() + self.server.opts.lifetime
        try:
            while time.monotonic() < deadline and not self.server.stopping.is_set():
                self.wfile.write(junk)
                sent += len(junk)
            action = "done"
        except (ssl.SSLError, OSError):
            action = "cut"
        self.server.log("%s 0 503 %s %d" % (path, action, sent))

    def _drip(self, path, start, status, body):
        """Send body at --drip-rate bytes per second."""
        self.close_connection = True
        gap = 1.0 / self.server.opts.drip_rate
        sent = 0
        try:
            for i in range(len(body)):
                if self.server.stopping.is_set():
                    break
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                sent += 1
                time.sleep(gap)
            action = "drip"
        except (ssl.SSLError, OSError):
            action = "drip-cut"
        self.server.log("%s %d %d %s %d" % (path, start, status, action, sent))

    def _send_error(self, code, text):
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        opts = self.server.opts
        path, full = self._resolve()
        if full is None or not os.path.isfile(full):
            self.server.log("%s - 404 - 0" % path)
            self._send_error(404, "not found")
            return
        with open(full, "rb") as f:
            data = f.read()
        size = len(data)
        rng = None if opts.mode == "reset-once-norange" else self._parse_range(size)
        if rng == "bad":
            self.server.log("%s %s 416 - 0" % (path, self.headers.get("Range")))
            self.send_response(416)
            self.send_header("Content-Range", "bytes */%d" % size)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = rng if rng else (0, size - 1)
        body = data[start:end + 1]

        action = "serve"
        if opts.target and opts.target in path:
            if opts.mode == "endless-error":
                self._endless_error(path)
                return
            if opts.mode == "drip":
                action = "drip"
            elif opts.mode == "drip-once":
                with self.server.lock:
                    if path not in self.server.seen:
                        self.server.seen.add(path)
                        action = "drip"
            elif opts.mode == "reset-always":
                action = "reset"
            elif opts.mode == "stall":
                action = "stall"
            elif opts.mode in ("reset-once", "reset-once-norange"):
                with self.server.lock:
                    if path not in self.server.seen:
                        self.server.seen.add(path)
                        action = "reset"

        self.send_response(206 if rng else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if rng:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if self.command == "HEAD":
            self.server.log("%s %d %d head 0" % (path, start, 206 if rng else 200))
            return

        if action == "serve":
            self.wfile.write(body)
            self.server.log("%s %d %d serve %d" % (path, start, 206 if rng else 200, len(body)))
        elif action == "drip":
            self._drip(path, start, 206 if rng else 200, body)
        elif action == "reset":
            half = len(body) // 2
            self.wfile.write(body[:half])
            self.wfile.flush()
            # let the client read what was sent before the connection dies
            time.sleep(opts.reset_delay)
            self.server.log("%s %d %d reset %d" % (path, start, 206 if rng else 200, half))
            self._abort()
        else:
            self.wfile.flush()
            self.server.log("%s %d %d stall 0" % (path, start, 206 if rng else 200))
            self._stall()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="folder to serve")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: pick one)")
    ap.add_argument("--cert", required=True, help="server certificate (PEM)")
    ap.add_argument("--key", required=True, help="its private key (PEM)")
    ap.add_argument("--mode", choices=MODES, default="normal")
    ap.add_argument("--target", default="", help="misbehave for paths that contain this")
    ap.add_argument("--lifetime", type=float, default=120.0, help="stop after this many seconds")
    ap.add_argument("--reset-delay", type=float, default=0.3,
                    help="seconds between the partial body and the reset")
    ap.add_argument("--drip-rate", type=float, default=2.0, help="bytes per second in the drip modes")
    ap.add_argument("--log", help="append the request log to this file instead of stderr")
    opts = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(opts.cert, opts.key)
    ctx.set_alpn_protocols(["http/1.1"])

    server = Server(("127.0.0.1", opts.port), Handler, ctx, opts)
    print(server.server_address[1], flush=True)

    def stop(*_):
        server.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    timer = threading.Timer(opts.lifetime, stop)
    timer.daemon = True
    timer.start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.stopping.set()
        timer.cancel()
        server.server_close()


if __name__ == "__main__":
    main()
