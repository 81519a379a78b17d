"""The class table: label values mapped to contiguous indices, with names and colours."""
from __future__ import annotations

import colorsys
import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import InputError

IGNORE = 255  # index of pixels excluded from every loss and metric
MAX_VALUE = 65534  # class values must fit a uint16 GeoTIFF beside its no-data value 65535
_HEX = re.compile(r"#[0-9a-f]{6}")


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
        bad = [v for v in self.values if not 0 <= v <= MAX_VALUE]
        if bad:
            raise InputError(f"class values must be in 0..{MAX_VALUE} (they are written to a GeoTIFF), got {bad}")
        bad = [c for c in self.colors if not _HEX.fullmatch(c)]
        if bad:
            raise InputError(f"class colours must be #rrggbb, got {bad}")

    def __len__(self) -> int:
        return len(self.values)

    @classmethod
    def generated(cls, values: Iterable[int], names: Sequence[str] | None = None) -> "ClassTable":
        values = [int(v) for v in values]
        pairs = sorted(zip(values, list(names) if names else [None] * len(values)))
        values = [v for v, _ in pairs]
        names = [n if n is not None else f"class {v}" for v, n in pairs]
        return cls(tuple(values), tuple(names), tuple(palette(len(values))))

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
        defaults = palette(len(rows))
        values, names, colors = [], [], []
        for i, (r, default) in enumerate(zip(rows, defaults), start=1):
            where = f"class table {str(path)!r}, row {i}"
            values.append(_value(r.get("value"), where))
            names.append(str(r.get("name") or f"class {values[-1]}"))
            colour = r.get("color") or r.get("colour") or default
            if isinstance(colour, (list, tuple)):  # JSON [r, g, b]
                colour = ",".join(str(c) for c in colour)
            colors.append(_hex(str(colour), where))
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
        for v in ignore_values:  # ignored even when the table lists the value
            hit = raw == v
            out[hit] = IGNORE
            known |= hit
        if not known.all():
            unknown = sorted(int(u) for u in np.unique(raw[~known])[:10])
            raise InputError(
                f"label value(s) {unknown} in {source} are not in the class table (values "
                f"{list(self.values)}); add them to the table or list them with --ignore-value"
            )
        return out

    def value_index(self) -> np.ndarray:
        """A lookup table: entry v is the class index of label value v, -1 for values not in the
        table (covers 0..65535, every value a class raster holds)."""
        lut = np.full(65536, -1, np.int64)
        lut[np.asarray(self.values)] = np.arange(len(self))
        return lut

    def indices(self, values: Iterable[int], what: str = "class values") -> tuple[int, ...]:
        """Class indices of label values, or an InputError naming the values the table lacks."""
        values = [int(v) for v in values]
        unknown = [v for v in values if v not in self.values]
        if unknown:
            raise InputError(f"{what}: {unknown} not in the class table (values {list(self.values)})")
        return tuple(self.values.index(v) for v in values)

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


def _value(text: Any, where: str) -> int:
    """A class value: an integer in 0..MAX_VALUE ("3" and "3.0" are fine, "3.5" is not)."""
    try:
        number = float(text)
    except (TypeError, ValueError):
        raise InputError(f"{where}: value {text!r} is not a number") from None
    if number != int(number) or not 0 <= number <= MAX_VALUE:
        raise InputError(f"{where}: value {text!r} must be a whole number in 0..{MAX_VALUE}")
    return int(number)


def _hex(colour: str, where: str = "class table") -> str:
    """'#RRGGBB' or 'r,g,b' (0..255 each; ';' also separates) -> '#rrggbb'."""
    c = colour.strip()
    if _HEX.fullmatch(c.lower()):
        return c.lower()
    parts = [p.strip() for p in c.replace(";", ",").split(",") if p.strip()]
    if len(parts) == 3:
        try:
            channels = [float(p) for p in parts]
        except ValueError:
            channels = []
        if channels and all(v == int(v) and 0 <= v <= 255 for v in channels):
            return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in channels))
    raise InputError(f"{where}: colour {colour!r} must be #rrggbb or r,g,b with each channel in 0..255")


def rgb(colour: str) -> tuple[int, int, int]:
    h = colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)
