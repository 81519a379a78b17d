"""Design-based accuracy and area of a classified map, from a stratified random sample of points
(Olofsson et al. 2014, "Good practices for estimating area and assessing accuracy of land change",
Remote Sensing of Environment 148:42-57): where optical images are missing there is no wall-to-wall
reference, so the map's accuracy and the area of each class come from a probability sample that an
interpreter labels.

    design.py    sample size for a target standard error of overall accuracy (eq. 13), allocation
    sample.py    strata counted and points drawn in streamed passes over a map of any size; the
                 sample GeoPackage (points and strata table) and reading it back once labelled
    estimate.py  the estimators: error matrix in area proportions, overall, user's and producer's
                 accuracy, class areas, each with its standard error and 95 % interval (with the
                 finite-population correction: strata sizes in pixels, areas apart)
    stehman.py   the same when the strata are not the map's classes (a date of a change map)
    intervals.py a bootstrap interval of class areas beside the normal one, and when the normal one
                 is not to be trusted
    assess.py    a labelled sample checked against its map, then estimated
    report.py    the terminal table, JSON, CSV and HTML reports of an assessment
"""
from .design import allocate, sample_size
from .estimate import Estimate, estimate

__all__ = ["Estimate", "allocate", "estimate", "sample_size"]
