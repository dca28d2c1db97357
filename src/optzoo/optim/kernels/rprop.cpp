// Rprop (iRprop-) in one pass; the update rule and its options are in optzoo/optim/rprop.py.
// Buffers: param, grad, prev (g_{t-1}), step_size (Delta).
#include "common.h"

enum { kEtaMinus = zoo::kHyperCommon, kEtaPlus, kStepMin, kStepMax };

template <typename T>
static void rprop(const zoo::Call& c) {
    zoo::advance_steps(c);
    zoo::parallel_ranges(c, [&](int64_t i, int64_t begin, int64_t end) {
        // Constants are made here, in registers: read through the closure inside the loop, they
        // could alias the stores for all the compiler knows, and the loop would not vectorise.
        const zoo::Prepare<T> prepare(c);
        const T eta_minus = c.hyper[kEtaMinus], eta_plus = c.hyper[kEtaPlus];
        const T low = c.hyper[kStepMin], high = c.hyper[kStepMax];
        T* __restrict p = zoo::buffer<T>(c, 0, i);
        const T* __restrict grad = zoo::buffer<T>(c, 1, i);
        T* __restrict prev = zoo::buffer<T>(c, 2, i);
        T* __restrict step_size = zoo::buffer<T>(c, 3, i);
        for (int64_t j = begin; j < end; ++j) {
            T param = p[j];
            const T g = prepare(grad[j], param);
            const T product = g * prev[j];  // g_{t-1} g_t
            // eta+ where > 0, eta- where < 0, else 1 + product (1, or NaN for a NaN gradient): Rprop._factor.
            const T factor = product > 0 ? eta_plus : (product < 0 ? eta_minus : T(1) + product);
            // clamp_(low, high) as torch computes it, min(max(x, low), high), a NaN passing through.
            T delta = step_size[j] * factor;
            delta = delta < low ? low : delta;
            delta = high < delta ? high : delta;
            step_size[j] = delta;
            const T kept = product < 0 ? T(0) : g;  // g_t = 0 where the sign flipped
            const T sign = T(T(0) < kept) - T(kept < T(0));  // torch.sign: 0 for a zero (either sign) or NaN
            p[j] = param + (T(-1) * sign) * delta;
            prev[j] = kept;
        }
    });
}

ZOO_EXPORT(rprop)
