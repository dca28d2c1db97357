"""Two-dimensional test surfaces written with torch, so that autograd gives the gradients.

Each surface is a small frozen dataclass: call it on a tensor of points ``xy`` of shape
``(..., 2)`` to get the values (shape ``(...)``). It carries what the lab needs to run and
draw an optimizer on it: the known minima and the minimum value, a default start point,
a plotting window, whether its contours read better on a log scale, and where the
function comes from.

The course notes show optimizers on Beale's function, a long valley and a saddle point
(Alec Radford's animations, linked from the notes); the others are classic test
functions of optimization (Surjanovic & Bingham, *Virtual Library of Simulation
Experiments: Test Functions and Datasets*, https://www.sfu.ca/~ssurjano/, and Jamil &
Yang, "A literature survey of benchmark functions for global optimisation problems",
Int. J. Math. Modelling and Numerical Optimisation 4(2), 2013).

Surfaces without a minimum (the two saddles) have ``minima == ()`` and ``min_value is
None``; on them an optimizer succeeds by *escaping*: reaching ``escape_loss``.

Example:
    >>> import torch
    >>> from optzoo.lab.surfaces.functions import SURFACES
    >>> beale = SURFACES["beale"]
    >>> float(beale(torch.tensor([3.0, 0.5], dtype=torch.float64)))
    0.0
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = [
    "SURFACES",
    "Beale",
    "Himmelblau",
    "LongValley",
    "MonkeySaddle",
    "Noisy",
    "Rastrigin",
    "Rosenbrock",
    "Saddle",
    "Surface",
    "surface",
]

Point = tuple[float, float]


@dataclass(frozen=True, kw_only=True)
class Surface:
    """A function of two variables with what the lab needs to run and draw optimizers on it.

    Attributes:
        name: the CLI name (``"beale"``).
        title: a human title for plots.
        minima: the known global minima (empty for a surface unbounded below).
        min_value: the value at the minima (``None`` when there is no minimum).
        start: the default start point.
        xlim, ylim: the plotting window.
        log_scale: draw contours of ``log(f - f_min)`` rather than ``f``.
        steps: the default number of steps (enough to see the story).
        tol: a run reaches its target when ``f <= min_value + tol``.
        escape_loss: on a surface without a minimum, a run reaches its target (it has
            escaped the saddle) when ``f <= escape_loss``.
        critical_points: other points worth marking (saddle points).
        source: where the function comes from.
    """

    name: str = ""
    title: str = ""
    minima: tuple[Point, ...] = ()
    min_value: float | None = None
    start: Point = (0.0, 0.0)
    xlim: Point = (-1.0, 1.0)
    ylim: Point = (-1.0, 1.0)
    log_scale: bool = False
    steps: int = 300
    tol: float = 1e-3
    escape_loss: float = -1.0
    critical_points: tuple[Point, ...] = ()
    source: str = ""

    def __call__(self, xy: Tensor) -> Tensor:
        """The value at each point of ``xy`` (shape ``(..., 2)``), shape ``(...)``."""
        return self.f(xy[..., 0], xy[..., 1])

    def f(self, x: Tensor, y: Tensor) -> Tensor:
        """The function of the two coordinates (broadcasting tensors)."""
        raise NotImplementedError

    @property
    def bounded(self) -> bool:
        """Whether the surface has a known global minimum."""
        return self.min_value is not None

    @property
    def target_loss(self) -> float:
        """The loss at or below which a run has reached its target."""
        return self.min_value + self.tol if self.min_value is not None else self.escape_loss

    @property
    def stochastic(self) -> bool:
        """Whether the gradients are noisy."""
        return False

    def fresh(self) -> Surface:
        """A copy whose random state (if any) starts again from its seed."""
        return self

    def nearest_minimum(self, point: Point) -> tuple[Point, float] | None:
        """The known minimum nearest ``point`` and the distance to it (``None`` if none)."""
        if not self.minima:
            return None
        best = min(self.minima, key=lambda m: math.dist(m, point))
        return best, math.dist(best, point)


@dataclass(frozen=True)
class Beale(Surface):
    """Beale's function: three squared residuals, flat plateaus and steep curved walls.

    f(x, y) = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2,
    global minimum f(3, 0.5) = 0. Beale, E. M. L. (1958), "On an iterative method for
    finding a local minimum of a function of more than one variable", Technical Report 25,
    Statistical Techniques Research Group, Princeton University. The course notes show it in
    Alec Radford's optimizer animations (http://www.denizyuret.com/2015/03/alec-radfords-animations-for.html).
    """

    name: str = "beale"
    title: str = "Beale's function"
    minima: tuple[Point, ...] = ((3.0, 0.5),)
    min_value: float | None = 0.0
    start: Point = (1.0, 1.5)
    xlim: Point = (-1.5, 4.5)
    ylim: Point = (-2.5, 2.5)
    log_scale: bool = True
    source: str = "Beale (1958), Princeton tech. report 25; Radford's animations in the course notes"

    def f(self, x: Tensor, y: Tensor) -> Tensor:
        return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


@dataclass(frozen=True)
class Rosenbrock(Surface):
    """Rosenbrock's banana: a curved, flat-bottomed valley.

    f(x, y) = (a - x)^2 + b (y - x^2)^2 with a = 1, b = 100; global minimum f(1, 1) = 0.
    Rosenbrock, H. H. (1960), "An automatic method for finding the greatest or least value
    of a function", The Computer Journal 3(3): 175-184. The classic start is (-1.2, 1).
    """

    name: str = "rosenbrock"
    title: str = "Rosenbrock's function"
    minima: tuple[Point, ...] = ((1.0, 1.0),)
    min_value: float | None = 0.0
    start: Point = (-1.2, 1.0)
    xlim: Point = (-2.0, 2.0)
    ylim: Point = (-1.0, 3.0)
    log_scale: bool = True
    steps: int = 1000
    source: str = "Rosenbrock (1960), The Computer Journal 3(3):175-184"
    a: float = 1.0
    b: float = 100.0

    def f(self, x: Tensor, y: Tensor) -> Tensor:
        return (self.a - x) ** 2 + self.b * (y - x**2) ** 2


@dataclass(frozen=True)
class LongValley(Surface):
    """A long narrow valley: the ill-conditioned quadratic f(x, y) = a x^2 + b y^2.

    With a = 0.01 and b = 1 the Hessian is diag(0.02, 2), condition number 100: a step
    size that is stable across the valley (y) crawls along it (x), so plain gradient
    descent zig-zags while momentum builds up speed along the floor. The course notes
    show it as "Long Valley" in Alec Radford's animations; the analysis of gradient
    descent and momentum on such quadratics is Polyak, B. T. (1964), "Some methods of
    speeding up the convergence of iteration methods", USSR Comp. Math. and Math. Physics
    4(5): 1-17 (see also Goh, "Why Momentum Really Works", Distill 2017).
    """

    name: str = "long-valley"
    title: str = "Long narrow valley (condition number 100)"
    minima: tuple[Point, ...] = ((0.0, 0.0),)
    min_value: float | None = 0.0
    start: Point = (-10.0, 1.0)
    xlim: Point = (-11.0, 11.0)
    ylim: Point = (-2.5, 2.5)
    log_scale: bool = True
    source: str = "ill-conditioned quadratic, Polyak (1964); Radford's 'Long Valley' in the course notes"
    a: float = 0.01
    b: float = 1.0

    def f(self, x: Tensor, y: Tensor) -> Tensor:
        return self.a * x**2 + self.b * y**2


@dataclass(frozen=True)
class Saddle(Surface):
    """The saddle f(x, y) = x^2 - y^2: a valley along x, a ridge along y, unbounded below.

    The origin is a critical point with an indefinite Hessian diag(2, -2). Started on the
    ridge (y tiny), plain gradient descent first slides to the saddle and leaves it only as
    fast as y grows by the factor (1 + 2 lr) per step; momentum and adaptive methods escape
    much sooner. Shown in the course notes ("Saddle Point", Radford's animations); see
    Dauphin et al. (2014), "Identifying and attacking the saddle point problem in
    high-dimensional non-convex optimization", NeurIPS.
    """

    name: str = "saddle"
    title: str = "Saddle: x² − y²"
    start: Point = (1.0, 1e-3)
    xlim: Point = (-1.5, 1.5)
    ylim: Point = (-1.5, 1.5)
    escape_loss: float = -1.0
    critical_points: tuple[Point, ...] = ((0.0, 0.0),)
    source: str = "hyperbolic paraboloid; Radford's 'Saddle Point' in the course notes; Dauphin et al. (2014)"

    def f(self, x: Tensor, y: Tensor) -> Tensor:
        return x**2 - y**2


@dataclass(frozen=True)
class MonkeySaddle(Surface):
    """The monkey saddle f(x, y) = x^3 - 3 x y^2: a degenerate saddle with three valleys.

    At the origin the gradient *and* the Hessian vanish, so second-order information does
    not help either: started on the ridge y = 0, x > 0, plain gradient descent slows down
    as x^2 and creeps towards the origin, while sign-normalized methods (Adam, RMSProp,
    Rprop) cross it. The classic example of a degenerate critical point: Hilbert, D. and
    Cohn-Vossen, S. (1932), *Anschauliche Geometrie* (Geometry and the Imagination), Springer.
    """

    name: str = "monkey-saddle"
    title: str = "Monkey saddle: x³ − 3xy²"
    start: Point = (1.0, 1e-3)
    xlim: Point = (-1.5, 1.5)
    ylim: Point = (-1.5, 1.5)
    escape_loss: float = -1.0
    critical_points: tuple[Point, ...] = ((0.0, 0.0),)
    source: str = "degenerate saddle, Hilbert & Cohn-Vossen (1932), Anschauliche Geometrie"

    def f(self, x: Tensor, y: Tensor) -> Tensor:
        return x**3 - 3 * x * y**2


@dataclass(frozen=True)
class Himmelblau(Surface):
    """Himmelblau's function: four global minima of value 0, which one you reach depends on the path.

    f(x, y) = (x^2 + y - 11)^2 + (x + y^2 - 7)^2, minima at (3, 2), (-2.805118, 3.131313),
    (-3.779310, -3.283186), (3.584428, -1.848127). Himmelblau, D. M. (1972), *Applied
    Nonlinear Programming*, McGraw-Hill.
    """

    name: str = "himmelblau"
    title: str = "Himmelblau's function"
    minima: tuple[Point, ...] = (
        (3.0, 2.0),
        (-2.805118086952745, 3.131312518250573),
        (-3.779310253377747, -3.283185991286170),
        (3.584428340330492, -1.848126526964404),
    )
    min_value: float | None = 0.0
    start: Point = (-0.3, -0.9)
    xlim: Point = (-5.0, 5.0)
    ylim: Point = (-5.0, 5.0)
    log_scale: bool = True
    critical_points: tuple[Point, ...] = ((-0.270845, -0.923039),)
    source: str = "Himmelblau (1972), Applied Nonlinear Programming, McGraw-Hill"

    def f(self, x: Tensor, y: Tensor) -> Tensor:
        return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


@dataclass(frozen=True)
class Rastrigin(Surface):
    """Rastrigin's function: a bowl covered in a grid of local minima.

    f(x, y) = 2A + (x^2 - A cos 2 pi x) + (y^2 - A cos 2 pi y), A = 10; global minimum
    f(0, 0) = 0 and a local minimum near every integer point. Rastrigin, L. A. (1974),
    *Systems of Extremal Control*, Nauka, Moscow; in this form Mühlenbein, H., Schomisch, D.
    and Born, J. (1991), "The parallel genetic algorithm as function optimizer", Parallel
    Computing 17: 619-632.
    """

    name: str = "rastrigin"
    title: str = "Rastrigin's function"
    minima: tuple[Point, ...] = ((0.0, 0.0),)
    min_value: float | None = 0.0
    start: Point = (3.3, -2.4)
    xlim: Point = (-5.12, 5.12)
    ylim: Point = (-5.12, 5.12)
    log_scale: bool = False
    source: str = "Rastrigin (1974); Mühlenbein, Schomisch & Born (1991), Parallel Computing 17"
    A: float = 10.0

    def f(self, x: Tensor, y: Tensor) -> Tensor:
        two_pi = 2 * math.pi
        return 2 * self.A + (x**2 - self.A * torch.cos(two_pi * x)) + (y**2 - self.A * torch.cos(two_pi * y))


@dataclass(frozen=True)
class Noisy(Surface):
    """``surface`` whose *gradient* gets fresh gaussian noise of std ``sigma`` at every call.

    The value is unchanged; the gradient is ``grad f + xi`` with ``xi ~ N(0, sigma^2 I)``
    drawn from a generator seeded with ``seed``: a stochastic gradient with set noise, the
    way a mini-batch gradient is the full gradient plus noise whose std falls as
    1/sqrt(batch size) (course notes: "SGD vs batch", "Mini Batches"). One draw per call
    is shared by all the points of that call, so optimizers run side by side see the
    same sequence of "mini-batches"; :meth:`fresh` starts the sequence again from ``seed``.
    """

    surface: Surface = field(default_factory=Surface)
    sigma: float = 0.1
    seed: int = 0
    _generator: torch.Generator = field(default=None, init=False, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if not self.sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {self.sigma}")
        base = self.surface
        for name in ("minima", "min_value", "start", "xlim", "ylim", "log_scale", "steps", "tol", "escape_loss",
                     "critical_points"):
            object.__setattr__(self, name, getattr(base, name))
        object.__setattr__(self, "name", base.name)
        object.__setattr__(self, "title", f"{base.title}, gradient noise σ = {self.sigma:g}")
        object.__setattr__(self, "source", f"{base.source}; gaussian gradient noise")
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        object.__setattr__(self, "_generator", generator)

    def __call__(self, xy: Tensor) -> Tensor:
        value = self.surface(xy)
        if self.sigma == 0 or not xy.requires_grad:
            return value
        noise = torch.randn(xy.shape[-1:], generator=self._generator, dtype=xy.dtype).to(xy.device) * self.sigma
        # Adds zero to the value and ``noise`` to the gradient with respect to each point.
        return value + (noise * (xy - xy.detach())).sum(-1)

    def f(self, x: Tensor, y: Tensor) -> Tensor:
        return self.surface.f(x, y)

    @property
    def stochastic(self) -> bool:
        return self.sigma > 0

    def fresh(self) -> Noisy:
        return dataclasses.replace(self)


SURFACES: dict[str, Surface] = {
    s.name: s
    for s in (Beale(), Rosenbrock(), LongValley(), Saddle(), MonkeySaddle(), Himmelblau(), Rastrigin())
}


def surface(name: str) -> Surface:
    """The surface registered as ``name``; ``ValueError`` listing the valid names otherwise."""
    try:
        return SURFACES[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown function {name!r}; choose one of: {', '.join(SURFACES)}") from None
