"""Map sheets: one clipped raster per sheet, a mosaic, a summary, skip-existing, failing sheets."""
import csv

import numpy as np
import rasterio

from stars_core.config import SegmentConfig
from stars_core.segmentation.sheets import read_sheets, segment_sheets
from tests.core.helpers import write_polygons

CPU = SegmentConfig(tile_size=64, device="cpu")


def test_sheets_mosaic_summary_and_resume(demo_scene, trained_model, tmp_path):
    sheets = read_sheets(demo_scene["sheets"], "name")
    first = segment_sheets(trained_model, demo_scene["sar"], sheets, tmp_path / "out", CPU, log=lambda *_: None)
    assert first.count("done") == 4
    with rasterio.open(first.mosaic) as m, rasterio.open(demo_scene["sar"]) as s:
        assert (m.width, m.height) == (s.width, s.height) and m.crs == s.crs
        assert (m.read(1) != 255).mean() > 0.9
    rows = list(csv.DictReader(open(first.summary)))
    assert [r["status"] for r in rows] == ["done"] * 4
    stamp = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.tif")}
    again = segment_sheets(trained_model, demo_scene["sar"], sheets, tmp_path / "out", CPU, log=lambda *_: None)
    assert again.count("skipped") == 4
    assert stamp == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.tif")}


def test_a_sheet_is_clipped_to_its_polygon_and_a_bad_sheet_does_not_stop_the_others(demo_scene, trained_model, tmp_path):
    with rasterio.open(demo_scene["sar"]) as s:
        crs, (l, b, r, t) = s.crs.to_wkt(), s.bounds
    tri = {"type": "Polygon", "coordinates": [[(l, t), (r, t), (l, b), (l, t)]]}
    far = {"type": "Polygon", "coordinates": [[(l + 1e6, t), (r + 1e6, t), (l + 1e6, b), (l + 1e6, t)]]}
    path = write_polygons(tmp_path / "sheets.gpkg", crs, [(tri, "tri"), (far, "far")], field="name", field_type="str")
    res = segment_sheets(trained_model, demo_scene["sar"], read_sheets(path, "name"), tmp_path / "out", CPU,
                         log=lambda *_: None)
    assert [r.status for r in res.rows] == ["done", "outside"]
    with rasterio.open(tmp_path / "out" / "tri.tif") as ds:
        data = ds.read(1)
    rows, cols = np.indices(data.shape)
    inside = rows + cols < data.shape[0] - 2  # the triangle is the upper-left half
    outside = rows + cols > data.shape[0] + 2
    assert (data[outside] == 255).all()
    assert (data[inside] != 255).mean() > 0.8


def test_sheets_are_shared_largest_first_and_balanced():
    from stars_core.segmentation.sheets import assign

    shares = assign([100, 10, 60, 50, 40, 0], 2)
    assert sorted(i for s in shares for i in s) == list(range(6))  # every sheet once
    loads = [sum([100, 10, 60, 50, 40, 0][i] for i in s) for s in shares]
    assert shares[0][0] == 0 and abs(loads[0] - loads[1]) <= 20
    assert assign([5, 5], 4) == [[0], [1], [], []]


def test_make_sheets_covers_the_raster(demo_scene, tmp_path, capsys):
    from stars_core.cli import main as cli_main
    from stars_core.segmentation.sheets import read_sheets

    assert cli_main(["make-sheets", str(demo_scene["sar"]), "--size", "100", "--overlap", "8",
                     "--out", str(tmp_path / "grid.gpkg")]) == 0
    wkt, items = read_sheets(tmp_path / "grid.gpkg", "name")
    assert [n for n, _ in items][:2] == ["R001C001", "R001C002"] and len(items) == 9  # 256 px in 100-px sheets
    capsys.readouterr()
    assert cli_main(["segment-sheets", "m.stars", str(tmp_path / "grid.gpkg"), str(demo_scene["sar"]),
                     str(tmp_path / "out"), "--name-field", "name", "--dry-run", "--processes", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    counts = [int(line.split(":")[1].split()[0]) for line in lines]
    assert len(lines) == 2 and sum(counts) == 9 and abs(counts[0] - counts[1]) <= 1


def test_only_the_named_sheets_are_planned(demo_scene, tmp_path, capsys):
    from stars_core.cli import main as cli_main

    assert cli_main(["make-sheets", str(demo_scene["sar"]), "--size", "100", "--out", str(tmp_path / "grid.gpkg")]) == 0
    capsys.readouterr()
    assert cli_main(["segment-sheets", "m.stars", str(tmp_path / "grid.gpkg"), str(demo_scene["sar"]),
                     str(tmp_path / "out"), "--name-field", "name", "--dry-run", "--only", "R001C002, R003C003"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("process 0: 2 sheets") and line.endswith("R001C002, R003C003") or \
        line.endswith("R003C003, R001C002"), line


def _sheet_run(trained_model, demo_scene, out, processes: int, runtime: str = "torch", tile: int = 64, **popen):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port",
           str(29500 + processes + (hash(str(out)) % 400)), "-m", "stars_core.cli",
           *_sheet_args(trained_model, demo_scene, out, runtime, tile)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def _sheet_args(model, demo_scene, out, runtime: str, tile: int = 64) -> list[str]:
    return ["segment-sheets", str(model), str(demo_scene["sheets"]), str(demo_scene["sar"]), str(out), "--name-field",
            "name", "--tile-size", str(tile), "--device", "cpu", "--runtime", runtime]


def _rasters(folder):
    out = {}
    for p in sorted(folder.glob("*.tif")):
        with rasterio.open(p) as ds:
            out[p.name] = ds.read()
    return out


def test_a_killed_run_leaves_valid_sheets_and_a_rerun_writes_the_sheets_of_one_process_then_skips_them(
        int8_model, demo_scene, tmp_path):
    """Two processes under torchrun, killed at the first sheet: whatever exists is whole; the rerun
    completes the job with the sheets one process writes, and a third run skips them all."""
    import os
    import signal
    import time

    from stars_core.cli import main as cli_main
    from tests.core.helpers import copy_with_exports

    model = copy_with_exports(int8_model["model"], tmp_path)  # the session's int8 export (128-px tiles) beside it
    out = tmp_path / "p2"
    proc = _sheet_run(model, demo_scene, out, 2, runtime="int8", tile=128, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.glob("*.tif")) and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job dies at once, as on a lost node
    proc.communicate()
    for name, data in _rasters(out).items():  # whatever exists is a whole, readable sheet
        assert data.shape[0] == 1, name
    proc = _sheet_run(model, demo_scene, out, 2, runtime="int8", tile=128)
    log = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0 and "exporting" not in log, log[-2000:]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # the killed run's temporaries are gone
    # on the default path (int8): one map whatever the processes and their threads; one: this process
    assert cli_main(_sheet_args(model, demo_scene, tmp_path / "p1", "int8", tile=128)) == 0
    one, two = _rasters(tmp_path / "p1"), _rasters(out)
    assert set(one) == set(two) == {"A1.tif", "A2.tif", "B1.tif", "B2.tif"}
    for name in one:
        np.testing.assert_array_equal(one[name], two[name], err_msg=name)
    assert (out / "mosaic.vrt").is_file()
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tif")}
    proc = _sheet_run(model, demo_scene, out, 2, runtime="int8", tile=128)
    log = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0 and "4 skipped" in log, log[-2000:]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.tif")} == mtimes


def test_only_takes_sheet_numbers_and_refuses_an_empty_list(demo_scene, tmp_path, capsys):
    from stars_core.cli import main as cli_main

    assert cli_main(["make-sheets", str(demo_scene["sar"]), "--size", "100", "--out", str(tmp_path / "grid.gpkg")]) == 0
    run = ["segment-sheets", "m.stars", str(tmp_path / "grid.gpkg"), str(demo_scene["sar"]), str(tmp_path / "out"),
           "--name-field", "name", "--dry-run", "--only"]
    capsys.readouterr()
    assert cli_main([*run, "2,9"]) == 0  # the second and the ninth sheet of the file
    line = capsys.readouterr().out.strip()
    assert line.startswith("process 0: 2 sheets") and {"R001C002", "R003C003"} <= set(line.replace(",", " ").split())
    for only, message in ((",", "--only names no sheet (','): give sheet names or numbers"),
                          ("10", "--only names sheets the sheet file does not have: 10")):
        assert cli_main([*run, only]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
