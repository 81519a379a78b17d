"""The class table: CSV/JSON files, colour tables, generated tables, serialisation, label lookup."""
import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from stars_core.classes import IGNORE, ClassTable, palette, rgb
from stars_core.errors import InputError

TABLE = ClassTable((10, 20, 30), ("water", "field", "town"), ("#ff0000", "#0080ff", "#00ff00"))


def test_csv_and_json_tables_read_alike(tmp_path):
    # Loose CSV: capitalised/padded headers, the British spelling, #RRGGBB and r,g,b colours.
    (tmp_path / "t.csv").write_text(
        " Value , Name , Colour \n10, water ,#FF0000\n20,field,\"0,128,255\"\n30.0,town,0;255;0\n")
    rows = [{"value": 10, "name": "water", "color": "#ff0000"},
            {"value": 20, "name": "field", "color": "0,128,255"},
            {"value": 30, "name": "town", "colour": "#00FF00"}]
    (tmp_path / "list.json").write_text(json.dumps(rows))
    (tmp_path / "dict.json").write_text(json.dumps({"classes": rows}))
    for name in ("t.csv", "list.json", "dict.json"):
        assert ClassTable.from_file(tmp_path / name) == TABLE, name


def test_missing_names_and_colours_get_defaults(tmp_path):
    (tmp_path / "t.csv").write_text("value,name\n5,\n2,grass\n9,\n")
    table = ClassTable.from_file(tmp_path / "t.csv")
    assert table.values == (5, 2, 9)  # file order is kept: index i is row i
    assert table.names == ("class 5", "grass", "class 9")
    assert table.colors == tuple(palette(3))


@pytest.mark.parametrize("text, message", [
    ("id,name\n1,a\n2,b\n", "needs a 'value' column"),
    ("value,name\n", "needs a 'value' column"),
    ("value,name\n1,a\nx,b\n", r"row 2: value 'x' is not a number"),
    ("value,name\n1,a\n1.7,b\n", r"row 2: value '1.7' must be a whole number in 0..65534"),
    ("value,name\n-1,a\n2,b\n", r"row 1: value '-1' must be a whole number"),
    ("value,name\n1,a\n70000,b\n", r"row 2: value '70000' must be a whole number"),
    ("value,name,color\n1,a,300;0;0\n2,b,#00ff00\n", r"row 1: colour '300;0;0' must be #rrggbb or r,g,b"),
    ("value,name,color\n1,a,#zzzzzz\n2,b,#00ff00\n", r"row 1: colour '#zzzzzz'"),
    ("value,name\n1,a\n1,b\n", r"unique, got \[1, 1\]"),
    ("value,name\n1,a\n", "at least 2 classes, got 1"),
    ("value,name,color\n1,a,#ff0000\n2,b,blue\n", "row 2: colour 'blue' must be #rrggbb or r,g,b"),
])
def test_bad_tables_are_clear_errors(tmp_path, text, message):
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(InputError, match=message):
        ClassTable.from_file(tmp_path / "t.csv")


def test_missing_table_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        ClassTable.from_file(tmp_path / "nope.csv")


def test_colours_from_a_gdal_colour_table(tmp_path):
    path = tmp_path / "labels.tif"
    with rasterio.open(path, "w", driver="GTiff", width=3, height=1, count=1, dtype="uint8",
                       crs="EPSG:32632", transform=from_origin(600000, 5000000, 10, 10)) as ds:
        ds.write(np.array([[3, 1, 2]], np.uint8), 1)
        ds.write_colormap(1, {1: (215, 25, 28, 255), 2: (26, 150, 65, 255), 3: (43, 131, 186, 255)})
    with rasterio.open(path) as ds:
        table = ClassTable.from_colormap(ds.colormap(1), {3, 1, 2})
    assert table.values == (1, 2, 3) and table.names == ("class 1", "class 2", "class 3")
    assert table.colors == ("#d7191c", "#1a9641", "#2b83ba")
    # Values the colour table lacks take the palette colour of their index.
    partial = ClassTable.from_colormap({2: (0, 0, 255)}, [7, 2])
    assert partial.colors == ("#0000ff", palette(2)[1])


def test_generated_table_is_sorted_with_distinct_colours():
    table = ClassTable.generated([4, 1, 3])
    assert table.values == (1, 3, 4) and table.names == ("class 1", "class 3", "class 4")
    colours = palette(IGNORE - 1)  # the most classes a table may hold
    assert len(set(colours)) == len(colours)
    assert all(len(c) == 7 and c == "#{:02x}{:02x}{:02x}".format(*rgb(c)) for c in colours)
    with pytest.raises(InputError, match="at most 254 classes"):
        ClassTable.generated(range(IGNORE))


def test_dict_round_trip_survives_json():
    data = json.loads(json.dumps(TABLE.to_dict()))
    assert ClassTable.from_dict(data) == TABLE
    assert data == {"values": [10, 20, 30], "names": ["water", "field", "town"],
                    "colors": ["#ff0000", "#0080ff", "#00ff00"]}


def test_lookup_maps_values_to_indices_and_ignores_no_data():
    raw = np.array([[10, 20, 30], [0, 20, 99], [30, 7, 10]], np.int16)
    mask = np.zeros(raw.shape, bool)
    mask[1, 2] = True  # no data: its value 99 is not in the table, yet not an error
    out = TABLE.lookup(raw, ignore_values=[0, 7], mask=mask)
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 1, 2], [IGNORE, 1, IGNORE], [2, IGNORE, 0]]
    # A masked pixel is IGNORE even when its value is a known class.
    mask[0, 0] = True
    assert TABLE.lookup(raw, ignore_values=[0, 7], mask=mask)[0, 0] == IGNORE


def test_lookup_names_unknown_values_and_the_source():
    raw = np.array([[10, 5, 40], [5, 20, 10]])
    with pytest.raises(InputError, match=r"label value\(s\) \[5, 40\] in ref\.tif .*\[10, 20, 30\].*--ignore-value"):
        TABLE.lookup(raw, ignore_values=[0], source="ref.tif")


def test_an_ignored_value_is_ignored_even_when_the_table_lists_it():
    table = ClassTable.generated([0, 1, 2])
    np.testing.assert_array_equal(table.lookup(np.array([0, 1, 2]), [0]), [IGNORE, 1, 2])


def test_generated_names_follow_their_values_when_sorted():
    table = ClassTable.generated([3, 1, 2], ["c", "a", "b"])
    assert table.values == (1, 2, 3) and table.names == ("a", "b", "c")
