"""The plugin ZIP passes the QGIS plugin repository's usual checks and ships its help page."""
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_package_is_clean_and_complete(tmp_path):
    out = tmp_path / "stars_qgis.zip"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "plugin.py"), "package", "--out", str(out)], check=True,
                   capture_output=True)
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import plugin
    finally:
        sys.path.pop(0)
    assert plugin.check(out) == []
    names = zipfile.ZipFile(out).namelist()
    assert "stars_qgis/help/README.html" in names and "stars_qgis/stars_core/onnx_model.py" in names
    html = zipfile.ZipFile(out).read("stars_qgis/help/README.html").decode()
    assert 'id="installing-without-a-terminal"' in html and 'id="segmentation-without-pytorch-onnx"' in html
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(out) as src, zipfile.ZipFile(broken, "w") as dst:
        for n in src.namelist():
            if not n.endswith("LICENSE"):
                dst.writestr(n, src.read(n))
        dst.writestr("stars_qgis/x.pyc", b"")
    problems = plugin.check(broken)
    assert any("LICENSE missing" in p for p in problems) and any("compiled files" in p for p in problems)
