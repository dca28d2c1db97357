"""Literal transcriptions of the adaptive methods' papers (and course notes), as test oracles.

Written plainly, out of place, one formula per line in the paper's notation,
sharing no code with optzoo (the ``PaperOptimizer`` shell is the tests' own):
these are the oracles for the keyword options that select a paper's form, and
a second witness, beside torch.optim, for the default forms that equal a paper.
"""

from __future__ import annotations

import math

import torch

from paper_sgd_adam import PaperOptimizer


class DuchiAdagrad(PaperOptimizer):
    """Duchi, Hazan & Singer (JMLR 2011), diagonal AdaGrad, eq. (1) with diag(G_t):
    x_{t+1} = x_t - eta diag(delta I + diag(G_t)^{1/2})^{-1} g_t,  G_t = sum_{tau<=t} g_tau g_tau^T,
    with torch's two additions: the sum starts at s_0 (``initial_accumulator_value``; the paper's
    is 0) and the step decays as eta_t = eta / (1 + (t - 1) lr_decay) (the paper's is constant)."""

    def __init__(self, params, lr, eps, lr_decay=0.0, initial_accumulator_value=0.0):
        super().__init__(params, dict(lr=lr, eps=eps, lr_decay=lr_decay, s0=initial_accumulator_value))

    def update(self, p, g, group, state):
        t = state["t"] = state.get("t", 0) + 1
        s = state["s"] = state.get("s", torch.full_like(p, group["s0"])) + g * g
        eta_t = group["lr"] / (1 + (t - 1) * group["lr_decay"])
        return p - eta_t * g / (group["eps"] + torch.sqrt(s))


class HintonRMSProp(PaperOptimizer):
    """Tieleman & Hinton, Coursera NNML lecture 6e (2012): "Divide the gradient by sqrt(MeanSquare(w, t))",
    MeanSquare(w, t) = 0.9 MeanSquare(w, t-1) + 0.1 (dE/dw(t))^2, with decay alpha in place of 0.9.

    The course notes (seed 001) write it  theta_t = theta_{t-1} - eta / sqrt(v_t) g_{t-1},
    v_1 = g_0^2,  v_t = alpha v_{t-1} + (1 - alpha) g_{t-1}^2:  ``first_grad_start=True``
    (otherwise v_0 = 0). The slides have no eps; it is added inside the root
    (``eps_inside_sqrt=True``) or to the root.
    """

    def __init__(self, params, lr, alpha, eps, eps_inside_sqrt=False, first_grad_start=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, inside=eps_inside_sqrt, first=first_grad_start))

    def update(self, p, g, group, state):
        alpha, eta, eps = group["alpha"], group["lr"], group["eps"]
        if "v" not in state and group["first"]:
            v = g**2
        else:
            v = alpha * state.get("v", torch.zeros_like(p)) + (1 - alpha) * g**2
        state["v"] = v
        if group["inside"]:
            return p - eta / torch.sqrt(v + eps) * g
        return p - eta / (torch.sqrt(v) + eps) * g


class GravesRMSProp(PaperOptimizer):
    """Graves, "Generating Sequences With Recurrent Neural Networks" (2013), eq. (38)-(41):
    n_i = aleph n_i + (1 - aleph) eps_i^2;  g_i = aleph g_i + (1 - aleph) eps_i;
    Delta_i = beth Delta_i - gimel eps_i / sqrt(n_i - g_i^2 + daleth);  w_i = w_i + Delta_i,
    where eps_i is the gradient. Here aleph = alpha, beth = momentum, gimel = lr, daleth = eps."""

    def __init__(self, params, lr, alpha, momentum, eps):
        super().__init__(params, dict(lr=lr, alpha=alpha, momentum=momentum, eps=eps))

    def update(self, p, grad, group, state):
        aleph, beth, gimel, daleth = group["alpha"], group["momentum"], group["lr"], group["eps"]
        n = state["n"] = aleph * state.get("n", torch.zeros_like(p)) + (1 - aleph) * grad**2
        g = state["g"] = aleph * state.get("g", torch.zeros_like(p)) + (1 - aleph) * grad
        delta = state["delta"] = beth * state.get("delta", torch.zeros_like(p)) - gimel * grad / torch.sqrt(
            n - g**2 + daleth
        )
        return p + delta


class ZeilerAdadelta(PaperOptimizer):
    """Zeiler, "ADADELTA" (2012), Algorithm 1, RMS[y]_t = sqrt(E[y^2]_t + eps):
    E[g^2]_t = rho E[g^2]_{t-1} + (1 - rho) g_t^2
    Delta x_t = - RMS[Delta x]_{t-1} / RMS[g]_t g_t
    E[Delta x^2]_t = rho E[Delta x^2]_{t-1} + (1 - rho) Delta x_t^2
    x_{t+1} = x_t + Delta x_t"""

    def __init__(self, params, rho, eps):
        super().__init__(params, dict(rho=rho, eps=eps, lr=1.0))  # the paper has no lr; the harness reads one

    def update(self, p, g, group, state):
        rho, eps = group["rho"], group["eps"]
        eg2 = state["eg2"] = rho * state.get("eg2", torch.zeros_like(p)) + (1 - rho) * g**2
        edx2_prev = state.get("edx2", torch.zeros_like(p))
        dx = -torch.sqrt(edx2_prev + eps) / torch.sqrt(eg2 + eps) * g
        state["edx2"] = rho * edx2_prev + (1 - rho) * dx**2
        return p + dx


class KingmaAdamax(PaperOptimizer):
    """Kingma & Ba (ICLR 2015), Algorithm 2 (AdaMax):
    m_t = b1 m_{t-1} + (1 - b1) g_t;  u_t = max(b2 u_{t-1}, |g_t|);
    theta_t = theta_{t-1} - (alpha / (1 - b1^t)) m_t / u_t."""

    def __init__(self, params, lr, betas):
        super().__init__(params, dict(lr=lr, betas=betas))

    def update(self, p, g, group, state):
        b1, b2 = group["betas"]
        t = state["t"] = state.get("t", 0) + 1
        m = state["m"] = b1 * state.get("m", torch.zeros_like(p)) + (1 - b1) * g
        u = state["u"] = torch.maximum(b2 * state.get("u", torch.zeros_like(p)), torch.abs(g))
        return p - (group["lr"] / (1 - b1**t)) * m / u


class LiuRAdam(PaperOptimizer):
    """Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond" (ICLR 2020), Algorithm 2:
    rho_inf = 2 / (1 - b2) - 1
    m_t = b1 m_{t-1} + (1 - b1) g_t;  v_t = b2 v_{t-1} + (1 - b2) g_t^2;  m^_t = m_t / (1 - b1^t)
    rho_t = rho_inf - 2 t b2^t / (1 - b2^t)
    if rho_t > 4:  l_t = sqrt((1 - b2^t) / v_t)
                   r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
                   theta_t = theta_{t-1} - alpha_t r_t m^_t l_t
    else:          theta_t = theta_{t-1} - alpha_t m^_t
    The threshold 4 is ``threshold``; eps is added to sqrt(v_t) as in the authors' code:
    l_t = sqrt(1 - b2^t) / (sqrt(v_t) + eps)."""

    def __init__(self, params, lr, betas, eps, threshold=4.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, threshold=threshold))

    def update(self, p, g, group, state):
        b1, b2 = group["betas"]
        alpha = group["lr"]
        rho_inf = 2 / (1 - b2) - 1
        t = state["t"] = state.get("t", 0) + 1
        m = state["m"] = b1 * state.get("m", torch.zeros_like(p)) + (1 - b1) * g
        v = state["v"] = b2 * state.get("v", torch.zeros_like(p)) + (1 - b2) * g**2
        m_hat = m / (1 - b1**t)
        rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho_t > group["threshold"]:
            l_t = math.sqrt(1 - b2**t) / (torch.sqrt(v) + group["eps"])
            r_t = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            return p - alpha * r_t * m_hat * l_t
        return p - alpha * m_hat


class IgelRpropMinus(PaperOptimizer):
    """Igel & Hüsken, "Improving the Rprop Learning Algorithm" (NC 2000), Fig. 3, iRprop-:
    if   dE/dw(t-1) * dE/dw(t) > 0:  Delta(t) = min(Delta(t-1) eta+, Delta_max)
    elif dE/dw(t-1) * dE/dw(t) < 0:  Delta(t) = max(Delta(t-1) eta-, Delta_min);  dE/dw(t) = 0
    else:                            Delta(t) = Delta(t-1)
    w(t+1) = w(t) - sign(dE/dw(t)) Delta(t)
    with Delta(0) = lr and dE/dw(0) = 0."""

    def __init__(self, params, lr, etas, step_sizes):
        super().__init__(params, dict(lr=lr, etas=etas, step_sizes=step_sizes))

    def update(self, p, g, group, state):
        eta_minus, eta_plus = group["etas"]
        delta_min, delta_max = group["step_sizes"]
        g_prev = state.get("g_prev", torch.zeros_like(p))
        delta_prev = state.get("delta", torch.full_like(p, group["lr"]))
        product = g_prev * g
        grown = torch.clamp(delta_prev * eta_plus, max=delta_max)
        shrunk = torch.clamp(delta_prev * eta_minus, min=delta_min)
        delta = torch.where(product > 0, grown, torch.where(product < 0, shrunk, delta_prev))
        g = torch.where(product < 0, torch.zeros_like(g), g)
        state["delta"] = delta
        state["g_prev"] = g
        return p - torch.sign(g) * delta
