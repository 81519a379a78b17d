"""The fault-injecting proxy in front of the asset server, run as its own process (GDAL holds
Python's GIL while it reads, so a proxy thread inside the test process would never answer it):

    python fault_proxy.py PORT UPSTREAM_PORT

Control, on the same port: `POST /_fault?kind=503&times=2` (kinds: 429, 503, truncate, stall; no kind:
none), `GET /_requests` (the requests seen since the last `POST /_reset`, as JSON). Standard library only.
"""
from __future__ import annotations

import datetime as dt
import http.client
import json
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EXPIRED = ('<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>Server failed '
           'to authenticate the request. Make sure the value of Authorization header is formed correctly including '
           'the signature.</Message><AuthenticationErrorDetail>Signed expiry time [{se}] must be after signed start '
           'time [{now}]</AuthenticationErrorDetail></Error>')


@dataclass
class Fault:
    """kind: "429", "503", "truncate", "stall"; `times` requests get it, then the server answers normally."""
    kind: str
    times: int = 1_000_000
    stall_s: float = 5.0


class _Proxy(BaseHTTPRequestHandler):
    server_version = "stars-test-assets"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._forward(head=True)

    def do_GET(self) -> None:
        if self.path.startswith("/_requests"):
            with self.server.state.lock:
                return self._simple(200, json.dumps(self.server.state.requests).encode())
        self._forward(head=False)

    def do_POST(self) -> None:
        state, url = self.server.state, urllib.parse.urlsplit(self.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        with state.lock:
            if url.path == "/_reset":
                state.requests.clear()
                state.fault = None
            elif url.path == "/_fault":
                state.fault = (Fault(query["kind"], int(query.get("times", 1_000_000)), float(query.get("stall_s", 5)))
                               if "kind" in query else None)
        self._simple(204)

    def _fault(self) -> Fault | None:
        assets = self.server.state
        with assets.lock:
            assets.requests.append((self.command, self.path, self.headers.get("Range")))
            fault = assets.fault
            if fault is None or fault.times <= 0:
                return None
            fault.times -= 1
            return fault

    def _expired(self) -> str | None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        se = query.get("se", [None])[0]
        if se and dt.datetime.fromisoformat(se.replace("Z", "+00:00")) < dt.datetime.now(dt.timezone.utc):
            return se
        return None

    def _simple(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self, head: bool) -> None:
        fault = self._fault()
        se = self._expired()
        if se:
            now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            return self._simple(403, EXPIRED.format(se=se, now=now).encode(), {"Content-Type": "application/xml"})
        if fault and fault.kind in ("429", "503"):
            return self._simple(int(fault.kind), b"busy", {"Retry-After": "1"})
        if fault and fault.kind == "stall":
            time.sleep(fault.stall_s)
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.state.upstream_port, timeout=30)
        path = urllib.parse.urlsplit(self.path).path
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("range", "if-none-match", "accept")}
        upstream.request(self.command, path, headers=headers)
        answer = upstream.getresponse()
        body = answer.read()
        self.send_response(answer.status)
        for k, v in answer.getheaders():
            if k.lower() not in ("server", "date", "connection"):
                self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body[: len(body) // 2] if fault and fault.kind == "truncate" else body)
        if fault and fault.kind == "truncate":
            self.close_connection = True
        upstream.close()


class State:
    def __init__(self, upstream_port: int) -> None:
        self.lock = threading.Lock()
        self.requests: list = []
        self.fault: Fault | None = None
        self.upstream_port = upstream_port


def main(port: int, upstream_port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Proxy)
    server.daemon_threads = True
    server.state = State(upstream_port)
    server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
