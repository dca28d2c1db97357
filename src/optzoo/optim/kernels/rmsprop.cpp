// RMSprop in one pass; the update rule and its options are in optzoo/optim/rmsprop.py.
// Buffers: param, grad, square_avg, momentum_buffer (null without momentum),
// grad_avg (null unless centered).
#include "common.h"

enum { kLr = zoo::kHyperCommon, kAlpha, kEps, kMomentum, kCentered, kEpsInsideSqrt, kInitWithFirstGrad };

template <typename T>
static void rmsprop(const zoo::Call& c) {
    const std::vector<double> t = zoo::advance_steps(c);
    std::vector<T> square_weight(c.n_tensors);
    for (int64_t i = 0; i < c.n_tensors; ++i) {
        square_weight[i] = c.hyper[kInitWithFirstGrad] != 0 && t[i] == 1 ? 1.0 : 1.0 - c.hyper[kAlpha];
    }
    zoo::branch(c.hyper[kCentered] != 0, [&](auto centered) {
        zoo::branch(c.hyper[kMomentum] > 0, [&](auto momentum) {
            zoo::parallel_ranges(c, [&](int64_t i, int64_t begin, int64_t end) {
                // Constants made here, in registers: read through the closure inside the loop they
                // could alias the stores for all the compiler knows.
                const zoo::Prepare<T> prepare(c);
                const T alpha = c.hyper[kAlpha], eps = c.hyper[kEps], mu = c.hyper[kMomentum];
                const T neg_lr = -c.hyper[kLr], one_minus_alpha = 1.0 - c.hyper[kAlpha];
                const bool eps_inside = c.hyper[kEpsInsideSqrt] != 0;
                T* __restrict p = zoo::buffer<T>(c, 0, i);
                const T* __restrict grad = zoo::buffer<T>(c, 1, i);
                T* __restrict v = zoo::buffer<T>(c, 2, i);
                T* __restrict b = zoo::buffer<T>(c, 3, i);
                T* __restrict g_bar = zoo::buffer<T>(c, 4, i);
                const T w = square_weight[i];
                for (int64_t j = begin; j < end; ++j) {
                    T param = p[j];
                    const T g = prepare(grad[j], param);
                    const T v_t = v[j] * alpha + (w * g) * g;
                    v[j] = v_t;
                    T var = v_t;
                    if constexpr (centered) {
                        const T g_bar_t = zoo::lerp(g_bar[j], g, one_minus_alpha);
                        g_bar[j] = g_bar_t;
                        var = v_t + (T(-1) * g_bar_t) * g_bar_t;
                    }
                    const T sigma = eps_inside ? std::sqrt(var + eps) : std::sqrt(var) + eps;
                    if constexpr (momentum) {
                        const T b_t = b[j] * mu + g / sigma;
                        b[j] = b_t;
                        p[j] = param + neg_lr * b_t;
                    } else {
                        p[j] = param + (neg_lr * g) / sigma;
                    }
                }
            });
        });
    });
}

ZOO_EXPORT(rmsprop)
