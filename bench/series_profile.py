"""Where the time of `stars segment-series --probabilities` and the temporal filter goes.

The demo series (`make_demo_series`), each date repeated to SIZE x SIZE by a VRT, segmented with
per-date probabilities by MODEL on the default runtime, then filtered (`filter_folder`); the seconds
of each step are summed over the dates by wrapping the toolbox's own functions: the tiles through
the network and their writing (`_predict_on_grid`), overviews of the float outputs (`_finish`), the
uint8 probabilities (`to_uint8`), and the filter's reading and writing (`_filter_strip`) with its
Viterbi decoding inside it. Prints, never asserts. Usage:
    python bench/series_profile.py --model demo_out/model.stars [--size 4096] [--dates 3]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SECONDS: dict[str, float] = {}


def timed(module, name: str) -> None:
    inner = getattr(module, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            SECONDS[name] = SECONDS.get(name, 0.0) + time.perf_counter() - start

    setattr(module, name, wrapper)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "demo_out" / "model.stars"))
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--dates", type=int, default=3)
    args = ap.parse_args()
    import stars_core.change.series as series
    import stars_core.change.temporal as temporal
    import stars_core.segmentation.infer as infer
    from series_speed import series_inputs

    from stars_core.config import SegmentConfig

    for module, name in ((infer, "_predict_on_grid"), (infer, "_finish"), (series, "to_uint8"),
                         (temporal, "_filter_strip"), (temporal, "viterbi")):
        timed(module, name)
    (ROOT / "build").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as tmp_name:
        tmp = Path(tmp_name)
        dates = series.read_dates(table=series_inputs(tmp, args.dates, args.size))
        start = time.perf_counter()
        series.segment_series(args.model, dates, tmp / "series", SegmentConfig(tile_size=512), probabilities=True,
                              log=lambda *_: None)
        segmenting = time.perf_counter() - start
        start = time.perf_counter()
        series.filter_folder(tmp / "series")
        filtering = time.perf_counter() - start
    print(f"\n{args.dates} dates of {args.size} x {args.size}, {Path(args.model).name}")
    print(f"| step | seconds per date |\n|---|---:|\n| segment-series --probabilities, all | {segmenting / args.dates:.1f} |")
    for name in ("_predict_on_grid", "_finish", "to_uint8"):
        print(f"| {name} | {SECONDS.get(name, 0) / args.dates:.1f} |")
    print(f"| temporal filter, all | {filtering / args.dates:.1f} |")
    for name in ("_filter_strip", "viterbi"):
        print(f"| {name} | {SECONDS.get(name, 0) / args.dates:.1f} |")


if __name__ == "__main__":
    main()
