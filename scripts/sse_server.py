#!/usr/bin/env python3
"""Serve one pre-built SSE body to every POST, as fast as the socket takes it.

Usage: sse_server.py BODY_FILE PORT_FILE
Writes the port it listens on to PORT_FILE. Used by scripts/measure_hostile.sh to compare
backchat with curl on the same bytes.
"""
import http.server
import socketserver
import sys

BODY = open(sys.argv[1], "rb").read()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(BODY)))
        self.send_header("request-id", "req_measure")
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


with Server(("127.0.0.1", 0), Handler) as srv:
    with open(sys.argv[2], "w") as f:
        f.write(str(srv.server_address[1]))
    srv.serve_forever()
