"""A rendered map of the classified layer shows the class colours (what a user sees)."""
import numpy as np
from qgis.core import QgsMapRendererSequentialJob, QgsMapSettings, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor

from stars_core.classes import ClassTable, rgb


def test_rendered_map_shows_the_class_colours(demo_scene, trained_model, run_alg, tmp_path):
    out = tmp_path / "map.tif"
    run_alg("stars:segmentmissingmodality", {"INPUT": str(demo_scene["sar"]), "MODEL": str(trained_model),
                                              "OUTPUT": str(out), "TILE_SIZE": 128, "DEVICE": 1})
    layer = QgsRasterLayer(str(out), "land cover")
    QgsProject.instance().addMapLayer(layer)
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(layer.extent())
    settings.setOutputSize(QSize(256, 256))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    png = tmp_path / "map.png"
    assert image.save(str(png), "PNG") and png.stat().st_size > 1000
    ptr = image.convertToFormat(image.Format_RGB888)
    buf = ptr.constBits()
    buf.setsize(ptr.byteCount())
    arr = np.frombuffer(buf, np.uint8).reshape(ptr.height(), ptr.bytesPerLine())[:, : 3 * ptr.width()]
    pixels = arr.reshape(ptr.height(), ptr.width(), 3)
    classes = ClassTable.from_file(demo_scene["classes"])
    with __import__("rasterio").open(out) as ds:
        present = [v for v in classes.values if (ds.read(1) == v).mean() > 0.02]
    shown = [v for v, c in zip(classes.values, classes.colors)
             if (np.abs(pixels.astype(int) - rgb(c)).sum(axis=2) < 6).mean() > 0.005]
    assert len(present) >= 2 and set(present) <= set(shown), (present, shown)
