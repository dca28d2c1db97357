// Adadelta in one pass; the update rule and its options are in optzoo/optim/adadelta.py.
// Buffers: param, grad, square_avg (E[g^2]), acc_delta (E[dtheta^2]).
#include "common.h"

enum { kLr = zoo::kHyperCommon, kRho, kEps };

template <typename T>
static void adadelta(const zoo::Call& c) {
    zoo::advance_steps(c);
    zoo::parallel_ranges(c, [&](int64_t i, int64_t begin, int64_t end) {
        // Constants are made here, in registers: read through the closure inside the loop, they
        // could alias the stores for all the compiler knows, and the loop would not vectorise.
        const zoo::Prepare<T> prepare(c);
        const T rho = c.hyper[kRho], eps = c.hyper[kEps];
        const T neg_lr = -c.hyper[kLr], one_minus_rho = 1.0 - c.hyper[kRho];
        T* __restrict p = zoo::buffer<T>(c, 0, i);
        const T* __restrict grad = zoo::buffer<T>(c, 1, i);
        T* __restrict eg2 = zoo::buffer<T>(c, 2, i);
        T* __restrict edx2 = zoo::buffer<T>(c, 3, i);
        for (int64_t j = begin; j < end; ++j) {
            T param = p[j];
            const T g = prepare(grad[j], param);
            const T eg2_t = eg2[j] * rho + (one_minus_rho * g) * g;
            eg2[j] = eg2_t;
            const T rms_g = std::sqrt(eg2_t + eps);
            const T edx2_prev = edx2[j];
            const T delta = (std::sqrt(edx2_prev + eps) / rms_g) * g;
            edx2[j] = edx2_prev * rho + (one_minus_rho * delta) * delta;
            p[j] = param + neg_lr * delta;
        }
    });
}

ZOO_EXPORT(adadelta)
