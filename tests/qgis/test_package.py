"""The plugin ZIP passes the QGIS plugin repository's usual checks and ships its help site."""
import re
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
    assert "stars_qgis/help/index.html" in names and "stars_qgis/stars_core/engines/onnx_model.py" in names
    _every_algorithm_has_its_help_page_offline(zipfile.ZipFile(out), names)
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(out) as src, zipfile.ZipFile(broken, "w") as dst:
        for n in src.namelist():
            if not n.endswith("LICENSE"):
                dst.writestr(n, src.read(n))
        dst.writestr("stars_qgis/x.pyc", b"")
    problems = plugin.check(broken)
    assert any("LICENSE missing" in p for p in problems) and any("compiled files" in p for p in problems)


def _every_algorithm_has_its_help_page_offline(z: zipfile.ZipFile, names: list[str]) -> None:
    """Each algorithm's page is in the ZIP, names the algorithm, says what its dialog says, and loads
    no script, style sheet or font from the network."""
    from stars_qgis.provider import StarsProvider

    pages = {n[len("stars_qgis/help/qgis/"):-5] for n in names if n.startswith("stars_qgis/help/qgis/")
             and n.endswith(".html")} - {"index"}
    algorithms = {a.name(): a for a in StarsProvider()._algorithms()}
    assert pages == set(algorithms)
    for name, alg in algorithms.items():
        html = z.read(f"stars_qgis/help/qgis/{name}.html").decode()
        assert f"<title>{alg.displayName()} - STARS toolbox</title>" in html.replace("&#39;", "'")
        first = re.sub(r"<[^>]+>", " ", alg.shortHelpString()).split(". ")[0].split()
        assert " ".join(first[:12]) in " ".join(re.sub(r"<[^>]+>", " ", html).replace("&#39;", "'").split()), name
        remote = re.findall(r'<(?:script|img)[^>]*src="https?://[^"]*"|<link[^>]*stylesheet[^>]*href="https?://[^"]*"'
                            r'|url\(["\']?https?://', html)
        assert not remote, (name, remote[:3])
