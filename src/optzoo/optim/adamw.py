r"""AdamW: Adam with decoupled weight decay.

Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019,
Algorithm 2. With :math:`\hat m_t, \hat v_t` as in :class:`optzoo.Adam`:

.. math::

    \theta_t = (1 - \eta\lambda)\,\theta_{t-1} - \eta\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)

The decay never enters the moments, so it is not rescaled by
:math:`1/\sqrt{\hat v_t}` as L2 regularisation through the gradient would be.
Defaults follow ``torch.optim.AdamW`` (``weight_decay=1e-2``, decay scaled by
``lr``); ``decay_scaled_by_lr=False`` scales it by the schedule multiplier
:math:`lr / lr_0` only, as the paper does.

Example:
    >>> import torch, optzoo
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> opt = optzoo.AdamW([w], lr=0.1, weight_decay=0.5)
    >>> w.grad = torch.zeros(2); _ = opt.step()
    >>> w.detach()
    tensor([0.9500, 0.9500])
"""

from __future__ import annotations

from ._core import ParamsT
from .adam import Adam

__all__ = ["AdamW"]


class AdamW(Adam):
    """Adam with ``decoupled_weight_decay=True`` and ``weight_decay=1e-2`` by default.

    Drop-in for ``torch.optim.AdamW``: torch 2.13's signature; the implementation keywords as
    :class:`optzoo.Adam`'s (see there for where optzoo differs).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        eps_inside_sqrt: bool = False,
        amsgrad_bias_correction: bool = True,
        decay_scaled_by_lr: bool = True,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            decoupled_weight_decay=True,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            eps_inside_sqrt=eps_inside_sqrt,
            amsgrad_bias_correction=amsgrad_bias_correction,
            decay_scaled_by_lr=decay_scaled_by_lr,
        )
