"""Test surfaces and the optimizers' paths over them.

``functions``: the two-dimensional test functions (Beale, Rosenbrock, the long valley, saddles, ...) and
their noisy variants; ``trajectory``: an optimizer of the registry run on one of them;
``tune``: the learning rate tuned per optimizer and surface (``python -m optzoo.lab.surfaces.tune``).
"""

from .functions import SURFACES, Noisy, Point, Surface, surface
from .trajectory import Trajectory, run_trajectories, run_trajectory, tuned_lr, tuned_lrs

__all__ = [
    "SURFACES",
    "Noisy",
    "Point",
    "Surface",
    "Trajectory",
    "run_trajectories",
    "run_trajectory",
    "surface",
    "tuned_lr",
    "tuned_lrs",
]
