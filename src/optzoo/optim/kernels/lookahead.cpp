// Lookahead's synchronisation in one pass; the rule is in optzoo/optim/lookahead.py.
// Buffers: fast weights (the parameters), slow weights. Hyper: alpha only.
#include "common.h"

template <typename T>
static void lookahead(const zoo::Call& c) {
    const T alpha = c.hyper[0];
    zoo::parallel_ranges(c, [&](int64_t i, int64_t begin, int64_t end) {
        T* __restrict fast = zoo::buffer<T>(c, 0, i);
        T* __restrict slow = zoo::buffer<T>(c, 1, i);
        for (int64_t j = begin; j < end; ++j) {
            const T phi = zoo::lerp(slow[j], fast[j], alpha);  // phi = phi + alpha (theta - phi)
            slow[j] = phi;
            fast[j] = phi;  // theta = phi
        }
    });
}

ZOO_EXPORT(lookahead)
