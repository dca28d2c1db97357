// SWATS in one pass, each tensor in its own phase; the update rule is in optzoo/optim/swats.py.
// Buffers: param, grad, exp_avg (m, after the switch the SGD momentum v), exp_avg_sq (a).
//
// Per tensor (``per_tensor``, 4 values a row): in, sgd_phase (0 or 1) and sgd_lr (Lambda); out,
// for a tensor in the Adam phase, p.g and p.p over the whole tensor (p the step just taken, g the
// prepared gradient), from which SWATS._native_after updates lambda and makes the switch test.
#include "common.h"

enum { kLr = zoo::kHyperCommon, kBeta1, kBeta2, kEps, kNesterov };
enum { kPhase = 0, kSgdLr, kDotPG, kDotPP, kPerTensor };

template <typename T>
static void swats(const zoo::Call& c) {
    const std::vector<double> k = zoo::advance_steps(c);
    // The Adam phase's -lr sqrt(1 - beta2^k) / (1 - beta1^k) and the SGD phase's
    // -(1 - beta1) Lambda, per tensor, in double as the reference computes them.
    std::vector<T> scale(c.n_tensors);
    for (int64_t i = 0; i < c.n_tensors; ++i) {
        const double* row = c.per_tensor + i * kPerTensor;
        scale[i] = row[kPhase] != 0 ? -(1.0 - c.hyper[kBeta1]) * row[kSgdLr]
                                    : -c.hyper[kLr] * std::sqrt(1.0 - std::pow(c.hyper[kBeta2], k[i])) /
                                          (1.0 - std::pow(c.hyper[kBeta1], k[i]));
    }
    const int threads = zoo::thread_count(c);
    // Per-thread partial sums of p.g and p.p for each tensor, added up after the threads join.
    std::vector<double> partial(static_cast<size_t>(threads) * c.n_tensors * 2, 0.0);
    zoo::branch(c.hyper[kNesterov] != 0, [&](auto nesterov) {
        zoo::parallel_thread_ranges(c, [&](int thread, int64_t i, int64_t begin, int64_t end) {
            // Constants made here, in registers: read through the closure inside the loop they
            // could alias the stores for all the compiler knows, and the loop would not vectorise.
            const zoo::Prepare<T> prepare(c);
            const zoo::Moments<T> moments(c.hyper[kBeta1], c.hyper[kBeta2]);
            const T beta1 = c.hyper[kBeta1], eps = c.hyper[kEps];
            const T value = scale[i];
            T* __restrict p = zoo::buffer<T>(c, 0, i);
            const T* __restrict grad = zoo::buffer<T>(c, 1, i);
            T* __restrict m = zoo::buffer<T>(c, 2, i);
            T* __restrict a = zoo::buffer<T>(c, 3, i);
            if (c.per_tensor[i * kPerTensor + kPhase] != 0) {
                for (int64_t j = begin; j < end; ++j) {
                    T param = p[j];
                    const T g = prepare(grad[j], param);
                    const T v_t = m[j] * beta1 + g;  // v_k = beta1 v + g
                    m[j] = v_t;
                    if constexpr (nesterov) {
                        p[j] = param + value * (g + beta1 * v_t);  // x -= (1 - beta1) Lambda (g + beta1 v)
                    } else {
                        p[j] = param + value * v_t;  // x -= (1 - beta1) Lambda v
                    }
                }
                return;
            }
            // p.g and p.p summed in double. Strict floating point forbids reordering a sum, which would
            // keep this loop scalar; the reduction pragma (-fopenmp-simd: no OpenMP runtime) allows
            // partial sums in vector lanes, added up at the end.
            double pg = 0, pp = 0;
#pragma omp simd reduction(+ : pg, pp)
            for (int64_t j = begin; j < end; ++j) {
                T param = p[j];
                const T g = prepare(grad[j], param);
                const T m_t = moments.first(m[j], g);
                m[j] = m_t;
                const T a_t = moments.second(a[j], g);
                a[j] = a_t;
                const T step = m_t / (std::sqrt(a_t) + eps) * value;  // p_k
                p[j] = param + step;
                pg += static_cast<double>(step * g);
                pp += static_cast<double>(step * step);
            }
            double* sums = &partial[(static_cast<size_t>(thread) * c.n_tensors + i) * 2];
            sums[0] = pg;
            sums[1] = pp;
        });
    });
    for (int64_t i = 0; i < c.n_tensors; ++i) {
        double* row = c.per_tensor + i * kPerTensor;
        double pg = 0, pp = 0;
        for (int thread = 0; thread < threads; ++thread) {
            pg += partial[(static_cast<size_t>(thread) * c.n_tensors + i) * 2];
            pp += partial[(static_cast<size_t>(thread) * c.n_tensors + i) * 2 + 1];
        }
        row[kDotPG] = pg;
        row[kDotPP] = pp;
    }
}

ZOO_EXPORT(swats)
