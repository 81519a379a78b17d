"""Seconds, megabytes read against megabytes written, and peak memory of `stars fetch pair` and
`stars fetch series` against the side of the area (issue 42 §6), against the tests' local servers
(tests/servers: stac-fastapi-pgstac on PostgreSQL + PostGIS, rangehttpserver behind the fault proxy).

The catalogue is the tests' own (tests/servers/catalogue.py: COGs and items in the recorded real
items' JSON shapes) made from a demo scene large enough for the largest side (20 km: 2000 x 2000
pixels at 10 m, plus a margin) and a series of `--dates` Sentinel-1 dates (12 by default). Each area
is a square centred on the scene. Each fetch runs as its own process under `/usr/bin/time -v`
(its peak resident memory); the megabytes read are the bytes the asset server sent, counted from its
request log (each Range asked, or the whole file), the megabytes written the files in the output
folder. The pair is the April window (3 radar dates, 2 optical scenes, the labels); the series is
every date. Prints a table with the machine, the date and the commit; asserts nothing. Usage:
    python bench/fetch_scale.py [--sides 5 10 20] [--dates 12] [--kinds pair series]
Needs `make test-servers` (PostgreSQL, PostGIS and build/stac-venv, or STARS_SERVER_VENV).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MARGIN_PX, PIXEL_M = 16, 10.0
PAIR_WINDOW = ("2024-04-01", "2024-04-30")  # the series' first three dates and both optical scenes
STARS = "import sys; from stars_core.cli import main; sys.exit(main(sys.argv[1:]))"


def machine() -> str:
    """The CPU model, cores, memory, and the commit measured (with '+changes' when the tree differs)."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or platform.machine())
    mem = next((int(line.split()[1]) / 1024 ** 2 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0.0)
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True).stdout.strip()
    return (f"{platform.node()}: {model}, {os.cpu_count()} cores, {mem:.0f} GB; "
            f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; commit {commit}{'+changes' if dirty else ''}")


def bytes_sent(requests: list[tuple], folder: Path) -> int:
    """The bytes the asset server sent: each GET's Range (bytes=a-b[,c-d]) or the whole file."""
    total = 0
    for method, path, asked in requests:
        if method != "GET":
            continue
        if asked:
            total += sum(int(b) - int(a) + 1 for a, b in re.findall(r"(\d+)-(\d+)", asked))
            continue
        local = folder / path.split("?")[0].lstrip("/")
        total += local.stat().st_size if local.is_file() else 0
    return total


def timed(args: list[str], env: dict) -> tuple[float, float]:
    """Run `stars ARGS` under /usr/bin/time -v: seconds (the process's start included), peak RSS in MB."""
    t0 = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", STARS, *args], capture_output=True,
                          text=True, cwd=ROOT, env=env)
    seconds = time.perf_counter() - t0
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if done.returncode:
        said = [line for line in (done.stdout + done.stderr).splitlines() if line.strip() and line[0] != "\t"]
        raise RuntimeError(f"stars {' '.join(args[:2])} failed ({done.returncode}): {said[-1] if said else '?'}")
    return seconds, int(peak.group(1)) / 1024 if peak else float("nan")


def area(scene_sar: Path, side_km: float) -> tuple[str, str]:
    """A square of this side centred on the scene, in the scene's CRS (--aoi, --aoi-crs)."""
    import rasterio

    with rasterio.open(scene_sar) as src:
        b, crs = src.bounds, src.crs.to_string()
    cx, cy, half = (b.left + b.right) / 2, (b.bottom + b.top) / 2, side_km * 500
    return f"{cx - half:.1f},{cy - half:.1f},{cx + half:.1f},{cy + half:.1f}", crs


def fetch_once(servers, kind: str, side_km: float, dates: list[str], out: Path) -> dict:
    """One fetch in its own process, the cache (if any) in a fresh folder: its row of the table."""
    aoi, crs = area(servers.catalogue["scene"]["sar"], side_km)
    window = PAIR_WINDOW if kind == "pair" else (dates[0], dates[-1])
    args = ["fetch", kind, "--aoi", aoi, "--aoi-crs", crs, "--start", window[0], "--end", window[1], "--out",
            str(out), "--stac-url", servers.stac.url, "--max-gb", "100"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(out.parent / f"cache-{out.name}")}
    servers.assets.reset()
    seconds, peak = timed(args, env)
    read = bytes_sent(servers.assets.requests, servers.catalogue["assets"])
    written = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    px = round(side_km * 1000 / PIXEL_M)
    return {"side": side_km, "px": px, "kind": kind, "seconds": seconds, "read": read / 1e6,
            "written": written / 1e6, "peak": peak}


def row(r: dict) -> str:
    ratio = r["read"] / r["written"] if r["written"] else float("nan")
    return (f"| {r['side']:g} km | {r['px']} x {r['px']} | {r['kind']} | {r['seconds']:.1f} | {r['read']:.1f} | "
            f"{r['written']:.1f} | {ratio:.2f} | {r['peak']:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sides", type=float, nargs="+", default=[5, 10, 20], help="sides of the area in km")
    ap.add_argument("--dates", type=int, default=12, help="Sentinel-1 dates in the catalogue (the series)")
    ap.add_argument("--kinds", nargs="+", default=["pair", "series"], choices=["pair", "series"])
    args = ap.parse_args()
    from stars_core.change.demo_series import series_dates
    from tests.servers import start_servers

    size = round(max(args.sides) * 1000 / PIXEL_M) + 2 * MARGIN_PX
    print(f"# fetch_scale: {machine()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="fetch-scale-") as tmp:
        t0 = time.perf_counter()
        servers = start_servers(Path(tmp) / "servers", size=size, dates=args.dates)
        try:
            print(f"(catalogue: a {size} x {size} px scene at {PIXEL_M:g} m, {args.dates} radar dates, made and "
                  f"served in {time.perf_counter() - t0:.0f} s)", flush=True)
            print("| side | grid | fetch | seconds | MB read | MB written | read/written | peak RSS MB |\n"
                  "|---|---|---|---:|---:|---:|---:|---:|", flush=True)
            for side in sorted(args.sides):
                for kind in args.kinds:
                    r = fetch_once(servers, kind, side, series_dates(args.dates), Path(tmp) / f"{kind}-{side:g}")
                    print(row(r), flush=True)
        finally:
            servers.stop()


if __name__ == "__main__":
    main()
