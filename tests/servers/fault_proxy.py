"""The fault-injecting proxy in front of the asset server, run as its own process (GDAL holds
Python's GIL while it reads, so a proxy thread inside the test process would never answer it):

    python fault_proxy.py PORT UPSTREAM_PORT

Control, on the same port: `POST /_fault?kind=503&times=2` (kinds: 429, 500, 502, 503, 504, truncate,
stall, stale-sas;
no kind: none), `GET /_requests` (the requests seen since the last `POST /_reset`, as JSON). Standard
library only.

In front of a STAC API it forwards POST bodies and gives the API the proxy's own Host, so the links the
API writes (its search endpoint, next pages) lead back through the proxy. Asked as an HTTP proxy (an
absolute URL in the request line, e.g. `http://account.blob.core.windows.net/item/vv.tif`, as curl
sends it with GDAL_HTTP_PROXY), it serves that URL's path from its upstream.

`GET /_sas/<account>/<container>` answers as Planetary Computer's token service does (`{"msft:expiry",
"token"}`; the faults apply to it too): a SAS token valid for an hour, numbered; while a `stale-sas`
fault lasts, each token issued (one per `times`) has an expiry already past, as a token signed with a
skewed clock has, while its `msft:expiry` says an hour. `POST /_revoke` refuses every token issued so
far, as an expired one is (403), from the next request on.
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
    """kind: "429", "500", "502", "503", "504", "truncate", "stall", "stale-sas"; `times` requests (tokens
    for stale-sas) get it,
    then the server answers normally."""
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
        if url.path not in ("/_reset", "/_fault", "/_revoke"):
            return self._forward(head=False)  # a STAC API's POST /search
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        with state.lock:
            if url.path == "/_reset":
                state.requests.clear()
                state.fault = None
            elif url.path == "/_fault":
                state.fault = (Fault(query["kind"], int(query.get("times", 1_000_000)), float(query.get("stall_s", 5)))
                               if "kind" in query else None)
            else:
                state.revoked = state.serial
        self._simple(204)

    def _fault(self) -> Fault | None:
        assets = self.server.state
        with assets.lock:
            assets.requests.append((self.command, self.path, self.headers.get("Range")))
            fault = assets.fault
            if fault is None or fault.times <= 0 or fault.kind == "stale-sas":
                return None
            fault.times -= 1
            return fault

    def _token(self) -> None:
        """A numbered SAS token, an hour long (already expired while a stale-sas fault lasts)."""
        state, now = self.server.state, dt.datetime.now(dt.timezone.utc)
        with state.lock:
            state.serial += 1
            fault, stale = state.fault, False
            if fault is not None and fault.kind == "stale-sas" and fault.times > 0:
                fault.times, stale = fault.times - 1, True
            serial = state.serial
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        se = (now - dt.timedelta(hours=1) if stale else now + dt.timedelta(hours=1)).strftime(stamp)
        token = (f"st={(now - dt.timedelta(hours=2)).strftime(stamp)}&se={se}&sp=rl&sv=2021-06-08&sr=c"
                 f"&skoid=stars-test&sig=t{serial}")
        body = json.dumps({"msft:expiry": (now + dt.timedelta(hours=1)).strftime(stamp), "token": token}).encode()
        self._simple(200, body, {"Content-Type": "application/json"})

    def _expired(self) -> str | None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        se, sig = query.get("se", [None])[0], query.get("sig", [""])[0]
        if sig[:1] == "t" and sig[1:].isdigit() and int(sig[1:]) <= self.server.state.revoked:
            return se or "revoked"
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
        length = int(self.headers.get("Content-Length") or 0)
        sent = self.rfile.read(length) if length else None  # read whatever the answer: the connection stays usable
        fault = self._fault()
        se = self._expired()
        if se:
            now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            return self._simple(403, EXPIRED.format(se=se, now=now).encode(), {"Content-Type": "application/xml"})
        if fault and fault.kind in ("429", "500", "502", "503", "504"):  # Retry-After where real hosts send it
            return self._simple(int(fault.kind), b"busy", {"Retry-After": "1"} if fault.kind in ("429", "503") else {})
        if fault and fault.kind == "stall":
            time.sleep(fault.stall_s)
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/_sas/"):
            return self._token()
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.state.upstream_port, timeout=30)
        path = url.path + (f"?{url.query}" if url.query else "")
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() in ("range", "if-none-match", "accept", "content-type", "host")}
        upstream.request(self.command, path, body=sent, headers=headers)
        answer = upstream.getresponse()
        body = answer.read()
        self.send_response(answer.status)
        for k, v in answer.getheaders():
            if k.lower() not in ("server", "date", "connection", "transfer-encoding", "content-length"):
                self.send_header(k, v)
        # a chunked answer comes back whole: its length said (a HEAD's is the upstream's own)
        self.send_header("Content-Length", answer.getheader("Content-Length", "0") if head else str(len(body)))
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
        self.serial = 0  # of the last SAS token issued
        self.revoked = 0  # tokens numbered up to this are refused


def main(port: int, upstream_port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Proxy)
    server.daemon_threads = True
    server.state = State(upstream_port)
    server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
