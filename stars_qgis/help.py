"""Where each algorithm's Help button leads: the README section about it, shipped in the plugin as
HTML (`help/README.html`, written by `make package`), else the README of a development checkout."""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
SECTIONS = {  # algorithm name -> README section anchor (GitHub-style slug of the heading)
    "trainstars": "your-own-rasters-in-qgis",
    "segmentmissingmodality": "your-own-rasters-in-qgis",
    "segmentmapsheets": "your-own-rasters-in-qgis",
    "evaluatesegmentation": "your-own-rasters-in-qgis",
    "exportonnx": "segmentation-without-pytorch-onnx",
    "installdependencies": "installing-without-a-terminal",
    "demoscene": "what-make-demo-does",
    "createaccuracysample": "from-map-to-numbers-you-can-report",
    "cleanlandcovermap": "from-map-to-numbers-you-can-report",
    "landcoverpolygons": "from-map-to-numbers-you-can-report",
    "estimateaccuracyarea": "from-map-to-numbers-you-can-report",
    "landcoverchange": "change-between-dates",
    "segmenttimeseries": "change-between-dates",
}


def help_url(algorithm: str) -> str:
    anchor = SECTIONS.get(algorithm, "")
    packaged = HERE / "help" / "README.html"
    if packaged.is_file():
        return packaged.as_uri() + (f"#{anchor}" if anchor else "")
    checkout = HERE.parent / "README.md"
    return checkout.as_uri() if checkout.is_file() else ""
