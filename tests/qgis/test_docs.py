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
    key = '<code class="stars-key">{}</code>'  # whole, never broken mid-word (docs/assets/stars.css)
    assert "`stars:landcoverchange`" in text and f"| {key.format('MAP_A')} | Land-cover map, first date | raster |" in text
    assert f"| {key.format('CHANGED_HA')} |" in text  # outputs too


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


def _build(tmp_path, config_text: str = "", *args: str):
    """`mkdocs build --strict` of the project's own mkdocs.yml, or of one that inherits it."""
    import os
    import subprocess

    config = ROOT / "mkdocs.yml"
    if config_text:
        config = tmp_path / "mkdocs.yml"
        config.write_text(config_text)
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), *args],
                          cwd=tmp_path, capture_output=True, text=True, env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))


def test_the_site_builds_with_the_api_from_the_docstrings_and_the_record_out_of_search(tmp_path):
    import json

    pytest.importorskip("mkdocstrings")
    site = tmp_path / "site"
    done = _build(tmp_path, "", "--site-dir", str(site))
    assert done.returncode == 0, done.stderr[-800:]
    pages = {doc["location"].split("#")[0] for doc in json.loads((site / "search/search_index.json").read_text())["docs"]}
    assert "runtimes.html" in pages and "model-file.html" in pages
    assert not [p for p in pages if p.startswith("results-record")], "the record floods the search"
    assert (site / "results-record.html").is_file()  # on the site all the same
    api = (site / "model-file.html").read_text()
    for name in ["StarsConfig", "SegmentConfig", "build_model", "segmentation.infer.segment", "training.train.train",
                 "stars_core.classmap", "style_class_map"]:
        assert name in api, f"the Python API page lacks {name}"
    assert "<li><code>in_channels</code>: band counts" in api  # `name: what` lines as a list (docs_griffe.py)
    assert 'class="stars-key">CONNECTIVITY<' in (site / "qgis" / "landcoverpolygons.html").read_text()


def test_a_work_session_or_a_long_code_line_fails_the_build(tmp_path):
    import shutil

    docs = shutil.copytree(ROOT / "docs", tmp_path / "docs")
    page = docs / "limits.md"
    page.write_text(page.read_text() + "\nMeasured in session 12 on this machine.\n\n```bash\nstars segment "
                    + "x" * 70 + "\n```\n")
    done = _build(tmp_path, f"INHERIT: {ROOT / 'mkdocs.yml'}\ndocs_dir: {docs}\nsite_dir: {tmp_path / 'site'}\n"
                  f"hooks: [{ROOT / 'scripts' / 'docs_hooks.py'}]\n")
    assert done.returncode != 0 and "docs/limits.md" in done.stderr, done.stderr[-800:]
    assert "'session' for the project's work" in done.stderr and "a code line of 84 characters" in done.stderr


def test_session_is_allowed_for_qgis_and_onnx_runtime_only(hooks):
    fine = ("Restart QGIS: the QGIS session keeps the old module. ONNX Runtime's calibration session and its\n"
            "ONNX Runtime sessions (onnxruntime.InferenceSession), OpenVINO sessions, session options.")
    assert hooks.session_wording(fine, "x.md") == []
    for bad in ["(session 8)", "this session's machine", "Session 13 found it", "in earlier sessions"]:
        assert hooks.session_wording(f"Measured {bad}.", "x.md"), bad
    assert hooks.session_wording("a\nb in session 4", "x.md")[0].startswith("x.md:2:")


def test_code_lines_are_checked_inside_fences_only(hooks):
    long = "y" * 81
    text = f"{long}\n\n```bash\n{'z' * 80}\n```\n\n````markdown\n```\n{long}\n```\n````\n"
    assert [p.split(":")[1] for p in hooks.long_code_lines(text, "x.md")] == ["9"]


def test_the_command_line_reference_has_help_for_every_option_and_no_empty_defaults(hooks):
    import argparse

    from stars_core.cli import _parser

    top = _parser()
    missing = [f"{name} {a.option_strings or a.dest}" for name, parser, _ in [("stars", top, None),
                                                                               *hooks._commands(top, "stars")]
               for a in parser._actions if not a.help and not isinstance(a, argparse._SubParsersAction)]
    assert not missing, f"options without help: {missing}"
    reference = hooks.cli_reference()
    assert "(default: [])" not in reference and "(default: None)" not in reference
    assert "| `--seed` `SEED` | random seed" in reference

