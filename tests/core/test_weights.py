"""Named pretrained weights (stars_core/weights): the registry, fetching into the cache once with resume
and a hash check, the one-line failures, and band-name adaptation of the first layer. No test touches
the network: a loopback HTTP server started here serves weight files made here, and the registry is
pointed at it (STARS_WEIGHTS_MIRROR) with entries named after those files."""
import hashlib
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from stars_core.errors import InputError
from stars_core.weights import download, registry


class Server:
    """Serves `files` (name -> bytes) with Range requests; `cut` sends only the first bytes of the
    next response of a name (an interrupted download); `requests` records (name, Range header)."""

    def __init__(self):
        self.files, self.cut, self.requests = {}, {}, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append((name, self.headers.get("Range")))
                data = server.files.get(name)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                limit = server.cut.pop(name, None)
                self.wfile.write(body if limit is None else body[:limit])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/weights"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A server, a fresh cache, the registry pointed at the server; `add(name, state, bands)` makes a
    weights file, names it with its hash prefix as publishers do, serves it and registers it."""
    server = Server()
    monkeypatch.setenv("STARS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("STARS_WEIGHTS_MIRROR", server.url)
    monkeypatch.setattr(download, "TIMEOUT", 5)

    def add(name, state, bands=("VV", "VH"), arch="resnet18", content=None):
        buf = io.BytesIO()
        torch.save(state, buf)
        data = buf.getvalue()
        filename = f"{name}-{hashlib.sha256(data).hexdigest()[:8]}.pth"
        server.files[filename] = data if content is None else content
        e = registry.WeightsEntry(name, f"https://example.invalid/{filename}", arch, "timm", tuple(bands),
                                  "test normalisation", "CC0", "made by the test")
        monkeypatch.setitem(registry.REGISTRY, name, e)
        return e, data

    server.add = add
    yield server
    server.close()


def _resnet_state(in_channels=2, width=8, prefix=""):
    from stars_core.models.resnet import ResNet

    torch.manual_seed(0)
    state = ResNet("resnet18", in_channels=in_channels, width=width).state_dict()
    return {prefix + k: v for k, v in state.items()}


def test_the_registry_names_publishers_files_with_their_hashes():
    names = set(registry.REGISTRY)
    assert {"imagenet-resnet18", "imagenet-resnet34", "imagenet-resnet50", "ssl4eo-s1-resnet50",
            "ssl4eo-s2-resnet50"} <= names
    for e in registry.ENTRIES:
        assert len(e.hash_prefix) >= 8 and all(c in "0123456789abcdef" for c in e.hash_prefix), e.name
        assert e.url.startswith("https://") and e.filename.endswith(".pth") and e.licence and e.source
    assert registry.REGISTRY["ssl4eo-s1-resnet50"].bands == ("VV", "VH")
    assert len(registry.REGISTRY["ssl4eo-s2-resnet50"].bands) == 13


def test_a_download_is_checked_cached_and_never_fetched_again(served, capsys):
    from stars_core.cli import main as cli_main

    e, data = served.add("test-sar", _resnet_state())
    assert cli_main(["weights", "download", "test-sar"]) == 0
    path = download.cached(e)
    assert path is not None and path.read_bytes() == data and not list(path.parent.glob("*.partial"))
    assert cli_main(["weights", "download", "test-sar"]) == 0
    assert [r[0] for r in served.requests] == [e.filename]  # the cached file is not fetched again
    assert cli_main(["weights", "list"]) == 0
    assert f"cached: {path}" in capsys.readouterr().out


def test_a_file_that_does_not_match_its_hash_is_refused_and_nothing_cached(served):
    e, _ = served.add("test-bad", _resnet_state(), content=b"not the weights" * 100)
    with pytest.raises(InputError, match="refused, nothing was cached"):
        download.fetch(e, log=lambda m: None)
    assert not list((download.weights_dir()).glob("*"))


def test_an_interrupted_download_resumes_where_it_stopped(served):
    e, data = served.add("test-cut", _resnet_state())
    served.cut[e.filename] = len(data) // 3
    with pytest.raises(InputError, match="run the same command again to resume"):
        download.fetch(e, log=lambda m: None)
    partial = download.weights_dir() / (e.filename + ".partial")
    assert partial.stat().st_size == len(data) // 3 and download.cached(e) is None
    path = download.fetch(e, log=lambda m: None)
    assert path.read_bytes() == data and not partial.exists()
    assert served.requests[-1] == (e.filename, f"bytes={len(data) // 3}-")  # only the rest was asked for


def test_offline_says_what_to_download_and_where_to_put_it(served, monkeypatch):
    e, _ = served.add("test-offline", _resnet_state())
    served.close()
    with pytest.raises(InputError) as err:
        download.fetch(e, log=lambda m: None)
    line = str(err.value)
    assert "cannot download test-offline" in line and e.url in line and str(download.weights_dir()) in line
    assert "\n" not in line


def test_an_unwritable_or_full_cache_is_one_line(served, monkeypatch, tmp_path):
    e, _ = served.add("test-full", _resnet_state())
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("STARS_CACHE_DIR", str(blocker))  # a file where the folder should be
    with pytest.raises(InputError, match="cannot be written.*STARS_CACHE_DIR"):
        download.fetch(e, log=lambda m: None)
    monkeypatch.setenv("STARS_CACHE_DIR", str(tmp_path / "cache2"))

    class Full(io.BytesIO):
        def write(self, _):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(download, "open", lambda path, mode="r": Full() if "a" in mode or "w" in mode else
                        open(path, mode), raising=False)
    with pytest.raises(InputError, match="No space left on device.*free some space"):
        download.fetch(e, log=lambda m: None)
    assert download.cached(e) is None


def test_first_layer_filters_are_picked_by_band_name():
    from stars_core.models.resnet import adapt_first_conv, band_plan, pick_first_conv

    w = torch.randn(8, 13, 7, 7)
    s2 = registry.SENTINEL2_BANDS
    assert band_plan(s2, ("B02", "B03", "B04", "B08")) == ["B2", "B3", "B4", "B8"]
    picked = pick_first_conv(w, s2, ("B04", "B8A", "pan"))
    assert torch.allclose(picked[:, 0], w[:, 3] * 13 / 3) and torch.allclose(picked[:, 1], w[:, 8] * 13 / 3)
    assert torch.allclose(picked[:, 2], w.mean(1) * 13 / 3)  # a band the file lacks: the mean filter
    sar = torch.randn(8, 2, 7, 7)
    assert torch.equal(pick_first_conv(sar, ("VV", "VH"), ("Sigma0_VH_db", "Sigma0_VV_db")), sar[:, [1, 0]])
    assert torch.equal(pick_first_conv(sar, ("VV", "VH"), ("b1", "b2", "b3")), adapt_first_conv(sar, 3))


def test_training_from_a_registry_name_fetches_adapts_and_records(served, demo_scene, tmp_path, capsys):
    from stars_core.checkpoint import load_model
    from stars_core.cli import main as cli_main

    e, data = served.add("test-s1", _resnet_state(in_channels=2, width=8, prefix="encoder_q."))  # MoCo's keys
    out = tmp_path / "m.stars"
    assert cli_main(["train", "--m1", str(demo_scene["sar"]), "--m2", str(demo_scene["optical"]), "--labels",
                     str(demo_scene["labels"]), "--class-table", str(demo_scene["classes"]), "--ignore-value", "0",
                     "--out", str(out), "--backbone", "resnet18", "--encoder-width", "8", "--chip-size", "64",
                     "--steps", "1", "--batch-size", "2", "--workers", "0", "--device", "cpu",
                     "--pretrained-m1", "test-s1"]) == 0
    said = capsys.readouterr()
    assert "test-s1 (VV, VH) for the m1 bands" in said.out + said.err
    record = load_model(out, "cpu").meta.pretrained["m1"]
    assert record["registry"] == "test-s1" and record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["adaptation"]["m1"] and record["licence"] == "CC0"
    bad = cli_main(["train", "--m1", str(demo_scene["sar"]), "--m2", str(demo_scene["optical"]), "--labels",
                    str(demo_scene["labels"]), "--out", str(tmp_path / "n.stars"), "--steps", "1",
                    "--pretrained-m1", "no-such-weights"])
    assert bad == 2 and "not a registry name" in capsys.readouterr().err and not (tmp_path / "n.stars").exists()


def test_a_damaged_file_in_the_cache_is_checked_once_and_fetched_again(served, capsys):
    from stars_core.cli import main as cli_main

    e, data = served.add("test-trunc", _resnet_state())
    target = download.weights_dir() / e.filename
    target.parent.mkdir(parents=True)
    target.write_bytes(data[: len(data) // 2])  # cut short by a full disk, or copied in by hand
    assert download.cached(e) is None
    assert cli_main(["weights", "download", "test-trunc"]) == 0
    assert "does not match the SHA-256" in capsys.readouterr().out
    assert target.read_bytes() == data and download.cached(e) == target
    note = target.with_name(target.name + ".checked")
    assert note.read_text().split()[-1] == hashlib.sha256(data).hexdigest()  # the check is remembered
    requests = len(served.requests)
    assert cli_main(["weights", "download", "test-trunc"]) == 0 and len(served.requests) == requests


def test_a_mirror_without_a_scheme_names_the_variable(served, monkeypatch, capsys):
    from stars_core.cli import main as cli_main

    served.add("test-mirror", _resnet_state())
    monkeypatch.setenv("STARS_WEIGHTS_MIRROR", "127.0.0.1:9/weights")
    capsys.readouterr()
    assert cli_main(["weights", "download", "test-mirror"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "STARS_WEIGHTS_MIRROR='127.0.0.1:9/weights' is not a URL" in err
    assert "http://127.0.0.1:9/weights" in err


def test_a_registry_file_given_by_its_path_keeps_its_entry(served, tmp_path):
    e, data = served.add("test-path", _resnet_state())
    elsewhere = tmp_path / "downloads" / "my-copy.pth"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(data)
    assert download.resolve(elsewhere, log=lambda m: None) == (elsewhere, "test-path")
    assert download.entry_of(elsewhere) == e
    other = tmp_path / "downloads" / "other.pth"
    other.write_bytes(data + b"\0")
    assert download.resolve(other, log=lambda m: None) == (other, None) and download.entry_of(other) is None


def test_band_numbers_are_read_in_the_sensor_numbering_the_user_names():
    from stars_core.config import BAND_NUMBERINGS
    from stars_core.models.resnet import NUMBERINGS, as_sentinel2, band_plan, first_conv_plan, numbered

    assert tuple(NUMBERINGS) == BAND_NUMBERINGS  # the names the flag offers are the tables that exist

    s2 = registry.SENTINEL2_BANDS
    landsat = ("B1", "B2", "B3", "B4")  # Landsat 5/7 and 4-band Planet: blue, green, red, near infrared
    assert band_plan(s2, as_sentinel2(landsat)) == ["B1", "B2", "B3", "B4"]  # Sentinel-2's own numbers
    assert band_plan(s2, as_sentinel2(landsat, "landsat-5-7")) == ["B2", "B3", "B4", "B8"]
    assert band_plan(s2, as_sentinel2(landsat, "planet-4")) == ["B2", "B3", "B4", "B8"]
    assert as_sentinel2(("red", "nir", "B4"), "landsat-5-7") == ("red", "nir", "B8")  # names stay names
    assert band_plan(s2, as_sentinel2(("B2", "B5", "B6"), "landsat-8-9")) == ["B2", "B8", "B11"]
    assert numbered(landsat) and numbered(("B08",)) and not numbered(("VV", "red", "band 1"))
    assert first_conv_plan(("VV", "VH"), ("band 1", "band 2")) == (["VV", "VH"], "position")
    assert first_conv_plan(("VV", "VH"), ("Sigma0_VH_db", "x")) == (["VH", None], "name")
    assert first_conv_plan(("VV", "VH"), ("a", "b", "c")) == ([None, None, None], "mean")


def test_unnamed_bands_are_recorded_as_taken_by_position_with_a_warning(served, demo_scene, tmp_path, capsys):
    import rasterio

    from stars_core.checkpoint import load_model
    from stars_core.cli import main as cli_main
    from tests.core.helpers import rewrite

    served.add("test-s1b", _resnet_state(in_channels=2, width=8))
    sar = rewrite(demo_scene["sar"], tmp_path / "sar.tif")
    with rasterio.open(sar, "r+") as ds:
        ds.descriptions = (None, None)  # "band 1", "band 2"
    out = tmp_path / "m.stars"
    capsys.readouterr()
    assert cli_main(["train", "--m1", str(sar), "--m2", str(demo_scene["optical"]), "--labels",
                     str(demo_scene["labels"]), "--class-table", str(demo_scene["classes"]), "--ignore-value", "0",
                     "--out", str(out), "--backbone", "resnet18", "--encoder-width", "8", "--chip-size", "64",
                     "--steps", "1", "--batch-size", "2", "--workers", "0", "--device", "cpu",
                     "--pretrained-m1", "test-s1b"]) == 0
    said = capsys.readouterr()
    text = said.out + said.err
    assert "kept in its order" in text and "their order is a guess" in text and "mean of all" not in text
    record = load_model(out, "cpu").meta.pretrained["m1"]
    assert record["adaptation"]["m1"] == {"band 1": "VV", "band 2": "VH"} and record["adaptation_by"]["m1"] == "position"


def test_weights_without_batch_counters_load_into_per_modality_norms(tmp_path):
    from stars_core.config import StarsConfig
    from stars_core.models import build_model

    state = {k: v for k, v in _resnet_state(in_channels=3, width=16).items() if "num_batches_tracked" not in k}
    path = tmp_path / "old-torchvision.pth"
    torch.save(state, path)  # older torchvision files have no num_batches_tracked
    model = build_model(StarsConfig(backbone="resnet18", encoder_width=16, in_channels=(2, 3)), pretrained=path)
    shared = dict(model.shared.named_parameters()) if hasattr(model, "shared") else {}
    assert model is not None and any(torch.equal(v, state[k]) for k, v in shared.items() if k in state)
