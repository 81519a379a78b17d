"""Window grid, blending weights and blending buffers for sliding-window segmentation. Pure: no
I/O, no torch.

Tiles overlap so that every pixel is predicted with enough context around it; where tiles
overlap their class probabilities are averaged with weights that fall smoothly to (almost) zero
at the tile border, where a network sees the least context. Dividing by the summed weights makes
the blend exact even where a pixel is covered by one tile only (the raster edges).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .config import STRIDE
from .errors import InputError


def top_class(p: np.ndarray, index: np.ndarray | None = None,
              ties_to_higher: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(K, ...) class scores -> each pixel's best class index and its score: a pass a class over
    contiguous rows, where argmax over the first axis copies the array first. Ties go to the lower
    index, as argmax, or to the higher (`ties_to_higher`); the index is written into `index` where
    given, else a new uint8 array (int32 above 256 classes)."""
    if index is None:
        index = np.zeros(p.shape[1:], np.uint8 if p.shape[0] <= 256 else np.int32)
    else:
        index[...] = 0
    top = p[0].copy()
    beats = np.greater_equal if ties_to_higher else np.greater
    higher = np.empty(p.shape[1:], bool)
    for k in range(1, p.shape[0]):
        beats(p[k], top, out=higher)
        np.copyto(index, k, where=higher)
        np.maximum(top, p[k], out=top)
    return index, top


def round_up(n: int, multiple: int = STRIDE) -> int:
    return -(-n // multiple) * multiple


def axis_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size `tile` along an axis of `length` pixels.

    Every start is a multiple of 32, the network's output stride: a convolutional network is only
    shift-equivariant for shifts of whole stride steps, so tiles on that lattice predict what one
    window over the whole raster would (tiles off it sample the deep features at another phase and
    disagree visibly). Consecutive tiles overlap by at least `overlap` (at least 32 pixels less
    than the tile, when `overlap` asks for more); the last tile may run past the end by less than
    32 pixels (padded). One start (0) when the axis is no longer than a tile."""
    if tile <= overlap:
        raise InputError(f"overlap ({overlap}) must be smaller than the tile size ({tile})")
    step = max(STRIDE, (tile - overlap) // STRIDE * STRIDE)
    last = round_up(max(length - tile, 0))
    starts = [0]
    while starts[-1] + tile < length:
        starts.append(min(starts[-1] + step, last))
    return starts


@dataclass(frozen=True)
class Tile:
    """One window: where it reads from the raster (row, col, height, width: the part inside the
    raster) and how much padding brings it to the model's input size (pad_bottom, pad_right)."""

    row: int
    col: int
    height: int
    width: int
    pad_bottom: int
    pad_right: int


@dataclass(frozen=True)
class TileGrid:
    """All tiles of a raster, row-major. `tile_h` x `tile_w` is the model input size: `tile` or the
    raster size rounded up to a multiple of 32, whichever is smaller (a 224-pixel raster is one
    224 x 224 tile, not a padded 512 one). `overlap` is the effective overlap along rows and
    columns (at most 32 pixels less than the tile there)."""

    height: int
    width: int
    tile_h: int
    tile_w: int
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    overlap: tuple[int, int] = (0, 0)

    @classmethod
    def build(cls, height: int, width: int, tile: int, overlap: int) -> "TileGrid":
        if tile % STRIDE or tile <= 0:
            raise InputError(f"tile size must be a positive multiple of {STRIDE}, got {tile}; try {round_up(max(tile, 1))}")
        if overlap < 0 or overlap >= tile:
            raise InputError(f"overlap must be in 0..{tile - 1} for tile size {tile}, got {overlap}")
        if height <= 0 or width <= 0:
            raise InputError(f"raster has no pixels ({height} x {width})")
        tile_h, tile_w = min(tile, round_up(height)), min(tile, round_up(width))
        over_h, over_w = min(overlap, tile_h - STRIDE), min(overlap, tile_w - STRIDE)
        rows, cols = axis_starts(height, tile_h, over_h), axis_starts(width, tile_w, over_w)
        return cls(height, width, tile_h, tile_w, tuple(rows), tuple(cols), (over_h, over_w))

    def weights(self) -> np.ndarray:
        """(tile_h, tile_w) blending weights of a tile of this grid."""
        return ramp(self.tile_h, self.overlap[0])[:, None] * ramp(self.tile_w, self.overlap[1])[None, :]

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def __iter__(self):
        for r in self.rows:
            for c in self.cols:
                h, w = min(self.tile_h, self.height - r), min(self.tile_w, self.width - c)
                yield Tile(r, c, h, w, self.tile_h - h, self.tile_w - w)


def ramp(length: int, overlap: int, floor: float = 1e-3) -> np.ndarray:
    """1-D weights: a raised-cosine rise over `overlap` pixels at both ends, 1 in between, never
    below `floor` (a pixel seen by a single tile still gets its prediction)."""
    w = np.ones(length, np.float64)
    n = min(overlap, length // 2)
    if n > 0:
        x = (np.arange(n) + 0.5) / n
        rise = 0.5 - 0.5 * np.cos(np.pi * x)
        w[:n] = rise
        w[length - n:] = rise[::-1]
    return np.maximum(w, floor).astype(np.float32)


def blend_weights(height: int, width: int, overlap: int) -> np.ndarray:
    """(height, width) raised-cosine window: the outer product of two ramps."""
    return ramp(height, overlap)[:, None] * ramp(width, overlap)[None, :]


def pad_reflect(x: np.ndarray, pad_bottom: int, pad_right: int) -> np.ndarray:
    """(C, h, w) -> (C, h + pad_bottom, w + pad_right), mirrored at the edge (repeatedly when the
    padding is wider than the data)."""
    if pad_bottom == 0 and pad_right == 0:
        return x
    mode = "reflect" if min(x.shape[1:]) > 1 else "edge"
    return np.pad(x, ((0, 0), (0, pad_bottom), (0, pad_right)), mode=mode)


class BlendRows:
    """Blends tile probabilities into buffers of whole block rows of the raster.

    Each block row in flight holds the weighted sum of class probabilities (K, h, W), the summed
    weights (h, W) and the validity (h, W). Tiles arrive row by row, so a block row is final once
    a tile starts below it: `finished` hands it out, divided by its weights, and drops it. Memory
    therefore depends on the raster width and the tile height, never on the raster height."""

    def __init__(self, height: int, width: int, classes: int, block: int, weights: np.ndarray):
        self.height, self.width, self.classes, self.block, self.weights = height, width, classes, block, weights
        self.rows: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _buffers(self, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if b not in self.rows:
            h = min(self.block, self.height - b * self.block)
            self.rows[b] = (np.zeros((self.classes, h, self.width), np.float32),
                            np.zeros((h, self.width), np.float32), np.zeros((h, self.width), bool))
        return self.rows[b]

    def add(self, tile: Tile, probs: np.ndarray, valid: np.ndarray) -> None:
        """Blend one tile's (K, tile_h, tile_w) probabilities; `valid` is (tile.height, tile.width)."""
        w = self.weights[: tile.height, : tile.width]
        cols = slice(tile.col, tile.col + tile.width)
        for b in range(tile.row // self.block, (tile.row + tile.height - 1) // self.block + 1):
            r0, r1 = max(tile.row, b * self.block), min(tile.row + tile.height, (b + 1) * self.block)
            src, dst = slice(r0 - tile.row, r1 - tile.row), slice(r0 - b * self.block, r1 - b * self.block)
            acc, wsum, ok = self._buffers(b)
            acc[:, dst, cols] += probs[:, src, : tile.width] * w[src]
            wsum[dst, cols] += w[src]
            ok[dst, cols] = valid[src]

    def finished(self, below: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(first raster row, probabilities (K, h, W), validity (h, W)) of every block row that ends
        at or above raster row `below`, top to bottom; each is dropped once handed out."""
        for b in sorted(k for k in self.rows if min((k + 1) * self.block, self.height) <= below):
            probs, wsum, ok = self.rows.pop(b)
            yield b * self.block, self._normalise(probs, wsum), ok

    @staticmethod
    def _normalise(probs: np.ndarray, wsum: np.ndarray) -> np.ndarray:
        probs /= np.maximum(wsum, 1e-12)  # in place: (K, h, W) is the largest array of a full-width row
        return probs
