// NAdam in one pass; the update rule and its options are in optzoo/optim/nadam.py.
// Buffers: param, grad, exp_avg, exp_avg_sq. Per tensor: mu_product (read, then written).
#include "common.h"

enum { kLr = zoo::kHyperCommon, kBeta1, kBeta2, kEps, kMomentumDecay, kProductInFloat64 };

// What NAdam._reference_update computes once per tensor from its step t, in Python floats
// (the same expressions, the same association).
struct Scalars {
    double bias2;          // 1 - beta2^t
    double grad_scale;     // -lr (1 - mu_t) / (1 - prod_{i<=t} mu_i)
    double momentum_scale;  // -lr mu_{t+1} / (1 - prod_{i<=t+1} mu_i)
};

static Scalars scalars(const zoo::Call& c, double t, double& mu_product) {
    const double lr = c.hyper[kLr], beta1 = c.hyper[kBeta1], psi = c.hyper[kMomentumDecay];
    // NAdam._schedule
    const double mu = beta1 * (1.0 - 0.5 * std::pow(0.96, t * psi));
    const double mu_next = beta1 * (1.0 - 0.5 * std::pow(0.96, (t + 1) * psi));
    // nadam._times: a float32 multiplication (of float32 numbers, exact in double, rounded once)
    // unless torch's default dtype is float64
    mu_product = c.hyper[kProductInFloat64] != 0
                     ? mu_product * mu
                     : static_cast<float>(mu_product * static_cast<float>(mu));
    const double prod = mu_product, prod_next = prod * mu_next;
    return {1 - std::pow(c.hyper[kBeta2], t), -lr * (1 - mu) / (1 - prod), -lr * mu_next / (1 - prod_next)};
}

template <typename T>
static void nadam(const zoo::Call& c) {
    const std::vector<double> t = zoo::advance_steps(c);
    std::vector<Scalars> per_tensor(c.n_tensors);
    for (int64_t i = 0; i < c.n_tensors; ++i) per_tensor[i] = scalars(c, t[i], c.per_tensor[i]);
    zoo::parallel_ranges(c, [&](int64_t i, int64_t begin, int64_t end) {
        // Everything the loop reads is a local here (not reached through the closure), so it
        // stays in registers and the loop vectorises.
        const zoo::Prepare<T> prepare(c);
        const zoo::Moments<T> moments(c.hyper[kBeta1], c.hyper[kBeta2]);
        const T eps = c.hyper[kEps];
        const T bias2 = per_tensor[i].bias2, grad_scale = per_tensor[i].grad_scale;
        const T momentum_scale = per_tensor[i].momentum_scale;
        T* __restrict p = zoo::buffer<T>(c, 0, i);
        const T* __restrict grad = zoo::buffer<T>(c, 1, i);
        T* __restrict m = zoo::buffer<T>(c, 2, i);
        T* __restrict v = zoo::buffer<T>(c, 3, i);
        for (int64_t j = begin; j < end; ++j) {
            T param = p[j];
            const T g = prepare(grad[j], param);
            const T m_t = moments.first(m[j], g);
            m[j] = m_t;
            const T v_t = moments.second(v[j], g);
            v[j] = v_t;
            const T denom = std::sqrt(v_t / bias2) + eps;  // sqrt(v_hat_t) + eps
            param = param + (grad_scale * g) / denom;  // the current gradient's part
            p[j] = param + (momentum_scale * m_t) / denom;  // the look-ahead momentum's part
        }
    });
}

ZOO_EXPORT(nadam)
