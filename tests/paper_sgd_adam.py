"""Literal transcriptions of the papers' (and course notes') forms that torch.optim lacks.

Written plainly, out of place, one formula per line in the paper's notation,
sharing no code with optzoo: these are the oracles for the keyword options that
select a paper's form.
"""

from __future__ import annotations

import torch


class PaperOptimizer(torch.optim.Optimizer):
    """Holds per-parameter state; subclasses write ``update(p, g, group, state)`` returning the new p."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                p.copy_(self.update(p.detach().clone(), p.grad.clone(), group, state))


class SutskeverSGD(PaperOptimizer):
    """Sutskever, Martens, Dahl & Hinton (ICML 2013), eq. (1)-(4), velocity in parameter units.

    Classical momentum:  v_{t+1} = mu v_t - eps_t grad f(theta_t);  theta_{t+1} = theta_t + v_{t+1}.
    Nesterov, on the look-ahead point phi_t = theta_t + mu v_t (Bengio et al. 2013's substitution):
    phi_{t+1} = phi_t + mu v_{t+1} - eps_t grad f(phi_t).
    Dampening d scales the gradient term after the first step; v starts at 0 before step 1.
    """

    def __init__(self, params, lr, momentum, dampening=0.0, nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov))

    def update(self, p, g, group, state):
        eps, mu, d = group["lr"], group["momentum"], group["dampening"]
        if "v" not in state:
            v = -eps * g
        else:
            v = mu * state["v"] - eps * (1 - d) * g
        state["v"] = v
        if group["nesterov"]:
            return p + mu * v - eps * g
        return p + v


class SeedAdam(PaperOptimizer):
    """Adam as the course notes write it: theta_t = theta_{t-1} - eta / sqrt(v_hat_t + eps) * m_hat_t."""

    def __init__(self, params, lr, betas, eps):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    def update(self, p, g, group, state):
        b1, b2 = group["betas"]
        t = state["t"] = state.get("t", 0) + 1
        m = state["m"] = b1 * state.get("m", torch.zeros_like(p)) + (1 - b1) * g
        v = state["v"] = b2 * state.get("v", torch.zeros_like(p)) + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        return p - group["lr"] / torch.sqrt(v_hat + group["eps"]) * m_hat


class ReddiAMSGrad(PaperOptimizer):
    """Reddi, Kale & Kumar (ICLR 2018), Algorithm 2 with constant alpha and beta_1, plus eps:
    m_t = b1 m + (1-b1) g;  v_t = b2 v + (1-b2) g^2;  v^_t = max(v^_{t-1}, v_t);
    x_{t+1} = x_t - alpha m_t / (sqrt(v^_t) + eps)         (no bias correction)."""

    def __init__(self, params, lr, betas, eps, eps_inside_sqrt=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, eps_inside_sqrt=eps_inside_sqrt))

    def update(self, p, g, group, state):
        b1, b2 = group["betas"]
        m = state["m"] = b1 * state.get("m", torch.zeros_like(p)) + (1 - b1) * g
        v = state["v"] = b2 * state.get("v", torch.zeros_like(p)) + (1 - b2) * g * g
        v_max = state["v_max"] = torch.maximum(state.get("v_max", torch.zeros_like(p)), v)
        if group["eps_inside_sqrt"]:
            return p - group["lr"] * m / torch.sqrt(v_max + group["eps"])
        return p - group["lr"] * m / (torch.sqrt(v_max) + group["eps"])


class LoshchilovAdamW(PaperOptimizer):
    """Loshchilov & Hutter (ICLR 2019), Algorithm 2 (AdamW) with schedule multiplier eta_t:
    theta_t = theta_{t-1} - eta_t (alpha m^_t / (sqrt(v^_t) + eps) + lambda theta_{t-1}).
    Here alpha is the initial lr and eta_t = lr_t / alpha."""

    def __init__(self, params, lr, betas, eps, weight_decay):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, alpha=lr))

    def update(self, p, g, group, state):
        b1, b2 = group["betas"]
        alpha = group["alpha"]
        eta = group["lr"] / alpha
        t = state["t"] = state.get("t", 0) + 1
        m = state["m"] = b1 * state.get("m", torch.zeros_like(p)) + (1 - b1) * g
        v = state["v"] = b2 * state.get("v", torch.zeros_like(p)) + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        return p - eta * (alpha * m_hat / (torch.sqrt(v_hat) + group["eps"]) + group["weight_decay"] * p)
