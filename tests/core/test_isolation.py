"""stars_core must never import QGIS or Qt: it runs in plain Python, on servers and in CI."""
import subprocess
import sys


def test_import_stars_core_pulls_no_qgis_or_qt():
    code = (
        "import sys, stars_core, stars_core.losses, stars_core.models;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'qgis', 'PyQt5', 'PyQt6', 'sip'});"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"stars_core imported {result.stdout.strip()} {result.stderr}"
