"""`stars fetch` on a network that fails (issue 42), against the real local servers (tests/servers/): the
fault proxy in front of the STAC API (429, 503, a stall), Planetary Computer's token service as the fault
proxy's `/_sas` route (a stall, 503, tokens already expired, tokens revoked half-way), asset URLs on an
Azure blob host reached through the fault proxy as an HTTP proxy; and the search's cap, the hint for a
bbox given lat,lon, the printed train command, a vector AOI with a hole and other file extensions."""
import argparse
import shlex
import shutil

import pytest

from stars_core.errors import InputError
from stars_core.fetch.aoi import output_grid, parse_aoi
from stars_core.fetch.sources import source
from tests.core.test_fetch import _inner_bbox

pytest.importorskip("pystac_client")

BLOB = "http://starstest.blob.core.windows.net"  # never resolved: GDAL asks the fault proxy for it


def _said(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("stars fetch")]


def _dry_run(servers, tmp_path, url, *extra, aoi=None, start="2024-04-01", end="2024-04-30"):
    from stars_core.cli import main

    return main(["fetch", "pair", "--aoi", aoi or _inner_bbox(servers), "--start", start, "--end", end, "--out",
                 str(tmp_path / "pair"), "--stac-url", url, "--dry-run", *extra])


@pytest.fixture
def stac_proxy(servers):
    """The fault proxy in front of the session's STAC API (the API's links lead back through it)."""
    from tests.servers import start_proxy

    proxy = start_proxy(servers.stac.url)
    yield proxy
    proxy.stop()


# --- 1. the STAC API's 429 and 5xx retried, --timeout obeyed ---------------------------------------------

@pytest.mark.parametrize("kind", ["429", "500", "502", "503", "504"])
def test_a_busy_stac_api_is_retried_and_the_search_succeeds(servers, stac_proxy, tmp_path, capsys, kind):
    """429 and 503 come with Retry-After (pystac-client's default Retry honours that alone); 500, 502
    and 504 without: only a Retry with them in its status_forcelist retries those."""
    from tests.servers import Fault

    stac_proxy.set_fault(Fault(kind, times=2))
    assert _dry_run(servers, tmp_path, stac_proxy.url) == 0
    out = capsys.readouterr().out
    assert all(i["id"] in out for i in servers.catalogue["items"])
    seen = stac_proxy.requests
    assert seen[0] == seen[1] == seen[2]  # refused twice, answered the third time
    assert any(method == "POST" and path.startswith("/search") for method, path, _ in seen)


def test_a_stac_api_that_stays_busy_is_one_line_naming_it(servers, stac_proxy, tmp_path, capsys):
    from tests.servers import Fault

    stac_proxy.set_fault(Fault("503"))
    assert _dry_run(servers, tmp_path, stac_proxy.url, "--retries", "1") == 2
    said = _said(capsys)
    assert len(said) == 1 and f"the STAC API at {stac_proxy.url} cannot be reached" in said[0] and "503" in said[0]
    assert len(stac_proxy.requests) == 2  # the first try and one retry


def test_the_search_waits_no_longer_than_timeout(servers, stac_proxy, tmp_path, capsys):
    from tests.servers import Fault

    stac_proxy.set_fault(Fault("stall", stall_s=4))
    assert _dry_run(servers, tmp_path, stac_proxy.url, "--timeout", "1", "--retries", "0") == 2
    said = _said(capsys)
    assert len(said) == 1 and f"the STAC API at {stac_proxy.url}" in said[0] and "timed out" in said[0]


# --- 2. Planetary Computer's signing: the token service on 127.0.0.1, re-signing on 403 ----------------

@pytest.fixture
def token_service(servers, monkeypatch):
    """planetary_computer's settings pointed at the fault proxy's /_sas route, an empty token cache."""
    from planetary_computer import sas
    from planetary_computer.settings import Settings

    from stars_core.fetch import read

    url = f"{servers.assets.url}/_sas"
    monkeypatch.setattr(Settings.get(), "sas_url", url)
    monkeypatch.setattr(Settings.get(), "subscription_key", None)
    monkeypatch.setattr(sas, "TOKEN_CACHE", {})
    monkeypatch.setattr(read, "SIGNED", {})
    return url


def _blob(href: str, servers) -> str:
    return href.replace(servers.assets.url, BLOB)


def _blob_plan(servers):
    """The pair's plan with Planetary Computer's signing and every asset on the blob host."""
    import dataclasses

    from stars_core.fetch.plan import Request, plan_pair

    area = parse_aoi(_inner_bbox(servers))
    sources = {role: dataclasses.replace(source(name, servers.stac.url), signing="planetary-computer")
               for role, name in (("sar", "pc-sentinel-1-rtc"), ("optical", "pc-sentinel-2-l2a"),
                                  ("labels", "pc-esa-worldcover"))}
    plan = plan_pair(Request(area, output_grid(area), "2024-04-01", "2024-04-30", sources))
    for role in plan.roles:
        for item in role.items:
            for asset in item["assets"].values():
                asset["href"] = _blob(asset["href"], servers)
    return plan


def _write_blob_pair(servers, out):
    import rasterio
    from osgeo import gdal

    from stars_core.fetch.pair import write_pair
    from stars_core.fetch.read import http_env

    gdal.VSICurlClearCache()
    try:
        with http_env(retries=1, delay_s=0.1), rasterio.Env(GDAL_HTTP_PROXY=servers.assets.url):
            return write_pair(_blob_plan(servers), out)
    finally:
        gdal.VSICurlClearCache()


def _sigs(servers) -> list[int]:
    """The serial numbers of the tokens the asset reads carried, in order (the proxy numbers them)."""
    return [int(path.split("sig=t")[1]) for _, path, _ in servers.assets.requests if "sig=t" in path]


def test_planetary_computer_urls_are_signed_with_the_services_token(servers, token_service, tmp_path):
    _write_blob_pair(servers, tmp_path / "pair")
    seen = servers.assets.requests
    tokens = [path for _, path, _ in seen if path.startswith("/_sas/starstest/")]
    reads = [path for _, path, _ in seen if path.startswith(BLOB)]
    assert tokens and reads and all("&sig=t" in path for path in reads)
    assert len(tokens) == len({i["id"] for r in _blob_plan(servers).roles for i in r.items})  # one per container
    assert (tmp_path / "pair" / "sar.tif").exists()


def test_a_token_refused_half_way_is_renewed_once_and_the_pair_written(servers, token_service, tmp_path):
    """The first token is already expired (a skewed clock): the read answers 403, the URL is signed
    again with a fresh token and read; the pair comes out as with good tokens."""
    from tests.core.test_fetch import _rasters
    from tests.servers import Fault

    servers.assets.set_fault(Fault("stale-sas", times=1))
    _write_blob_pair(servers, tmp_path / "renewed")
    sigs = _sigs(servers)
    stale = sigs[0]
    fresh = next(i for i, sig in enumerate(sigs) if sig != stale)
    assert sigs[fresh] == stale + 1 and stale not in sigs[fresh:]  # refused, then a fresh token for the same
    servers.assets.reset()
    _write_blob_pair(servers, tmp_path / "plain")
    assert _rasters(tmp_path / "renewed") == _rasters(tmp_path / "plain")


def test_an_expired_signature_after_a_fresh_token_stops_the_pair_in_one_line(servers, token_service, tmp_path):
    from tests.servers import Fault

    servers.assets.set_fault(Fault("stale-sas"))  # every token already expired
    with pytest.raises(InputError, match=r"\(HTTP 403\): a signed URL has expired"):
        _write_blob_pair(servers, tmp_path / "pair")
    sigs = _sigs(servers)
    assert len(set(sigs)) == 2 and max(sigs) == min(sigs) + 1  # signed again once, then the line
    assert not (tmp_path / "pair").exists() or list((tmp_path / "pair").iterdir()) == []


def test_a_token_revoked_between_two_windows_is_renewed(servers, token_service):
    """Mid-read: the asset open and one window read, every token revoked, the next window read."""
    import numpy as np
    import rasterio
    from osgeo import gdal
    from rasterio.windows import Window

    from stars_core.fetch.read import http_env, open_warped, signer

    grid = output_grid(parse_aoi(_inner_bbox(servers, margin=0.0)))
    href = next(i for i in servers.catalogue["items"] if i["collection"] == "sentinel-1-rtc")["assets"]["vv"]["href"]
    first, second = Window(0, 0, 16, 16), Window(grid.width - 16, grid.height - 16, 16, 16)
    gdal.VSICurlClearCache()
    cache_max = gdal.GetCacheMax()  # rasterio.Env does not give GDAL_CACHEMAX back: a block cache of 0 left
    try:  # behind makes every later GeoTIFF write rewrite its blocks (same pixels, other bytes)
        with http_env(retries=1, delay_s=0.1), rasterio.Env(
                GDAL_HTTP_PROXY=servers.assets.url, VSI_CACHE="FALSE", GDAL_CACHEMAX=0):  # every window from the host
            with open_warped(href, grid) as plain:
                expected = plain.read(second)
            with open_warped(signer("planetary-computer")(_blob(href, servers)), grid) as warped:
                warped.read(first)
                servers.assets.revoke()
                gdal.VSICurlClearCache()
                again = warped.read(second)
    finally:
        gdal.SetCacheMax(cache_max)
        gdal.VSICurlClearCache()
    np.testing.assert_array_equal(again, expected)
    sigs = _sigs(servers)
    assert warped.resigned and sigs[-1] == sigs[0] + 1


def test_a_stalled_token_service_is_one_line_naming_it(servers, token_service):
    from stars_core.fetch.read import signer
    from stars_core.fetch.search import network
    from tests.servers import Fault

    servers.assets.set_fault(Fault("stall", stall_s=4))
    with network(retries=0, timeout_s=1), pytest.raises(InputError) as said:
        signer("planetary-computer")(f"{BLOB}/container/vv.tif")
    assert f"token service {token_service}/starstest/container gave no signing token" in str(said.value)
    assert "timed out" in str(said.value) and "\n" not in str(said.value)


def test_a_token_service_that_stays_busy_is_one_line_naming_it(servers, token_service, tmp_path):
    from stars_core.fetch.search import network
    from tests.servers import Fault

    servers.assets.set_fault(Fault("503"))
    with network(retries=1, timeout_s=5), pytest.raises(
            InputError, match=f"token service {token_service}/starstest/.* gave no signing token .*503"):
        _write_blob_pair(servers, tmp_path / "pair")
    assert len([p for _, p, _ in servers.assets.requests if p.startswith("/_sas/")]) == 2  # the try and one retry
    assert not (tmp_path / "pair").exists() or list((tmp_path / "pair").iterdir()) == []


# --- 4. the search's cap, 5. a bbox given lat,lon -------------------------------------------------------

def test_more_items_than_the_cap_are_refused_not_cut(servers):
    from stars_core.fetch.search import open_api, search

    s1 = source("pc-sentinel-1-rtc", servers.stac.url)
    area = parse_aoi(_inner_bbox(servers))
    count = len([i for i in servers.catalogue["items"] if i["collection"] == "sentinel-1-rtc"])
    assert count >= 3
    api = open_api(servers.stac.url)
    with pytest.raises(InputError, match=f"more than {count - 1} sentinel-1-rtc items .*: the fetch would miss "
                       "some; give a shorter date range or a smaller area"):
        search(api, s1, area, "2024-04-01", "2024-04-30", limit=count - 1)
    assert len(search(api, s1, area, "2024-04-01", "2024-04-30", limit=count)) == count  # pages of count + 1


def test_a_bbox_given_lat_lon_is_hinted_in_the_no_items_line(servers, tmp_path, capsys):
    w, s, e, n = (float(v) for v in _inner_bbox(servers).split(","))
    assert _dry_run(servers, tmp_path, servers.stac.url, aoi=f"{s},{w},{n},{e}") == 2
    said = _said(capsys)
    assert len(said) == 1 and "no sentinel-1-rtc items" in said[0]
    assert "with longitude and latitude swapped the area has items" in said[0]
    assert f"lon,lat order minx,miny,maxx,maxy: {w},{s},{e},{n}" in said[0]
    assert _dry_run(servers, tmp_path, servers.stac.url, start="2020-01-01", end="2020-01-31") == 2
    assert "swapped" not in capsys.readouterr().err  # no items either way: no hint


# --- 6. the printed train command, a hole, other extensions ----------------------------------------------

def test_the_printed_train_command_runs_from_a_folder_with_a_space(tmp_path, capsys):
    from stars_core.cli.fetch import _said_pair

    out = tmp_path / "my pair's folder"
    args = argparse.Namespace(out=str(out), min_clear=1)
    _said_pair(args, {"optical_clear_fraction": 1.0, "labels_covered_fraction": 1.0})
    line = capsys.readouterr().out.strip().splitlines()[-1]
    argv = shlex.split(line.split("; ready: ", 1)[1])
    assert argv[:2] == ["stars", "train"]
    named = dict(zip(argv[2::2], argv[3::2]))
    assert named == {"--m1": str(out / "sar.tif"), "--m2": str(out / "optical.tif"),
                     "--labels": str(out / "labels.tif"), "--class-table": str(out / "classes.csv"),
                     "--ignore-value": "0", "--out": str(out / "model.stars")}


def test_a_polygon_with_a_hole_is_one_polygon(tmp_path):
    from tests.core.helpers import write_polygons

    outer = [(10.30, 46.90), (10.36, 46.90), (10.36, 46.94), (10.30, 46.94), (10.30, 46.90)]
    hole = [(10.32, 46.91), (10.33, 46.91), (10.33, 46.92), (10.32, 46.92), (10.32, 46.91)]
    from rasterio.crs import CRS

    path = write_polygons(tmp_path / "aoi.gpkg", CRS.from_epsg(4326).to_wkt(),
                          [({"type": "Polygon", "coordinates": [outer, hole]}, 1)])
    area = parse_aoi(str(path))
    assert area.note == ""  # not "several polygons: searched over their convex hull"
    assert area.geometry["type"] in ("Polygon", "MultiPolygon") and "convex" not in area.note
    rings = area.geometry["coordinates"] if area.geometry["type"] == "Polygon" else area.geometry["coordinates"][0]
    assert len(rings) == 2  # the hole kept in the searched geometry


@pytest.mark.parametrize("suffix", [".TIFF", ".jp2"])
def test_assets_named_other_than_tif_are_read(servers, suffix):
    import numpy as np

    from stars_core.fetch.read import blocks, http_env, read_block

    item = next(i for i in servers.catalogue["items"] if i["collection"] == "sentinel-1-rtc")
    href = item["assets"]["vv"]["href"]
    local = servers.catalogue["assets"] / item["id"] / "vv.tif"
    shutil.copy(local, local.with_name(f"vv-copy{suffix}"))
    grid = output_grid(parse_aoi(_inner_bbox(servers)))
    window = next(blocks(grid))
    with http_env(retries=1, delay_s=0.1):
        np.testing.assert_array_equal(read_block(href.replace("vv.tif", f"vv-copy{suffix}"), grid, window),
                                      read_block(href, grid, window))
