"""An asset server with HTTP Range support on 127.0.0.1 (rangehttpserver from the test servers' venv,
serving a folder of COGs), behind a small fault-injecting proxy (fault_proxy.py, its own process).

Why a proxy in front of a real server rather than nginx config: the Range answers (206, Content-Range,
GDAL's block reads) come from real server code, while each test switches a fault on and off in one
line (`assets.set_fault(Fault("503", times=2))`) without restarting anything, and the proxy logs the
requests, so a test can prove that a dry run read no pixel. The faults are what real hosts answer: 429
with Retry-After (Planetary Computer's rate limit), 503, a body cut short, a stall longer than the
client's timeout, and Azure's 403 for a SAS token whose expiry (`se=`) has passed (checked on every
request, as Azure does, so a stale signed URL fails the same way here).
"""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .stac import VENV, ServerUnavailable, free_port, wait_http


@dataclass
class Fault:
    """kind: "429", "500", "502", "503", "504", "truncate", "stall", "stale-sas" (fault_proxy.py); `times`
    requests get it, then
    the server answers normally."""
    kind: str
    times: int = 1_000_000
    stall_s: float = 5.0


class _Controls:
    """The fault proxy's controls (fault_proxy.py), on its own port."""
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _post(self, path: str) -> None:
        urllib.request.urlopen(urllib.request.Request(self.url + path, method="POST"), timeout=10).read()

    def set_fault(self, fault: Fault | None) -> None:
        self._post(f"/_fault?kind={fault.kind}&times={fault.times}&stall_s={fault.stall_s}" if fault else "/_fault")

    def reset(self) -> None:
        """No fault, an empty request log."""
        self._post("/_reset")

    @property
    def requests(self) -> list[tuple]:
        """(method, path, Range header) of every asset request since the last reset."""
        with urllib.request.urlopen(self.url + "/_requests", timeout=10) as answer:
            return [tuple(r) for r in json.loads(answer.read())]

    def revoke(self) -> None:
        """Every SAS token the proxy issued so far is refused from now on (403, as an expired one)."""
        self._post("/_revoke")


@dataclass
class FaultProxy(_Controls):
    """The fault proxy alone in front of another server on 127.0.0.1 (e.g. the STAC API)."""
    proxy: subprocess.Popen
    port: int

    def stop(self) -> None:
        self.proxy.terminate()
        self.proxy.wait(10)


def start_proxy(upstream: str) -> FaultProxy:
    """The fault proxy in front of `upstream` (http://127.0.0.1:PORT), on a free port."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("fault_proxy.py")), str(port),
                                upstream.rsplit(":", 1)[1].strip("/")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    proxy = FaultProxy(process, port)
    try:
        wait_http(f"{proxy.url}/_requests", process, seconds=20)
    except BaseException:
        proxy.stop()
        raise
    return proxy


@dataclass
class AssetServer(_Controls):
    folder: Path
    upstream: subprocess.Popen
    proxy: subprocess.Popen
    port: int

    def stop(self) -> None:
        for process in (self.proxy, self.upstream):
            process.terminate()
            process.wait(10)


def start_assets(folder: Path) -> AssetServer:
    """rangehttpserver over `folder` and the fault proxy in front of it, both on free ports."""
    python = VENV / "bin" / "python"
    if not python.exists() or not list((VENV / "lib").glob("python3*/site-packages/RangeHTTPServer")):
        raise ServerUnavailable(f"no rangehttpserver in {VENV}: `make test-servers` (part of `make test`) makes the test servers' venv")
    port, proxy_port = free_port(), free_port()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    upstream = subprocess.Popen([str(python), "-m", "RangeHTTPServer", str(port), "--bind", "127.0.0.1"], cwd=folder,
                                **quiet)
    proxy = subprocess.Popen([sys.executable, str(Path(__file__).with_name("fault_proxy.py")), str(proxy_port),
                              str(port)], **quiet)
    server = AssetServer(folder, upstream, proxy, proxy_port)
    try:
        (folder / "ping").write_text("ok")
        wait_http(f"http://127.0.0.1:{port}/ping", upstream, seconds=20)
        wait_http(f"{server.url}/ping", proxy, seconds=20)
    except BaseException:
        server.stop()
        raise
    return server
