"""Window grid and blending weights for sliding-window segmentation. Pure: no I/O, no torch.

Tiles overlap so that every pixel is predicted with enough context around it; where tiles
overlap their class probabilities are averaged with weights that fall smoothly to (almost) zero
at the tile border, where a network sees the least context. Dividing by the summed weights makes
the blend exact even where a pixel is covered by one tile only (the raster edges).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STRIDE = 32  # input sizes must be multiples of the encoder's output stride


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
        raise ValueError(f"overlap ({overlap}) must be smaller than the tile size ({tile})")
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
    224 x 224 tile, not a padded 512 one)."""

    height: int
    width: int
    tile_h: int
    tile_w: int
    rows: tuple[int, ...]
    cols: tuple[int, ...]

    @classmethod
    def build(cls, height: int, width: int, tile: int, overlap: int) -> "TileGrid":
        if tile % STRIDE or tile <= 0:
            raise ValueError(f"tile size must be a positive multiple of {STRIDE}, got {tile}; try {round_up(max(tile, 1))}")
        if overlap < 0 or overlap >= tile:
            raise ValueError(f"overlap must be in 0..{tile - 1} for tile size {tile}, got {overlap}")
        if height <= 0 or width <= 0:
            raise ValueError(f"raster has no pixels ({height} x {width})")
        tile_h, tile_w = min(tile, round_up(height)), min(tile, round_up(width))
        rows = axis_starts(height, tile_h, min(overlap, tile_h - STRIDE))
        cols = axis_starts(width, tile_w, min(overlap, tile_w - STRIDE))
        return cls(height, width, tile_h, tile_w, tuple(rows), tuple(cols))

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
