"""`stars fetch` (issue 42) against real server software on 127.0.0.1: stac-fastapi-pgstac on PostgreSQL +
PostGIS and a Range-capable asset server with switchable faults (tests/servers/, the `servers` fixture),
loaded with items that follow recorded real Planetary Computer responses. AOI and grid tests need no server."""
import json
import math
import re

import pytest
from rasterio.crs import CRS

from stars_core.errors import InputError
from stars_core.fetch.aoi import output_grid, parse_aoi, utm_crs
from stars_core.fetch.sources import SOURCES, offset_counts, source
from tests.core.helpers import write_polygons
from tests.servers.catalogue import RECORDED, recorded

pytest.importorskip("pystac_client")


def _inner_bbox(servers, margin: float = 0.2) -> str:
    """A lon/lat bbox inside the catalogue's scene (every item covers it)."""
    wc = next(i for i in servers.catalogue["items"] if i["collection"] == "esa-worldcover")
    x0, y0, x1, y1 = wc["bbox"]
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    return f"{x0 + dx:.6f},{y0 + dy:.6f},{x1 - dx:.6f},{y1 - dy:.6f}"


def _fetch(servers, tmp_path, *extra, start="2024-04-01", end="2024-04-30"):
    from stars_core.cli import main

    return main(["fetch", "pair", "--aoi", _inner_bbox(servers), "--start", start, "--end", end, "--out",
                 str(tmp_path / "pair"), "--stac-url", servers.stac.url, *extra])


def _ids(servers, collection: str, **props) -> list[str]:
    return [i["id"] for i in servers.catalogue["items"] if i["collection"] == collection
            and all(i["properties"].get(k) == v for k, v in props.items())]


# --- the dry run against the real STAC API ---------------------------------------------------------------

def test_dry_run_lists_every_item_with_dates_orbits_cloud_and_reads_no_pixel(servers, tmp_path, capsys):
    assert _fetch(servers, tmp_path, "--dry-run") == 0
    out = capsys.readouterr().out
    for collection in ("sentinel-1-rtc", "sentinel-2-l2a", "esa-worldcover"):
        for item_id in _ids(servers, collection):
            assert item_id in out
    assert "ascending, relative orbit 117" in out and "descending, relative orbit 168" in out
    assert "sar: relative orbits 117 ascending (2), 168 descending (1)" in out
    cloudy = next(i for i in servers.catalogue["items"] if i["id"].startswith("S2B_MSIL2A_20240403"))
    assert f"cloud {cloudy['properties']['eo:cloud_cover']:.1f}%" in out
    assert "grid: EPSG:32632, 10 m pixels" in out
    assert servers.assets.requests == []  # no asset touched
    assert not (tmp_path / "pair").exists()


def test_the_orbit_choice_is_searched_by_the_server(servers, tmp_path, capsys):
    assert _fetch(servers, tmp_path, "--dry-run", "--orbit", "descending") == 0
    out = capsys.readouterr().out
    descending = _ids(servers, "sentinel-1-rtc", **{"sat:orbit_state": "descending"})
    ascending = _ids(servers, "sentinel-1-rtc", **{"sat:orbit_state": "ascending"})
    assert descending and ascending
    assert all(i in out for i in descending) and not any(i in out for i in ascending)


def test_the_pair_takes_the_relative_orbit_too(servers, tmp_path, capsys):
    assert _fetch(servers, tmp_path, "--dry-run", "--relative-orbit", "117") == 0
    out = capsys.readouterr().out
    assert all(i in out for i in _ids(servers, "sentinel-1-rtc", **{"sat:relative_orbit": 117}))
    assert not any(i in out for i in _ids(servers, "sentinel-1-rtc", **{"sat:relative_orbit": 168}))


def test_the_cloud_limit_drops_the_cloudy_scene(servers, tmp_path, capsys):
    cover = {i["id"]: i["properties"]["eo:cloud_cover"] for i in servers.catalogue["items"]
             if i["collection"] == "sentinel-2-l2a"}
    limit = (max(cover.values()) + min(cover.values())) / 2
    assert _fetch(servers, tmp_path, "--dry-run", "--max-cloud", str(limit)) == 0
    out = capsys.readouterr().out
    assert [i for i in cover if i in out] == [i for i, c in cover.items() if c < limit]


def test_more_than_max_gb_is_refused_before_any_pixel_is_read(servers, tmp_path, capsys):
    assert _fetch(servers, tmp_path, "--dry-run", "--max-gb", "0.0001") == 2
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("stars fetch")]
    assert len(said) == 1 and "more than --max-gb 0.0001" in said[0]
    assert servers.assets.requests == []


def test_the_estimate_counts_each_asset_at_its_own_resolution(servers):
    from stars_core.fetch.aoi import Area, Grid
    from stars_core.fetch.plan import window_estimate

    item = next(i for i in servers.catalogue["items"] if i["collection"] == "sentinel-2-l2a")
    inner = parse_aoi(_inner_bbox(servers, margin=0.3))
    grid = output_grid(inner)
    assert isinstance(inner, Area) and isinstance(grid, Grid)
    size, pixels = window_estimate(item, SOURCES["pc-sentinel-2-l2a"], grid)
    # four 10 m uint16 bands and the 20 m uint8 SCL, over a window the item covers whole
    assert pixels == 4 * grid.pixels + (grid.width // 2) * (grid.height // 2)
    assert size == 8 * grid.pixels + (grid.width // 2) * (grid.height // 2)
    x0, y0, x1, y1 = item["bbox"]
    assert window_estimate({**item, "bbox": [x0, y0, -100, x1, y1, 0]}, SOURCES["pc-sentinel-2-l2a"], grid) == \
        (size, pixels)  # a 3-D bbox (with heights) covers the same window


# --- the API's errors in one line ------------------------------------------------------------------------

def test_a_wrong_collection_lists_the_collections_the_api_serves(servers, tmp_path):
    from stars_core.fetch.aoi import parse_aoi
    from stars_core.fetch.search import open_api, search

    wrong = source("pc-sentinel-1-rtc", servers.stac.url, collection="sentinel-1-grd")
    with pytest.raises(InputError, match="no collection 'sentinel-1-grd': it serves esa-worldcover, "
                       "io-lulc-annual-v02, sentinel-1-rtc, sentinel-2-l2a"):
        search(open_api(servers.stac.url), wrong, parse_aoi(_inner_bbox(servers)), "2024-04-01", "2024-04-30")


def test_no_items_says_which_collection_and_dates_were_searched(servers, tmp_path, capsys):
    assert _fetch(servers, tmp_path, "--dry-run", start="2020-01-01", end="2020-01-31") == 2
    err = capsys.readouterr().err
    assert f"no sentinel-1-rtc items at {servers.stac.url} from 2020-01-01 to 2020-01-31" in err


def test_an_unreachable_api_is_named(tmp_path, capsys):
    from stars_core.cli import main
    from tests.servers.stac import free_port

    url = f"http://127.0.0.1:{free_port()}"
    assert main(["fetch", "pair", "--aoi", "10.31,46.92,10.32,46.93", "--start", "2024-04-01", "--end",
                 "2024-04-30", "--out", str(tmp_path / "o"), "--stac-url", url, "--dry-run"]) == 2
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("stars fetch")]
    assert len(said) == 1 and f"the STAC API at {url} cannot be reached" in said[0]


# --- the area and the grid (no server) -------------------------------------------------------------------

def test_swapped_longitude_latitude_is_refused_with_the_fix():
    with pytest.raises(InputError, match=r"look swapped: give minlon,minlat,maxlon,maxlat \(-100.1,40.0,-100.0,40.1\)"):
        parse_aoi("40.0,-100.1,40.1,-100.0")  # Kansas given as lat,lon


def test_zero_area_is_refused():
    with pytest.raises(InputError, match="zero area"):
        parse_aoi("10.3,46.9,10.3,47.0")


def test_a_bbox_in_another_crs_is_reprojected(tmp_path):
    area = parse_aoi("600000,5198720,601280,5200000", aoi_crs="EPSG:32632")
    assert 10.2 < area.bounds[0] < area.bounds[2] < 10.4 and 46.9 < area.bounds[1] < area.bounds[3] < 47.0
    with pytest.raises(InputError, match="not longitude/latitude: name its CRS with --aoi-crs"):
        parse_aoi("600000,5198720,601280,5200000")


def test_the_default_grid_is_the_centres_utm_zone_on_the_10_m_lattice():
    area = parse_aoi("10.301,46.901,10.329,46.919")
    grid = output_grid(area)
    assert grid.crs == CRS.from_epsg(32632)
    t = grid.transform
    assert t.a == 10 and t.e == -10 and t.c % 10 == 0 and t.f % 10 == 0
    assert grid.width * 10 >= 0.028 * 111_000 * math.cos(math.radians(46.9)) * 0.95
    assert utm_crs(-70.6, -33.4) == CRS.from_epsg(32719)  # southern hemisphere
    crossing = output_grid(parse_aoi("11.9,46.9,12.1,47.0"))
    assert "spans UTM zones EPSG:32632, EPSG:32633" in crossing.note


def test_res_crs_and_grid_override(tmp_path, demo_scene):
    area = parse_aoi("10.301,46.901,10.329,46.919")
    assert output_grid(area, res=20).transform.a == 20
    assert output_grid(area, crs="EPSG:3035").crs == CRS.from_epsg(3035)
    import rasterio

    like = output_grid(area, like=str(demo_scene["sar"]))
    with rasterio.open(demo_scene["sar"]) as src:
        assert (like.crs, like.transform, like.width) == (src.crs, src.transform, src.width)


def test_a_vector_files_union_and_a_rasters_footprint_are_areas(tmp_path, demo_scene):
    import rasterio

    with rasterio.open(demo_scene["sar"]) as src:
        wkt, b = src.crs.to_wkt(), src.bounds
    half = (b.left + b.right) / 2
    boxes = [((b.left, b.bottom, half, b.top), 1), ((half, b.bottom, b.right, b.top), 2)]
    polys = [({"type": "Polygon", "coordinates": [[(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]]}, v)
             for (x0, y0, x1, y1), v in boxes]
    vector = parse_aoi(str(write_polygons(tmp_path / "aoi.gpkg", wkt, polys)))
    raster = parse_aoi(str(demo_scene["sar"]))
    assert vector.bounds == pytest.approx(raster.bounds, abs=1e-7)  # the union of the halves is the whole


# --- the source table, against recorded real items --------------------------------------------------------

def test_sentinel2_offsets_follow_the_recorded_items():
    pc = recorded("pc-sentinel-2-l2a-item.json")
    es = recorded("earth-search-sentinel-2-l2a-item.json")
    assert pc["properties"]["s2:processing_baseline"] == "02.12"  # before the 2022 offset
    assert offset_counts(SOURCES["pc-sentinel-2-l2a"], pc["properties"], pc["assets"]["B04"]) == 0
    newer = {**pc["properties"], "s2:processing_baseline": "05.11"}
    assert offset_counts(SOURCES["pc-sentinel-2-l2a"], newer, pc["assets"]["B04"]) == -1000
    assert offset_counts(SOURCES["earth-search-sentinel-2-l2a"], es["properties"], es["assets"]["red"]) == \
        pytest.approx(-1000)


def test_every_source_names_assets_its_catalogue_has():
    collections = {("pc", s): recorded(f"pc-{s}-collection.json") for s in
                   ("sentinel-1-rtc", "sentinel-2-l2a", "esa-worldcover", "io-lulc-annual-v02")}
    collections[("earth-search", "sentinel-2-l2a")] = recorded("earth-search-sentinel-2-l2a-collection.json")
    for entry in SOURCES.values():
        prefix = "pc" if "planetarycomputer" in entry.api else "earth-search"
        collection = collections[(prefix, entry.collection)]
        assert set(entry.assets) <= set(collection["item_assets"]), entry.name
        assert entry.licence.startswith(collection["license"]) or collection["license"] == "proprietary", entry.name


def test_the_recorded_items_keep_their_origin():
    for name in ("pc-sentinel-2-l2a-item.json", "earth-search-sentinel-2-l2a-item.json"):
        data = json.loads((RECORDED / name).read_text())
        assert data["recorded_from"].startswith("https://") and data["cassette"].endswith(".yaml")


# --- the servers themselves --------------------------------------------------------------------------------

@pytest.mark.parametrize("ci,outcome", [("true", "1 error"), ("", "1 skipped")])
def test_a_server_that_cannot_start_fails_under_ci_and_skips_elsewhere(tmp_path, ci, outcome):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "CI": ci, "STARS_SERVER_VENV": str(tmp_path / "no-venv")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                           f"{Path(__file__)}::test_more_than_max_gb_is_refused_before_any_pixel_is_read"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert outcome in done.stdout
    assert "`make test-servers` (part of `make test`) makes the test servers' venv" in done.stdout


# --- reading the pair through the asset server -----------------------------------------------------------

def _window(servers, path, grid):
    """The grid's window in the pixels of a catalogue raster (both on the same 10 m lattice)."""
    import rasterio

    with rasterio.open(path) as src:
        col = int(round((grid.transform.c - src.transform.c) / 10))
        row = int(round((src.transform.f - grid.transform.f) / 10))
        return src.read(window=((row, row + grid.height), (col, col + grid.width)))


def test_the_pair_is_read_onto_the_grid_ready_for_training(servers, tmp_path, capsys):
    import numpy as np
    import rasterio

    from stars_core.classes import ClassTable
    from tests.servers.catalogue import TO_WORLDCOVER

    assert _fetch(servers, tmp_path) == 0
    out, lines = tmp_path / "pair", capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("wrote ") and f"stars train --m1 {out / 'sar.tif'}" in lines[-1]
    scene = servers.catalogue["scene"]
    with rasterio.open(out / "sar.tif") as sar:
        grid = type("G", (), {"transform": sar.transform, "width": sar.width, "height": sar.height})
        assert sar.crs.to_epsg() == 32632 and sar.transform.a == 10 and sar.tags()["units"] == "dB"
        dates = np.stack([_window(servers, p, grid) for p in sorted(scene["series"].glob("S1_*.tif"))])
        np.testing.assert_allclose(sar.read(), np.median(dates, axis=0), atol=1e-4)  # median in dB of the 3 dates
    with rasterio.open(out / "optical.tif") as opt, rasterio.open(out / "clear.tif") as clear:
        np.testing.assert_array_equal(opt.read(), _window(servers, scene["optical"], grid))  # offset removed, clouds masked
        counts = clear.read(1)
        assert counts[0, 0] == 1 and counts[-1, -1] == 2  # the upper-left cloud hides one of the two looks
    with rasterio.open(out / "labels.tif") as lab:
        raw = _window(servers, scene["labels"], grid)[0]
        expected = np.vectorize(lambda v: TO_WORLDCOVER.get(int(v), 0))(raw)
        np.testing.assert_array_equal(lab.read(1), expected)
    table = ClassTable.from_file(out / "classes.csv")
    assert dict(zip(table.values, table.colors))[10] == "#006400" and "Tree cover" in table.names
    record = json.loads((out / "provenance.json").read_text())
    ids = {i["id"] for s in record["sources"] for i in s["items"]}
    assert ids == {i["id"] for i in servers.catalogue["items"]}
    assert {s["licence"] for s in record["sources"]} >= {"CC-BY-4.0"} and "2024" in record["sources"][0]["attribution"]
    assert not list(out.glob(".*tmp*"))


def test_a_host_that_stays_busy_leaves_nothing_half_written(servers, tmp_path, capsys):
    from osgeo import gdal

    from tests.servers import Fault

    gdal.VSICurlClearCache()  # GDAL keeps what an earlier test read of the same URLs
    servers.assets.set_fault(Fault("503"))
    assert _fetch(servers, tmp_path, "--retries", "1") == 2
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("stars fetch")]
    gdal.VSICurlClearCache()  # GDAL also remembers the failure: the next test starts clean
    assert len(said) == 1 and "answered HTTP 503 after 1 retries" in said[0]
    assert not (tmp_path / "pair").exists() or list((tmp_path / "pair").iterdir()) == []


@pytest.mark.parametrize("kind", ["429", "503", "truncate", "stall"])
def test_passing_faults_are_retried_and_read_the_same_pixels(servers, kind):
    import numpy as np

    from stars_core.fetch.read import blocks, http_env, read_block
    from tests.servers import Fault

    from osgeo import gdal

    gdal.VSICurlClearCache()
    grid = output_grid(parse_aoi(_inner_bbox(servers)))
    href = next(i for i in servers.catalogue["items"] if i["collection"] == "sentinel-1-rtc")["assets"]["vv"]["href"]
    window = next(blocks(grid))
    with http_env(retries=3, delay_s=0.1, timeout_s=1):
        clean = read_block(href, grid, window)
        servers.assets.reset()
        servers.assets.set_fault(Fault(kind, times=1, stall_s=2.5))
        again = read_block(href + f"?fault={kind}", grid, window)  # a new URL: nothing cached by GDAL
    np.testing.assert_array_equal(again, clean)
    assert np.isfinite(clean).mean() > 0.9
    assert len(servers.assets.requests) >= 3  # the faulty answer, then the retry, then the data


def test_an_expired_signature_says_to_search_again(servers):
    from stars_core.fetch.read import blocks, http_env, read_block

    grid = output_grid(parse_aoi(_inner_bbox(servers)))
    href = next(i for i in servers.catalogue["items"] if i["collection"] == "esa-worldcover")["assets"]["map"]["href"]
    with http_env(retries=1, delay_s=0.1), pytest.raises(InputError, match=r"map.tif refused the read \(HTTP 403\): "
                                                          r"a signed URL has expired"):
        read_block(href + "?st=2020-01-01T00:00:00Z&se=2020-01-02T00:00:00Z&sp=rl&sig=abc", grid, next(blocks(grid)))


def test_stars_train_takes_the_fetched_pair_as_written(servers, tmp_path):
    from stars_core.training.data import SceneSpec
    from stars_core.training.train import train
    from tests.core.helpers import TINY_MODEL, tiny_train

    assert _fetch(servers, tmp_path, "--aoi-crs", "EPSG:4326") == 0
    out = tmp_path / "pair"
    spec = SceneSpec(str(out / "sar.tif"), str(out / "optical.tif"), str(out / "labels.tif"))
    model = tmp_path / "model.stars"
    train([spec], model, TINY_MODEL, **tiny_train(chip_size=64, class_table=str(out / "classes.csv"),
                                                  ignore_values=(0,)), log=lambda *_: None)
    assert model.stat().st_size > 0


def test_without_the_signing_package_the_fetch_says_what_to_install(tmp_path, monkeypatch, capsys):
    import sys

    from stars_core.cli import main

    monkeypatch.setitem(sys.modules, "planetary_computer", None)  # any import of it fails
    assert main(["fetch", "pair", "--aoi", "10.31,46.92,10.32,46.93", "--start", "2024-04-01", "--end",
                 "2024-04-30", "--out", str(tmp_path / "o")]) == 2
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("stars fetch")]
    assert len(said) == 1 and 'pip install "planetary-computer==1.0.0"' in said[0]


def test_a_real_tile_comes_back_on_its_own_grid(servers, tmp_path, capsys):
    """The real TerraMind tile (when ../shared/data exists): --aoi and --grid its raster, the pair read
    back equals the tile (dB radar, the four optical bands, the land cover in WorldCover codes)."""
    import numpy as np
    import rasterio

    from stars_core.cli import main
    from tests.servers.catalogue import LULC_TO_WORLDCOVER, S2_INDEXES, TERRAMIND, TERRAMIND_TILE

    if not servers.catalogue["real_items"]:
        pytest.skip("no real sample data in ../shared/data/terramind")
    s1 = TERRAMIND / "S1RTC" / f"{TERRAMIND_TILE}.tif"
    out = tmp_path / "pair"
    assert main(["fetch", "pair", "--aoi", str(s1), "--grid", str(s1), "--start", "2024-04-01", "--end",
                 "2024-04-30", "--out", str(out), "--stac-url", servers.stac.url]) == 0
    printed = capsys.readouterr().out
    assert all(i["id"] in printed for i in servers.catalogue["real_items"]), printed
    with rasterio.open(s1) as src, rasterio.open(out / "sar.tif") as sar:
        assert (sar.crs, sar.transform) == (src.crs, src.transform)
        np.testing.assert_allclose(sar.read(), src.read().astype(np.float32), atol=1e-3)
    with rasterio.open(TERRAMIND / "S2L2A" / f"{TERRAMIND_TILE}.tif") as src, rasterio.open(out / "optical.tif") as opt:
        np.testing.assert_array_equal(opt.read(), np.clip(src.read(list(S2_INDEXES)), 0, None))
    with rasterio.open(TERRAMIND / "LULC" / f"{TERRAMIND_TILE}.tif") as src, rasterio.open(out / "labels.tif") as lab:
        expected = np.vectorize(lambda v: LULC_TO_WORLDCOVER.get(int(v), 0))(src.read(1))
        np.testing.assert_array_equal(lab.read(1), expected)


def test_items_in_another_crs_are_said_to_be_warped(servers, tmp_path, capsys):
    assert _fetch(servers, tmp_path, "--dry-run", "--crs", "EPSG:3035") == 0
    out = capsys.readouterr().out
    item_lines = [line for line in out.splitlines() if line.startswith("    ")]
    assert item_lines and all("EPSG:32632, warped" in line for line in item_lines)
    assert _fetch(servers, tmp_path, "--dry-run") == 0
    assert "warped" not in capsys.readouterr().out  # the default grid is the items' own UTM zone


def test_too_few_clear_looks_leave_no_data_and_say_the_clear_fraction(servers, tmp_path, capsys):
    import rasterio

    assert _fetch(servers, tmp_path, "--min-clear", "2", "--orbit", "ascending") == 0
    said = next(line for line in capsys.readouterr().out.splitlines() if "clear look" in line)
    with rasterio.open(tmp_path / "pair" / "optical.tif") as opt, rasterio.open(tmp_path / "pair" / "clear.tif") as c:
        data, clear = opt.read(), c.read(1)
    assert (data[:, clear < 2] == 0).all() and (data[:, clear >= 2] > 0).all()
    fraction = (clear >= 2).mean()
    assert 0 < fraction < 1 and f"optical: {fraction:.0%} of the pixels have at least 2 clear" in said
    record = json.loads((tmp_path / "pair" / "provenance.json").read_text())
    assert record["optical_clear_fraction"] == pytest.approx(fraction, abs=1e-4) and record["orbit"] == "ascending"


def test_a_cancelled_pair_leaves_nothing(servers, tmp_path):
    from stars_core.errors import Cancelled
    from stars_core.fetch.pair import write_pair
    from stars_core.fetch.plan import Request, plan_pair

    area = parse_aoi(_inner_bbox(servers))
    sources = {r: source(n, servers.stac.url) for r, n in (("sar", "pc-sentinel-1-rtc"),
                                                           ("optical", "pc-sentinel-2-l2a"),
                                                           ("labels", "pc-esa-worldcover"))}
    plan = plan_pair(Request(area, output_grid(area), "2024-04-01", "2024-04-30", sources))
    calls = []

    def cancel_at_the_second_block() -> None:
        calls.append(1)
        if len(calls) == 2:  # the radar is written, the optical composite under way
            raise Cancelled("stopped")

    with pytest.raises(Cancelled):
        write_pair(plan, tmp_path / "pair", tick=cancel_at_the_second_block)
    assert not (tmp_path / "pair").exists() or list((tmp_path / "pair").iterdir()) == []


def test_an_output_that_is_the_grid_raster_is_refused_before_any_search(servers, tmp_path, capsys):
    import shutil

    from stars_core.cli import main

    out = tmp_path / "pair"
    out.mkdir()
    grid = shutil.copy(servers.catalogue["scene"]["sar"], out / "sar.tif")
    assert main(["fetch", "pair", "--aoi", _inner_bbox(servers), "--grid", str(grid), "--start", "2024-04-01",
                 "--end", "2024-04-30", "--out", str(out), "--stac-url", "http://127.0.0.1:9/unreachable"]) == 2
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("stars fetch")]
    assert len(said) == 1 and "is the --grid; writing it would destroy the input" in said[0]


# --- the series ---------------------------------------------------------------------------------------------

def test_the_series_has_one_raster_per_day_that_segment_series_reads(servers, tmp_path, capsys):
    import numpy as np
    import rasterio

    from stars_core.change.series import read_dates
    from stars_core.cli import main

    args = ["fetch", "series", "--aoi", _inner_bbox(servers), "--start", "2024-04-01", "--end", "2024-04-30",
            "--out", str(tmp_path / "s1"), "--stac-url", servers.stac.url]
    assert main(args) == 0
    assert "stars segment-series MODEL MAPS --dates" in capsys.readouterr().out.strip().splitlines()[-1]
    dates = read_dates(table=tmp_path / "s1" / "dates.csv")
    series = sorted(servers.catalogue["scene"]["series"].glob("S1_*.tif"))
    assert [d.date for d in dates] == [p.stem[3:] for p in series]
    for d, source_path in zip(dates, series):
        with rasterio.open(d.path) as got:
            grid = type("G", (), {"transform": got.transform, "width": got.width, "height": got.height})
            np.testing.assert_allclose(got.read(), _window(servers, source_path, grid), atol=1e-4)
            assert got.tags()["coverage"] == "1.0000" and got.tags()["TIFFTAG_DATETIME"].startswith(
                d.date.replace("-", ":"))
    # a rerun reads only what is missing
    from osgeo import gdal

    (tmp_path / "s1" / f"S1_{dates[1].date}.tif").unlink()
    gdal.VSICurlClearCache()  # as a new process would start: nothing in GDAL's memory
    servers.assets.reset()
    assert main(args + ["--no-cache"]) == 0  # (the cache would read nothing at all: tested below)
    asked = {path.split("/")[1] for _, path, _ in servers.assets.requests}
    assert asked == {i["id"] for i in servers.catalogue["items"]
                     if i["collection"] == "sentinel-1-rtc" and i["properties"]["datetime"].startswith(dates[1].date)}
    record = json.loads((tmp_path / "s1" / "provenance.json").read_text())["cache"]
    assert set(record["items_read"]) == asked and record["items_from_cache"] == []  # kept dates: in neither


def test_a_day_with_both_orbits_keeps_the_one_covering_more_of_the_area_and_says_so():
    from stars_core.fetch.series import acquisition_days

    area = parse_aoi("10.30,46.90,10.40,46.96")
    grid = output_grid(area)

    def item(ident, orbit, east):  # a footprint over the area's west part up to `east`
        box = [10.29, 46.89, east, 46.97]
        ring = [(box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3]), (box[0], box[1])]
        return {"id": ident, "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"datetime": "2024-04-01T05:30:00Z", "sat:orbit_state": orbit}}

    slices = [item("a", "ascending", 10.41), item("d1", "descending", 10.33), item("d2", "descending", 10.34)]
    days, notes = acquisition_days(slices, area, grid)
    assert [i["id"] for i in days["2024-04-01"]] == ["a"]  # one slice, but all of the area
    assert notes == ["2024-04-01: both orbit directions (ascending 1 slice(s) covering 100% of the area, descending "
                     "2 slice(s) covering 40% of the area); kept ascending, one raster per date; --orbit picks one"]
    days, _ = acquisition_days(slices)  # no area: the direction with more slices
    assert [i["id"] for i in days["2024-04-01"]] == ["d1", "d2"]


def _series(servers, out, *extra):
    from stars_core.cli import main

    return main(["fetch", "series", "--aoi", _inner_bbox(servers), "--start", "2024-04-01", "--end", "2024-04-30",
                 "--out", str(out), "--stac-url", servers.stac.url, *extra])


def _dates_csv(folder) -> list[dict]:
    import csv

    return list(csv.DictReader((folder / "dates.csv").open()))


def test_a_rerun_with_another_grid_or_orbit_makes_the_dates_again_and_says_why(servers, tmp_path, capsys):
    import rasterio
    from osgeo import gdal

    out = tmp_path / "s1"
    assert _series(servers, out, "--orbit", "ascending") == 0
    capsys.readouterr()
    assert _series(servers, out, "--orbit", "ascending", "--res", "20") == 0
    said = capsys.readouterr().out
    rows = _dates_csv(out)
    assert len(rows) == 2 and "wrote 2 date(s) (2 made again, said above), kept 0" in said
    for row in rows:
        assert f"{row['date']}: made again: another grid (EPSG:32632 " in said and "step 10, now EPSG:32632" in said
        with rasterio.open(out / row["path"]) as ds:
            assert ds.transform.a == 20 and ds.tags()["items"] == row["items"]
    # the same command again: every date kept, nothing read (no cache to hide a read)
    gdal.VSICurlClearCache()
    servers.assets.reset()
    assert _series(servers, out, "--orbit", "ascending", "--res", "20", "--no-cache") == 0
    assert "kept 2 already there" in capsys.readouterr().out and servers.assets.requests == []
    assert _series(servers, out, "--orbit", "ascending", "--res", "20", "--dry-run") == 0  # the cache holds them too
    said = capsys.readouterr().out
    assert "total: about 0.0 MB to read\n" in said and "series: 2 date(s), 0 to write, 2 kept" in said
    assert "about 0.0 MB and 0.00 Mpx to read (" in said  # what is kept is not counted as read
    # both directions now: the ascending dates kept, the descending one written; dates.csv says each orbit
    assert _series(servers, out, "--res", "20") == 0
    said = capsys.readouterr().out
    assert "made again" not in said and "wrote 1 date(s), kept 2 already there" in said
    assert {r["orbit"] for r in _dates_csv(out)} == {"ascending", "descending"} and len(_dates_csv(out)) == 3


def test_what_made_a_date_is_compared_with_what_this_run_would_make(tmp_path):
    import numpy as np
    import rasterio

    from stars_core.fetch.series import made_by, redo_reasons

    area = parse_aoi("10.30,46.90,10.31,46.91")
    grid = output_grid(area)
    items = [{"id": "s1a", "properties": {"sat:orbit_state": "ascending", "sat:relative_orbit": 117}}]
    wanted = made_by(items, "sentinel-1-rtc")
    path = tmp_path / "S1_2024-04-01.tif"
    assert redo_reasons(path, grid, wanted) == ["not written yet"]
    profile = {"driver": "GTiff", "width": grid.width, "height": grid.height, "count": 1, "dtype": "float32",
               "crs": grid.crs, "transform": grid.transform}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.zeros((1, grid.height, grid.width), np.float32))
    assert redo_reasons(path, grid, wanted) == ["its tags do not say what made it (not written by stars fetch series)"]
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(**wanted)
    assert redo_reasons(path, grid, wanted) == []
    other = [{"id": "s1b", "properties": {"sat:orbit_state": "descending", "sat:relative_orbit": 168}}]
    why = redo_reasons(path, grid, made_by(items + other, "sentinel-1-rtc"))
    assert why == ["another orbit (ascending 117, now ascending 117,168)",
                   "other slices (1 of sentinel-1-rtc, now 2 of sentinel-1-rtc: 1 new)"]
    moved = output_grid(parse_aoi("10.30,46.90,10.32,46.91"))
    assert redo_reasons(path, moved, wanted)[0].startswith("another grid (")


def test_only_the_relative_orbits_asked_for_are_listed_and_read(servers, tmp_path, capsys):
    descending = _ids(servers, "sentinel-1-rtc", **{"sat:relative_orbit": 168})
    ascending = _ids(servers, "sentinel-1-rtc", **{"sat:relative_orbit": 117})
    assert _series(servers, tmp_path / "s1", "--dry-run", "--relative-orbit", "168") == 0
    out = capsys.readouterr().out
    assert all(i in out for i in descending) and not any(i in out for i in ascending)
    assert "sar: relative orbits 168 descending (1)" in out
    assert _series(servers, tmp_path / "s1", "--dry-run", "--relative-orbit", "168", "--relative-orbit", "117,5") == 0
    out = capsys.readouterr().out
    assert all(i in out for i in descending + ascending)
    assert _series(servers, tmp_path / "s1", "--dry-run", "--relative-orbit", "5,6") == 2
    assert "no sentinel-1-rtc items on relative orbit(s) 5, 6 at" in capsys.readouterr().err
    assert _series(servers, tmp_path / "s1", "--dry-run", "--relative-orbit", "200") == 2
    assert "relative orbits run from 1 to 175" in capsys.readouterr().err
    assert _series(servers, tmp_path / "s1", "--relative-orbit", "168") == 0
    assert [r["relative_orbits"] for r in _dates_csv(tmp_path / "s1")] == ["168"]


def test_a_series_of_both_directions_is_warned_about_and_its_provenance_is_whole(servers, tmp_path, capsys):
    warning = "warning: the series mixes orbit directions across its dates (2 ascending, 1 descending)"
    assert _series(servers, tmp_path / "both") == 0
    assert capsys.readouterr().out.count(warning) == 1
    record = json.loads((tmp_path / "both" / "provenance.json").read_text())
    assert any(n.startswith(warning) for n in record["notes"])
    assert record["area"]["label"] == _inner_bbox(servers) and record["dates"] == ["2024-04-01", "2024-04-30"]
    assert record["grid"]["crs"] == "EPSG:32632" and record["grid"]["transform"][0] == 10.0
    (sar,) = record["sources"]
    assert sar["licence"] == "CC-BY-4.0" and sar["attribution"].startswith("Contains modified Copernicus Sentinel "
                                                                           "data [2024]")
    assert {a["orbit"] for a in record["acquisitions"].values()} == {"ascending", "descending"}
    assert _series(servers, tmp_path / "one", "--orbit", "ascending") == 0
    assert "mixes orbit directions" not in capsys.readouterr().out
    assert json.loads((tmp_path / "one" / "provenance.json").read_text())["notes"] == []


def test_a_resume_counts_and_reads_only_the_dates_it_writes(servers, tmp_path):
    from dataclasses import replace

    from stars_core.fetch.run import FetchConfig, fetch

    out = tmp_path / "s1"
    cfg = FetchConfig(aoi=_inner_bbox(servers), start="2024-04-01", end="2024-04-30", stac_url=servers.stac.url,
                      no_cache=True)
    full = fetch("series", cfg, out, dry_run=True, log=lambda _: None)["plan"].bytes
    fetch("series", cfg, out, log=lambda _: None)
    (out / f"S1_{_dates_csv(out)[0]['date']}.tif").unlink()
    half = replace(cfg, max_gb=full / 2 / 1e9)  # more than one date, less than three
    said = []
    plan = fetch("series", half, out, dry_run=True, log=said.append)["plan"]
    assert 0 < plan.to_read < full / 2 and "series: 3 date(s), 1 to write, 2 kept as they are in" in "\n".join(said)
    seen = []
    done = fetch("series", half, out, log=lambda _: None, progress=lambda k, n: seen.append((k, n)))["facts"]
    assert len(done["written"]) == 1 and len(done["kept"]) == 2
    assert seen[-1][0] == seen[-1][1] == len(seen)  # the bar reaches its end: kept dates not counted


def test_earth_search_scaling_from_its_items_gives_the_same_optical_composite(servers, tmp_path):
    """Sentinel-2 from a second real STAC API (Earth Search's items: scale and offset in raster:bands)
    beside Planetary Computer's radar and labels: the same reflectances as through Planetary Computer."""
    import numpy as np
    import rasterio

    from stars_core.fetch.pair import write_pair
    from stars_core.fetch.plan import Request, plan_pair
    from stars_core.fetch.read import http_env

    area = parse_aoi(_inner_bbox(servers))
    sources = {"sar": source("pc-sentinel-1-rtc", servers.stac.url),
               "optical": source("earth-search-sentinel-2-l2a", servers.earth_search.url),
               "labels": source("pc-esa-worldcover", servers.stac.url)}
    plan = plan_pair(Request(area, output_grid(area), "2024-04-01", "2024-04-30", sources))
    assert {i["id"] for i in plan.roles[1].items} == {i["id"] for i in servers.catalogue["earth_search_items"]}
    with http_env(retries=1, delay_s=0.1):
        write_pair(plan, tmp_path / "pair")
    with rasterio.open(tmp_path / "pair" / "optical.tif") as opt:
        grid = type("G", (), {"transform": opt.transform, "width": opt.width, "height": opt.height})
        np.testing.assert_array_equal(opt.read(), _window(servers, servers.catalogue["scene"]["optical"], grid))


# --- the one core call the QGIS algorithms make ---------------------------------------------------------

def test_a_cancelled_fetch_leaves_nothing_and_progress_reaches_the_total(servers, tmp_path):
    from stars_core.errors import Cancelled
    from stars_core.fetch.pair import OUTPUTS
    from stars_core.fetch.run import FetchConfig, fetch

    cfg = FetchConfig(aoi=_inner_bbox(servers), start="2024-04-01", end="2024-04-30", stac_url=servers.stac.url)
    with pytest.raises(Cancelled):
        fetch("pair", cfg, tmp_path / "stopped", log=lambda _: None, cancel=lambda: True)
    assert not (tmp_path / "stopped").exists() or not any((tmp_path / "stopped").iterdir())
    seen = []
    done = fetch("pair", cfg, tmp_path / "pair", log=lambda _: None, progress=lambda k, n: seen.append((k, n)))
    assert seen[-1][0] == seen[-1][1] == len(seen) and done["facts"]["labels_covered_fraction"] == 1.0
    assert all((tmp_path / "pair" / name).is_file() for name in OUTPUTS)


def test_the_proxy_environment_is_set_for_the_fetch_and_restored_after(monkeypatch):
    import os

    from stars_core.fetch.run import proxy_env

    monkeypatch.setenv("https_proxy", "http://before:1")
    monkeypatch.delenv("http_proxy", raising=False)
    with proxy_env("http://127.0.0.1:3128", "example.org"):
        assert os.environ["http_proxy"] == os.environ["HTTPS_PROXY"] == "http://127.0.0.1:3128"
        assert os.environ["no_proxy"] == "example.org"
    assert os.environ["https_proxy"] == "http://before:1" and "http_proxy" not in os.environ


def test_ctrl_c_stops_the_command_between_blocks_and_leaves_nothing(servers, tmp_path, monkeypatch, capsys):
    from stars_core.fetch.pair import OUTPUTS

    monkeypatch.setattr("stars_core.cli.stop.STOP", lambda: True)  # as after a first Ctrl-C
    assert _fetch(servers, tmp_path) != 0
    assert "fetch stopped; nothing half-written" in capsys.readouterr().err
    assert not any((tmp_path / "pair" / name).exists() for name in OUTPUTS)


def test_the_fetched_labels_carry_their_classes_as_a_class_map_does(servers, tmp_path):
    import rasterio

    from stars_core.classmap import stored_classes

    assert _fetch(servers, tmp_path) == 0
    with rasterio.open(tmp_path / "pair" / "labels.tif") as ds:
        assert ds.colormap(1)[10] == (0, 100, 0, 255)  # WorldCover's tree cover green, from the collection
        classes = stored_classes(ds)
        assert classes is not None and dict(zip(classes.values, classes.names))[10] == "Tree cover"
    assert not list((tmp_path / "pair").glob(".*"))  # the sidecars were renamed with their raster


# --- naming the collections, labels that do not cover the area, io-lulc-annual-v02 ------------------------

def _bbox_of(item: dict, x0: float, x1: float, y0: float = 0.2, y1: float = 0.8) -> str:
    """A lon/lat bbox at these fractions of the item's bbox (west to east, south to north)."""
    w, s, e, n = item["bbox"]
    return f"{w + (e - w) * x0:.6f},{s + (n - s) * y0:.6f},{w + (e - w) * x1:.6f},{s + (n - s) * y1:.6f}"


@pytest.mark.parametrize("kind,flag", [("pair", "--sar-collection"), ("pair", "--optical-collection"),
                                       ("pair", "--labels-collection"), ("series", "--sar-collection")])
def test_a_collection_flag_names_the_collection_searched(servers, tmp_path, capsys, kind, flag):
    from stars_core.cli import main

    assert main(["fetch", kind, "--aoi", _inner_bbox(servers), "--start", "2024-04-01", "--end", "2024-04-30",
                 "--out", str(tmp_path / "o"), "--stac-url", servers.stac.url, flag, "landsat-c2-l2", "--dry-run"]) == 2
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("stars fetch")]
    assert len(said) == 1 and "has no collection 'landsat-c2-l2': it serves esa-worldcover, io-lulc-annual-v02, " \
        "sentinel-1-rtc, sentinel-2-l2a" in said[0]
    assert servers.assets.requests == []


def test_the_named_collection_replaces_the_sources_own(servers, tmp_path, capsys):
    """WorldCover's reading rules pointed at io-lulc-annual-v02: its item is found there, and its asset
    keys are not WorldCover's, said in one line."""
    assert _fetch(servers, tmp_path, "--dry-run", "--labels-collection", "io-lulc-annual-v02") == 2
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("stars fetch")]
    assert len(said) == 1 and "item 32T-2023 of io-lulc-annual-v02 has no asset 'map' (it has data" in said[0]


def test_labels_that_cover_part_of_the_area_are_refused_before_any_pixel(servers, tmp_path, capsys):
    """io-lulc's test item covers the scene's western half: over the inner box (20 % to 80 % of the
    scene) that is half the area, refused in one line naming the collection, the fraction and the fixes."""
    assert _fetch(servers, tmp_path, "--labels-source", "pc-io-lulc-annual-v02") == 2
    printed = capsys.readouterr()
    assert "labels: the items' footprints cover 50% of the area" in printed.out  # the plan, said first
    said = [line for line in printed.err.splitlines() if line.startswith("stars fetch")]
    assert len(said) == 1, said
    share = re.search(f"the labels of io-lulc-annual-v02 at {servers.stac.url} cover only ([0-9.]+)% of the area",
                      said[0])
    assert share and 45 <= float(share.group(1)) <= 55, said[0]
    assert "another collection" in said[0] and "shrink the area" in said[0]
    allow = float(said[0].split("--min-label-coverage ")[1].split()[0])
    assert 0.45 <= allow <= 0.55
    assert servers.assets.requests == []
    assert not (tmp_path / "pair").exists() or list((tmp_path / "pair").iterdir()) == []
    assert _fetch(servers, tmp_path, "--labels-source", "pc-io-lulc-annual-v02", "--min-label-coverage",
                  str(allow)) == 0
    record = json.loads((tmp_path / "pair" / "provenance.json").read_text())
    assert record["labels_covered_fraction"] == pytest.approx(0.5, abs=0.05)  # the rest no data, as allowed


def test_the_footprint_coverage_is_the_share_of_the_area_under_the_items(servers):
    from stars_core.fetch.aoi import Area
    from stars_core.fetch.plan import footprint_coverage

    item = servers.catalogue["io_lulc_items"][0]
    area = Area(item["geometry"], tuple(item["bbox"]), "the item's own footprint")
    assert footprint_coverage([item], area, output_grid(area)) == 1.0
    wider = parse_aoi(_bbox_of(item, 0.0, 2.0))  # as wide again to the east
    assert footprint_coverage([item], wider, output_grid(wider)) == pytest.approx(0.5, abs=0.02)
    assert footprint_coverage([], wider, output_grid(wider)) == 0.0


def test_io_lulc_labels_come_with_its_own_class_table(servers, tmp_path, capsys):
    """`--labels-source pc-io-lulc-annual-v02` over the western half: classes.csv is the real item's
    file:values (No Data left out) in Planetary Computer's colours, labels.tif its codes."""
    import csv

    import numpy as np
    import rasterio

    from stars_core.cli import main
    from tests.servers.catalogue import TO_IO_LULC

    out = tmp_path / "pair"
    aoi = _bbox_of(servers.catalogue["io_lulc_items"][0], 0.2, 0.8)
    assert main(["fetch", "pair", "--aoi", aoi, "--start", "2024-04-01", "--end", "2024-04-30", "--out", str(out),
                 "--stac-url", servers.stac.url, "--labels-source", "pc-io-lulc-annual-v02"]) == 0
    with open(out / "classes.csv", newline="") as f:
        rows = [(int(r["value"]), r["name"], r["color"]) for r in csv.DictReader(f)]
    assert rows == [(1, "Water", "#419bdf"), (2, "Trees", "#397d49"), (4, "Flooded vegetation", "#7a87c6"),
                    (5, "Crops", "#e49635"), (7, "Built area", "#c4281b"), (8, "Bare ground", "#a59b8f"),
                    (9, "Snow/ice", "#a8ebff"), (10, "Clouds", "#616161"), (11, "Rangeland", "#e3e2c3")]
    with rasterio.open(out / "labels.tif") as lab:
        grid = type("G", (), {"transform": lab.transform, "width": lab.width, "height": lab.height})
        raw = _window(servers, servers.catalogue["scene"]["labels"], grid)[0]
        np.testing.assert_array_equal(lab.read(1), np.vectorize(lambda v: TO_IO_LULC.get(int(v), 0))(raw))
        assert lab.colormap(1)[2] == (57, 125, 73, 255)
    record = json.loads((out / "provenance.json").read_text())
    labels = next(s for s in record["sources"] if s["role"] == "labels")
    assert labels["collection"] == "io-lulc-annual-v02" and [i["id"] for i in labels["items"]] == ["32T-2023"]


# --- the cache: a rerun or a second command over the same grid reads nothing twice -------------------------

def _rasters(folder) -> dict:
    """Every raster of a fetch's output folder: its bands' bytes, CRS, transform and tags."""
    import rasterio

    found = {}
    for path in sorted(folder.glob("*.tif")):
        with rasterio.open(path) as ds:
            found[path.name] = (ds.read().tobytes(), ds.crs, ds.transform, ds.tags())
    return found


def _range_reads(servers) -> list:
    return [r for r in servers.assets.requests if r[2]]


def test_a_rerun_of_the_pair_reads_nothing_and_writes_the_same_bits(servers, tmp_path, capsys):
    from osgeo import gdal

    from stars_core.fetch.pair import write_pair
    from stars_core.fetch.plan import Request, plan_pair
    from stars_core.fetch.read import http_env

    cache = tmp_path / "cache"
    gdal.VSICurlClearCache()
    assert _fetch(servers, tmp_path, "--cache", str(cache)) == 0
    assert _range_reads(servers)
    said = capsys.readouterr().out
    counted = re.search(rf"cache: {re.escape(str(cache))}, 0 of (\d+) asset\(s\) already there", said)
    assets = sum(len(source(n, servers.stac.url).assets) * len([i for i in servers.catalogue["items"]
                                                                 if i["collection"] == source(n).collection])
                 for n in ("pc-sentinel-1-rtc", "pc-sentinel-2-l2a", "pc-esa-worldcover"))
    assert counted and int(counted.group(1)) == assets > 0
    first = json.loads((tmp_path / "pair" / "provenance.json").read_text())["cache"]
    assert first["folder"] == str(cache) and first["items_from_cache"] == []
    assert set(first["items_read"]) == {i["id"] for i in servers.catalogue["items"]}
    capsys.readouterr()
    gdal.VSICurlClearCache()  # as a new process would start: nothing in GDAL's memory
    servers.assets.reset()
    again = tmp_path / "again"
    assert _fetch(servers, again, "--cache", str(cache)) == 0
    assert _range_reads(servers) == [] and servers.assets.requests == []  # not even a HEAD
    said = capsys.readouterr().out
    assert f"asset(s) taken from {cache}, 0 read from their hosts" in said
    assert f"cache: {cache}, {assets} of {assets} asset(s) already there" in said
    second = json.loads((again / "pair" / "provenance.json").read_text())["cache"]
    assert set(second["items_from_cache"]) == set(first["items_read"]) and second["items_read"] == []
    assert _rasters(again / "pair") == _rasters(tmp_path / "pair")
    # the same bits as the reads straight from the host, block by block, with no cache at all
    area = parse_aoi(_inner_bbox(servers))
    sources = {r: source(n, servers.stac.url) for r, n in (("sar", "pc-sentinel-1-rtc"),
                                                           ("optical", "pc-sentinel-2-l2a"),
                                                           ("labels", "pc-esa-worldcover"))}
    with http_env(retries=1, delay_s=0.1):
        write_pair(plan_pair(Request(area, output_grid(area), "2024-04-01", "2024-04-30", sources)),
                   tmp_path / "direct")
    assert _rasters(tmp_path / "direct") == _rasters(tmp_path / "pair")


def test_without_the_cache_nothing_is_kept_and_the_pixels_are_the_same(servers, tmp_path, capsys):
    import os
    from pathlib import Path

    assert _fetch(servers, tmp_path, "--no-cache") == 0
    assert "cache: none (--no-cache)" in capsys.readouterr().out
    assert not (tmp_path / "cache").exists() and not any(p.name.startswith(".") for p in (tmp_path / "pair").iterdir())
    assert not (Path(os.environ["STARS_CACHE_DIR"]) / "fetch").exists()
    record = json.loads((tmp_path / "pair" / "provenance.json").read_text())["cache"]
    assert record["folder"] is None and record["items_from_cache"] == []
    assert _fetch(servers, tmp_path / "cached") == 0  # the default folder: $STARS_CACHE_DIR/fetch
    assert (Path(os.environ["STARS_CACHE_DIR"]) / "fetch").is_dir()
    assert _rasters(tmp_path / "cached" / "pair") == _rasters(tmp_path / "pair")


def test_a_series_after_a_pair_over_the_same_grid_reads_no_radar_again(servers, tmp_path, capsys):
    from osgeo import gdal

    from stars_core.cli import main

    gdal.VSICurlClearCache()
    assert _fetch(servers, tmp_path, "--dry-run") == 0
    assert "total: about" in capsys.readouterr().out
    assert _fetch(servers, tmp_path) == 0  # every Sentinel-1 item of April, both orbits
    gdal.VSICurlClearCache()
    servers.assets.reset()
    capsys.readouterr()
    assert _fetch(servers, tmp_path, "--dry-run") == 0
    said = capsys.readouterr().out
    total = next(line for line in said.splitlines() if line.startswith("total:"))
    assert total.startswith("total: about 0.0 MB to read, ") and total.endswith(" MB already cached")
    assert "about 0.0 MB and 0.00 Mpx to read (" in said  # the cached pixels are not counted as read
    assert float(total.split(", ")[1].split()[0]) > 0
    assert _fetch(servers, tmp_path, "--dry-run", "--res", "20") == 0  # another grid: nothing of it cached
    assert "already cached" not in capsys.readouterr().out
    assert main(["fetch", "series", "--aoi", _inner_bbox(servers), "--start", "2024-04-01", "--end", "2024-04-30",
                 "--out", str(tmp_path / "s1"), "--stac-url", servers.stac.url]) == 0
    assert servers.assets.requests == []
    record = json.loads((tmp_path / "s1" / "provenance.json").read_text())
    assert set(record["cache"]["items_from_cache"]) == {i for d in record["acquisitions"].values() for i in d["items"]}


@pytest.mark.parametrize("damage", ["cut short", "bytes changed"])
def test_a_damaged_cache_entry_is_read_again_and_said(servers, tmp_path, capsys, damage):
    from osgeo import gdal

    from stars_core.fetch.cache import default_folder, record_of

    gdal.VSICurlClearCache()
    assert _fetch(servers, tmp_path) == 0
    entries = sorted(default_folder().glob("*/*.tif"))
    damaged = entries[len(entries) // 2]
    href = record_of(damaged)["href"]
    data = damaged.read_bytes()
    if damage == "cut short":  # as a full disk or a copy stopped half-way would
        damaged.write_bytes(data[: len(data) // 2])
    else:  # the same size, a flipped byte in the pixels (bit rot): only the SHA-256 tells
        half = len(data) // 2
        damaged.write_bytes(data[:half] + bytes([data[half] ^ 0xFF]) + data[half + 1:])
    gdal.VSICurlClearCache()
    servers.assets.reset()
    capsys.readouterr()
    assert _fetch(servers, tmp_path / "again") == 0
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("stars fetch: the cached")]
    assert said == [f"stars fetch: the cached copy of {href} is damaged (cut short or changed); reading it again"]
    assert {path for _, path, _ in servers.assets.requests} == {href.split(servers.assets.url)[1]}
    assert _rasters(tmp_path / "again" / "pair") == _rasters(tmp_path / "pair")


def test_an_interrupted_read_leaves_no_cache_entry(servers, tmp_path):
    from stars_core.errors import Cancelled
    from stars_core.fetch.run import FetchConfig, fetch

    cfg = FetchConfig(aoi=_inner_bbox(servers), start="2024-04-01", end="2024-04-30", stac_url=servers.stac.url,
                      cache=str(tmp_path / "cache"))
    ticks = []
    with pytest.raises(Cancelled):  # stopped inside the first asset's first block
        fetch("pair", cfg, tmp_path / "pair", log=lambda _: None, cancel=lambda: ticks.append(1) or True)
    left = sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert len(ticks) == 1 and left == ["grid.json"]  # no entry, no temporary file


def test_a_signature_is_not_part_of_the_cache_key():
    from stars_core.fetch.cache import unsigned

    href = "https://x.blob.core.windows.net/c/vv.tif"
    assert unsigned(href + "?st=2024-01-01&se=2024-01-02&sp=rl&sv=2021&sr=c&skoid=a&sig=abc%3D") == href
    assert unsigned(href + "?X-Amz-Signature=1&X-Amz-Date=2&version=3") == href + "?version=3"


def test_a_cache_folder_that_cannot_be_written_is_one_line_with_the_fix(servers, tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache should be")
    assert _fetch(servers, tmp_path, "--cache", str(blocker / "fetch")) == 2
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("stars fetch")]
    assert len(said) == 1 and f"the fetch cache {blocker / 'fetch'} cannot be written" in said[0]
    assert "--cache, or --no-cache" in said[0] and servers.assets.requests == []
