"""Bad input through the `stars` command line, as a hostile but realistic user gives it: every case
ends with one line naming the problem (no traceback), the documented exit status, no file left
behind and every input unchanged (hashed before and after)."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stars_core.cli import main as cli_main

TINY = ["--backbone", "resnet18", "--encoder-width", "16", "--batch-size", "2", "--chip-size", "64", "--workers", "0",
        "--device", "cpu"]


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def case(demo_scene, trained_model, tmp_path, capsys):
    """Copies of the demo scene and model in a fresh folder; `run(argv)` runs the CLI and checks
    the rules every refusal obeys, returning the error line."""
    work = tmp_path / "work"
    work.mkdir()
    for key in ("sar", "optical", "labels", "classes"):
        (work / Path(demo_scene[key]).name).write_bytes(Path(demo_scene[key]).read_bytes())
    (work / "model.stars").write_bytes(Path(trained_model).read_bytes())

    def run(argv: list[str], code: int = 2, new_files: set[str] = frozenset()) -> str:
        before = _hashes(work)
        capsys.readouterr()
        assert cli_main([a.replace("W/", f"{work}/") for a in argv]) == code
        err = capsys.readouterr().err.strip()
        lines = [l for l in err.replace("\r", "\n").splitlines() if l.startswith("stars")]  # not progress bars
        assert "Traceback" not in err and len(lines) == 1, err
        after = _hashes(work)
        assert {k: v for k, v in after.items() if k in before} == before  # no input changed
        assert set(after) - set(before) <= set(new_files), set(after) - set(before)  # nothing left behind
        return lines[0]

    run.work = work
    return run


TRAIN = ["train", "--m1", "W/sar.tif", "--m2", "W/optical.tif", "--labels", "W/labels.tif",
         "--class-table", "W/classes.csv", *TINY, "--steps", "2"]


@pytest.mark.parametrize("argv,message", [
    # outputs that would destroy an input
    (["segment", "W/model.stars", "W/sar.tif", "W/model.stars"], "output 'W/model.stars' is the model file"),
    (["segment", "W/model.stars", "W/sar.tif", "W/sar.tif"], "is the input raster"),
    (["segment", "W/model.stars", "W/sar.tif", "W/m.tif", "--confidence", "W/m.tif"], "are the same file"),
    ([*TRAIN, "--out", "W/sar.tif"], "is the modality-1 raster of scene 1"),
    ([*TRAIN, "--out", "W/labels.tif"], "is the labels of scene 1"),
    (["evaluate", "W/sar.tif", "W/labels.tif", "--json", "W/sar.tif"], "JSON report 'W/sar.tif' is the classified"),
    (["evaluate", "W/sar.tif", "W/labels.tif", "--html", "W/labels.tif"], "is the reference labels"),
    # outputs that cannot be written
    (["segment", "W/model.stars", "W/sar.tif", "W/"], "is a folder; give a file name"),
    (["segment", "W/model.stars", "W/sar.tif", "W/classes.csv/x.tif"], "is a file, so the folder"),
    # bad settings
    (["segment", "W/model.stars", "W/sar.tif", "W/m.tif", "--device", "gpu"], "got 'gpu'"),
    (["segment", "W/model.stars", "W/sar.tif", "W/m.tif", "--tile-size", "100"], "multiple of 32, got 100"),
    (["segment", "W/model.stars", "W/sar.tif", "W/m.tif", "--tile-size", "64", "--overlap", "64"], "overlap"),
    (["segment", "W/model.stars", "W/optical.tif", "W/m.tif"], "has 4 band(s) but the model was trained on 2"),
    (["segment", "W/model.stars", "W/classes.csv", "W/m.tif"], "classes.csv"),
    (["segment", "W/absent.stars", "W/sar.tif", "W/m.tif"], "not found"),
    (["info", "W/classes.csv"], "is not a STARS model file"),
    ([*TRAIN, "--out", "W/m.stars", "--device", "gpu"], "got 'gpu'"),
    ([*TRAIN[:-2], "--steps", "0", "--out", "W/m.stars"], "steps must be at least 1"),
    ([*TRAIN, "--out", "W/m.stars", "--freeze", "encoders"], "give --init-from MODEL too"),
    (["demo-scene", "--out", "W/scene", "--pixel-size", "0"], "pixel size must be a positive number"),
    (["demo-scene", "--out", "W/scene", "--pixel-size", "-2"], "pixel size must be a positive number"),
    (["demo-scene", "--out", "W/scene", "--size", "64", "--dates", "0"], "--dates must be 1 or more, got 0"),
    (["demo-scene", "--out", "W/classes.csv", "--size", "64"], "--out 'W/classes.csv' is a file; give a folder"),
    (["--threads", "0", "info", "W/model.stars"], "--threads must be a positive number or auto"),
])
def test_refused_with_one_line(case, argv, message):
    line = case(argv)
    assert message.replace("W/", f"{case.work}/") in line


def _mask(case, offset: float = 0.0) -> str:
    """A mask polygon over the middle of the demo SAR, moved `offset` map units east."""
    import rasterio
    from shapely.geometry import box, mapping

    from tests.core.helpers import write_polygons

    with rasterio.open(case.work / "sar.tif") as ds:
        b = ds.bounds
        crs = ds.crs.to_wkt()
    w = b.right - b.left
    poly = box(b.left + w / 4 + offset, b.bottom + w / 4, b.right - w / 4 + offset, b.top - w / 4)
    path = case.work / ("mask.gpkg" if not offset else "far.gpkg")
    write_polygons(path, crs, [(mapping(poly), 1)])
    return str(path)


def _extent(case) -> list[str]:
    import rasterio

    with rasterio.open(case.work / "sar.tif") as ds:
        b = ds.bounds
    return ["--extent", f"{b.left + 10},{b.bottom + 10},{b.left + 200},{b.bottom + 200}"]


# Every command that writes, each with an output naming one of its inputs: refused before any work.
OVERWRITES = [
    (["segment", "W/model.stars", "W/sar.tif", "W/sar.tif", "EXTENT"], "is the input raster"),
    (["segment", "W/model.stars", "W/sar.tif", "W/model.stars", "EXTENT"], "is the model file"),
    (["segment", "W/model.stars", "W/sar.tif", "W/sar.tif", "--mask", "MASK"], "is the input raster"),
    (["segment", "W/model.stars", "W/sar.tif", "W/m.tif", "--mask", "MASK", "--confidence", "W/sar.tif"],
     "is the input raster"),
    (["segment", "W/model.stars", "W/sar.tif", "W/mask.gpkg", "--mask", "MASK"], "is the mask"),
    (["segment", "W/model.stars", "W/sar.tif", "W/m.tif", "--polygons", "W/sar.tif"], "is the input raster"),
    (["segment-sheets", "W/model.stars", "W/mask.gpkg", "W/sar.tif", "W/sar.tif"], "is the input raster"),
    (["clean", "W/labels.tif", "W/labels.tif", "--mmu-pixels", "4"], "is the classified map"),
    (["polygons", "W/labels.tif", "W/labels.tif"], "is the classified map"),
    (["export", "W/model.stars", "W/model.stars"], "is the model file"),
    (["export", "W/model.stars", "W/sar.tif", "--int8", "--calibrate", "W/sar.tif"], "is the calibration raster"),
    (["sample", "W/labels.tif", "W/labels.tif"], "is the classified map"),
    (["assess", "W/labels.tif", "W/mask.gpkg", "--json", "W/mask.gpkg"], "is the sample"),
    (["evaluate", "W/labels.tif", "W/labels.tif", "--markdown", "W/labels.tif"], "is the classified"),
    (["recalibrate", "W/model.stars", "--m1", "W/sar.tif", "--out", "W/sar.tif"], "modality-1 raster"),
    (["make-sheets", "W/sar.tif", "--size", "64", "--out", "W/sar.tif"], "is the raster"),
    ([*TRAIN, "--out", "W/optical.tif"], "is the modality-2 raster of scene 1"),
    (["distill", "W/model.stars", "--m1", "W/sar.tif", "--out", "W/model.stars"], "is the teacher model"),
    (["distill", "W/model.stars", "--m1", "W/sar.tif", "--labels", "W/labels.tif", "--out", "W/labels.tif"],
     "is the labels 1"),
]


@pytest.mark.parametrize("argv,message", OVERWRITES, ids=[" ".join(a[:1] + a[4:5]) + f"-{i}"
                                                           for i, (a, _) in enumerate(OVERWRITES)])
def test_no_command_writes_over_one_of_its_inputs(case, argv, message):
    mask = _mask(case)
    argv = [a for x in argv for a in (_extent(case) if x == "EXTENT" else [mask] if x == "MASK" else [x])]
    line = case(argv, new_files={"mask.gpkg"})
    assert message in line and "destroy the input" in line, line


@pytest.mark.parametrize("extra,message", [
    (["--labels", "W/labels.tif", "--labels", "W/labels.tif"], "--labels must be given once per --m1 raster"),
    (["--chip-size", "512"], "smaller than one 512-pixel chip; give --chip-size 256"),
    (["--temperature", "0"], "temperature and learning rate must be > 0"),
])
def test_distill_refuses_what_it_cannot_learn_from(case, extra, message):
    line = case(["distill", "W/model.stars", "--m1", "W/sar.tif", "--out", "W/fast.stars", "--device", "cpu", *extra])
    assert message in line, line
    assert not (case.work / "fast.stars").exists()


@pytest.mark.parametrize("what", ["mask", "extent-crs", "extent-crs-name"])
def test_masks_and_extents_that_miss_or_mislead_are_refused(case, what):
    import rasterio

    with rasterio.open(case.work / "sar.tif") as ds:
        b = ds.bounds
    if what == "mask":
        far = _mask(case, offset=1e6)
        argv = ["segment", "W/model.stars", "W/sar.tif", "W/m.tif", "--mask", far]
        message, new = "overlaps the area to segment", {"far.gpkg"}
    else:  # metres given with a geographic CRS, or a CRS that does not exist
        crs = "EPSG:4326" if what == "extent-crs" else "EPSG:999999"
        argv = ["segment", "W/model.stars", "W/sar.tif", "W/m.tif", "--extent",
                f"{b.left},{b.bottom},{b.left + 100},{b.bottom + 100}", "--extent-crs", crs]
        message, new = ("is not in degrees" if what == "extent-crs" else "is not a CRS GDAL knows"), set()
    assert message in case(argv, new_files=new)


@pytest.mark.parametrize("unit", ["99999999999km2", "1000km2"])
def test_a_unit_larger_than_the_map_is_refused_not_reported_as_done(case, unit):
    line = case(["clean", "W/labels.tif", "W/out.tif", "--mmu", unit])
    assert "is larger than the whole map" in line and "give a smaller unit" in line
    line = case(["segment", "W/model.stars", "W/sar.tif", "W/m.tif", "--mmu", unit])
    assert "is larger than the whole map" in line


def test_a_training_that_fails_before_its_model_leaves_no_scan_cache(case, monkeypatch):
    import stars_core.training.train as train_module
    from stars_core.errors import InputError

    def fail(*args, **kwargs):
        raise InputError("the model cannot be built (a stand-in for any failure after the scan)")

    monkeypatch.setattr(train_module, "_build", fail)
    assert "cannot be built" in case([*TRAIN, "--out", "W/m.stars"])  # nothing left behind: no m.scan.npz


def _table(case, text: str) -> str:
    path = case.work / "bad.csv"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("table,message", [
    ("value,name,color\n1,a,#zzzzzz\n2,b,#00ff00\n3,c,#0000ff\n4,d,#000000\n5,e,#111111\n6,f,#222222\n",
     "row 1: colour '#zzzzzz'"),
    ("value,name,color\n-1,a,#ff0000\n2,b,#00ff00\n", "row 1: value '-1' must be a whole number in 0..65534"),
    ("value,name,color\n1,a,\"300,0,0\"\n2,b,#00ff00\n", "row 1: colour '300,0,0' must be #rrggbb or r,g,b"),
])
def test_bad_class_tables_are_refused_when_read(case, table, message):
    path = _table(case, table)
    argv = [*TRAIN, "--out", "W/m.stars"]
    argv[argv.index("W/classes.csv")] = path
    line = case(argv, new_files={"bad.csv"})
    assert message in line and "bad.csv" in line


def test_model_file_without_keys_and_a_code_carrying_pickle(case):
    import pickle

    import torch

    payload = torch.load(case.work / "model.stars", weights_only=True)
    del payload["classes"]
    torch.save(payload, case.work / "cut.stars")
    assert "lacks classes" in case(["info", "W/cut.stars"], new_files={"cut.stars"})

    class Runs:
        def __reduce__(self):
            return (os.system, ("touch /tmp/stars-ran-code",))

    (case.work / "evil.stars").write_bytes(pickle.dumps({"format": "stars-model", "x": Runs()}))
    line = case(["segment", "W/evil.stars", "W/sar.tif", "W/m.tif"], new_files={"cut.stars", "evil.stars"})
    assert "not plain data" in line and "weights_only" not in line and not os.path.exists("/tmp/stars-ran-code")


def test_a_stop_writes_a_resumable_model_and_a_smaller_total_is_refused(case, monkeypatch):
    import stars_core.cli as cli

    calls = iter(range(100))
    monkeypatch.setattr(cli.Stop, "__call__", lambda self: next(calls) == 1)  # Ctrl-C after the second step
    line = case([*TRAIN[:-2], "--steps", "6", "--out", "W/m.stars"], code=130,
                new_files={"m.stars", "m.log.csv", "m.curves.png", "m.scan.npz"})
    assert "cancelled at step 2" in line and "resumed with --resume" in line
    monkeypatch.undo()
    line = case([*TRAIN[:-2], "--steps", "2", "--out", "W/m.stars", "--resume", "W/m.stars"],
                new_files={"m.stars", "m.log.csv", "m.curves.png", "m.scan.npz"})
    assert "already did 2 steps" in line


SCRIPT = """
import sys
from stars_core.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _interrupt(argv: list[str], sig: int, wait_for: str, cwd: Path) -> tuple[int, str]:
    """Start the CLI, send `sig` once `wait_for` appears on its error stream, return (status, stderr)."""
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, *argv], cwd=cwd, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1", STARS_PROGRESS_INTERVAL="0"))
    seen = ""
    deadline = time.time() + 120
    while wait_for not in seen and time.time() < deadline and proc.poll() is None:
        seen += proc.stderr.read(1)
    proc.send_signal(sig)
    rest = proc.communicate(timeout=120)[1]
    return proc.returncode, seen + rest


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_during_training_saves_a_resumable_model(case, sig):
    work = case.work
    argv = [a.replace("W/", f"{work}/") for a in TRAIN[:-2]] + ["--steps", "400", "--out", f"{work}/m.stars"]
    code, err = _interrupt(argv, sig, " 2/400", work)
    assert code == 130 and "Traceback" not in err, err
    assert "training cancelled at step" in err and "can be resumed" in err
    import torch

    payload = torch.load(work / "m.stars", weights_only=True)
    assert 2 <= payload["resume"]["step"] < 400


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_during_resampled_segmentation_leaves_nothing(case, sig, demo_scene):
    work = case.work
    from tests.core.helpers import rewrite

    import rasterio

    with rasterio.open(work / "sar.tif") as src:  # pixels 4x the training size: --resample works on a VRT
        transform = src.transform * src.transform.scale(4, 4)
    big = rewrite(work / "sar.tif", work / "coarse.tif", transform=transform)
    before = _hashes(work)
    argv = ["segment", f"{work}/model.stars", str(big), f"{work}/out.tif", "--resample", "--tile-size", "64",
            "--overlap", "32", "--device", "cpu", "--runtime", "torch"]  # (auto would cache an export first)
    code, err = _interrupt(argv, sig, "resampling", work)
    assert code == 130 and "Traceback" not in err, err
    assert _hashes(work) == before  # no output, no .stars-work folder, no temporary file
    assert not list(work.glob(".*"))


def test_sheets_that_would_all_fail_stop_before_the_first(trained_model, demo_scene, tmp_path):
    from stars_core.errors import InputError
    from stars_core.segmentation.sheets import read_sheets, segment_sheets

    with pytest.raises(InputError, match="has 4 band\\(s\\) but the model was trained on 2"):
        segment_sheets(trained_model, demo_scene["optical"], read_sheets(demo_scene["sheets"]), tmp_path / "s")
    assert not (tmp_path / "s" / "summary.csv").exists()


def test_the_model_info_json_stays_parsable(case, capsys):
    assert cli_main(["info", str(case.work / "model.stars"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model_config"]["shared_norm"] == "per_modality"


# -- the sweep of the newer surfaces (ONNX, scene tables, chip folders, map sheets, resume, threads) --
def test_an_onnx_export_without_its_band_statistics_is_refused_naming_the_key(case):
    import onnx

    from stars_core.engines.onnx_export import export_onnx

    path = export_onnx(case.work / "model.stars", case.work / "m.onnx", "m1", log=lambda *_: None)
    model = onnx.load(str(path))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != "stars_bands"]
    del model.metadata_props[:]
    for key, value in kept:
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save(model, str(path))
    line = case(["segment", "W/m.onnx", "W/sar.tif", "W/out.tif"], new_files={"m.onnx"})
    assert "incomplete STARS export" in line and "lacks stars_bands" in line and "stars export" in line


def _sheet_layer(case, polys) -> str:
    import rasterio

    from tests.core.helpers import write_polygons

    with rasterio.open(case.work / "sar.tif") as s:
        crs = s.crs.to_wkt()
    return str(write_polygons(case.work / "sheets.gpkg", crs, polys, field="name", field_type="str"))


def test_map_sheets_that_all_miss_the_raster_are_an_error(case):
    import rasterio

    with rasterio.open(case.work / "sar.tif") as s:
        l, b, r, t = s.bounds
    far = {"type": "Polygon", "coordinates": [[(l + 1e6, b), (r + 1e6, b), (r + 1e6, t), (l + 1e6, t), (l + 1e6, b)]]}
    _sheet_layer(case, [(far, "far"), (far, "farther")])
    line = case(["segment-sheets", "W/model.stars", "W/sheets.gpkg", "W/sar.tif", "W/out", "--name-field", "name",
                 "--device", "cpu"], new_files={"sheets.gpkg"})
    assert "none of the 2 map sheets can be segmented" in line and "far: the sheet does not overlap" in line
    assert not (case.work / "out").exists()


def test_every_sheet_feature_gets_a_summary_row_with_its_reason(case, capsys):
    import csv

    import rasterio

    with rasterio.open(case.work / "sar.tif") as s:
        l, b, r, t = s.bounds
    mx, my = (l + r) / 2, (b + t) / 2
    good = {"type": "Polygon", "coordinates": [[(l, my), (mx, my), (mx, t), (l, t), (l, my)]]}
    bowtie = {"type": "Polygon", "coordinates": [[(l, b), (mx, my), (l, my), (mx, b), (l, b)]]}
    flat = {"type": "Polygon", "coordinates": [[(l, b), (mx, b), (r, b), (l, b)]]}
    _sheet_layer(case, [(good, "good"), (bowtie, "bowtie"), (flat, "flat"), (None, "empty")])
    capsys.readouterr()
    assert cli_main(["segment-sheets", f"{case.work}/model.stars", f"{case.work}/sheets.gpkg", f"{case.work}/sar.tif",
                     f"{case.work}/out", "--name-field", "name", "--device", "cpu", "--tile-size", "64",
                     "--runtime", "torch"]) == 0
    rows = {r["sheet"]: r for r in csv.DictReader(open(case.work / "out" / "summary.csv"))}
    assert set(rows) == {"good", "bowtie", "flat", "empty"}
    assert rows["good"]["status"] == "done"
    assert rows["bowtie"]["status"] == "invalid" and "not valid" in rows["bowtie"]["details"]
    assert rows["flat"]["status"] == "invalid" and "no area" in rows["flat"]["details"]
    assert rows["empty"]["status"] == "invalid" and "no geometry" in rows["empty"]["details"]
    assert "1 done" in capsys.readouterr().out


def test_only_a_sheet_the_file_lacks_is_refused(case):
    _sheet_layer(case, [({"type": "Polygon", "coordinates": [[(0, 0), (1, 0), (1, 1), (0, 0)]]}, "A1")])
    line = case(["segment-sheets", "W/model.stars", "W/sheets.gpkg", "W/sar.tif", "W/out", "--name-field", "name",
                 "--only", "A1,Z9"], new_files={"sheets.gpkg"})
    assert "--only names sheets the sheet file does not have: Z9" in line and "its sheets are A1" in line
    assert not (case.work / "out").exists()


@pytest.mark.parametrize("processes", ["-2", "0"])
def test_a_dry_run_with_no_processes_is_refused(case, processes):
    line = case(["segment-sheets", "W/model.stars", "W/sheets.gpkg", "W/sar.tif", "W/out", "--dry-run", "--processes",
                 processes])
    assert f"--processes must be 1 or more" in line and f"got {processes}" in line


def test_a_scene_listed_twice_is_refused(case):
    (case.work / "scenes.csv").write_text("m1,m2,labels\nsar.tif,optical.tif,labels.tif\n"
                                          "./sar.tif,optical.tif,labels.tif\n")
    line = case(["train", "--scenes", "W/scenes.csv", "--class-table", "W/classes.csv", *TINY, "--steps", "2",
                 "--out", "W/m.stars"], new_files={"scenes.csv"})
    assert "scene 2 (sar.tif) repeats scene 1" in line and "list each scene once" in line


def test_a_latin_1_scene_table_is_named(case):
    (case.work / "scenes.csv").write_bytes("m1,m2,labels\nsc\xe9ne.tif,optical.tif,labels.tif\n".encode("latin-1"))
    line = case(["train", "--scenes", "W/scenes.csv", *TINY, "--steps", "2", "--out", "W/m.stars"],
                new_files={"scenes.csv"})
    assert "scenes.csv" in line and "not UTF-8" in line and "0xe9" in line and "CSV UTF-8" in line


def test_a_resume_says_what_it_keeps_and_what_it_ignores(case, monkeypatch, capsys):
    import shutil

    import stars_core.cli as cli

    calls = iter(range(100))
    monkeypatch.setattr(cli.Stop, "__call__", lambda self: next(calls) == 0)  # stop after the first step
    files = {"m.stars", "m.log.csv", "m.curves.png", "m.scan.npz"}
    case([*TRAIN[:-2], "--steps", "4", "--mode", "single", "--out", "W/m.stars"], code=130, new_files=files)
    monkeypatch.undo()
    work = case.work
    shutil.copy(work / "m.stars", work / "again.stars")
    other = work / "other"
    other.mkdir()
    for name in ("sar.tif", "optical.tif", "labels.tif"):
        shutil.copy(work / name, other / name)
    capsys.readouterr()
    argv = [a.replace("W/", f"{work}/") for a in TRAIN[:-2]]
    argv = [a.replace(f"{work}/sar.tif", f"{other}/sar.tif") for a in argv]
    assert cli_main([*argv, "--mode", "concat", "--out", f"{work}/again.stars", "--resume", f"{work}/again.stars"]) == 0
    out = capsys.readouterr().out
    assert "resuming keeps the saved run's settings (mode single" in out
    assert "ignored on resume: mode concat (saved: single)" in out
    assert "resuming on other scenes than the saved run (new: sar.tif" in out


def test_more_threads_than_cores_are_capped_and_said(case, capsys):
    from stars_core import threads

    capsys.readouterr()
    assert cli_main(["--threads", "999", "info", f"{case.work}/model.stars"]) == 0
    err = capsys.readouterr().err
    cores = threads.available_cores()
    assert f"999 threads asked for, but this process may use {cores} core(s): using {cores}" in err
    assert threads.current() <= cores
    threads.configure("auto", settle=0.1)  # the suite's policy again


def test_evaluate_chips_names_the_chip_whose_files_differ_in_size(case, demo_scene):
    import numpy as np
    import rasterio

    root = case.work / "chips"
    for sub in ("SAR", "RGB", "mask"):
        (root / sub).mkdir(parents=True)
    with rasterio.open(case.work / "sar.tif") as s, rasterio.open(case.work / "optical.tif") as o, \
            rasterio.open(case.work / "labels.tif") as lab:
        parts = {"SAR/a_SAR.tif": s.read()[:, :96, :96], "RGB/a.tif": o.read()[:, :64, :64],
                 "mask/a_mask.tif": lab.read()[:, :96, :96]}
    for name, data in parts.items():
        with rasterio.open(root / name, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                           count=data.shape[0], dtype=data.dtype) as d:
            d.write(data)
    made = {str(p.relative_to(case.work)) for p in root.rglob("*.tif")}
    line = case(["evaluate-chips", "W/model.stars", "W/chips", "--device", "cpu"], new_files=made)
    assert "chip 'a'" in line and "96 x 96" in line and "64 x 64" in line and "a_SAR.tif" in line
