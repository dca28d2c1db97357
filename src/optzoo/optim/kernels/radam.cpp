// RAdam in one pass; the update rule and its options are in optzoo/optim/radam.py.
// Buffers: param, grad, exp_avg, exp_avg_sq, slow: the slow weights of a Lookahead around RAdam
// (Ranger) on its synchronising steps, synchronised in the same pass (null otherwise).
#include "common.h"

enum { kLr = zoo::kHyperCommon, kBeta1, kBeta2, kEps, kRectifyThreshold, kLookaheadAlpha };

// What RAdam._reference_update computes once per tensor from its step t, in Python floats
// (the same expressions, the same association; ``x ** 0.5`` is pow, as in Python).
struct Scalars {
    bool rectified;  // rho_t > rectify_threshold: the adaptive step
    double bias1;    // 1 - beta1^t
    double root2;    // (1 - beta2^t) ** 0.5, rectified only
    double r;        // r_t, rectified only
};

static Scalars scalars(const zoo::Call& c, double t) {
    const double beta1 = c.hyper[kBeta1], beta2 = c.hyper[kBeta2];
    Scalars s{};
    s.bias1 = 1 - std::pow(beta1, t);
    // RAdam._rectification
    const double rho_inf = 2 / (1 - beta2) - 1;
    const double rho_t = rho_inf - 2 * t * std::pow(beta2, t) / (1 - std::pow(beta2, t));
    s.rectified = !(rho_t <= c.hyper[kRectifyThreshold]);
    if (s.rectified) {
        s.r = std::pow((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t), 0.5);
        s.root2 = std::pow(1 - std::pow(beta2, t), 0.5);
    }
    return s;
}

template <typename T>
static void radam(const zoo::Call& c) {
    const std::vector<double> t = zoo::advance_steps(c);
    std::vector<Scalars> per_tensor(c.n_tensors);
    for (int64_t i = 0; i < c.n_tensors; ++i) per_tensor[i] = scalars(c, t[i]);
    zoo::parallel_ranges(c, [&](int64_t i, int64_t begin, int64_t end) {
        // Whether rho_t passes the threshold, and whether the tensor synchronises, are per tensor:
        // each tensor's loop is one variant.
        zoo::branch(per_tensor[i].rectified, [&](auto rectified) {
            zoo::branch(zoo::buffer<T>(c, 4, i) != nullptr, [&](auto synchronise) {
                // Everything the loop reads is a local here (not reached through a closure), so it
                // stays in registers and the loop vectorises.
                const zoo::Prepare<T> prepare(c);
                const zoo::Moments<T> moments(c.hyper[kBeta1], c.hyper[kBeta2]);
                const T lr = c.hyper[kLr], eps = c.hyper[kEps], alpha = c.hyper[kLookaheadAlpha];
                const T bias1 = per_tensor[i].bias1, root2 = per_tensor[i].root2, r = per_tensor[i].r;
                T* __restrict p = zoo::buffer<T>(c, 0, i);
                const T* __restrict grad = zoo::buffer<T>(c, 1, i);
                T* __restrict m = zoo::buffer<T>(c, 2, i);
                T* __restrict v = zoo::buffer<T>(c, 3, i);
                T* __restrict slow = zoo::buffer<T>(c, 4, i);
                for (int64_t j = begin; j < end; ++j) {
                    T param = p[j];
                    const T g = prepare(grad[j], param);
                    const T m_t = moments.first(m[j], g);
                    m[j] = m_t;
                    const T v_t = moments.second(v[j], g);
                    v[j] = v_t;
                    const T m_hat = m_t / bias1;
                    if constexpr (rectified) {
                        // l_t = root2 / (sqrt(v) + eps): torch evaluates scalar / tensor as reciprocal(tensor) * scalar
                        const T l_t = (T(1) / (std::sqrt(v_t) + eps)) * root2;
                        param = param + T(-1) * (((m_hat * lr) * l_t) * r);  // theta -= lr r_t m_hat l_t
                    } else {
                        param = param + T(-1) * (m_hat * lr);  // theta -= lr m_hat
                    }
                    if constexpr (synchronise) {
                        const T phi = zoo::lerp(slow[j], param, alpha);  // phi = phi + alpha (theta - phi)
                        slow[j] = phi;
                        param = phi;  // theta = phi
                    }
                    p[j] = param;
                }
            });
        });
    });
}

ZOO_EXPORT(radam)
