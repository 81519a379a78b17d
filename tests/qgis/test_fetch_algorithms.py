"""The two fetch algorithms (issue 42) in real QGIS against the real local servers (tests/servers/):
the dry-run list in the log before any read, the outputs loaded and styled, the extent's own CRS, the
series as a temporal group, and QGIS's proxy settings carrying the search and the reads."""
import http.server
import threading
import urllib.request
from pathlib import Path

import pytest
import rasterio
from qgis.core import (QgsApplication, QgsPalettedRasterRenderer, QgsProcessingException, QgsProcessingFeedback,
                       QgsProcessingParameterDefinition, QgsProject)
from rasterio.warp import transform_bounds

from stars_core.classes import ClassTable
from tests.qgis.test_qgis_algorithms import headless_postprocessing

pytest.importorskip("pystac_client")


def _lonlat_box(servers, margin: float = 0.2) -> tuple[float, float, float, float]:
    """A lon/lat box inside the catalogue's scene (every item covers it)."""
    wc = next(i for i in servers.catalogue["items"] if i["collection"] == "esa-worldcover")
    x0, y0, x1, y1 = wc["bbox"]
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    return x0 + dx, y0 + dy, x1 - dx, y1 - dy


def _extent(box, crs: str = "EPSG:4326") -> str:
    """QGIS's text form of an extent: xmin,xmax,ymin,ymax [CRS]."""
    return f"{box[0]!r},{box[2]!r},{box[1]!r},{box[3]!r} [{crs}]"


def _params(servers, tmp_path, **extra) -> dict:
    return {"AOI": _extent(_lonlat_box(servers)), "START": "2024-04-01", "END": "2024-04-30",
            "STAC_URL": servers.stac.url, "OUTPUT_FOLDER": str(tmp_path / "pair"), **extra}


class Said(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.lines = []

    def pushInfo(self, info):  # noqa: N802
        self.lines.append(info)

    def reportError(self, error, fatalError=False):  # noqa: N802
        self.lines.append(f"ERROR {error}")


def test_the_dry_run_lists_the_items_in_the_log_and_reads_no_pixel(servers, run_alg, tmp_path):
    said = Said()
    res, _ = run_alg("stars:getsentinelpair", _params(servers, tmp_path, DRY_RUN=True), said)
    log = "\n".join(said.lines)
    for item in servers.catalogue["items"]:
        assert item["id"] in log
    assert "total: about" in log and "dry run: nothing read or written" in log
    assert servers.assets.requests == [] and not (tmp_path / "pair" / "sar.tif").exists()


def test_the_pair_is_loaded_and_the_labels_styled_with_their_class_table(servers, stars_provider, tmp_path,
                                                                         monkeypatch):
    import processing

    headless_postprocessing(monkeypatch)
    res = processing.runAndLoadResults("stars:getsentinelpair", _params(servers, tmp_path, ORBIT=2))
    out = tmp_path / "pair"
    assert res["LABELS"] == str(out / "labels.tif") and Path(res["PROVENANCE"]).is_file()
    with rasterio.open(res["SAR"]) as sar:
        assert sar.tags()["orbits"] == "descending" and sar.crs.to_epsg() == 32632  # the dialog's orbit choice
    loaded = {l.source(): l for l in QgsProject.instance().mapLayers().values()}
    assert {str(out / n) for n in ("sar.tif", "optical.tif", "clear.tif", "labels.tif")} <= set(loaded)
    renderer = loaded[str(out / "labels.tif")].renderer()
    table = ClassTable.from_file(out / "classes.csv")
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    assert [c.label for c in renderer.classes()] == list(table.names) and "Tree cover" in table.names
    assert [c.color.name() for c in renderer.classes()] == list(table.colors)


def test_an_extent_in_a_projected_crs_is_taken_in_that_crs(servers, run_alg, tmp_path):
    box = transform_bounds("EPSG:4326", "EPSG:32632", *_lonlat_box(servers, margin=0.3))
    box = tuple(round(v, -1) for v in box)  # on the 10 m lattice
    res, _ = run_alg("stars:getsentinelpair", {**_params(servers, tmp_path), "AOI": _extent(box, "EPSG:32632")})
    with rasterio.open(res["SAR"]) as sar:
        assert tuple(sar.bounds) == pytest.approx(box, abs=10.0)


def test_messages_name_the_dialogs_parameters(servers, run_alg, tmp_path):
    with pytest.raises(QgsProcessingException, match="'Refuse to read more than \\(GB\\)' parameter"):
        run_alg("stars:getsentinelpair", _params(servers, tmp_path, MAX_GB=0.0001))
    with pytest.raises(QgsProcessingException, match="'Last date \\(inclusive\\)' parameter"):
        run_alg("stars:getsentinelpair", _params(servers, tmp_path, START="2024-05-01", END="2024-04-01"))
    assert servers.assets.requests == []


def test_the_collections_and_the_label_coverage_are_dialog_parameters(servers, run_alg, tmp_path):
    from stars_core.fetch.sources import SOURCES

    with pytest.raises(QgsProcessingException, match="has no collection 'landsat-c2-l2': it serves esa-worldcover"):
        run_alg("stars:getsentinelpair", _params(servers, tmp_path, DRY_RUN=True, LABELS_COLLECTION="landsat-c2-l2"))
    io_lulc = [n for n, s in SOURCES.items() if s.role == "labels"].index("pc-io-lulc-annual-v02")
    with pytest.raises(QgsProcessingException, match="cover only .*% of the area.* pass the 'Share of the area the "
                       "labels must cover"):
        run_alg("stars:getsentinelpair", _params(servers, tmp_path, DRY_RUN=True, LABELS_SOURCE=io_lulc))
    said = Said()
    run_alg("stars:getsentinelpair", _params(servers, tmp_path, DRY_RUN=True, LABELS_SOURCE=io_lulc,
                                             MIN_LABEL_COVERAGE=0.4, SAR_COLLECTION="sentinel-1-rtc"), said)
    assert any("footprints cover 50% of the area" in line for line in said.lines)
    assert servers.assets.requests == []


def test_the_series_enters_the_project_as_a_temporal_group(servers, stars_provider, tmp_path, monkeypatch):
    import processing
    from qgis.PyQt.QtCore import QDate

    headless_postprocessing(monkeypatch)
    res = processing.runAndLoadResults("stars:getsentinelseries", _params(servers, tmp_path))
    days = sorted(p.stem[3:] for p in servers.catalogue["scene"]["series"].glob("S1_*.tif"))
    assert res["COUNT"] == len(days) == 3 and Path(res["DATES"]).is_file()
    group = QgsProject.instance().layerTreeRoot().findGroup("Sentinel-1 series")
    assert group is not None
    layers = sorted((node.layer() for node in group.findLayers()), key=lambda l: l.name())
    assert [l.name() for l in layers] == [f"Sentinel-1 {d}" for d in days]
    for layer, day in zip(layers, days):
        props = layer.temporalProperties()
        assert props.isActive() and props.fixedTemporalRange().begin().date() == QDate.fromString(day, "yyyy-MM-dd")
        assert not isinstance(layer.renderer(), QgsPalettedRasterRenderer)  # an image, not a class map


@pytest.mark.parametrize("algorithm", ["stars:getsentinelseries", "stars:getsentinelpair"])
def test_the_relative_orbit_is_an_advanced_parameter_of_both_fetches(servers, run_alg, tmp_path, algorithm):
    alg = QgsApplication.processingRegistry().algorithmById(algorithm)
    param = alg.parameterDefinition("RELATIVE_ORBIT")
    assert param is not None and param.flags() & QgsProcessingParameterDefinition.Flag.FlagAdvanced
    said = Said()
    run_alg(algorithm, _params(servers, tmp_path, DRY_RUN=True, RELATIVE_ORBIT="168"), said)
    s1 = {i["id"]: i["properties"]["sat:relative_orbit"] for i in servers.catalogue["items"]
          if i["collection"] == "sentinel-1-rtc"}
    log = "\n".join(said.lines)
    assert {i for i in s1 if i in log} == {i for i, orbit in s1.items() if orbit == 168}
    assert "sar: relative orbits 168 descending (1)" in log and servers.assets.requests == []


# --- QGIS's proxy settings -------------------------------------------------------------------------------

class ForwardProxy(http.server.ThreadingHTTPServer):
    """A forward HTTP proxy on 127.0.0.1 that logs the absolute URLs it is asked for."""

    def __init__(self):
        self.seen = []
        super().__init__(("127.0.0.1", 0), _Forward)


class _Forward(http.server.BaseHTTPRequestHandler):
    def _forward(self, body: bool) -> None:
        self.server.seen.append(self.path)
        sent = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
        request = urllib.request.Request(self.path, data=sent, method=self.command,
                                         headers={k: v for k, v in self.headers.items()
                                                  if k.lower() not in ("proxy-connection", "connection", "host")})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            answer = opener.open(request, timeout=30)
        except urllib.error.HTTPError as exc:
            answer = exc
        data = answer.read() if body else b""
        self.send_response(answer.status if hasattr(answer, "status") else answer.code)
        for key, value in answer.headers.items():
            if key.lower() not in ("transfer-encoding", "connection"):
                self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        self._forward(True)

    def do_HEAD(self):  # noqa: N802
        self._forward(False)

    def do_POST(self):  # noqa: N802 (pystac-client searches by POST)
        self._forward(True)

    def log_message(self, *args):
        pass


@pytest.fixture
def qgis_proxy_setting():
    """Sets QGIS's proxy (as Settings > Options > Network does) to the given port; restored after."""
    from qgis.core import QgsNetworkAccessManager
    from qgis.PyQt.QtNetwork import QNetworkProxy

    manager = QgsNetworkAccessManager.instance()

    def use(port: int) -> None:
        manager.setFallbackProxyAndExcludes(QNetworkProxy(QNetworkProxy.ProxyType.HttpProxy, "127.0.0.1", port), [],
                                            [])

    yield use
    manager.setFallbackProxyAndExcludes(QNetworkProxy(QNetworkProxy.ProxyType.NoProxy), [], [])


def test_qgis_proxy_settings_carry_the_search_and_the_reads(servers, run_alg, tmp_path, qgis_proxy_setting):
    from osgeo import gdal

    gdal.VSICurlClearCache()  # blocks an earlier test read would come from GDAL's cache, not the network
    proxy = ForwardProxy()
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        qgis_proxy_setting(proxy.server_address[1])
        said = Said()
        res, _ = run_alg("stars:getsentinelseries", _params(servers, tmp_path), said)
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert res["COUNT"] == 3
    assert any(u.startswith(servers.stac.url + "/search") for u in proxy.seen), proxy.seen[:5]
    assert any(u.startswith(servers.assets.url) and u.endswith(".tif") for u in proxy.seen), proxy.seen[:5]
    assert any("through the proxy 127.0.0.1:" in line for line in said.lines)


def test_a_refused_proxy_is_one_line_naming_the_api(servers, run_alg, tmp_path, qgis_proxy_setting):
    from tests.servers.stac import free_port

    qgis_proxy_setting(free_port())  # nothing listens there
    with pytest.raises(QgsProcessingException, match=f"STAC API at {servers.stac.url}.*proxy") as raised:
        run_alg("stars:getsentinelpair", _params(servers, tmp_path, DRY_RUN=True))
    assert "\n" not in str(raised.value) and servers.assets.requests == []


# --- a graphical model: area -> pair -> train -> series -> maps -> change ---------------------------------

def _child(model, alg_id: str, child_id: str, static: dict, wired: dict, output: str | None = None) -> None:
    """A child algorithm with static values, values wired from other children's outputs and, if
    `output` names one of its outputs, that output as the model's (named `child_id`)."""
    from qgis.core import (QgsProcessingModelChildAlgorithm, QgsProcessingModelChildParameterSource as Source,
                           QgsProcessingModelOutput)

    child = QgsProcessingModelChildAlgorithm(alg_id)
    child.setChildId(child_id)
    for key, value in static.items():
        child.addParameterSources(key, [Source.fromStaticValue(value)])
    for key, (other, name) in wired.items():
        child.addParameterSources(key, [Source.fromChildOutput(other, name)])
    if output:
        out = QgsProcessingModelOutput(child_id, child_id)
        out.setChildId(child_id)
        out.setChildOutputName(output)
        child.setModelOutputs({child_id: out})
    model.addChildAlgorithm(child)


def test_area_to_change_runs_as_a_graphical_model(servers, stars_provider, tmp_path):
    """Get pair -> Train STARS -> Get series -> Segment a SAR time series -> Land-cover change, wired in
    a Processing model as the modeler would, on the local servers' tiny scene."""
    import processing
    from qgis.core import QgsProcessingModelAlgorithm

    from stars_core.classmap import change_record

    model = QgsProcessingModelAlgorithm("area to change", "tests")
    area = {k: v for k, v in _params(servers, tmp_path).items() if k != "OUTPUT_FOLDER"}
    _child(model, "stars:getsentinelpair", "pair", {**area, "OUTPUT_FOLDER": str(tmp_path / "pair")}, {})
    _child(model, "stars:trainstars", "train",
           {"STEPS": 40, "LR": 0.002, "BATCH_SIZE": 4, "CHIP_SIZE": 64, "BACKBONE": 2, "ENCODER_WIDTH": 16, "DEVICE": 1,
            "IGNORE_VALUES": "0", "OUTPUT": str(tmp_path / "model.stars")},
           {"M1": ("pair", "SAR"), "M2": ("pair", "OPTICAL"), "LABELS": ("pair", "LABELS"),
            "CLASS_TABLE": ("pair", "CLASS_TABLE")})
    _child(model, "stars:getsentinelseries", "series", {**area, "ORBIT": 0}, {})
    _child(model, "stars:segmenttimeseries", "maps",
           {"RUNTIME": 1, "TILE_SIZE": 64, "OVERLAP": 16, "BATCH_SIZE": 2, "DEVICE": 1, "TEMPORAL_FILTER": False},
           {"MODEL": ("train", "OUTPUT"), "DATES": ("series", "DATES")})
    _child(model, "stars:landcoverchange", "change", {"UNCHANGED": 1},
           {"MAP_A": ("maps", "FIRST_MAP"), "MAP_B": ("maps", "LAST_MAP")}, output="OUTPUT")
    model.updateDestinationParameters()  # the model's own name for the output ("change:change" on 3.22)
    (name,) = [d.name() for d in model.destinationParameterDefinitions()]
    said = Said()
    try:
        res = processing.run(model, {name: str(tmp_path / "change.tif")}, feedback=said)
    except QgsProcessingException:
        pytest.fail("\n".join(said.lines)[-3000:])
    assert (tmp_path / "model.stars").stat().st_size > 0
    with rasterio.open(res[name]) as changed, rasterio.open(tmp_path / "pair" / "sar.tif") as sar:
        assert changed.crs == sar.crs and changed.transform == sar.transform  # the fetched grid, end to end
        record = change_record(changed)
    days = sorted(p.stem[3:] for p in servers.catalogue["scene"]["series"].glob("S1_*.tif"))
    assert Path(record["map_a"]).name == f"{days[0]}.tif" and Path(record["map_b"]).name == f"{days[-1]}.tif"


def test_without_pystac_client_the_dialog_says_what_to_install(servers, run_alg, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pystac_client", None)  # an import of it fails, as where it is absent
    with pytest.raises(QgsProcessingException, match='pip install "pystac-client=='):
        run_alg("stars:getsentinelseries", _params(servers, tmp_path, DRY_RUN=True))


def test_the_dialogs_cache_folder_serves_a_second_run_and_no_cache_keeps_nothing(servers, run_alg, tmp_path):
    import json

    from osgeo import gdal

    cache = tmp_path / "cache"
    run_alg("stars:getsentinelseries", _params(servers, tmp_path, CACHE=str(cache), ORBIT=1,
                                               OUTPUT_FOLDER=str(tmp_path / "s1")), Said())
    assert list(cache.glob("*/*.tif"))
    gdal.VSICurlClearCache()
    servers.assets.reset()
    run_alg("stars:getsentinelseries", _params(servers, tmp_path, CACHE=str(cache), ORBIT=1,
                                               OUTPUT_FOLDER=str(tmp_path / "again")), Said())
    assert servers.assets.requests == []
    record = json.loads((tmp_path / "again" / "provenance.json").read_text())["cache"]
    assert record["folder"] == str(cache) and record["items_from_cache"] and not record["items_read"]
    run_alg("stars:getsentinelseries", _params(servers, tmp_path, NO_CACHE=True, ORBIT=1,
                                               OUTPUT_FOLDER=str(tmp_path / "none")), Said())
    assert servers.assets.requests and json.loads((tmp_path / "none" / "provenance.json").read_text())["cache"][
        "folder"] is None
