"""STARS QGIS plugin: a Processing provider wrapping stars_core (the algorithms come with issue 5)."""


def classFactory(iface):  # noqa: N802 (QGIS's entry-point name)
    from .plugin import StarsPlugin

    return StarsPlugin(iface)
