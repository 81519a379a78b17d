"""Land-cover change between dates: the from-to map of two class maps (`changemap`), the names,
colours and grouping of its transitions (`transitions`), and a map per date of a SAR series
(`series`). What users report from SAR, which sees the ground on every pass, is change with areas
they can defend: the change map is the stratification for `stars sample` and `stars assess`.
"""
from .changemap import ChangeResult, change_map
from .transitions import Transitions

__all__ = ["ChangeResult", "Transitions", "change_map"]
