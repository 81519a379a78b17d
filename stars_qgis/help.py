"""Where each algorithm's Help button leads: its own page of the documentation site, offline.

The plugin ZIP carries the built site in `help/` (`make package`); a development checkout uses the
site `make docs` built into `build/site`, else the page's Markdown source in `docs/qgis/`.
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def help_page(algorithm: str) -> Path | None:
    """The local file of the algorithm's page (`stars:<algorithm>` -> qgis/<algorithm>.html)."""
    for site in (HERE / "help", HERE.parent / "build" / "site"):
        page = site / "qgis" / f"{algorithm}.html"
        if page.is_file():
            return page
    source = HERE.parent / "docs" / "qgis" / f"{algorithm}.md"
    return source if source.is_file() else None


def help_url(algorithm: str) -> str:
    page = help_page(algorithm)
    return page.as_uri() if page else ""
