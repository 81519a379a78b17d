"""STARS QGIS plugin: a Processing provider wrapping stars_core."""
import os
import sys

# The packaged plugin carries stars_core inside its folder; a development checkout has it installed.
_HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.isdir(os.path.join(_HERE, "stars_core")) and _HERE not in sys.path:
    sys.path.insert(0, _HERE)


THREADS_NOTE = ""  # what the thread policy could do at load time, logged with the first algorithm run


def classFactory(iface):  # noqa: N802 (QGIS's entry-point name)
    global THREADS_NOTE
    from stars_core import threads

    THREADS_NOTE = threads.prepare_environment()  # before anything imports torch (stars_core/threads.py)
    from .deps import profile_dir

    profile = profile_dir()
    if profile is not None:  # downloaded weights and runtime exports live in the QGIS profile
        os.environ.setdefault("STARS_CACHE_DIR", str(profile / "stars" / "cache"))
    from .plugin import StarsPlugin

    return StarsPlugin(iface)
