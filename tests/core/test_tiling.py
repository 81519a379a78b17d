"""The window grid, blending weights and blending buffers (pure numpy)."""
import numpy as np
import pytest

from stars_core.tiling import BlendRows, TileGrid, axis_starts, blend_weights, pad_reflect, ramp


@pytest.mark.parametrize("length,tile,overlap", [(1000, 256, 64), (257, 256, 64), (512, 256, 0), (90, 64, 63),
                                                 (777, 192, 100)])
def test_tiles_cover_the_axis_on_the_stride_lattice_with_at_least_the_overlap(length, tile, overlap):
    starts = axis_starts(length, tile, overlap)
    assert starts[0] == 0 and length <= starts[-1] + tile < length + 32
    assert all(s % 32 == 0 for s in starts), starts
    covered = np.zeros(length + tile, int)
    for s in starts:
        covered[s:s + tile] += 1
    assert covered[:length].min() >= 1
    assert all(a + tile - b >= min(overlap, tile - 32) for a, b in zip(starts, starts[1:]))


def test_a_raster_smaller_than_a_tile_is_one_tile_padded_to_a_multiple_of_32():
    grid = TileGrid.build(37, 50, tile=512, overlap=128)
    (tile,) = list(grid)
    assert (grid.tile_h, grid.tile_w) == (64, 64)
    assert (tile.height, tile.width, tile.pad_bottom, tile.pad_right) == (37, 50, 27, 14)


def test_grid_rejects_bad_sizes_with_the_fix():
    with pytest.raises(ValueError, match="multiple of 32"):
        TileGrid.build(100, 100, tile=100, overlap=10)
    with pytest.raises(ValueError, match="overlap"):
        TileGrid.build(100, 100, tile=64, overlap=64)


def test_blend_weights_are_positive_smooth_and_symmetric():
    w = blend_weights(64, 96, overlap=16)
    assert w.shape == (64, 96) and w.min() > 0 and w.max() == pytest.approx(1.0)
    np.testing.assert_allclose(w, w[::-1, ::-1])
    r = ramp(64, 16)
    assert np.all(np.diff(r[:16]) > 0) and np.all(r[16:48] == 1)
    assert np.all(ramp(64, 0) == 1)


def test_reflect_padding_mirrors_and_handles_padding_wider_than_the_data():
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    y = pad_reflect(x, 5, 7)
    assert y.shape == (1, 7, 10)
    np.testing.assert_array_equal(y[:, :2, :3], x)
    np.testing.assert_array_equal(y[0, 2, :3], x[0, 0])  # row 2 mirrors row 0 around row 1


def test_blend_rows_averages_overlaps_and_hands_out_each_row_once():
    grid = TileGrid.build(100, 70, 64, 32)
    blend = BlendRows(grid.height, grid.width, 2, 16, grid.weights())
    out = np.full((2, 100, 70), np.nan, np.float32)
    handed = []
    for t in grid:
        # a constant per-class field: whatever the weights, the blend must return it exactly
        probs = np.stack([np.full((64, 64), 0.25, np.float32), np.full((64, 64), 0.75, np.float32)])
        for row, p, ok in blend.finished(t.row):
            out[:, row:row + p.shape[1]] = p
            handed.append(row)
        blend.add(t, probs, np.ones((t.height, t.width), bool))
    for row, p, ok in blend.finished(100):
        out[:, row:row + p.shape[1]] = p
        handed.append(row)
        assert ok.all()
    assert handed == sorted(set(handed)) == list(range(0, 100, 16))  # every block row once, top to bottom
    np.testing.assert_allclose(out[0], 0.25, rtol=1e-6)
    np.testing.assert_allclose(out[1], 0.75, rtol=1e-6)
    assert blend.rows == {}


def test_blend_rows_keep_only_the_rows_in_flight():
    grid = TileGrid.build(1024, 96, 64, 16)
    blend = BlendRows(grid.height, grid.width, 3, 32, grid.weights())
    most = 0
    for t in grid:
        list(blend.finished(t.row))
        blend.add(t, np.ones((3, 64, 64), np.float32), np.ones((t.height, t.width), bool))
        most = max(most, len(blend.rows))
    assert most <= 3  # a tile spans at most three 32-pixel block rows: memory does not grow with height


def test_grid_weights_use_the_effective_overlap():
    grid = TileGrid.build(50, 300, 128, 100)  # rows: one 64-pixel tile; columns: overlap 96 (tile - 32)
    assert (grid.tile_h, grid.tile_w) == (64, 128) and grid.overlap == (32, 96)
    np.testing.assert_allclose(grid.weights(), ramp(64, 32)[:, None] * ramp(128, 96)[None, :])
