"""`make demo`: the end-to-end demo through QGIS. Not complete yet: it needs the segmentation
(issue 4) and QGIS plugin (issue 5) pieces; until then it says so and exits non-zero."""
import sys

MISSING = """make demo is not complete yet. What works today:
  .venv/bin/stars demo-scene --out demo
  .venv/bin/stars train --m1 demo/sar.tif --m2 demo/optical.tif --labels demo/labels.tif \\
      --class-table demo/classes.csv --out demo/model.stars --backbone resnet18 --steps 300 --chip-size 256
  .venv/bin/stars info demo/model.stars
Still missing: `stars segment` / `stars evaluate` (sliding-window inference) and the QGIS
Processing algorithms that the demo drives through qgis_process."""


def main() -> int:
    print(MISSING, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
