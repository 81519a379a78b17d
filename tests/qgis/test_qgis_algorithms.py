"""The STARS Processing algorithms in real QGIS: train, segment (styled output), map sheets with
skip-existing, evaluate, cancel without partial outputs, and clear errors for bad inputs."""
import gc
import json
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from qgis.core import (QgsApplication, QgsPalettedRasterRenderer, QgsProcessingException, QgsProcessingFeedback,
                       QgsProject, QgsRasterLayer, QgsVectorLayer)

from stars_core.classes import ClassTable
from tests.core.helpers import rewrite

SEG = {"TILE_SIZE": 128, "OVERLAP": 32, "BATCH_SIZE": 2, "DEVICE": 1}  # device 1 = cpu


class CancelAfter(QgsProcessingFeedback):
    """Feedback that reports 'cancelled' once progress has moved `n` times."""

    def __init__(self, n):
        super().__init__()
        self.n, self.seen = n, 0
        self.progressChanged.connect(self._tick)

    def _tick(self, _):
        self.seen += 1
        if self.seen >= self.n:
            self.cancel()


def test_provider_lists_the_algorithms_with_icons(stars_provider):
    ids = sorted(a.id() for a in QgsApplication.processingRegistry().providerById("stars").algorithms())
    assert ids == ["stars:cleanlandcovermap", "stars:createaccuracysample", "stars:demoscene", "stars:distillmodel",
                   "stars:estimateaccuracyarea",
                   "stars:evaluatesegmentation", "stars:exportonnx", "stars:getsentinelpair",
                   "stars:getsentinelseries", "stars:installdependencies",
                   "stars:landcoverchange", "stars:landcoverpolygons", "stars:segmentmapsheets",
                   "stars:segmentmissingmodality", "stars:segmenttimeseries", "stars:trainstars"]
    assert not stars_provider.icon().isNull()
    for alg in stars_provider.algorithms():
        url = alg.helpUrl()  # the Help button opens the algorithm's own page of the site, a local file
        page = Path(url[len("file://"):])
        assert url.startswith("file://") and page.is_file() and page.stem == alg.name(), url
        assert alg.shortHelpString() and not alg.icon().isNull()


def test_train_writes_a_model_and_reports_validation(demo_scene, run_alg, tmp_path):
    res, _ = run_alg("stars:trainstars", {
        "M1": [str(demo_scene["sar"])], "M2": [str(demo_scene["optical"])], "LABELS": [str(demo_scene["labels"])],
        "CLASS_TABLE": str(demo_scene["classes"]), "OUTPUT": str(tmp_path / "m.stars"), "STEPS": 3,
        "BATCH_SIZE": 2, "CHIP_SIZE": 64, "BACKBONE": 2, "ENCODER_WIDTH": 16, "DEVICE": 1,
        "DIAGNOSTICS": str(tmp_path / "diag"),
    })
    assert res["OUTPUT"] == str(tmp_path / "m.stars") and (tmp_path / "m.stars").stat().st_size > 0
    assert 0 <= res["VAL_MIOU"] <= 1
    assert res["DIAGNOSTICS"] == str(tmp_path / "diag")
    assert (tmp_path / "diag" / "similarity_init.png").is_file() and (tmp_path / "diag" / "confusion.png").is_file()


def test_distill_a_fast_model_writes_a_student_that_segments(demo_scene, trained_model, run_alg, tmp_path):
    res, _ = run_alg("stars:distillmodel", {
        "TEACHER": str(trained_model), "INPUTS": [str(demo_scene["sar"])], "STEPS": 2, "BATCH_SIZE": 2,
        "CHIP_SIZE": 64, "WIDTH": 8, "DECODER_CHANNELS": 32, "DEVICE": 1, "OUTPUT": str(tmp_path / "fast.stars")})
    assert 0 <= res["AGREEMENT"] <= 1 and (tmp_path / "fast.stars").stat().st_size > 0
    seg, _ = run_alg("stars:segmentmissingmodality", {"INPUT": str(demo_scene["sar"]), "MODEL": res["OUTPUT"],
                                                      "TILE_SIZE": 64, "RUNTIME": 1, "DEVICE": 1,
                                                      "OUTPUT": str(tmp_path / "map.tif")})
    assert Path(seg["OUTPUT"]).is_file()


def test_the_dialog_and_the_command_line_build_the_same_recipe(stars_provider, qgis_new_project, tmp_path):
    from qgis.core import QgsProcessingContext

    from stars_core.cli import _parser, train_settings
    from stars_qgis.algorithms.train_stars import TrainStars

    alg = TrainStars()
    alg.initAlgorithm()
    params = {p.name(): p.defaultValue() for p in alg.parameterDefinitions()}
    params.update(STEPS=500, BATCH_SIZE=4, CHIP_SIZE=128, LR=1e-3, SEED=3, IGNORE_VALUES="0",
                  OUTPUT=str(tmp_path / "m.stars"), KEEP_BEST=True, CLASS_WEIGHTS=2, CPU_BF16=True)
    qgis = alg.settings(params, QgsProcessingContext())
    args = _parser().parse_args(["train", "--m1", "a.tif", "--m2", "b.tif", "--labels", "c.tif", "--out", "m.stars",
                                 "--steps", "500", "--batch-size", "4", "--chip-size", "128", "--lr", "1e-3",
                                 "--seed", "3", "--ignore-value", "0", "--workers", "0", "--keep-best",
                                 "--class-weights", "sqrt-inverse", "--cpu-bf16"])
    cli = train_settings(args)
    assert qgis == cli and cli[2].keep_best and cli[1].class_weights == "sqrt-inverse" and cli[2].cpu_bf16
    assert qgis[2].warmup_steps == 6 and qgis[2].val_every == 100  # the paper's recipe, scaled to 500 steps


def test_train_from_a_chip_folder(demo_scene, run_alg, tmp_path):
    from tests.core.helpers import make_chip_folder

    root = make_chip_folder(demo_scene, tmp_path / "chips")
    res, _ = run_alg("stars:trainstars", {
        "CHIP_FOLDER": str(root), "IGNORE_VALUES": "0", "OUTPUT": str(tmp_path / "m.stars"), "STEPS": 2,
        "BATCH_SIZE": 2, "CHIP_SIZE": 64, "BACKBONE": 2, "ENCODER_WIDTH": 16, "DEVICE": 1,
    })
    from stars_core.checkpoint import read_model_file

    payload = read_model_file(res["OUTPUT"])
    assert payload["crs"] is None and payload["summary"]["steps"] == 2


def test_export_to_onnx_and_segment_with_it(demo_scene, trained_model, run_alg, tmp_path):
    pytest.importorskip("onnxruntime")
    res, _ = run_alg("stars:exportonnx", {"MODEL": str(trained_model), "BRANCH": 0, "OUTPUT": str(tmp_path / "m.onnx")})
    assert res["OUTPUT"] == str(tmp_path / "m.onnx")
    seg, _ = run_alg("stars:segmentmissingmodality", {"INPUT": str(demo_scene["sar"]), "MODEL": res["OUTPUT"],
                                                       "OUTPUT": str(tmp_path / "map.tif"), **SEG})
    with rasterio.open(seg["OUTPUT"]) as ds:
        assert ds.tags(1).get("STARS_CLASSES") and (ds.read(1) != 255).mean() > 0.5


def test_onnx_segmentation_needs_onnxruntime_only(stars_provider, monkeypatch, tmp_path):
    from stars_qgis import deps
    from stars_qgis.algorithms.segment_missing import SegmentMissingModality

    from qgis.core import QgsProcessingContext

    alg = SegmentMissingModality()
    alg.initAlgorithm()
    context = QgsProcessingContext()
    assert alg.required({"MODEL": str(tmp_path / "m.onnx")}, context) == deps.ONNX_REQUIRED
    assert "torch" in alg.required({"MODEL": str(tmp_path / "m.stars")}, context)


def test_demo_scene_writes_the_named_files(run_alg, tmp_path):
    res, _ = run_alg("stars:demoscene", {"SIZE": 96, "SHEETS": "1x3", "OUTPUT_FOLDER": str(tmp_path / "scene")})
    for key, name in (("SAR", "sar.tif"), ("OPTICAL", "optical.tif"), ("LABELS", "labels.tif"),
                      ("CLASSES", "classes.csv"), ("SHEET_GRID", "sheets.gpkg")):
        assert res[key] == str(tmp_path / "scene" / name) and (tmp_path / "scene" / name).is_file()
    with rasterio.open(res["SAR"]) as ds:
        assert ds.width == ds.height == 96 and ds.count == 2 and ds.crs.to_epsg() == 32632
    sheets = QgsVectorLayer(res["SHEET_GRID"], "sheets", "ogr")
    count = sheets.featureCount()
    del sheets  # a layer outliving QgsApplication crashes the interpreter at exit
    assert count == 3
    for bad in ("3", "2by3", "2x2x2"):
        with pytest.raises(QgsProcessingException, match=f"rows x columns, e.g. 2x2; got '{bad}'"):
            run_alg("stars:demoscene", {"SIZE": 96, "SHEETS": bad, "OUTPUT_FOLDER": str(tmp_path / "bad")})


def test_train_with_polygon_labels_and_cancel_keeps_a_model(demo_scene, run_alg, tmp_path):
    from tests.core.helpers import write_polygons

    with rasterio.open(demo_scene["sar"]) as s:
        l, b, r, t = s.bounds
        wkt = s.crs.to_wkt()
    half = (l + r) / 2
    polys = [({"type": "Polygon", "coordinates": [[(l, b), (half, b), (half, t), (l, t), (l, b)]]}, 1),
             ({"type": "Polygon", "coordinates": [[(half, b), (r, b), (r, t), (half, t), (half, b)]]}, 3)]
    gpkg = write_polygons(tmp_path / "labels.gpkg", wkt, polys)
    fb = CancelAfter(3)
    message = None
    try:
        run_alg("stars:trainstars", {
            "M1": [str(demo_scene["sar"])], "M2": [str(demo_scene["optical"])], "LABEL_POLYGONS": str(gpkg),
            "CLASS_FIELD": "class", "OUTPUT": str(tmp_path / "m.stars"), "STEPS": 50, "BATCH_SIZE": 2,
            "CHIP_SIZE": 64, "BACKBONE": 2, "ENCODER_WIDTH": 16, "DEVICE": 1,
        }, feedback=fb)
    except QgsProcessingException as exc:  # not pytest.raises: its traceback would keep the run's polygon
        message = str(exc)                 # layer alive past QGIS's exit, which crashes the interpreter
    gc.collect()
    assert message and re.search(r"cancelled: training cancelled at step \d+; .*m.stars holds", message)
    from stars_core.checkpoint import read_model_file

    payload = read_model_file(tmp_path / "m.stars")
    assert "resume" in payload and payload["resume"]["step"] < 50  # stopped early, resumable
    assert payload["classes"]["values"] == [1, 3]


def headless_postprocessing(monkeypatch) -> None:
    """Processing's post-processing as in a QGIS without a main window (qgis_process): no iface.
    With pytest-qgis's stand-in iface, QGIS 3.40 calls iface.layerTreeView().currentNode() and 3.44
    hands iface.layerTreeView() to C++, which refuses the stand-in's answers. The layers still go
    into the project, styled: what the tests check."""
    monkeypatch.setattr("processing.gui.Postprocessing.iface", None, raising=False)


def test_segment_output_is_styled_with_one_entry_per_class(demo_scene, trained_model, run_alg, tmp_path,
                                                          monkeypatch):
    import processing

    headless_postprocessing(monkeypatch)

    out = tmp_path / "map.tif"
    res = processing.runAndLoadResults("stars:segmentmissingmodality", {
        "INPUT": str(demo_scene["sar"]), "MODEL": str(trained_model), "OUTPUT": str(out),
        "CONFIDENCE": str(tmp_path / "conf.tif"), **SEG,
    })
    assert res["OUTPUT"] == str(out) and (tmp_path / "conf.tif").exists()
    with rasterio.open(out) as ds, rasterio.open(demo_scene["sar"]) as src:
        assert ds.transform == src.transform and ds.crs == src.crs
    (layer,) = [l for l in QgsProject.instance().mapLayers().values() if l.source() == str(out)]
    renderer = layer.renderer()
    classes = ClassTable.from_file(demo_scene["classes"])
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    assert [c.value for c in renderer.classes()] == list(classes.values)
    assert [c.label for c in renderer.classes()] == list(classes.names)
    assert [c.color.name() for c in renderer.classes()] == list(classes.colors)


def test_the_map_loads_with_its_legend_without_the_plugin(demo_scene, trained_model, run_alg, tmp_path):
    out = tmp_path / "map.tif"
    no_batch = {k: v for k, v in SEG.items() if k != "BATCH_SIZE"}  # empty: the device's default
    run_alg("stars:segmentmissingmodality", {"INPUT": str(demo_scene["sar"]), "MODEL": str(trained_model),
                                              "OUTPUT": str(out), **no_batch})
    layer = QgsRasterLayer(str(out), "map")  # QGIS applies map.qml, the style written beside the map
    assert isinstance(layer.renderer(), QgsPalettedRasterRenderer)
    assert [c.label for c in layer.renderer().classes()] == list(ClassTable.from_file(demo_scene["classes"]).names)


def test_cancelled_segmentation_leaves_no_output(demo_scene, int8_model, run_alg, tmp_path):
    # the default path (int8) on the session's export for 128-px tiles: nine tiles, one a batch
    with pytest.raises(QgsProcessingException, match="cancelled"):
        run_alg("stars:segmentmissingmodality", {
            "INPUT": str(demo_scene["sar"]), "MODEL": str(int8_model["model"]), "OUTPUT": str(tmp_path / "map.tif"),
            **dict(SEG, BATCH_SIZE=1),
        }, feedback=CancelAfter(2))
    assert list(tmp_path.iterdir()) == []


def test_mismatched_and_misaligned_inputs_are_clear_errors(demo_scene, trained_model, run_alg, tmp_path):
    with pytest.raises(QgsProcessingException, match=r"has 4 band\(s\) but the model was trained on 2"):
        run_alg("stars:segmentmissingmodality", {"INPUT": str(demo_scene["optical"]), "MODEL": str(trained_model),
                                                  "OUTPUT": str(tmp_path / "map.tif"), **SEG})
    with rasterio.open(demo_scene["optical"]) as s:
        far = rewrite(demo_scene["optical"], tmp_path / "far.tif", transform=s.transform * s.transform.translation(1e5, 0))
    with pytest.raises(QgsProcessingException, match="does not overlap"):
        run_alg("stars:trainstars", {
            "M1": [str(demo_scene["sar"])], "M2": [str(far)], "LABELS": [str(demo_scene["labels"])],
            "OUTPUT": str(tmp_path / "m.stars"), "STEPS": 2, "CHIP_SIZE": 64, "BACKBONE": 2,
            "ENCODER_WIDTH": 16, "DEVICE": 1})
    with pytest.raises(QgsProcessingException, match="one optical raster and one label per SAR raster"):
        run_alg("stars:trainstars", {
            "M1": [str(demo_scene["sar"]), str(demo_scene["sar"])], "M2": [str(demo_scene["optical"])],
            "LABELS": [str(demo_scene["labels"])], "OUTPUT": str(tmp_path / "m.stars"), "DEVICE": 1})
    assert not (tmp_path / "m.stars").exists() and not (tmp_path / "map.tif").exists()


def test_map_sheets_write_rasters_a_mosaic_and_skip_what_is_done(demo_scene, trained_model, run_alg, tmp_path):
    params = {"SHEETS": str(demo_scene["sheets"]), "NAME_FIELD": "name", "INPUT": str(demo_scene["sar"]),
              "MODEL": str(trained_model), "OUTPUT_FOLDER": str(tmp_path / "sheets"), "SKIP_EXISTING": True, **SEG}
    res, _ = run_alg("stars:segmentmapsheets", params)
    tifs = sorted((tmp_path / "sheets").glob("*.tif"))
    assert len(tifs) == 4 and res["DONE"] == 4 and res["FAILED"] == 0
    assert res["MOSAIC"].endswith("mosaic.vrt") and QgsRasterLayer(res["MOSAIC"], "m").isValid()
    stamps = [p.stat().st_mtime_ns for p in tifs]
    fb = QgsProcessingFeedback()
    logged = []
    fb.pushInfo = logged.append  # noqa: the core's log goes through pushInfo
    run_alg("stars:segmentmapsheets", params, feedback=fb)
    assert [p.stat().st_mtime_ns for p in tifs] == stamps, "a sheet already done was recomputed"
    summary = (tmp_path / "sheets" / "summary.csv").read_text()
    assert summary.count(",skipped,") == 4


def test_map_sheets_honour_selected_features_only_and_layer_filters(demo_scene, trained_model, run_alg, tmp_path):
    """A QGIS selection or filter on the sheet layer is what the user chose: only those sheets run."""
    from qgis.core import QgsProcessingFeatureSourceDefinition, QgsProject, QgsVectorLayer

    layer = QgsVectorLayer(str(demo_scene["sheets"]), "sheets", "ogr")
    QgsProject.instance().addMapLayer(layer)
    layer.selectByExpression("\"name\" IN ('A1', 'B2')")
    source = QgsProcessingFeatureSourceDefinition(layer.id(), True)  # "Selected features only"
    params = {"SHEETS": source, "NAME_FIELD": "name", "INPUT": str(demo_scene["sar"]), "MODEL": str(trained_model),
              "OUTPUT_FOLDER": str(tmp_path / "selected"), **SEG}
    res, _ = run_alg("stars:segmentmapsheets", params)
    assert sorted(p.name for p in (tmp_path / "selected").glob("*.tif")) == ["A1.tif", "B2.tif"] and res["DONE"] == 2
    filtered = QgsVectorLayer(f"{demo_scene['sheets']}|subset=\"name\" = 'A2'", "filtered", "ogr")
    QgsProject.instance().addMapLayer(filtered)
    run_alg("stars:segmentmapsheets", dict(params, SHEETS=filtered.id(), OUTPUT_FOLDER=str(tmp_path / "filtered")))
    assert [p.name for p in (tmp_path / "filtered").glob("*.tif")] == ["A2.tif"]


def test_evaluate_gives_metrics_as_outputs_and_reports(demo_scene, trained_model, run_alg, tmp_path):
    out = tmp_path / "map.tif"
    run_alg("stars:segmentmissingmodality", {"INPUT": str(demo_scene["sar"]), "MODEL": str(trained_model),
                                              "OUTPUT": str(out), **SEG})
    res, _ = run_alg("stars:evaluatesegmentation", {
        "PREDICTION": str(out), "LABELS": str(demo_scene["labels"]), "IGNORE_VALUES": "0",
        "OUTPUT_HTML": str(tmp_path / "report.html"), "OUTPUT_JSON": str(tmp_path / "metrics.json")})
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert res["MIOU"] == pytest.approx(metrics["miou"]) and 0 <= res["OA"] <= 1
    assert "mIoU" in (tmp_path / "report.html").read_text() and (tmp_path / "report_confusion.png").exists()


def test_missing_torch_is_explained_with_the_install_command(stars_provider, monkeypatch, run_alg, tmp_path, demo_scene):
    from stars_qgis import deps

    monkeypatch.setattr(deps, "missing", lambda required=deps.REQUIRED: ["torch"])
    with pytest.raises(QgsProcessingException, match=r"(?s)needs the Python package\(s\) torch.*pip install torch"):
        run_alg("stars:segmentmissingmodality", {"INPUT": str(demo_scene["sar"]), "MODEL": str(tmp_path / "x.stars"),
                                                  "OUTPUT": str(tmp_path / "map.tif")})


def test_sample_label_in_the_attribute_form_and_estimate(demo_scene, landcover, run_alg, tmp_path):
    """Create accuracy sample -> the layer comes with a value map of the class names on `reference`
    -> labels saved through QGIS's own editing -> Estimate accuracy and area gives its outputs."""
    import json

    import rasterio
    from qgis.core import QgsProject, QgsVectorLayer

    seg = {"OUTPUT": str(landcover)}
    res, context = run_alg("stars:createaccuracysample", {"INPUT": seg["OUTPUT"], "SIZE": 60, "MIN_PER_CLASS": 5,
                                                          "OUTPUT": str(tmp_path / "sample.gpkg")})
    assert res["POINTS"] == 60 and list(context.layersToLoadOnCompletion())
    layer = QgsVectorLayer(f"{tmp_path / 'sample.gpkg'}|layername=sample", "sample", "ogr")
    setup = layer.editorWidgetSetup(layer.fields().indexOf("reference"))
    names = [n for entry in setup.config()["map"] for n in entry]
    assert setup.type() == "ValueMap" and "water" in names and "farmland" in names
    with rasterio.open(demo_scene["labels"]) as lab:
        data = lab.read(1)
        layer.startEditing()
        index = layer.fields().indexOf("reference")
        for f in layer.getFeatures():
            p = f.geometry().asPoint()
            row, col = lab.index(p.x(), p.y())
            if data[row, col] != 0:
                layer.changeAttributeValue(f.id(), index, int(data[row, col]))
        assert layer.commitChanges()
    QgsProject.instance().addMapLayer(layer)
    out, _ = run_alg("stars:estimateaccuracyarea", {"INPUT": seg["OUTPUT"], "SAMPLE": layer,
                                                     "OUTPUT_HTML": str(tmp_path / "report.html")})
    assert 0 < out["OA"] <= 1 and out["OA_CI95"] is not None
    areas = json.loads(out["AREAS"])
    assert set(areas) >= {"water", "farmland"} and all(a["ha"] >= 0 for a in areas.values())
    assert (tmp_path / "report.html").read_text().count("<tr>") > 6


def test_clean_land_cover_map_and_segment_with_a_minimum_mapping_unit(demo_scene, trained_model, landcover, run_alg,
                                                                      tmp_path):
    import numpy as np
    import rasterio

    seg, _ = run_alg("stars:segmentmissingmodality", {"INPUT": str(demo_scene["sar"]), "MODEL": str(trained_model),
                                                      "TILE_SIZE": 128, "MMU": "0.02ha", "OUTPUT": str(tmp_path / "a.tif"),
                                                      "RUNTIME": 1,  # torch, as the raw map was made
                                                      "POLYGONS": str(tmp_path / "a.gpkg"), "SIMPLIFY": "1px",
                                                      "UNCERTAINTY": str(tmp_path / "u.tif")})
    from qgis.core import QgsRasterLayer

    unc = QgsRasterLayer(seg["UNCERTAINTY"], "uncertainty")
    assert unc.isValid() and unc.bandCount() == 2 and unc.renderer().type() == "singlebandgray"
    from qgis.core import QgsVectorLayer

    polygons = QgsVectorLayer(f"{seg['POLYGONS']}|layername=landcover", "polygons", "ogr")
    assert polygons.isValid() and polygons.featureCount() > 0 and polygons.renderer().type() == "categorizedSymbol"
    assert min(f["area_m2"] for f in polygons.getFeatures()) >= 200 - 1e-6
    raw = {"OUTPUT": str(landcover)}  # the same model and tiles without a minimum mapping unit
    clean, _ = run_alg("stars:cleanlandcovermap", {"INPUT": raw["OUTPUT"], "MMU": "50px",
                                                   "OUTPUT": str(tmp_path / "b.tif")})
    with rasterio.open(seg["OUTPUT"]) as a, rasterio.open(clean["OUTPUT"]) as b, rasterio.open(raw["OUTPUT"]) as r:
        # 0.02 ha of 2 m pixels = 50 pixels: the same cleaning (two model runs may differ on a near-tie pixel)
        assert (a.read(1) == b.read(1)).mean() > 0.995
        assert not np.array_equal(a.read(1), r.read(1))
    vec, _ = run_alg("stars:landcoverpolygons", {"INPUT": clean["OUTPUT"], "SIMPLIFY": "4m",
                                                 "OUTPUT": str(tmp_path / "b.gpkg")})
    again = QgsVectorLayer(f"{vec['OUTPUT']}|layername=landcover", "b", "ogr")
    assert again.isValid() and again.renderer().type() == "categorizedSymbol"
    assert abs(sum(f["area_m2"] for f in again.getFeatures()) - sum(f["area_m2"] for f in polygons.getFeatures())) < 1
    assert again.featureCount() == pytest.approx(polygons.featureCount(), rel=0.05)  # about the same patches


def test_segment_an_extent_of_the_canvas_within_a_mask(demo_scene, trained_model, run_alg, tmp_path):
    import rasterio

    with rasterio.open(demo_scene["sar"]) as src:
        l, b, r, t = src.bounds
        crs = src.crs.to_string()
    extent = f"{l + 20},{l + 150},{b + 40},{t - 30} [{crs}]"  # xmin,xmax,ymin,ymax as the dialog writes it
    res, _ = run_alg("stars:segmentmissingmodality", {"INPUT": str(demo_scene["sar"]), "MODEL": str(trained_model),
                                                      "EXTENT": extent, "MASK": str(demo_scene["sheets"]),
                                                      "OUTPUT": str(tmp_path / "e.tif"), **SEG})
    with rasterio.open(res["OUTPUT"]) as ds:
        assert ds.bounds.left <= l + 20 < ds.bounds.left + ds.res[0] and ds.width < 100
        assert ds.bounds.top >= t - 30 > ds.bounds.top - ds.res[1]


def test_a_filtered_layer_given_as_a_source_string_is_read_with_its_filter(demo_scene, stars_provider, tmp_path):
    """The demo passes its AOI as 'file|layername=...|subset=...'; exporting it must not crash QGIS 3.22
    (it does when no feedback object is given) and must keep the filter."""
    from osgeo import ogr
    from qgis.core import QgsProcessingContext, QgsProject

    from stars_qgis.algorithms.base import polygon_file
    from stars_qgis.algorithms.train_stars import TrainStars

    alg = TrainStars()
    alg.initAlgorithm()
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    path = polygon_file(alg, {"AOI": f"{demo_scene['sheets']}|layername=sheets|subset=\"name\" <> 'B2'"}, "AOI",
                        context)
    ds = ogr.Open(path)
    names = sorted(f.GetField("name") for f in ds.GetLayer(0))
    ds = None
    assert names == ["A1", "A2", "B1"]


def test_a_map_without_a_class_table_is_explained_in_qgis_words_and_the_table_can_be_given(demo_scene, run_alg,
                                                                                          tmp_path):
    bare = rewrite(demo_scene["labels"], tmp_path / "bare.tif")  # class values, no names or colours
    for alg, out in (("stars:landcoverpolygons", "p.gpkg"), ("stars:createaccuracysample", "s.gpkg")):
        message = None
        try:
            run_alg(alg, {"INPUT": str(bare), "OUTPUT": str(tmp_path / out)})
        except QgsProcessingException as exc:  # not pytest.raises: its traceback would keep the run's layers
            message = str(exc)                 # alive past QGIS's exit, which crashes the interpreter
        gc.collect()
        assert message and "the 'Class table' parameter" in message and "--class-table" not in message
        assert not (tmp_path / out).exists()
    res, _ = run_alg("stars:landcoverpolygons", {"INPUT": str(bare), "CLASS_TABLE": str(demo_scene["classes"]),
                                                 "OUTPUT": str(tmp_path / "p.gpkg")})
    layer = QgsVectorLayer(f"{res['OUTPUT']}|layername=landcover", "p", "ogr")
    names = set(ClassTable.from_file(demo_scene["classes"]).names)
    assert layer.featureCount() > 0 and {f["class"] for f in layer.getFeatures()} <= names
    layer = None


def test_land_cover_change_between_two_maps(demo_scene, run_alg, tmp_path):
    from osgeo import ogr

    from stars_core.classmap import style_class_map

    classes = ClassTable.from_file(demo_scene["classes"])
    with rasterio.open(demo_scene["labels"]) as ds:
        first = ds.read(1)
    later = first.copy()
    later[40:80, 40:80] = classes.values[0]  # a block of the scene turned to the first class
    maps = []
    for name, data in (("a.tif", first), ("b.tif", later)):
        path = rewrite(demo_scene["labels"], tmp_path / name, data=data[None])
        style_class_map(path, classes)
        maps.append(str(path))
    res, _ = run_alg("stars:landcoverchange", {"MAP_A": maps[0], "MAP_B": maps[1], "UNCHANGED": 1,
                                               "OUTPUT": str(tmp_path / "change.tif"),
                                               "MATRIX": str(tmp_path / "m.csv"), "REPORT": str(tmp_path / "r.html"),
                                               "POLYGONS": str(tmp_path / "p.gpkg")})
    changed = ((first != later) & (first != 0)).sum()
    with rasterio.open(res["OUTPUT"]) as ds:
        pixel_ha = abs(ds.transform.a * ds.transform.e) / 10_000
        values = ds.read(1)
        assert "STARS_CHANGE" in ds.tags()
        with pytest.raises(ValueError):  # no uint16 colour table: QGIS would list its 65,536 entries
            ds.colormap(1)
    assert res["CHANGED_HA"] == pytest.approx(changed * pixel_ha)
    assert int((values > 1).sum()) == changed  # 1: no change; 0: no data
    ds = ogr.Open(res["POLYGONS"])
    assert {f.GetField("to_class") for f in ds.GetLayerByName("landcover")} == {classes.names[0]}
    ds = None
    assert (tmp_path / "m.csv").read_text().startswith("from \\ to (ha)") and (tmp_path / "r.html").is_file()


def test_the_change_map_enters_the_project_with_the_transitions_it_holds(demo_scene, stars_provider, tmp_path,
                                                                         monkeypatch):
    """Loaded by Processing (and opened by hand, through the .qml beside it): a paletted renderer of
    the entries the map holds, in their legend colours, not the GeoTIFF's 65,537 rows."""
    import processing

    headless_postprocessing(monkeypatch)
    first, later, maps = _map_pair(demo_scene, tmp_path, slice(40, 80), 0)
    out = tmp_path / "change.tif"
    processing.runAndLoadResults("stars:landcoverchange", {"MAP_A": maps[0], "MAP_B": maps[1], "OUTPUT": str(out)})
    with rasterio.open(out) as ds:
        held = sorted(int(v) for v in np.unique(ds.read(1)) if v != ds.nodata)
        legend = ClassTable.from_dict(json.loads(ds.tags(1)["STARS_CLASSES"]))
    assert 1 < len(held) < len(legend) <= 36
    colour = dict(zip(legend.values, legend.colors))
    (loaded,) = [l for l in QgsProject.instance().mapLayers().values() if l.source() == str(out)]
    for layer in (loaded, QgsRasterLayer(str(out), "by hand")):
        renderer = layer.renderer()
        assert isinstance(renderer, QgsPalettedRasterRenderer), type(renderer)
        assert [c.value for c in renderer.classes()] == held
        assert [c.color.name() for c in renderer.classes()] == [colour[v] for v in held]
    assert any("->" in c.label for c in loaded.renderer().classes())


def _map_pair(demo_scene, tmp_path, block: slice, k: int):
    """The demo labels as a first map, and a second where a block became the k-th class: both styled."""
    from stars_core.classmap import style_class_map

    classes = ClassTable.from_file(demo_scene["classes"])
    with rasterio.open(demo_scene["labels"]) as ds:
        first = ds.read(1)
    later = first.copy()
    later[block, block] = classes.values[k]
    maps = []
    for name, data in (("a.tif", first), ("b.tif", later)):
        path = rewrite(demo_scene["labels"], tmp_path / name, data=data[None])
        style_class_map(path, classes)
        maps.append(str(path))
    return first, later, maps


def test_a_change_sample_is_labelled_in_the_form_and_gives_each_dates_areas(demo_scene, run_alg, tmp_path):
    """Change map -> sample stratified by its transitions -> reference_from/reference_to are drop-downs of
    the dates' class names -> labels saved through QGIS's editing -> each date's class areas as outputs."""
    import json

    from qgis.core import QgsProject, QgsVectorLayer

    classes = ClassTable.from_file(demo_scene["classes"])
    with rasterio.open(demo_scene["labels"]) as ds:
        pixel_ha = abs(ds.transform.a * ds.transform.e) / 10_000
    first, later, maps = _map_pair(demo_scene, tmp_path, slice(40, 100), 0)
    change, _ = run_alg("stars:landcoverchange", {"MAP_A": maps[0], "MAP_B": maps[1], "UNCHANGED": 1,
                                                  "OUTPUT": str(tmp_path / "change.tif")})
    run_alg("stars:createaccuracysample", {"INPUT": change["OUTPUT"], "SIZE": 80, "MIN_PER_CLASS": 5,
                                           "OUTPUT": str(tmp_path / "sample.gpkg")})
    layer = QgsVectorLayer(f"{tmp_path / 'sample.gpkg'}|layername=sample", "sample", "ogr")
    fields = {}
    for name in ("reference_from", "reference_to"):
        setup = layer.editorWidgetSetup(layer.fields().indexOf(name))
        assert setup.type() == "ValueMap", name
        fields[name] = layer.fields().indexOf(name)
        assert set(classes.names) <= {n for entry in setup.config()["map"] for n in entry}
    with rasterio.open(maps[0]) as grid:
        layer.startEditing()
        for f in layer.getFeatures():
            row, col = grid.index(f.geometry().asPoint().x(), f.geometry().asPoint().y())
            layer.changeAttributeValue(f.id(), fields["reference_from"], int(first[row, col]))
            layer.changeAttributeValue(f.id(), fields["reference_to"], int(later[row, col]))
        assert layer.commitChanges()
    QgsProject.instance().addMapLayer(layer)
    out, _ = run_alg("stars:estimateaccuracyarea", {"INPUT": change["OUTPUT"], "SAMPLE": layer,
                                                     "OUTPUT_HTML": str(tmp_path / "report.html")})
    mapped_ha = int((first != 0).sum()) * pixel_ha
    for key in ("AREAS_FIRST", "AREAS_SECOND"):
        areas = json.loads(out[key])
        assert set(areas) == set(classes.names), key
        assert sum(a["ha"] for a in areas.values()) == pytest.approx(mapped_ha, rel=1e-6)  # shares sum to one
    gained = json.loads(out["AREAS_SECOND"])[classes.names[0]]["ha"] - json.loads(out["AREAS_FIRST"])[classes.names[0]]["ha"]
    assert gained > 0  # the block turned to the first class: every sampled change says so
    QgsProject.instance().removeMapLayer(layer.id())


def test_the_change_chain_runs_as_a_graphical_model(stars_provider, demo_scene, tmp_path):
    """Land-cover change -> Create accuracy sample, wired in a Processing model as the modeler would."""
    import processing
    from qgis.core import (QgsProcessingModelAlgorithm, QgsProcessingModelChildAlgorithm,
                           QgsProcessingModelChildParameterSource, QgsProcessingModelOutput,
                           QgsProcessingModelParameter, QgsProcessingParameterRasterLayer, QgsVectorLayer)

    _first, _later, maps = _map_pair(demo_scene, tmp_path, slice(20, 90), 1)
    static, parameter = (QgsProcessingModelChildParameterSource.fromStaticValue,
                         QgsProcessingModelChildParameterSource.fromModelParameter)
    model = QgsProcessingModelAlgorithm("change chain", "tests")
    for name in ("map_a", "map_b"):
        model.addModelParameter(QgsProcessingParameterRasterLayer(name, name), QgsProcessingModelParameter(name))
    change = QgsProcessingModelChildAlgorithm("stars:landcoverchange")
    change.setChildId("change")
    change.addParameterSources("MAP_A", [parameter("map_a")])
    change.addParameterSources("MAP_B", [parameter("map_b")])
    change.addParameterSources("UNCHANGED", [static(1)])
    model.addChildAlgorithm(change)
    sample = QgsProcessingModelChildAlgorithm("stars:createaccuracysample")
    sample.setChildId("sample")
    sample.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromChildOutput("change", "OUTPUT")])
    sample.addParameterSources("SIZE", [static(40)])
    sample.addParameterSources("MIN_PER_CLASS", [static(5)])
    output = QgsProcessingModelOutput("points", "points")
    output.setChildId("sample")
    output.setChildOutputName("OUTPUT")
    sample.setModelOutputs({"points": output})
    model.addChildAlgorithm(sample)
    # the model's own name for the output ("sample:points" on QGIS 3.22, "points" on 3.40)
    model.updateDestinationParameters()
    (points,) = [d.name() for d in model.destinationParameterDefinitions()]
    res = processing.run(model, {"map_a": maps[0], "map_b": maps[1], points: str(tmp_path / "s.gpkg")})
    layer = QgsVectorLayer(f"{res[points]}|layername=sample", "sample", "ogr")
    assert layer.isValid() and layer.featureCount() >= 40
    assert layer.fields().indexOf("reference_from") >= 0 and layer.fields().indexOf("reference_to") >= 0
    layer = None


def _frames(controller) -> list[tuple[str, str]]:
    """(first, last day) of every frame of a temporal navigation object."""
    ranges = [controller.dateTimeRangeForFrameNumber(k) for k in range(controller.totalFrameCount())]
    return [(r.begin().date().toString("yyyy-MM-dd"), r.end().date().toString("yyyy-MM-dd")) for r in ranges]


def test_a_series_plays_one_date_per_frame_whatever_the_gaps(qgis_new_project):
    """Dates 12 and 24 days apart: three frames, one date each (one-hour steps gave 889), and the
    project keeps the span and the step for when it is opened again."""
    from qgis.core import QgsTemporalNavigationObject

    from stars_qgis.style import _irregular_step, play_dates

    project, controller = QgsProject.instance(), QgsTemporalNavigationObject()
    play_dates(project, ["2024-04-13", "2024-04-01", "2024-05-07"], controller)
    assert _frames(controller) == [("2024-04-01", "2024-04-01"), ("2024-04-13", "2024-04-13"),
                                   ("2024-05-07", "2024-05-07")]
    settings = project.timeSettings()
    assert settings.timeStepUnit() == _irregular_step() and settings.timeStep() == 1
    span = settings.temporalRange()
    assert (span.begin().date().toString("yyyy-MM-dd"), span.end().date().toString("yyyy-MM-dd")) == (
        "2024-04-01", "2024-05-07")


def test_a_sar_series_enters_the_project_as_one_group_for_the_temporal_controller(demo_scene, trained_model, run_alg,
                                                                                  tmp_path, monkeypatch):
    import processing
    from qgis.core import QgsTemporalNavigationObject
    from qgis.PyQt.QtCore import QDate

    from stars_core.change.demo_series import make_demo_series

    headless_postprocessing(monkeypatch)
    controller = QgsTemporalNavigationObject()  # the Temporal Controller panel's, in QGIS with a window
    monkeypatch.setattr("stars_qgis.style._canvas_controller", lambda: controller)
    series = make_demo_series(tmp_path, 3, size=256, seed=1)
    res = processing.runAndLoadResults("stars:segmenttimeseries", {
        "DATES": str(series["dates"]), "MODEL": str(trained_model), "OUTPUT_FOLDER": str(tmp_path / "maps"),
        "RUNTIME": 1, **SEG})
    assert res["DONE"] == 3 and Path(res["RECORD"]).is_file()
    group = QgsProject.instance().layerTreeRoot().findGroup("land cover series")
    assert group is not None, [(l.name(), l.source()) for l in QgsProject.instance().mapLayers().values()]
    layers = sorted((l.layer() for l in group.findLayers()), key=lambda l: l.name())
    assert [l.name() for l in layers] == ["land cover 2024-04-01", "land cover 2024-04-13", "land cover 2024-04-25"]
    for layer in layers:
        props = layer.temporalProperties()
        assert props.isActive() and layer.source().endswith("_filtered.tif")
        assert props.fixedTemporalRange().begin().date() == QDate.fromString(layer.name()[-10:], "yyyy-MM-dd")
        assert isinstance(layer.renderer(), QgsPalettedRasterRenderer)
    days = [l.name()[-10:] for l in layers]  # the Temporal Controller: one frame per date, from first to last
    assert _frames(controller) == [(d, d) for d in days]
    span = QgsProject.instance().timeSettings().temporalRange()
    assert span.begin().date().toString("yyyy-MM-dd") == days[0] and span.end().date().toString("yyyy-MM-dd") == days[-1]


def test_one_date_with_the_default_filter_is_mapped_without_it_and_messages_name_the_dialog(
        demo_scene, trained_model, run_alg, tmp_path):
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    from stars_core.change.demo_series import make_demo_series

    series = make_demo_series(tmp_path, 2, size=256, seed=1)
    said = []

    class Feedback(QgsProcessingFeedback):
        def pushInfo(self, info):  # noqa: N802
            said.append(info)

    one = sorted(series["folder"].glob("S1_*.tif"))[0]
    res, _ = run_alg("stars:segmenttimeseries", {"INPUTS": [str(one)], "MODEL": str(trained_model),
                                                 "OUTPUT_FOLDER": str(tmp_path / "maps"), "RUNTIME": 1, **SEG},
                     Feedback())
    assert res["DONE"] == 1 and any("without the temporal filter" in line for line in said), said
    assert not list((tmp_path / "maps").glob("*_filtered.tif"))
    unnamed = tmp_path / "scene.tif"
    with rasterio.open(one) as src:
        profile, data = src.profile, src.read()
    with rasterio.open(unnamed, "w", **profile) as dst:
        dst.write(data)
    with pytest.raises(QgsProcessingException) as raised:
        run_alg("stars:segmenttimeseries", {"INPUTS": [str(unnamed)], "MODEL": str(trained_model),
                                            "OUTPUT_FOLDER": str(tmp_path / "other"), **SEG})
    message = str(raised.value)
    assert "--dates" not in message and "the 'Dates table (CSV: date,path) instead' parameter" in message, message


def test_core_messages_name_the_dialog_parameters_not_the_flags(stars_provider):
    from stars_core.classmap import CLASS_TABLE_WHERE

    distill = stars_provider.algorithm("distillmodel")
    chip = distill.parameterDefinition("CHIP_SIZE").description()
    said = distill.in_dialog_terms("the raster is smaller than a chip; give --chip-size 64 or a larger raster")
    assert said == f"the raster is smaller than a chip; give the '{chip}' parameter set to 64 or a larger raster"
    change = stars_provider.algorithm("landcoverchange")
    table = change.parameterDefinition("CLASS_TABLE").description()
    assert change.in_dialog_terms(f"map both dates with one model, or give --class-table") == \
        f"map both dates with one model, or give the '{table}' parameter"
    assert change.in_dialog_terms(f"give one: {CLASS_TABLE_WHERE}") == "give one: the 'Class table' parameter"
