"""The documentation site's generated parts: every algorithm has its page, and the build says so
when one is missing (`make docs`, run by `make test`, builds the site itself)."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
mkdocs = pytest.importorskip("mkdocs")


@pytest.fixture
def hooks():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import docs_hooks
    finally:
        sys.path.pop(0)
    return docs_hooks


def test_an_algorithm_without_its_page_fails_the_build(tmp_path):
    import os
    import shutil
    import subprocess
    import sys

    docs = shutil.copytree(ROOT / "docs", tmp_path / "docs")
    (docs / "qgis" / "segmentmapsheets.md").unlink()
    config = tmp_path / "mkdocs.yml"
    config.write_text(f"INHERIT: {ROOT / 'mkdocs.yml'}\ndocs_dir: {docs}\nsite_dir: {tmp_path / 'site'}\n"
                      f"hooks: [{ROOT / 'scripts' / 'docs_hooks.py'}]\n")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config)], cwd=tmp_path,
                          capture_output=True, text=True, env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    assert done.returncode != 0 and "no page for ['segmentmapsheets']" in done.stderr, done.stderr[-800:]
    assert not (tmp_path / "site" / "qgis" / "segmentmapsheets.html").exists()


def test_the_generated_pages_follow_the_code(hooks):
    from stars_core.cli import _parser

    reference = hooks.cli_reference()
    commands = [name for name in _parser()._subparsers._group_actions[0].choices]
    assert all(f"## stars {name}\n" in reference for name in commands) and "--only" in reference
    from stars_qgis.provider import StarsProvider

    alg = next(a for a in StarsProvider()._algorithms() if a.name() == "landcoverchange")
    alg.initAlgorithm({})
    text = hooks.algorithm_help(alg)
    assert "`stars:landcoverchange`" in text and "| `MAP_A` | Land-cover map, first date | raster |" in text
    assert "| `CHANGED_HA` |" in text  # outputs too


def test_the_readme_stays_short():
    words = len((ROOT / "README.md").read_text().split())
    assert words < 1500, f"README.md has {words} words: put the detail into docs/"


def test_every_dialog_help_is_short_and_the_page_has_the_rest():
    import re

    from stars_qgis.provider import StarsProvider

    for alg in StarsProvider()._algorithms():
        words = len(re.sub(r"<[^>]+>", " ", alg.shortHelpString()).split())
        assert 30 < words <= 180, f"{alg.name()}: {words} words of short help; put the detail on its page"
        assert (ROOT / "docs" / "qgis" / f"{alg.name()}.md").is_file()
