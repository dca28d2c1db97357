// Adamax in one pass; the update rule and its options are in optzoo/optim/adamax.py.
// Buffers: param, grad, exp_avg (m), exp_inf (u).
#include "common.h"

enum { kLr = zoo::kHyperCommon, kBeta1, kBeta2, kEps };

template <typename T>
static void adamax(const zoo::Call& c) {
    const std::vector<double> t = zoo::advance_steps(c);
    std::vector<T> neg_step(c.n_tensors);  // -lr / (1 - beta1^t), in double as the reference computes it
    for (int64_t i = 0; i < c.n_tensors; ++i) {
        neg_step[i] = -c.hyper[kLr] / (1.0 - std::pow(c.hyper[kBeta1], t[i]));
    }
    zoo::parallel_ranges(c, [&](int64_t i, int64_t begin, int64_t end) {
        // Constants are made here, in registers: read through the closure inside the loop, they
        // could alias the stores for all the compiler knows, and the loop would not vectorise.
        const zoo::Prepare<T> prepare(c);
        const T beta2 = c.hyper[kBeta2], eps = c.hyper[kEps];
        const T one_minus_beta1 = 1.0 - c.hyper[kBeta1];
        const T value = neg_step[i];
        T* __restrict p = zoo::buffer<T>(c, 0, i);
        const T* __restrict grad = zoo::buffer<T>(c, 1, i);
        T* __restrict m = zoo::buffer<T>(c, 2, i);
        T* __restrict u = zoo::buffer<T>(c, 3, i);
        for (int64_t j = begin; j < end; ++j) {
            T param = p[j];
            const T g = prepare(grad[j], param);
            const T m_t = zoo::lerp(m[j], g, one_minus_beta1);
            m[j] = m_t;
            // torch.maximum(beta2 u, |g| + eps): a NaN on either side propagates (std::max's would not).
            const T decayed = u[j] * beta2, bound = std::abs(g) + eps;
            const T u_t = decayed != decayed || decayed > bound ? decayed : bound;
            u[j] = u_t;
            p[j] = param + (value * m_t) / u_t;
        }
    });
}

ZOO_EXPORT(adamax)
