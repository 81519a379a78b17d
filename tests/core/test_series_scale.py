"""A year over a scene: the series' uint8 probabilities written straight from segment's tile loop
(the values the float-then-convert pass gave), and the series split across processes under torchrun
(the same files as one process)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from stars_core.config import SegmentConfig
from tests.core.test_series import series  # noqa: F401 (the module's four-date series fixture)

CPU = dict(tile_size=128, device="cpu", runtime="torch")


def _pixels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(path) as ds:
        return ds.read(), ds.read_masks(1)


@pytest.mark.parametrize("resample", [False, True], ids=["on the input grid", "on the model's grid, warped back"])
def test_uint8_probabilities_from_the_tile_loop_equal_the_float_ones_converted(trained_model, demo_scene, tmp_path,
                                                                             resample):
    from stars_core.change.series import to_uint8
    from stars_core.segmentation.infer import segment
    from tests.core.helpers import rewrite

    raster = demo_scene["sar"]
    if resample:  # pixels twice the model's: segmented at the model's size and brought back
        with rasterio.open(raster) as src:
            t = src.transform
        raster = rewrite(raster, tmp_path / "coarse.tif", transform=t * t.scale(2, 2))
    cfg = SegmentConfig(**CPU, resample=resample)
    segment(trained_model, raster, tmp_path / "a.tif", cfg, probabilities=tmp_path / "float.tif")
    to_uint8(tmp_path / "float.tif", tmp_path / "converted.tif")
    segment(trained_model, raster, tmp_path / "b.tif", SegmentConfig(**CPU, resample=resample, probability_dtype="uint8"),
            probabilities=tmp_path / "direct.tif")
    assert np.array_equal(_pixels(tmp_path / "a.tif")[0], _pixels(tmp_path / "b.tif")[0])  # the same map
    (converted, mask_c), (direct, mask_d) = _pixels(tmp_path / "converted.tif"), _pixels(tmp_path / "direct.tif")
    with rasterio.open(tmp_path / "direct.tif") as ds:
        assert ds.dtypes[0] == "uint8" and ds.tags()["STARS_PROBABILITY_SCALE"] == "1/255"
        assert ds.descriptions == rasterio.open(tmp_path / "float.tif").descriptions
    assert (mask_d == 0).any() == (mask_c == 0).any() and np.array_equal(mask_c, mask_d)
    assert np.array_equal(converted, direct)  # pixel for pixel: rounded from the same float32 values
    assert len({int(v) for v in np.unique(direct)}) > 50  # a real spread of probabilities, not a constant
    assert not list(tmp_path.glob("*.msk"))  # the mask inside the file


def test_the_series_writes_uint8_without_a_float_file_and_the_filter_is_unchanged(series, trained_model, tmp_path,  # noqa: F811
                                                                                monkeypatch):
    import stars_core.change.series as series_mod
    from stars_core.change.series import DateInput, filter_folder, segment_series
    from stars_core.change.temporal import filter_series
    from stars_core.segmentation.infer import segment

    folder = series["folder"]
    dates = [DateInput(p.name[3:13], str(p)) for p in sorted(folder.glob("S1_*.tif"))][:3]
    conversions = []
    monkeypatch.setattr(series_mod, "to_uint8", lambda *a: conversions.append(a))
    out = tmp_path / "series"
    segment_series(trained_model, dates, out, SegmentConfig(**CPU), probabilities=True, log=lambda m: None)
    assert not conversions  # no conversion pass
    filter_folder(out, 0.2)
    # today's way: float probabilities, then converted, then the filter
    old = tmp_path / "old"
    old.mkdir()
    for d in dates:
        segment(trained_model, d.path, old / f"{d.date}.tif", SegmentConfig(**CPU), probabilities=old / f"{d.date}_f.tif")
    monkeypatch.undo()  # the conversion of today, to compare with
    for d in dates:
        series_mod.to_uint8(old / f"{d.date}_f.tif", old / f"{d.date}_p.tif")
        p_new, p_old = _pixels(out / f"{d.date}_probabilities.tif"), _pixels(old / f"{d.date}_p.tif")
        assert np.array_equal(p_new[0], p_old[0]) and np.array_equal(p_new[1], p_old[1])
        assert np.array_equal(_pixels(out / f"{d.date}.tif")[0], _pixels(old / f"{d.date}.tif")[0])
    filter_series([old / f"{d.date}_p.tif" for d in dates], [old / f"{d.date}.tif" for d in dates],
                  [old / f"{d.date}_filtered.tif" for d in dates], 0.2)
    for d in dates:
        assert np.array_equal(_pixels(out / f"{d.date}_filtered.tif")[0], _pixels(old / f"{d.date}_filtered.tif")[0])
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


SEG = ["--tile-size", "128", "--device", "cpu", "--runtime", "torch"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "STARS_PROGRESS_INTERVAL": "0"}


def _series_run(model, out, rasters, *extra, processes: int = 1) -> subprocess.CompletedProcess:
    """`stars segment-series` in one process, or in `processes` CPU processes under torchrun (gloo)."""
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
              if processes > 1 else [sys.executable])
    cmd = [*launch, "-m", "stars_core.cli", "segment-series", str(model), str(out), *map(str, rasters), *SEG, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=ENV)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".tif", ".qml")}


def _record(folder: Path) -> list[dict]:
    import csv

    return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader((folder / "series.csv").open())]


def _damage_a_middle_block(src: Path, dst: Path) -> Path:
    """A copy whose last pixel reads (the checks pass) but whose middle block does not: a date that fails mid-run."""
    from osgeo import gdal

    with rasterio.open(src) as s:
        profile = dict(s.profile, tiled=True, blockxsize=64, blockysize=64, compress="deflate")
        data, tags = s.read(), s.tags()
    with rasterio.open(dst, "w", **profile) as d:
        d.write(data)
        d.update_tags(**tags)
    ds = gdal.Open(str(dst))
    offset = int(ds.GetRasterBand(1).GetMetadataItem("BLOCK_OFFSET_1_1", "TIFF"))
    ds = None
    with open(dst, "r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * 64)
    return dst


def test_a_series_under_torchrun_writes_the_files_of_one_process_and_a_failed_date_leaves_the_others(
        series, trained_model, tmp_path, capsys):  # noqa: F811
    """torchrun's two processes write the files of one, a rerun skips them; on the int8 runtime, rank 0
    alone makes the export, and a date that fails mid-run leaves the others' files whole."""
    import json
    import shutil

    from stars_core import threads
    from stars_core.cli import main as cli_main

    rasters = sorted(series["folder"].glob("S1_*.tif"))
    one, two = tmp_path / "one", tmp_path / "two"
    run = _series_run(trained_model, one, rasters, "--temporal-filter")
    assert run.returncode == 0, run.stderr[-3000:]
    run = _series_run(trained_model, two, rasters, "--temporal-filter", processes=2)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "[process 1] 2024-04-13: 2024-04-13.tif" in run.stdout  # rank 1 took dates 2 and 4, and only them
    assert "[process 1] 2024-05-07: 2024-05-07.tif" in run.stdout and "[process 1] 2024-04-01" not in run.stdout
    assert "[process 1] 2024-04-25" not in run.stdout
    assert "4 date(s) segmented, 0 already done" in run.stdout and "wrote 4 *_filtered.tif" in run.stdout
    mine, theirs = _files(one), _files(two)
    assert len(mine) == 4 * 4 + 4 and mine.keys() == theirs.keys()  # map, probabilities, filtered (+ .qml)
    assert [n for n in mine if mine[n] != theirs[n]] == []  # bit for bit
    assert _record(one) == _record(two)
    assert not [p.name for p in two.iterdir() if p.name.startswith(".")]
    stamps = {p.name: p.stat().st_mtime_ns for p in two.glob("*.tif")}
    run = _series_run(trained_model, two, rasters, processes=2)  # a rerun skips what is done
    assert run.returncode == 0 and "0 date(s) segmented, 4 already done" in run.stdout, run.stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in two.glob("*.tif")} == stamps

    # under torchrun on the int8 runtime, one date failing mid-run: rank 0 makes the export before any date
    # (calibrated on the first date), and the other dates are those of one process, whole
    pytest.importorskip("onnxruntime")
    model_one, model_two = tmp_path / "a" / "m.stars", tmp_path / "b" / "m.stars"  # each its own export cache
    for m in (model_one, model_two):
        m.parent.mkdir()
        shutil.copy(trained_model, m)
    int8 = ["--runtime", "int8", "--temporal-filter"]
    capsys.readouterr()
    try:  # one thread, as each torchrun process has (OMP_NUM_THREADS=1): the calibration sums in one order
        assert cli_main(["--threads", "1", "segment-series", str(model_one), str(tmp_path / "one8"),
                         *map(str, rasters), *SEG, *int8]) == 0
    finally:
        threads.configure("auto", settle=0.1)  # the session's policy again (tests/conftest.py)
    seen = capsys.readouterr()
    assert (seen.out + seen.err).count("exporting the m1 branch") == 1
    (tmp_path / "in").mkdir()
    damaged = [*rasters[:1], _damage_a_middle_block(rasters[1], tmp_path / "in" / rasters[1].name), *rasters[2:]]
    three = tmp_path / "three"
    run = _series_run(model_two, three, damaged, *int8, processes=2)
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-3000:]
    assert (run.stdout + run.stderr).count("exporting the m1 branch") == 1  # rank 0 only, before any date
    assert "1 date(s) failed" in run.stderr and "2024-04-13: the raster" in run.stderr, run.stderr[-3000:]
    assert "3 date(s) segmented" in run.stdout and "_filtered" not in " ".join(p.name for p in three.iterdir())
    notes = [json.loads(p.read_text()) for m in (model_one, model_two) for p in m.parent.glob("*.int8w7.json")]
    assert len(notes) == 2 and {n["calibrated_on"] for n in notes} == {str(rasters[0])}  # the first date, in both
    mine8 = _files(tmp_path / "one8")
    for date in ("2024-04-01", "2024-04-25", "2024-05-07"):  # both processes' other dates, whole
        for name in (f"{date}.tif", f"{date}.qml", f"{date}_probabilities.tif"):
            same = (three / name).read_bytes() == mine8[name]  # (no byte-by-byte diff of a failure)
            assert same, f"{name} differs from one process's"
    assert not (three / "2024-04-13.tif").exists() and "2024-04-13" not in (three / "series.csv").read_text()
    assert not [p.name for p in three.iterdir() if p.name.startswith(".")]


def test_a_killed_process_scratch_is_removed_and_a_running_one_kept(tmp_path):
    import socket

    from stars_core.change.series import _remove_stale_scratch

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    dead = tmp_path / f".stars-2024-04-01.pid-{host}-{int(gone.stdout)}-abc"
    alive = tmp_path / f".stars-2024-04-13.pid-{host}-{os.getpid()}-def"
    elsewhere = tmp_path / f".stars-2024-04-25.pid-another-host-{int(gone.stdout)}-ghi"  # its host says if it runs
    for path in (dead, alive, elsewhere):
        path.mkdir()
    _remove_stale_scratch(tmp_path)
    assert not dead.exists() and alive.is_dir() and elsewhere.is_dir()
