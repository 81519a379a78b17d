"""The classes of a from-to map: one per transition ("forest -> farmland"), the unchanged pixels
either keeping their class or sharing one "no change" class, and optionally transitions grouped into
a few change classes by a small table.

Codes. With K classes of the maps (class indices 0..K-1 in the class table's order), the working code
of a pixel is 1 for unchanged and 2 + i * K + j for the transition i -> j (0 is no data): what the
minimum mapping unit sieves (`changemap`). The output value of each entry of the from-to map is
fixed by the class table and the options alone, not by which transitions occur, so maps made with
the same settings share their legend: unchanged classes first (values 1..K, or 1 for "no change"),
then every transition (or group) in order.

Colours. Unchanged classes keep their class colours ("no change" is light grey); every other entry
gets a colour as far as possible (in CIELAB) from all colours before it, so transitions stay apart
from each other and from the classes. The colours, like the values, depend on the settings alone.

Grouping table (CSV with columns from, to, group; class names or values, `*` for any): the first
row that matches a transition names its group; a transition no row matches goes to "other change".
    from,to,group
    forest,*,forest loss
    *,built-up,new built-up
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..classes import ClassTable, rgb
from ..errors import InputError

NO_CHANGE = "no change"
OTHER = "other change"
NODATA = 0


@dataclass(frozen=True)
class Group:
    """A row of the grouping table: class names (or "*") and the group it names."""

    source: str
    target: str
    name: str

    def matches(self, a: str, b: str) -> bool:
        return self.source in ("*", a) and self.target in ("*", b)


@dataclass
class Transitions:
    """The legend of a from-to map of maps with class table `classes`."""

    classes: ClassTable
    unchanged: str = "keep"  # "keep": unchanged pixels keep their class; "single": one "no change" class
    groups: list[Group] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.unchanged not in ("keep", "single"):
            raise InputError(f"unchanged pixels are 'keep' (their class) or 'single' (one no-change class), got "
                             f"{self.unchanged!r}")
        if len(self.classes) > 254:
            raise InputError(f"a from-to map holds at most 254 classes per map, the maps have {len(self.classes)}")

    @property
    def K(self) -> int:
        return len(self.classes)

    def entries(self) -> list[tuple[str, str, str]]:
        """(name, from class, to class) of every output class in value order (value = position + 1);
        from/to are '' where an entry gathers several transitions (no change, a group)."""
        names = self.classes.names
        out = [(n, n, n) for n in names] if self.unchanged == "keep" else [(NO_CHANGE, "", "")]
        if self.groups:
            seen = []
            for g in self.groups:
                if g.name not in seen:
                    seen.append(g.name)
            return out + [(g, "", "") for g in seen] + [(OTHER, "", "")]
        return out + [(f"{a} -> {b}", a, b) for a in names for b in names if a != b]

    def value(self, i: int, j: int) -> int:
        """The output value of a pixel of class index i in the first map and j in the second."""
        if i == j:
            return i + 1 if self.unchanged == "keep" else 1
        base = self.K if self.unchanged == "keep" else 1
        if self.groups:
            a, b = self.classes.names[i], self.classes.names[j]
            names = [e[0] for e in self.entries()]
            group = next((g.name for g in self.groups if g.matches(a, b)), OTHER)
            return names.index(group) + 1
        k = i * (self.K - 1) + (j if j < i else j - 1)  # the transition's rank among i's K - 1 targets
        return base + k + 1

    def table(self) -> ClassTable:
        """The class table of the output: every entry, coloured (unchanged classes keep their colours,
        the others are spread apart: see the module docstring)."""
        entries = self.entries()
        fixed = list(self.classes.colors) if self.unchanged == "keep" else ["#d9d9d9"]
        colours = fixed + distinct_colours(fixed, len(entries) - len(fixed))
        return ClassTable(tuple(range(1, len(entries) + 1)), tuple(e[0] for e in entries), tuple(colours))

    def present(self, counts: np.ndarray) -> ClassTable:
        """The entries of `table()` that a map with these (K, K) pixel counts (rows: date A's class,
        columns: date B's) holds, in value order: the legend worth showing (all of them when none)."""
        table = self.table()
        held = {self.value(int(i), int(j)) for i, j in zip(*np.nonzero(counts))}
        keep = [k for k, v in enumerate(table.values) if v in held] or list(range(len(table)))
        return ClassTable(tuple(table.values[k] for k in keep), tuple(table.names[k] for k in keep),
                          tuple(table.colors[k] for k in keep))

    def is_change(self, value):
        """Whether output values (an int or an array) are change classes."""
        return value > (self.K if self.unchanged == "keep" else 1)


def _lab(colours: np.ndarray) -> np.ndarray:
    """(N, 3) sRGB 0..255 -> (N, 3) CIELAB (D65)."""
    c = colours / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = c @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def colour_distance(a: str, b: str) -> float:
    """CIELAB distance (Delta E 1976) between two '#rrggbb' colours: about 2 is just noticeable."""
    la, lb = _lab(np.array([rgb(a), rgb(b)], float))
    return float(np.linalg.norm(la - lb))


def distinct_colours(fixed: list[str], n: int) -> list[str]:
    """`n` colours, each the one farthest (in CIELAB) from the `fixed` ones and those chosen before it,
    among an sRGB grid without the darkest and lightest (no near-black, no near-white)."""
    levels = np.arange(0, 256, 15)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3).astype(float)
    lab = _lab(grid)
    usable = (lab[:, 0] > 30) & (lab[:, 0] < 88)
    grid, lab = grid[usable], lab[usable]
    nearest = np.full(len(grid), np.inf)
    for colour in fixed:
        nearest = np.minimum(nearest, np.linalg.norm(lab - _lab(np.array([rgb(colour)], float)), axis=1))
    out = []
    for _ in range(n):
        k = int(np.argmax(nearest))
        out.append("#{:02x}{:02x}{:02x}".format(*(int(v) for v in grid[k])))
        nearest = np.minimum(nearest, np.linalg.norm(lab - lab[k], axis=1))
    return out


def read_groups(path: str | os.PathLike, classes: ClassTable) -> list[Group]:
    """The grouping table at `path` (see the module docstring), class values read as their names."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grouping table {os.fspath(path)!r} not found")
    by_value = {str(v): n for v, n in zip(classes.values, classes.names)}
    known = set(classes.names) | {"*"}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"grouping table {os.fspath(path)!r} is not a CSV text file (UTF-8); it needs the columns "
                         f"from, to and group") from None
    groups = []
    reader = csv.DictReader(text.splitlines())
    missing = {"from", "to", "group"} - set(reader.fieldnames or [])
    if missing:
        raise InputError(f"grouping table {os.fspath(path)!r} needs the columns from, to and group (lacks "
                         f"{', '.join(sorted(missing))})")
    for row_number, row in enumerate(reader, start=2):
        a, b = (by_value.get((row[k] or "").strip(), (row[k] or "").strip()) for k in ("from", "to"))
        name = (row["group"] or "").strip()
        bad = [x for x in (a, b) if x not in known]
        if bad or not name:
            raise InputError(f"grouping table {os.fspath(path)!r}, line {row_number}: "
                             + (f"{bad[0]!r} is not a class of the maps ({', '.join(classes.names)}) nor *"
                                if bad else "the group is empty"))
        groups.append(Group(a, b, name))
    if not groups:
        raise InputError(f"grouping table {os.fspath(path)!r} has no rows")
    return groups
