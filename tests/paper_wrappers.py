"""Literal transcriptions of Lookahead (Zhang et al. 2019, Algorithm 1) and SWATS
(Keskar & Socher 2017, Algorithm 1, per parameter tensor, as DESIGN.md spells it out).

Written plainly, out of place, one formula per line in the paper's notation,
sharing no code with optzoo: these are the oracles of optzoo.Lookahead, Ranger and SWATS.
"""

from __future__ import annotations

import math

import torch


class ZhangLookahead:
    """Zhang, Lucas, Hinton & Ba, "Lookahead Optimizer: k steps forward, 1 step back" (NeurIPS 2019),
    Algorithm 1, over an inner optimizer A (a torch.optim class); one step() is one inner iteration::

        Require initial parameters phi_0, synchronisation period k, slow weights step size alpha, optimizer A
        for t = 1, 2, ...:
            theta_{t,0} <- phi_{t-1}
            for i = 1, ..., k:
                theta_{t,i} <- theta_{t,i-1} + A(L, theta_{t,i-1}, d)
            phi_t <- phi_{t-1} + alpha (theta_{t,k} - phi_{t-1})

    The inner optimizer's state is kept from one outer iteration to the next. phi_0, the initial
    parameters, are the parameters when training starts: at the first step(), before its inner step
    (so weights loaded between building this and the first step are phi_0).
    """

    def __init__(self, params, inner, k, alpha, **inner_hyper):
        self.theta = list(params)
        self.A = inner(self.theta, **inner_hyper)
        self.param_groups = self.A.param_groups
        self.k, self.alpha = k, alpha
        self.phi = None
        self.i = 0

    @torch.no_grad()
    def step(self):
        if self.phi is None:
            self.phi = [theta.detach().clone() for theta in self.theta]  # phi_0 = theta_{1,0}
        self.A.step()  # theta_{t,i} = theta_{t,i-1} + A(L, theta_{t,i-1}, d)
        self.i += 1
        if self.i == self.k:
            # phi_t = phi_{t-1} + alpha (theta_{t,k} - phi_{t-1})
            self.phi = [phi + self.alpha * (theta - phi) for phi, theta in zip(self.phi, self.theta, strict=True)]
            # theta_{t+1,0} = phi_t
            for theta, phi in zip(self.theta, self.phi, strict=True):
                theta.copy_(phi)
            self.i = 0


class KeskarSWATS(torch.optim.Optimizer):
    """Keskar & Socher, "Improving Generalization Performance by Switching from Adam to SGD" (2017),
    Algorithm 1, for each parameter tensor on its own (k counts that tensor's steps from 1)::

        Adam phase:  m = b1 m + (1-b1) g;  a = b2 a + (1-b2) g^2
                     p = -lr sqrt(1-b2^k)/(1-b1^k) m/(sqrt(a)+eps);  x = x + p
                     if p.g != 0:  gamma = p.p/(-p.g);  lambda = b2 lambda + (1-b2) gamma
                         if k > 1 and |lambda/(1-b2^k) - gamma| < eps:  switch, Lambda = lambda/(1-b2^k), v = 0
        SGD phase:   v = b1 v + g;  x = x - (1-b1) Lambda v        (Nesterov: g + b1 v in place of v)

    g is the gradient, negated for maximize, then plus weight_decay x (L2), in both phases.
    """

    def __init__(self, params, lr, betas, eps, weight_decay=0.0, nesterov=False, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            lr, eps = group["lr"], group["eps"]
            for x in group["params"]:
                if x.grad is None:
                    continue
                s = self.state[x]
                if not s:
                    s.update(k=0, phase="Adam", m=torch.zeros_like(x), a=torch.zeros_like(x), lam=0.0)
                g = -x.grad if group["maximize"] else x.grad.clone()
                g = g + group["weight_decay"] * x
                s["k"] += 1
                k = s["k"]
                if s["phase"] == "SGD":
                    v = s["v"] = b1 * s["v"] + g
                    if group["nesterov"]:
                        new_x = x - (1 - b1) * s["Lambda"] * (g + b1 * v)
                    else:
                        new_x = x - (1 - b1) * s["Lambda"] * v
                else:
                    m = s["m"] = b1 * s["m"] + (1 - b1) * g
                    a = s["a"] = b2 * s["a"] + (1 - b2) * g * g
                    p = -lr * math.sqrt(1 - b2**k) / (1 - b1**k) * m / (torch.sqrt(a) + eps)
                    new_x = x + p
                    pg = float(torch.sum(p * g))
                    if pg != 0:
                        gamma = float(torch.sum(p * p)) / -pg
                        s["lam"] = b2 * s["lam"] + (1 - b2) * gamma
                        if k > 1 and abs(s["lam"] / (1 - b2**k) - gamma) < eps:
                            s["phase"] = "SGD"
                            s["Lambda"] = s["lam"] / (1 - b2**k)
                            s["v"] = torch.zeros_like(x)
                x.copy_(new_x)
