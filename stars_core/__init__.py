"""STARS core: the model, losses, data pipeline, training and inference. Never imports QGIS."""
from .config import LossConfig, StarsConfig
from .models import build_model

__version__ = "0.1.0"
__all__ = ["LossConfig", "StarsConfig", "build_model", "__version__"]
