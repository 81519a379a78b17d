"""Shared helpers for the core tests: tiny configurations and raster rewrites."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.warp import Resampling, calculate_default_transform, reproject

from dataclasses import fields

from stars_core.config import DataConfig, StarsConfig, TrainConfig

TINY_MODEL = StarsConfig(backbone="resnet18", encoder_width=16, pyramid_channels=32, segmentation_channels=32)
_DATA_KEYS = {f.name for f in fields(DataConfig)}


def tiny_train(**overrides) -> dict:
    """`train()` keyword arguments for a tiny CPU run: train_cfg and data_cfg, each taking the
    overrides that belong to it (chip_size, class_table, ignore_values... go to DataConfig)."""
    base = dict(steps=4, batch_size=2, chip_size=64, warmup_steps=2, lr=1e-3, val_every=1000,
                checkpoint_every=1000, num_workers=0, device="cpu")
    base.update(overrides)
    data = {k: base.pop(k) for k in list(base) if k in _DATA_KEYS}
    return {"train_cfg": TrainConfig(**base), "data_cfg": DataConfig(**data)}


def rewrite(src: Path, dst: Path, data=None, count=None, **profile_changes) -> Path:
    """Copy a raster with new data and/or profile entries (e.g. transform, crs)."""
    with rasterio.open(src) as s:
        profile = s.profile
        arr = s.read() if data is None else data
        descriptions = s.descriptions
    if count is not None:
        arr = arr[:count]
    profile.update(count=arr.shape[0], **profile_changes)
    with rasterio.open(dst, "w", **profile) as d:
        d.write(arr)
        if count is None and data is None:
            d.descriptions = descriptions
    return dst


def reproject_raster(src: Path, dst: Path, crs: str, resolution: float) -> Path:
    with rasterio.open(src) as s:
        transform, width, height = calculate_default_transform(s.crs, crs, s.width, s.height, *s.bounds,
                                                               resolution=resolution)
        profile = s.profile
        profile.update(crs=crs, transform=transform, width=width, height=height)
        with rasterio.open(dst, "w", **profile) as d:
            for b in range(1, s.count + 1):
                reproject(rasterio.band(s, b), rasterio.band(d, b), resampling=Resampling.bilinear)
    return dst


def write_polygons(path: Path, crs_wkt: str, polys, field: str = "class", field_type: str = "int") -> Path:
    """Write (GeoJSON geometry, value) pairs to a GeoPackage."""
    import json

    from osgeo import ogr, osr

    srs = osr.SpatialReference()
    srs.ImportFromWkt(crs_wkt)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer("polygons", srs, ogr.wkbMultiPolygon)
    layer.CreateField(ogr.FieldDefn(field, ogr.OFTInteger if field_type == "int" else ogr.OFTString))
    for geom, value in polys:
        f = ogr.Feature(layer.GetLayerDefn())
        f.SetField(field, value)
        f.SetGeometry(ogr.CreateGeometryFromJson(json.dumps(geom)))
        layer.CreateFeature(f)
    ds = None
    return path


def copy_with_exports(model: Path, folder: Path) -> Path:
    """Copy a model file and the runtime exports cached beside it (`<stem>.*`) into `folder`."""
    import shutil

    for f in model.parent.glob(f"{model.stem}.*"):
        shutil.copy(f, folder / f.name)
    return folder / model.name


def label_array(path: Path) -> np.ndarray:
    with rasterio.open(path) as s:
        return s.read(1)


def make_chip_folder(demo_scene: dict, root: Path) -> Path:
    """The 256-px demo scene cut into four 128-px chips in EarthMiss's layout (no CRS, as such
    datasets ship; PNG masks for two of them, a stray text file in the mask folder)."""
    def write(path: Path, data: np.ndarray, driver: str = "GTiff") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(path, "w", driver=driver, width=data.shape[2], height=data.shape[1], count=data.shape[0],
                           dtype=data.dtype) as dst:
            dst.write(data)

    with rasterio.open(demo_scene["sar"]) as s, rasterio.open(demo_scene["optical"]) as o, \
            rasterio.open(demo_scene["labels"]) as lab:
        sar, opt, labels = s.read(), o.read(), lab.read()
    for i, (r, c) in enumerate([(0, 0), (0, 128), (128, 0), (128, 128)]):
        name = f"tile_{i:03d}"
        window = (slice(None), slice(r, r + 128), slice(c, c + 128))
        write(root / "SAR" / f"{name}_SAR.tif", np.nan_to_num(sar[window], nan=-30.0))
        write(root / "RGB" / f"{name}.tif", opt[window])
        mask = labels[window].astype(np.uint8)
        write(root / "mask" / f"{name}_mask{'.png' if i % 2 else '.tif'}", mask, driver="PNG" if i % 2 else "GTiff")
    (root / "mask" / "README.txt").write_text("not a chip")
    return root
