// AdaBound and AMSBound in one pass; the update rule and its options are in optzoo/optim/adabound.py.
// Buffers: param, grad, exp_avg (m), exp_avg_sq (v), max_exp_avg_sq (null unless amsbound).
#include "common.h"

#include <limits>

enum { kLr = zoo::kHyperCommon, kBeta1, kBeta2, kEps, kFinalLr, kGamma, kAmsbound };

template <typename T>
static void adabound(const zoo::Call& c) {
    const std::vector<double> t = zoo::advance_steps(c);
    // Per tensor, in double as the reference computes them in Python floats: the bias-corrected
    // step size lr sqrt(1 - beta2^t) / (1 - beta1^t) and the bounds (AdaBound._bounds; kFinalLr is
    // final_lr already scaled by lr / initial_lr there).
    std::vector<T> step_size(c.n_tensors), lower(c.n_tensors), upper(c.n_tensors);
    for (int64_t i = 0; i < c.n_tensors; ++i) {
        step_size[i] = c.hyper[kLr] * std::sqrt(1.0 - std::pow(c.hyper[kBeta2], t[i])) /
                       (1.0 - std::pow(c.hyper[kBeta1], t[i]));
        const double final_lr = c.hyper[kFinalLr], gamma_t = c.hyper[kGamma] * t[i];
        lower[i] = final_lr * (1.0 - 1.0 / (gamma_t + 1.0));
        upper[i] = gamma_t != 0 ? final_lr * (1.0 + 1.0 / gamma_t) : std::numeric_limits<double>::infinity();
    }
    zoo::branch(c.hyper[kAmsbound] != 0, [&](auto amsbound) {
        zoo::parallel_ranges(c, [&](int64_t i, int64_t begin, int64_t end) {
            // Constants made here, in registers: read through the closure inside the loop they
            // could alias the stores for all the compiler knows, and the loop would not vectorise.
            const zoo::Prepare<T> prepare(c);
            const zoo::Moments<T> moments(c.hyper[kBeta1], c.hyper[kBeta2]);
            const T eps = c.hyper[kEps];
            const T size = step_size[i], lo = lower[i], hi = upper[i];
            T* __restrict p = zoo::buffer<T>(c, 0, i);
            const T* __restrict grad = zoo::buffer<T>(c, 1, i);
            T* __restrict m = zoo::buffer<T>(c, 2, i);
            T* __restrict v = zoo::buffer<T>(c, 3, i);
            T* __restrict v_max = zoo::buffer<T>(c, 4, i);
            for (int64_t j = begin; j < end; ++j) {
                T param = p[j];
                const T g = prepare(grad[j], param);
                const T m_t = moments.first(m[j], g);
                m[j] = m_t;
                T v_t = moments.second(v[j], g);
                v[j] = v_t;
                if constexpr (amsbound) {
                    // torch.maximum(v_max, v_t): a NaN on either side propagates (std::max's would not).
                    const T previous = v_max[j];
                    v_t = previous != previous || previous > v_t ? previous : v_t;
                    v_max[j] = v_t;
                }
                // step_size / (sqrt(v) + eps) is torch's reciprocal(sqrt(v) + eps) * step_size
                // (Tensor.__rtruediv__), then clamp(lower, upper): max first, then min; a NaN
                // fails both comparisons and stays, as torch.clamp propagates it.
                T eta = (T(1) / (std::sqrt(v_t) + eps)) * size;
                eta = eta < lo ? lo : eta;
                eta = eta > hi ? hi : eta;
                p[j] = param - eta * m_t;
            }
        });
    });
}

ZOO_EXPORT(adabound)
