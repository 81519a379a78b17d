"""The class table: label values mapped to contiguous indices, with names and colours."""
from __future__ import annotations

import colorsys
import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .runtime import InputError

IGNORE = 255  # index of pixels excluded from every loss and metric


@dataclass(frozen=True)
class ClassTable:
    """values[i] is the label value of class index i; names and colours ("#rrggbb") follow."""

    values: tuple[int, ...]
    names: tuple[str, ...]
    colors: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(int(v) for v in self.values))
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "colors", tuple(str(c) for c in self.colors))
        if not (len(self.values) == len(self.names) == len(self.colors)):
            raise InputError("class table values, names and colours must have the same length")
        if len(self.values) < 2:
            raise InputError(f"a class table needs at least 2 classes, got {len(self.values)}")
        if len(self.values) >= IGNORE:
            raise InputError(f"at most {IGNORE - 1} classes are supported, got {len(self.values)}")
        if len(set(self.values)) != len(self.values):
            raise InputError(f"class values must be unique, got {list(self.values)}")

    def __len__(self) -> int:
        return len(self.values)

    @classmethod
    def generated(cls, values: Iterable[int], names: Sequence[str] | None = None) -> "ClassTable":
        values = sorted(int(v) for v in values)
        return cls(tuple(values), tuple(names or [f"class {v}" for v in values]), tuple(palette(len(values))))

    @classmethod
    def from_file(cls, path: str | Path) -> "ClassTable":
        """A CSV (columns value, name[, color]) or JSON (a list of {value, name, color}) table."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"class table {str(path)!r} not found")
        if path.suffix.lower() == ".json":
            rows = json.loads(path.read_text())
            rows = rows.get("classes", rows) if isinstance(rows, dict) else rows
        else:
            with open(path, newline="") as f:
                rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(f)]
        if not rows or "value" not in rows[0]:
            raise InputError(f"class table {str(path)!r} needs a 'value' column (and 'name', optionally 'color')")
        try:
            values = [int(float(r["value"])) for r in rows]
        except (TypeError, ValueError) as exc:
            raise InputError(f"class table {str(path)!r} has a non-integer value: {exc}") from None
        defaults = palette(len(rows))
        names = [r.get("name") or f"class {v}" for r, v in zip(rows, values)]
        colors = [_hex(r.get("color") or r.get("colour") or d) for r, d in zip(rows, defaults)]
        return cls(tuple(values), tuple(names), tuple(colors))

    @classmethod
    def from_colormap(cls, colormap: Mapping[int, Sequence[int]], values: Iterable[int]) -> "ClassTable":
        """Colours of a raster's colour table for the given values (names generated)."""
        values = sorted(int(v) for v in values)
        colors = ["#{:02x}{:02x}{:02x}".format(*colormap[v][:3]) if v in colormap else c
                  for v, c in zip(values, palette(len(values)))]
        return cls(tuple(values), tuple(f"class {v}" for v in values), tuple(colors))

    def lookup(self, raw: np.ndarray, ignore_values: Iterable[int] = (), source: str = "labels",
               mask: np.ndarray | None = None) -> np.ndarray:
        """Raw label values -> uint8 class indices. Ignored values and `mask`ed pixels (no data)
        -> IGNORE; any other value missing from the table raises a ValueError naming it."""
        raw = np.asarray(raw)
        out = np.full(raw.shape, IGNORE, np.uint8)
        known = np.zeros(raw.shape, bool) if mask is None else mask.copy()
        for i, v in enumerate(self.values):
            hit = raw == v
            out[hit] = i
            known |= hit
        if mask is not None:
            out[mask] = IGNORE
        for v in ignore_values:
            known |= raw == v
        if not known.all():
            unknown = sorted(int(u) for u in np.unique(raw[~known])[:10])
            raise InputError(
                f"label value(s) {unknown} in {source} are not in the class table (values "
                f"{list(self.values)}); add them to the table or list them with --ignore-value"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"values": list(self.values), "names": list(self.names), "colors": list(self.colors)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ClassTable":
        return cls(tuple(data["values"]), tuple(data["names"]), tuple(data["colors"]))


def palette(n: int) -> list[str]:
    """n distinct colours (golden-angle hues)."""
    colours = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.381966) % 1.0, 0.65, 0.9)
        colours.append("#{:02x}{:02x}{:02x}".format(int(r * 255), int(g * 255), int(b * 255)))
    return colours


def _hex(colour: str) -> str:
    c = colour.strip()
    if c.startswith("#") and len(c) == 7:
        return c.lower()
    parts = [p for p in c.replace(";", ",").split(",") if p.strip()]
    if len(parts) >= 3:
        return "#{:02x}{:02x}{:02x}".format(*(int(float(p)) for p in parts[:3]))
    raise InputError(f"colour {colour!r} is neither #rrggbb nor r,g,b")


def rgb(colour: str) -> tuple[int, int, int]:
    h = colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)
