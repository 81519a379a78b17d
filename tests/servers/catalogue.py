"""The local catalogue's content: COGs made from the demo scene and its dated SAR series, and STAC
items whose JSON follows real Planetary Computer responses (tests/servers/recorded/, see its NOTICE.md).

    build_catalogue(folder, asset_url) -> {"collections": [...], "items": [...], "scene": {...}}

Assets, written as COGs into `folder` and addressed as `asset_url/<item>/<asset>.tif`:
  sentinel-1-rtc   VV, VH: the series' dB converted back to linear gamma0, float32, nodata -32768
  sentinel-2-l2a   B02, B03, B04, B08 uint16 with the L2A offset (+1000, baseline >= 04.00), SCL at 20 m
                   with a cloud, its shadow and a cirrus patch on the first date (uint8)
  esa-worldcover   map: the scene's labels recoded to WorldCover codes (uint8, 0 no data)
  io-lulc-annual-v02  data: the western half of the scene's labels recoded to Impact Observatory's codes
                   (uint8, 0 no data; `io_lulc_items`: a label collection that covers part of an area)
When ../shared/data/terramind exists, one real tile (TERRAMIND_TILE) adds one item to each collection
(`real_items`), elsewhere on Earth: its S1RTC dB converted back to linear gamma0, its S2L2A int16 bands
2, 3, 4 and 8 (the 12-band L2A order B01-B09, B8A, B11, B12 is assumed: the folder does not name its
bands) as uint16 with the L2A offset and a clear SCL, and its LULC recoded to WorldCover codes.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.warp import transform_bounds, transform_geom

RECORDED = Path(__file__).with_name("recorded")
SIZE, PIXEL, SEED = 128, 10.0, 3
S2_DATES = ("2024-04-03", "2024-04-08")
# demo classes -> WorldCover: buildings, roads -> built-up; water; forest -> tree cover; farmland -> cropland; bare
TO_WORLDCOVER = {1: 50, 2: 50, 3: 80, 4: 10, 5: 40, 6: 60}
TO_IO_LULC = {1: 7, 2: 7, 3: 1, 4: 2, 5: 5, 6: 8}  # the same to Impact Observatory's built area, water, ...
CLOUD, SHADOW, CIRRUS, VEGETATION = 9, 3, 10, 4  # SCL codes (high-probability cloud, cloud shadow, thin cirrus)


def recorded(name: str) -> dict:
    data = json.loads((RECORDED / name).read_text())
    return data.get("item") or data["collection"]


def _cog(path: Path, data: np.ndarray, profile: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".plain.tif")
    with rasterio.open(tmp, "w", **{**profile, "count": data.shape[0], "dtype": data.dtype.name}) as dst:
        dst.write(data)
    rasterio.shutil.copy(tmp, path, driver="COG", BLOCKSIZE=64, OVERVIEWS="NONE")
    tmp.unlink()


def _footprint(profile: dict) -> tuple[dict, list[float], list[float]]:
    t, w, h = profile["transform"], profile["width"], profile["height"]
    bounds = (t.c, t.f + h * t.e, t.c + w * t.a, t.f)
    ring = [(bounds[0], bounds[1]), (bounds[2], bounds[1]), (bounds[2], bounds[3]), (bounds[0], bounds[3]),
            (bounds[0], bounds[1])]
    geometry = transform_geom(profile["crs"], "EPSG:4326", {"type": "Polygon", "coordinates": [ring]})
    return geometry, list(transform_bounds(profile["crs"], "EPSG:4326", *bounds)), list(bounds)


def _proj(profile: dict, bounds: list[float]) -> dict:
    t = profile["transform"]
    return {"proj:shape": [profile["height"], profile["width"]], "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
            "proj:bbox": bounds}


def _s1_items(series: Path, base: dict, asset_url: str, folder: Path) -> list[dict]:
    collection = recorded("pc-sentinel-1-rtc-collection.json")
    items = []
    for k, path in enumerate(sorted(series.glob("S1_*.tif"))):
        date = path.stem[3:]
        stamp = date.replace("-", "")
        item_id = f"S1A_IW_GRDH_1SDV_{stamp}T053001_{stamp}T053026_05{k}352_0378DC_rtc"
        with rasterio.open(path) as src:
            db, profile = src.read(), src.profile
        linear = np.where(np.isfinite(db), 10 ** (db / 10), -32768).astype(np.float32)
        profile.update(nodata=-32768)
        geometry, bbox, bounds = _footprint(profile)
        orbit = "ascending" if k % 2 == 0 else "descending"
        props = {"datetime": f"{date}T05:30:14Z", "platform": "SENTINEL-1A", "constellation": "Sentinel-1",
                 "sar:instrument_mode": "IW", "sar:polarizations": ["VV", "VH"], "sar:product_type": "GRD",
                 "sar:frequency_band": "C", "sat:orbit_state": orbit, "sat:relative_orbit": 117 if k % 2 == 0 else 168,
                 "proj:epsg": int(profile["crs"].to_epsg()), "s1:processing_level": "1"}
        assets = {}
        for band, name in enumerate(("vv", "vh")):
            _cog(folder / item_id / f"{name}.tif", linear[band:band + 1], profile)
            assets[name] = {**copy.deepcopy(collection["item_assets"][name]), **_proj(profile, bounds),
                            "href": f"{asset_url}/{item_id}/{name}.tif"}
        items.append({**base, "id": item_id, "collection": "sentinel-1-rtc", "geometry": geometry, "bbox": bbox,
                      "properties": props, "assets": assets, "links": collection["links"][:1]})
    return items


def _scl(labels: np.ndarray, cloudy: bool) -> np.ndarray:
    scl = np.full(labels.shape, VEGETATION, np.uint8)
    scl[labels == 3] = 6  # water
    if cloudy:  # a cloud, its shadow beside it and a cirrus patch (the upper-left quarter unusable)
        h, w = labels.shape
        scl[: h // 4, : w // 4] = CLOUD
        scl[h // 4: h // 3, : w // 4] = SHADOW
        scl[: h // 8, w // 4: w // 3] = CIRRUS
    return scl


def _s2_items(scene: dict, asset_url: str, folder: Path) -> list[dict]:
    template = recorded("pc-sentinel-2-l2a-item.json")
    with rasterio.open(scene["optical"]) as src:
        optical, profile = src.read(), src.profile
    with rasterio.open(scene["labels"]) as src:
        labels = src.read(1)
    items = []
    for k, date in enumerate(S2_DATES):
        stamp = date.replace("-", "")
        item_id = f"S2B_MSIL2A_{stamp}T102559_R108_T32TNS_{stamp}T140000"
        scl_full = _scl(labels, cloudy=k == 0)
        bands = (optical.astype(np.int32) + 1000).clip(0, 65535).astype(np.uint16)  # L2A offset, baseline >= 04.00
        bands[:, np.isin(scl_full, (CLOUD, CIRRUS))] = 9000
        bands[:, optical[0] == 0] = 0
        geometry, bbox, bounds = _footprint(profile)
        item = copy.deepcopy(template)
        item.update(id=item_id, geometry=geometry, bbox=bbox)
        clouded = float(np.isin(scl_full, (CLOUD, SHADOW, CIRRUS)).mean() * 100)
        item["properties"].update({"datetime": f"{date}T10:25:59.024000Z", "proj:epsg": int(profile["crs"].to_epsg()),
                                   "eo:cloud_cover": round(clouded, 4), "s2:processing_baseline": "05.10",
                                   "s2:mgrs_tile": "32TNS", "sat:relative_orbit": 108})
        for band, name in enumerate(("B02", "B03", "B04", "B08")):
            _cog(folder / item_id / f"{name}.tif", bands[band:band + 1], {**profile, "nodata": 0})
            item["assets"][name].update(href=f"{asset_url}/{item_id}/{name}.tif", **_proj(profile, bounds))
        coarse = {**profile, "width": profile["width"] // 2, "height": profile["height"] // 2, "nodata": 0,
                  "transform": profile["transform"] * rasterio.Affine.scale(2)}
        _cog(folder / item_id / "SCL.tif", scl_full[None, ::2, ::2], coarse)
        item["assets"]["SCL"].update(href=f"{asset_url}/{item_id}/SCL.tif", **_proj(coarse, bounds))
        items.append(item)
    return items


def _io_lulc_item(scene: dict, asset_url: str, folder: Path) -> dict:
    """The western half of the scene's labels as an io-lulc-annual-v02 item (the recorded real item's
    JSON, its `file:values` class table included, with this footprint and asset)."""
    item = copy.deepcopy(recorded("pc-io-lulc-annual-v02-item.json"))
    with rasterio.open(scene["labels"]) as src:
        labels, profile = src.read(1), src.profile
    half = labels.shape[1] // 2
    codes = np.zeros((labels.shape[0], half), np.uint8)
    for value, code in TO_IO_LULC.items():
        codes[labels[:, :half] == value] = code
    profile = {**profile, "width": half, "nodata": 0}
    item_id = "32T-2023"
    geometry, bbox, bounds = _footprint(profile)
    _cog(folder / item_id / "data.tif", codes[None], profile)
    item.update(id=item_id, geometry=geometry, bbox=bbox)
    item["assets"]["data"].update(href=f"{asset_url}/{item_id}/data.tif", **_proj(profile, bounds))
    item["properties"].update({"supercell": "32T", "io:tile_id": "32T", "proj:epsg": int(profile["crs"].to_epsg()),
                               **_proj(profile, bounds)})
    return item


def _worldcover_item(scene: dict, base: dict, asset_url: str, folder: Path) -> dict:
    collection = recorded("pc-esa-worldcover-collection.json")
    with rasterio.open(scene["labels"]) as src:
        labels, profile = src.read(1), src.profile
    codes = np.zeros_like(labels)
    for value, code in TO_WORLDCOVER.items():
        codes[labels == value] = code
    item_id = "ESA_WorldCover_10m_2021_v200_N46E010"
    geometry, bbox, bounds = _footprint(profile)
    _cog(folder / item_id / "map.tif", codes[None], {**profile, "nodata": 0})
    asset = {**copy.deepcopy(collection["item_assets"]["map"]), **_proj(profile, bounds),
             "href": f"{asset_url}/{item_id}/map.tif"}
    props = {"datetime": None, "start_datetime": "2021-01-01T00:00:00Z", "end_datetime": "2021-12-31T23:59:59Z",
             "esa_worldcover:product_version": "2.0.0", "proj:epsg": int(profile["crs"].to_epsg())}
    return {**base, "id": item_id, "collection": "esa-worldcover", "geometry": geometry, "bbox": bbox,
            "properties": props, "assets": {"map": asset}, "links": collection["links"][:1]}


# beside the checkout, as tests/conftest.py's SHARED_DATA (STARS_SHARED_DATA names another place)
TERRAMIND = Path(os.environ.get("STARS_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")) / "terramind"
TERRAMIND_TILE = "637U_59R_1_3"
LULC_TO_WORLDCOVER = {1: 80, 2: 10, 3: 90, 4: 40, 5: 50, 6: 60, 7: 70, 8: 0, 9: 30}  # 8 clouds: no data
S2_INDEXES = (2, 3, 4, 8)  # B02, B03, B04, B08 in B01..B09, B8A, B11, B12 (1-based)


def _terramind_items(like: dict, base: dict, asset_url: str, folder: Path) -> list[dict]:
    """The real tile's items, each a copy of the demo item of its collection (`like`) with its own assets."""
    tile = TERRAMIND_TILE
    with rasterio.open(TERRAMIND / "S1RTC" / f"{tile}.tif") as src:
        db, profile = src.read(), {**src.profile, "nodata": -32768, "dtype": "float32"}
    with rasterio.open(TERRAMIND / "S2L2A" / f"{tile}.tif") as src:
        optical = src.read(list(S2_INDEXES)).astype(np.int32)
    with rasterio.open(TERRAMIND / "LULC" / f"{tile}.tif") as src:
        lulc = src.read(1)
    geometry, bbox, bounds = _footprint(profile)
    s1, s2, wc = (copy.deepcopy(like[c]) for c in ("sentinel-1-rtc", "sentinel-2-l2a", "esa-worldcover"))
    linear = np.where(np.isfinite(db), 10 ** (db / 10), -32768).astype(np.float32)
    for item, ident in ((s1, f"S1A_IW_GRDH_1SDV_20240410T053001_20240410T053026_053352_0378DC_{tile}_rtc"),
                        (s2, f"S2B_MSIL2A_20240411T102559_R108_T32VNJ_{tile}"),
                        (wc, f"ESA_WorldCover_10m_2021_v200_{tile}")):
        item.update({**base, "id": ident, "geometry": geometry, "bbox": bbox})
        item["properties"]["proj:epsg"] = int(profile["crs"].to_epsg())
    for band, name in enumerate(("vv", "vh")):
        _cog(folder / s1["id"] / f"{name}.tif", linear[band:band + 1], profile)
        s1["assets"][name].update(href=f"{asset_url}/{s1['id']}/{name}.tif", **_proj(profile, bounds))
    counts = np.where(optical > 0, optical + 1000, 0).clip(0, 65535).astype(np.uint16)
    for band, name in enumerate(("B02", "B03", "B04", "B08")):
        _cog(folder / s2["id"] / f"{name}.tif", counts[band:band + 1], {**profile, "dtype": "uint16", "nodata": 0})
        s2["assets"][name].update(href=f"{asset_url}/{s2['id']}/{name}.tif", **_proj(profile, bounds))
    coarse = {**profile, "dtype": "uint8", "nodata": 0, "width": profile["width"] // 2,
              "height": profile["height"] // 2, "transform": profile["transform"] * rasterio.Affine.scale(2)}
    _cog(folder / s2["id"] / "SCL.tif", np.full((1, coarse["height"], coarse["width"]), VEGETATION, np.uint8), coarse)
    s2["assets"]["SCL"].update(href=f"{asset_url}/{s2['id']}/SCL.tif", **_proj(coarse, bounds))
    codes = np.zeros_like(lulc)
    for value, code in LULC_TO_WORLDCOVER.items():
        codes[lulc == value] = code
    _cog(folder / wc["id"] / "map.tif", codes[None], {**profile, "dtype": "uint8", "nodata": 0})
    wc["assets"]["map"].update(href=f"{asset_url}/{wc['id']}/map.tif", **_proj(profile, bounds))
    s1["properties"].update({"datetime": "2024-04-10T05:30:14Z", "sat:orbit_state": "descending"})
    s2["properties"].update({"datetime": "2024-04-11T10:25:59Z", "eo:cloud_cover": 0.0})
    return [s1, s2, wc]


ES_BANDS = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "SCL": "scl"}


def earth_search_items(pc_items: list[dict]) -> list[dict]:
    """The Sentinel-2 scenes again as Earth Search lists them (the recorded Earth Search item as the
    template: its asset keys and `raster:bands` scale 0.0001 and offset -0.1), on the same COGs."""
    template = recorded("earth-search-sentinel-2-l2a-item.json")
    items = []
    for pc in (i for i in pc_items if i["collection"] == "sentinel-2-l2a"):
        item = copy.deepcopy(template)
        day = pc["properties"]["datetime"][:10].replace("-", "")
        item.update(id=f"S2B_32TNS_{day}_0_L2A", geometry=pc["geometry"], bbox=pc["bbox"])
        item["properties"].update({k: pc["properties"][k] for k in ("datetime", "eo:cloud_cover", "proj:epsg")})
        for pc_key, key in ES_BANDS.items():
            proj = {k: v for k, v in pc["assets"][pc_key].items() if k.startswith("proj:")}
            item["assets"][key].update(href=pc["assets"][pc_key]["href"], **proj)
        items.append(item)
    return items


def build_catalogue(folder: Path, asset_url: str, size: int = SIZE, dates: int = 3) -> dict:
    """Write the COGs into `folder` and return the collections and items to load (see the docstring);
    `size` and `dates`: a larger scene and a longer series (`make demo-fetch`)."""
    from stars_core.change.demo_series import make_demo_series
    from stars_core.demo_scene import make_demo_scene

    scene = make_demo_scene(folder / "scene", size=size, seed=SEED, sheets=(1, 1), pixel_size=PIXEL)
    series = make_demo_series(folder / "scene", dates=dates, size=size, seed=SEED, pixel_size=PIXEL)["folder"]
    base = {"type": "Feature", "stac_version": "1.0.0",
            "stac_extensions": ["https://stac-extensions.github.io/projection/v1.1.0/schema.json"]}
    assets = folder / "assets"
    items = (_s1_items(series, base, asset_url, assets) + _s2_items(scene, asset_url, assets)
             + [_worldcover_item(scene, base, asset_url, assets)])
    names = ("sentinel-1-rtc", "sentinel-2-l2a", "esa-worldcover", "io-lulc-annual-v02")
    collections = [recorded(f"pc-{n}-collection.json") for n in names]
    real = []
    if (TERRAMIND / "S1RTC" / f"{TERRAMIND_TILE}.tif").exists():
        like = {i["collection"]: i for i in items}  # the demo items as templates for the real tile's
        real = _terramind_items(like, base, asset_url, assets)
    return {"collections": collections, "items": items, "real_items": real, "scene": {**scene, "series": series},
            "assets": assets, "io_lulc_items": [_io_lulc_item(scene, asset_url, assets)]}
