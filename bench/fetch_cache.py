"""The fetch cache (issue 42 §3): seconds, peak memory and asset requests of `stars fetch pair` with
an empty cache, the same command again (the cache full), and `stars fetch series` over the same area
after it, against the tests' local servers (tests/servers/: `make test-servers`), at a few scene sizes.

The questions: does a rerun read nothing (0 asset requests) and take a fraction of the first run's
time, and does peak memory stay flat as the area grows? Each command runs in its own process under
/usr/bin/time. Prints, never asserts. Small sizes only on a shared machine. Usage:
    python bench/fetch_cache.py [--sizes 256 512]
"""
from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from series_speed import timed  # noqa: E402  (wall seconds and peak memory of one `stars` command)


def area_of(servers, margin: float = 0.05) -> str:
    wc = next(i for i in servers.catalogue["items"] if i["collection"] == "esa-worldcover")
    x0, y0, x1, y1 = wc["bbox"]
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    return f"{x0 + dx:.6f},{y0 + dy:.6f},{x1 - dx:.6f},{y1 - dy:.6f}"


def one_size(size: int, tmp: Path) -> list[dict]:
    """The three commands over one catalogue of size x size pixels."""
    from tests.servers import start_servers

    servers = start_servers(tmp / f"servers-{size}", size=size, dates=3)
    try:
        common = ["--aoi", area_of(servers), "--start", "2024-04-01", "--end", "2024-04-30", "--stac-url",
                  servers.stac.url, "--cache", str(tmp / f"cache-{size}")]
        rows = []
        for label, argv in (("pair, empty cache", ["fetch", "pair", "--out", str(tmp / f"p1-{size}"), *common]),
                            ("pair again", ["fetch", "pair", "--out", str(tmp / f"p2-{size}"), *common]),
                            ("series after the pair", ["fetch", "series", "--out", str(tmp / f"s-{size}"), *common]),
                            ("pair, --no-cache", ["fetch", "pair", "--out", str(tmp / f"p3-{size}"), *common[:-2],
                                                  "--no-cache"])):
            servers.assets.reset()
            row = timed(argv, label)
            row["requests"] = len(servers.assets.requests)
            row["size"] = size
            rows.append(row)
        cached = sum(p.stat().st_size for p in (tmp / f"cache-{size}").rglob("*.tif"))
        rows[0]["cache_mb"] = cached / 1e6
        return rows
    finally:
        servers.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fetch-cache-bench-"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    print(f"fetch cache bench, commit {commit}, {platform.node()}, {platform.processor() or platform.machine()}")
    print(f"{'size':>5} {'command':<24} {'seconds':>8} {'peak GB':>8} {'asset requests':>15}")
    try:
        for size in args.sizes:
            rows = one_size(size, tmp)
            for r in rows:
                print(f"{r['size']:>5} {r['label']:<24} {r['seconds']:>8.1f} {r['peak_gb']:>8.2f} {r['requests']:>15}")
            print(f"{size:>5} cache after the pair: {rows[0]['cache_mb']:.1f} MB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
