"""The plugin's settings, read by the provider (which declares them) and the algorithms alike."""
from __future__ import annotations

THREADS_SETTING = "STARS_THREADS"


def threads_setting() -> int:
    """Processing > Options > Providers > STARS > "CPU threads": 0 (default) adapts to the load."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig

        value = ProcessingConfig.getSetting(THREADS_SETTING)
        return max(0, int(value or 0))
    except Exception:  # no Processing configuration (e.g. a bare test): adapt
        return 0
