r"""Ranger: Lookahead over RAdam.

Wright, "Ranger: a synergistic optimizer" (2019, github.com/lessw2020/Ranger-Deep-Learning-Optimizer):
:class:`optzoo.RAdam` (Liu et al., ICLR 2020) as the inner optimizer of
:class:`optzoo.Lookahead` (Zhang et al., NeurIPS 2019, Algorithm 1), with
:math:`\beta_1 = 0.95`, :math:`\epsilon = 10^{-5}`, :math:`k = 6`, :math:`\alpha = 0.5`.
Every step is an RAdam step (:math:`\hat m_t = m_t / (1 - \beta_1^t)`,
:math:`\rho_t = \rho_\infty - 2t\beta_2^t / (1 - \beta_2^t)`; momentum SGD
:math:`\theta \leftarrow \theta - \eta \hat m_t` while :math:`\rho_t \le 5`, else the
rectified adaptive step
:math:`\theta \leftarrow \theta - \eta\, r_t \hat m_t \sqrt{1 - \beta_2^t} / (\sqrt{v_t} + \epsilon)`);
after every k-th step :math:`\phi \leftarrow \phi + \alpha(\theta - \phi)`,
:math:`\theta \leftarrow \phi`. The slow weights start as :math:`\phi_0`, a copy of each
parameter at its first step, before the update (so weights loaded after the Ranger is built
count), as in :class:`optzoo.Lookahead` and the reference code.

Deliberate choices and differences:

* Weight decay is RAdam's coupled L2 (:math:`g \leftarrow g + \lambda\theta`). The
  reference code (PyPI ``pytorch_ranger`` 0.1.1, ``Ranger``) decays the parameters
  directly, :math:`\theta \leftarrow \theta - \eta\lambda\theta`, before the RAdam
  step; with ``weight_decay=0`` the two agree (tested to float32 rounding).
* The reference code computes in float32 whatever the parameters' dtype; this
  computes in the parameters' dtype, as torch.optim does. The reference also
  counts Lookahead's steps per parameter (a parameter that misses a gradient
  falls out of phase; here each group counts its steps), caches RAdam's step
  size in one buffer shared by all groups (wrong for groups with different
  betas) and does not evaluate the closure.
* pytorch-optimizer's ``Ranger`` adds gradient centralisation and decoupled
  decay by default and skips the first steps where RAdam takes a momentum step.

``Ranger`` is a :class:`optzoo.Lookahead` (the same surface: ``param_groups``,
``state`` with the slow weights, ``state_dict``, schedulers, ``GradScaler``) whose
inner optimizer, an :class:`optzoo.RAdam`, is ``ranger.optimizer``. With
``foreach=None`` (the default) on CPU, the k-th step's synchronisation runs inside
RAdam's native pass, so that step too reads and writes each parameter once
(see ``SynchronisationInStep`` in ``lookahead.py``); the numbers are the same.

Example:
    >>> import torch, optzoo
    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> opt = optzoo.Ranger([w], lr=0.1, k=2)
    >>> for _ in range(2):
    ...     w.grad = torch.tensor([-1.0, 2.0]); _ = opt.step()
    >>> w.detach()  # two momentum-SGD steps of -0.1 g (rho_t <= 5), then half-way back
    tensor([ 0.1000, -0.2000])
"""

from __future__ import annotations

from ._core import ParamsT
from .lookahead import Lookahead
from .radam import RAdam

__all__ = ["Ranger"]


class Ranger(Lookahead):
    """``Lookahead(RAdam(params, lr, betas, eps, weight_decay), k, alpha)``; see the module docstring."""

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.95, 0.999),
        eps: float = 1e-5,
        weight_decay: float = 0.0,
        k: int = 6,
        alpha: float = 0.5,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        inner = RAdam(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
        )
        super().__init__(inner, k=k, alpha=alpha)
