"""A real STAC API on 127.0.0.1: Debian's PostgreSQL (15 on Debian 12) + PostGIS 3 in a throw-away cluster, pgstac's
schema (`pypgstac migrate`) and stac-fastapi-pgstac under uvicorn, the software Planetary Computer
runs. Both come from the test servers' venv build/stac-venv (tests/servers/requirements.txt, made by
`make test-servers`, part of `make test`), never from the project's venv. Nothing listens beyond 127.0.0.1.

    server = start_stac(folder)          # cluster in folder/pg, API on a free port
    server.load(collections, items)      # pystac-like dicts, through `pypgstac load`
    server.url                           # http://127.0.0.1:PORT
    server.stop()                        # API, then the cluster; the folder can go
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("STARS_SERVER_VENV", ROOT / "build" / "stac-venv"))


def _postgres_version() -> str:
    """Debian's PostgreSQL that has PostGIS: 15 on Debian 12, the release's own on later ones."""
    for version in ("15", "16", "17", "18"):
        if Path(f"/usr/share/postgresql/{version}/extension/postgis.control").exists():
            return version
    return "15"


PG_VERSION = _postgres_version()
PG_BIN = Path(f"/usr/lib/postgresql/{PG_VERSION}/bin")
POSTGIS = Path(f"/usr/share/postgresql/{PG_VERSION}/extension/postgis.control")
DATABASE = "postgres"


class ServerUnavailable(RuntimeError):
    """A test server could not start; the message says why and what installs it."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing() -> str | None:
    """Why the STAC server cannot start here, or None."""
    if not (PG_BIN / "initdb").exists():
        return f"no PostgreSQL in {PG_BIN}: `make test-servers` (part of `make test`) installs postgresql-{PG_VERSION}"
    if not POSTGIS.exists():
        return f"no PostGIS for PostgreSQL {PG_VERSION}: `make test-servers` (part of `make test`) installs postgresql-{PG_VERSION}-postgis-3"
    for tool in ("uvicorn", "pypgstac"):
        if not (VENV / "bin" / tool).exists():
            return f"no {tool} in {VENV}: `make test-servers` (part of `make test`) makes the test servers' venv (tests/servers/requirements.txt)"
    return None


def _as_owner(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its tools as the `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], **kw) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise ServerUnavailable(f"{' '.join(cmd[:4])}... failed: " + " | ".join(tail))
    return done.stdout


def wait_http(url: str, process: subprocess.Popen | None, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if process is not None and process.poll() is not None:
            raise ServerUnavailable(f"the server for {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise ServerUnavailable(f"{url} did not answer within {seconds:.0f} s")


@dataclass
class StacServer:
    folder: Path
    pg_port: int
    cluster: Path | None = None
    url: str = ""
    api: subprocess.Popen | None = None
    log: Path | None = None
    loaded: dict = field(default_factory=dict)
    database: str = DATABASE

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/{self.database}"

    def another_api(self, database: str) -> "StacServer":
        """A second STAC API on the same cluster, with its own database (another catalogue, e.g. Earth
        Search beside Planetary Computer: both have a collection named sentinel-2-l2a)."""
        folder = self.folder / database
        folder.mkdir(parents=True, exist_ok=True)
        _run([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "postgres", database])
        return _serve(StacServer(folder, self.pg_port, database=database))

    def load(self, collections: list[dict], items: list[dict]) -> None:
        """Upsert collections and items through pgstac's own loader."""
        for table, rows in (("collections", collections), ("items", items)):
            if not rows:
                continue
            path = self.folder / f"{table}.ndjson"
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
            _run([str(VENV / "bin" / "pypgstac"), "load", table, str(path), "--dsn", self.dsn, "--method", "upsert"])
            self.loaded.setdefault(table, []).extend(r["id"] for r in rows)

    def stop(self) -> None:
        if self.api is not None and self.api.poll() is None:
            self.api.terminate()
            try:
                self.api.wait(10)
            except subprocess.TimeoutExpired:
                self.api.kill()
        if self.cluster is None:
            return
        data = self.cluster / "pg"
        if (data / "postmaster.pid").exists():
            subprocess.run(_as_owner([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                           capture_output=True)
        if self.cluster != self.folder:
            shutil.rmtree(self.cluster, ignore_errors=True)


def _cluster_folder(folder: Path) -> Path:
    """As root, the `postgres` user cannot enter pytest's private temporary folders: its own then."""
    if os.geteuid() != 0:
        return folder
    own = Path(tempfile.mkdtemp(prefix="stars-test-pg-"))
    shutil.chown(own, "postgres")
    return own


def _start_cluster(folder: Path, port: int) -> None:
    data, sockets = folder / "pg", folder / "sock"
    sockets.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(sockets, "postgres")
    _run(_as_owner([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                    "--no-sync"]))
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    _run(_as_owner([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "pg.log"), "-w",
                    "-t", "60", "start"]))


def _start_api(server: StacServer) -> None:
    port = free_port()
    env = {**os.environ, "PGUSER": "postgres", "PGPASSWORD": "unused", "PGHOST": "127.0.0.1",
           "PGPORT": str(server.pg_port), "PGDATABASE": server.database}
    server.log = server.folder / "api.log"
    server.api = subprocess.Popen(
        [str(VENV / "bin" / "uvicorn"), "stac_fastapi.pgstac.app:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"], env=env, stdout=server.log.open("w"), stderr=subprocess.STDOUT)
    server.url = f"http://127.0.0.1:{port}"
    wait_http(server.url + "/", server.api)


def _serve(server: StacServer, before: Callable[[], None] = lambda: None) -> StacServer:
    """`before` (e.g. start the cluster), pgstac's schema in the server's database, then the API on it;
    whatever failed, what had started is stopped again."""
    try:
        before()
        _run([str(VENV / "bin" / "pypgstac"), "migrate", "--dsn", server.dsn])
        _start_api(server)
    except BaseException:
        server.stop()
        raise
    return server


def start_stac(folder: Path) -> StacServer:
    """PostgreSQL + pgstac + stac-fastapi-pgstac on free ports; raise ServerUnavailable with the reason."""
    reason = missing()
    if reason:
        raise ServerUnavailable(reason)
    folder.mkdir(parents=True, exist_ok=True)
    server = StacServer(folder, free_port())

    def cluster() -> None:
        server.cluster = _cluster_folder(folder)
        _start_cluster(server.cluster, server.pg_port)

    return _serve(server, cluster)
