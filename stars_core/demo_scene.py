"""A synthetic but georeferenced demo scene: SAR, optical, labels, class table and a map-sheet grid.

`make_demo_scene(out_dir, size=2048, seed=0, sheets=(2, 2))` writes, in one UTM CRS (EPSG:32632):
    sar.tif      2 bands VV, VH: speckled dB backscatter (float32, NaN no-data on a swath edge)
    optical.tif  4 bands B, G, R, NIR: class spectra with texture (uint16 reflectance x 10000, 0 no-data)
    labels.tif   uint8: 1 buildings, 2 roads, 3 water, 4 forest, 5 farmland, 6 bare ground; 0 no-data
    classes.csv  value, name, colour
    sheets.gpkg  a rows x cols map-sheet grid with a "name" field
SAR confuses what real SAR confuses (farmland vs bare ground, roads vs water, buildings vs forest in
VV) while the optical spectra separate the classes, so the optical modality has something to teach.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window
from scipy import ndimage

from .classes import ClassTable, rgb
from .files import atomic_outputs
from .errors import InputError
from .style import paletted_qml

CRS_EPSG = 32632
ORIGIN = (600000.0, 5200000.0)  # upper-left corner, metres in UTM 32N

CLASSES = [  # value, name, colour
    (1, "buildings", "#d7191c"),
    (2, "roads", "#4d4d4d"),
    (3, "water", "#2b83ba"),
    (4, "forest", "#1a9641"),
    (5, "farmland", "#fdae61"),
    (6, "bare ground", "#c2a383"),
]
BUILDINGS, ROADS, WATER, FOREST, FARMLAND, BARE = range(1, 7)

# Mean backscatter in dB (VV, VH) and reflectance x 10000 (B, G, R, NIR) per class value.
SAR_DB = {BUILDINGS: (-5.0, -13.0), ROADS: (-18.0, -25.5), WATER: (-20.0, -27.0),
          FOREST: (-8.0, -13.5), FARMLAND: (-12.5, -19.5), BARE: (-13.5, -21.0)}
OPTICAL = {BUILDINGS: (1400, 1450, 1550, 1750), ROADS: (1050, 1100, 1150, 1350), WATER: (500, 600, 380, 220),
           FOREST: (260, 470, 300, 2900), FARMLAND: (420, 760, 560, 3500), BARE: (1300, 1650, 2050, 2600)}
SAR_NODATA = float("nan")
OPTICAL_NODATA = 0
LABEL_NODATA = 0


def _smooth_field(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """A smooth random field in [0, 1] (ranks), correlation length about `scale` pixels."""
    coarse = max(4, int(size / scale * 4))
    noise = ndimage.gaussian_filter(rng.standard_normal((coarse, coarse)), sigma=2.0, mode="wrap")
    ranks = np.argsort(np.argsort(noise, axis=None)).reshape(noise.shape) / (noise.size - 1)
    return ndimage.zoom(ranks.astype(np.float32), size / coarse, order=1)[:size, :size]


def make_parcels(rng: np.random.Generator, size: int, lo: int, hi: int) -> np.ndarray:
    """Parcel ids from a jittered rectangular partition (fields of lo..hi pixels)."""
    def cuts() -> np.ndarray:
        edges = np.cumsum(rng.integers(lo, hi, size=size // lo + 2))
        return np.searchsorted(edges, np.arange(size), side="right")

    rows, cols = cuts(), cuts()
    return rows[:, None] * (size // lo + 3) + cols[None, :]


def _lines(rng: np.random.Generator, size: int, count: int, width: float) -> np.ndarray:
    """Boolean mask of `count` straight roads crossing the scene at random angles."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    mask = np.zeros((size, size), bool)
    for _ in range(count):
        angle = rng.uniform(0, np.pi)
        cy, cx = rng.uniform(0.2, 0.8, size=2) * size
        dist = np.abs((yy - cy) * np.cos(angle) - (xx - cx) * np.sin(angle))
        mask |= dist < width / 2
    return mask


def make_labels(rng: np.random.Generator, parcels: np.ndarray) -> np.ndarray:
    """Land-cover label raster (uint8, class values of CLASSES, 0 on the no-data border)."""
    size = parcels.shape[0]
    n_parcels = int(parcels.max()) + 1
    crop = rng.random(n_parcels) < 0.72
    labels = np.where(crop[parcels], FARMLAND, BARE).astype(np.uint8)

    labels[_smooth_field(rng, size, size / 6) > 0.68] = FOREST
    urban = _smooth_field(rng, size, size / 5) > 0.74

    # A meandering river and lakes in the lowest ground.
    y = np.arange(size)
    centre = size * rng.uniform(0.3, 0.7) + size * 0.08 * np.sin(y / size * rng.uniform(4, 9))
    half_width = max(2.0, size / 150) * (1 + 0.5 * _smooth_field(rng, size, size / 4)[:, 0])
    xx = np.arange(size)[None, :]
    river = np.abs(xx - centre[:, None]) < half_width[:, None]
    if rng.random() < 0.5:
        river = river.T
    lakes = _smooth_field(rng, size, size / 8) < 0.035
    labels[river | lakes] = WATER

    # Roads: a street grid in town, a few highways across the scene.
    spacing = max(24, size // 20)
    street_w = max(2, size // 400)
    offset = rng.integers(0, spacing, size=2)
    streets = np.zeros((size, size), bool)
    streets[(y - offset[0]) % spacing < street_w, :] = True
    streets[:, (y - offset[1]) % spacing < street_w] = True
    roads = (streets & urban) | _lines(rng, size, 3, max(3.0, size / 300))
    labels[roads & ~river] = ROADS

    # Buildings: one footprint per lattice cell in town, away from streets and water.
    cell = max(10, spacing // 3)
    for r0 in range(0, size - cell, cell):
        for c0 in range(0, size - cell, cell):
            if not urban[r0 + cell // 2, c0 + cell // 2] or rng.random() < 0.2:
                continue
            h, w = rng.integers(cell // 3, cell - 2, size=2)
            dr, dc = rng.integers(1, cell - h), rng.integers(1, cell - w)
            block = labels[r0 + dr:r0 + dr + h, c0 + dc:c0 + dc + w]
            free = (block != ROADS) & (block != WATER)
            block[free] = BUILDINGS

    border = max(4, size // 128)
    labels[:border] = labels[-border:] = LABEL_NODATA
    labels[:, :border] = labels[:, -border:] = LABEL_NODATA
    return labels


SAR_NOISE = {  # speckle looks, class-mean contrast, texture amplitude (dB)
    "normal": (4.4, 1.0, 1.5),
    "high": (1.0, 0.45, 3.0),  # single-look speckle, class means pulled together: SAR alone separates poorly
}


def make_sar(rng: np.random.Generator, labels: np.ndarray, parcels: np.ndarray, looks: float = 4.4,
             contrast: float = 1.0, texture_db: float = 1.5) -> np.ndarray:
    """VV, VH backscatter in dB: class means (pulled towards their average by `contrast` < 1),
    per-field variation, incidence trend, texture and gamma speckle of `looks` looks."""
    size = labels.shape[0]
    parcel_offset = rng.normal(0, 1.6, size=int(parcels.max()) + 1).astype(np.float32)[parcels]
    incidence = np.linspace(1.5, -1.5, size, dtype=np.float32)[None, :]  # near to far range
    sar = np.empty((2, size, size), np.float32)
    for band in range(2):
        mean = np.zeros(labels.shape, np.float32)
        centre = float(np.mean([db[band] for db in SAR_DB.values()]))
        for value, db in SAR_DB.items():
            mean[labels == value] = centre + contrast * (db[band] - centre)
        mean[labels == LABEL_NODATA] = SAR_DB[FARMLAND][band]
        variation = np.where(np.isin(labels, (FARMLAND, BARE)), parcel_offset, 0.0)
        bright = (labels == BUILDINGS) * rng.gamma(1.5, 2.5, size=labels.shape).astype(np.float32)
        texture = texture_db * (_smooth_field(rng, size, 12) - 0.5)
        db = mean + variation + bright * (1.0 if band == 0 else 0.5) + incidence + texture
        power = 10 ** (db / 10) * rng.gamma(looks, 1 / looks, size=labels.shape)
        sar[band] = 10 * np.log10(power)
    # No data on a swath edge in one corner, as on a real acquisition footprint.
    yy, xx = np.mgrid[0:size, 0:size]
    sar[:, (xx + yy) < size * 0.12] = SAR_NODATA
    return sar


def make_optical(rng: np.random.Generator, labels: np.ndarray, parcels: np.ndarray) -> np.ndarray:
    """B, G, R, NIR reflectance x 10000: class spectra, per-field tint, texture, a soft PSF."""
    size = labels.shape[0]
    tint = rng.normal(1.0, 0.12, size=(int(parcels.max()) + 1, 4)).astype(np.float32)
    illumination = 0.9 + 0.2 * _smooth_field(rng, size, size / 3)
    optical = np.empty((4, size, size), np.float32)
    for band in range(4):
        ref = np.full(labels.shape, OPTICAL[FARMLAND][band], np.float32)
        for value, spectrum in OPTICAL.items():
            ref[labels == value] = spectrum[band]
        ref *= np.where(labels == FOREST, 1.0, tint[parcels, band])
        ref *= illumination * rng.lognormal(0, 0.06, size=labels.shape).astype(np.float32)
        optical[band] = ndimage.gaussian_filter(ref, 0.7)
    return np.clip(optical, 1, 10000).astype(np.uint16)


def raster_profile(size: int, count: int, dtype: str, nodata, pixel_size: float) -> dict:
    return {
        "driver": "GTiff", "width": size, "height": size, "count": count, "dtype": dtype,
        "crs": f"EPSG:{CRS_EPSG}", "transform": from_origin(*ORIGIN, pixel_size, pixel_size),
        "nodata": nodata, "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
    }


def write_sheets(path: Path, size: int, pixel_size: float, rows: int, cols: int) -> None:
    """A rows x cols grid of map-sheet polygons over the scene, with a "name" field (A1, A2, ...)."""
    from osgeo import ogr, osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(CRS_EPSG)
    if path.exists():
        path.unlink()
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer("sheets", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("name", ogr.OFTString))
    extent = size * pixel_size
    x0, y0 = ORIGIN
    for r in range(rows):
        for c in range(cols):
            left, right = x0 + extent * c / cols, x0 + extent * (c + 1) / cols
            top, bottom = y0 - extent * r / rows, y0 - extent * (r + 1) / rows
            ring = ogr.Geometry(ogr.wkbLinearRing)
            for x, y in ((left, top), (right, top), (right, bottom), (left, bottom), (left, top)):
                ring.AddPoint_2D(x, y)
            poly = ogr.Geometry(ogr.wkbPolygon)
            poly.AddGeometry(ring)
            feature = ogr.Feature(layer.GetLayerDefn())
            feature.SetField("name", f"{chr(ord('A') + r)}{c + 1}")
            feature.SetGeometry(poly)
            layer.CreateFeature(feature)
    ds = None  # closes and flushes the GeoPackage


def make_demo_scene(
    out_dir: str | Path, size: int = 2048, seed: int = 0, sheets: tuple[int, int] = (2, 2),
    pixel_size: float = 2.0, sar_noise: str = "normal",
) -> dict[str, Path]:
    """Write the demo scene into `out_dir` and return the paths by name. `sar_noise="high"` makes a
    harder scene where SAR alone separates the classes poorly (same labels and optical image)."""
    if size < 64:
        raise InputError(f"size must be at least 64 pixels, got {size}")
    if not (pixel_size > 0 and np.isfinite(pixel_size)):
        raise InputError(f"pixel size must be a positive number of metres, got {pixel_size}")
    if sar_noise not in SAR_NOISE:
        raise InputError(f"sar noise must be one of {', '.join(SAR_NOISE)}, got {sar_noise!r}")
    if min(sheets) < 1:
        raise InputError(f"sheets must be at least 1x1, got {sheets[0]}x{sheets[1]}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    parcels = make_parcels(rng, size, max(8, size // 40), max(16, size // 14))  # field ids, shared
    labels = make_labels(rng, parcels)
    sar = make_sar(rng, labels, parcels)
    optical = make_optical(rng, labels, parcels)
    if sar_noise != "normal":  # its own generator: labels and optical stay those of the normal scene
        sar = make_sar(np.random.default_rng([seed, 99]), labels, parcels, *SAR_NOISE[sar_noise])

    paths = {name: out / f"{name}.tif" for name in ("sar", "optical", "labels")}
    paths.update(classes=out / "classes.csv", sheets=out / "sheets.gpkg")
    style = out / "labels.qml"  # QGIS's legend for the labels: class names, only the classes
    with atomic_outputs(*paths.values(), style) as temps:  # every file appears together, or none
        tmp = dict(zip([*paths, "style"], temps))
        with rasterio.open(tmp["sar"], "w", **raster_profile(size, 2, "float32", SAR_NODATA, pixel_size)) as dst:
            dst.write(sar)
            dst.descriptions = ("VV", "VH")
            dst.update_tags(modality="SAR", units="dB")
        with rasterio.open(tmp["optical"], "w", **raster_profile(size, 4, "uint16", OPTICAL_NODATA, pixel_size)) as dst:
            dst.write(optical)
            dst.descriptions = ("B", "G", "R", "NIR")
            dst.update_tags(modality="optical", scale="reflectance x 10000")
        with rasterio.open(tmp["labels"], "w", **raster_profile(size, 1, "uint8", LABEL_NODATA, pixel_size)) as dst:
            dst.write(labels, 1)
            dst.write_colormap(1, {v: rgb(c) + (255,) for v, _, c in CLASSES})
            dst.descriptions = ("land cover",)
        with open(tmp["classes"], "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["value", "name", "color"])
            writer.writerows(CLASSES)
        write_sheets(tmp["sheets"], size, pixel_size, *sheets)
        tmp["style"].write_text(paletted_qml(ClassTable(*zip(*CLASSES))))
    return paths


def cut_scene_table(scene: dict, folder: Path, n: int, size: int = 64) -> Path:
    """n small scenes cut from a demo scene (`make_demo_scene`'s paths), three files each, and the
    scene table listing them (columns m1, m2, labels, aoi, name) for `stars train --scenes`: many
    scenes for the scale-out tests and benches."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    with rasterio.open(scene["sar"]) as sar, rasterio.open(scene["optical"]) as opt, \
            rasterio.open(scene["labels"]) as lab:
        span = min(sar.width, sar.height) - size
        if span <= 0:
            raise InputError(f"scenes of {size} px cannot be cut from a {sar.width} x {sar.height} scene")
        for i in range(n):
            window = Window((i * 53) % span, (i * 37) % span, size, size)
            names = []
            for src, kind in ((sar, "sar"), (opt, "opt"), (lab, "lab")):
                path = folder / f"{kind}_{i:04d}.tif"
                profile = dict(src.profile, width=size, height=size, transform=src.window_transform(window))
                with rasterio.open(path, "w", **profile) as dst:
                    dst.write(src.read(window=window))
                names.append(path.name)
            rows.append({"m1": names[0], "m2": names[1], "labels": names[2], "name": f"tile {i}"})
    table = folder / "scenes.csv"
    with open(table, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["m1", "m2", "labels", "aoi", "name"])
        writer.writeheader()
        writer.writerows(rows)
    return table
