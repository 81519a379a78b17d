"""`stars distill`: a fast SAR-only student trained to reproduce a STARS teacher's SAR-only map.

`config` holds the settings, `data` draws chips from the user's SAR rasters (labelled or not), and
`student` trains the student and writes it as an ordinary model file that names its teacher.
"""
from .config import DistillConfig

__all__ = ["DistillConfig", "DistillResult", "distill", "soft_target_loss", "student_config"]


def __getattr__(name: str):  # the training code imports PyTorch: only when it is used
    if name in __all__:
        from . import student

        return getattr(student, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
