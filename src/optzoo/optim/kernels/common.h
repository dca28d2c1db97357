// What every native kernel shares: the call record, gradient preparation, threading.
//
// A kernel is one pass over memory: for each element it reads the parameter, the
// gradient and the state once, does all of the algorithm's arithmetic in registers,
// and writes the parameter and the state once. torch's unfused paths run one
// element-wise op per line of the update, each a full pass, which is why they reach
// only a fraction of the memory bandwidth.
//
// Arithmetic follows the reference step (``_reference_update``) op by op, in the
// tensor's dtype, with the same association (a + (s * x) * y for addcmul, and so on);
// sources are built with -ffp-contract=off so no multiply-add is fused behind our back.
// Results equal the reference to a few ulps (torch's own vectorised kernels fuse some
// multiply-adds, lerp among them); tests/test_native.py holds them to it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

// The version of the calling convention (Call's layout, its meaning); _native.py's _ABI_VERSION
// must equal it, and a library answering another from zoo_abi_check is rebuilt, never called.
#define ZOO_ABI_VERSION 1

namespace zoo {

// Filled by optzoo/optim/_native.py; the layout must match its ctypes Structure.
struct Call {
    int64_t n_tensors;
    const int64_t* numel;  // elements of each tensor
    void* const* buffers;  // buffer b of tensor i at buffers[b * n_tensors + i]; null where absent
    float* const* steps;   // each tensor's float32 step counter
    const double* hyper;   // kHyperCommon entries, then the algorithm's own (its .py file lists them)
    double* per_tensor;    // per-tensor values a kernel reads and writes (its .py file lists them), or null
    int32_t dtype;         // 0: float32, 1: float64
    int32_t n_threads;
};

// The hyper-parameters every kernel receives first, in this order.
enum Common { kMaximize = 0, kWeightDecay, kDecoupled, kDecayFactor, kHyperCommon };

template <typename T>
inline T* buffer(const Call& c, int b, int64_t i) {
    return static_cast<T*>(c.buffers[b * c.n_tensors + i]);
}

// ``maximize`` and weight decay, as ZooOptimizer._reference_prepare applies them: the
// gradient's sign flip, then either p *= 1 - lr * wd (decoupled) or g + wd * p (coupled).
template <typename T>
struct Prepare {
    bool maximize, coupled, decoupled;
    T weight_decay, factor;

    explicit Prepare(const Call& c)
        : maximize(c.hyper[kMaximize] != 0),
          coupled(c.hyper[kWeightDecay] != 0 && c.hyper[kDecoupled] == 0),
          decoupled(c.hyper[kWeightDecay] != 0 && c.hyper[kDecoupled] != 0),
          weight_decay(static_cast<T>(c.hyper[kWeightDecay])),
          factor(static_cast<T>(c.hyper[kDecayFactor])) {}

    // Returns the prepared gradient; decays ``p`` in place when decay is decoupled.
    // Written as selects, which vectorise, rather than branches.
    inline T operator()(T g, T& p) const {
        g = maximize ? -g : g;
        p = decoupled ? p * factor : p;
        return coupled ? g + weight_decay * p : g;
    }
};

// Calls fn(std::true_type{}) or fn(std::false_type{}): a loop-invariant option becomes a
// compile-time constant, so each variant of a loop has no branches and vectorises (a
// buffer that is only read or written under an option could not be if-converted).
template <typename Fn>
inline void branch(bool option, Fn&& fn) {
    if (option) {
        fn(std::true_type{});
    } else {
        fn(std::false_type{});
    }
}

// torch's lerp: start + w (end - start) for |w| < 1/2, else end - (end - start)(1 - w).
template <typename T>
inline T lerp(T start, T end, T weight) {
    return std::abs(weight) < T(0.5) ? start + weight * (end - start) : end - (end - start) * (T(1) - weight);
}

// Adam's moment estimates as torch updates them: m.lerp_(g, 1 - beta1) and
// v.mul_(beta2).addcmul_(g, g, value=1 - beta2). Make one inside the range loop (as Prepare),
// so its constants sit in registers.
template <typename T>
struct Moments {
    T one_minus_beta1, beta2, one_minus_beta2;

    Moments(double beta1, double beta2_) : one_minus_beta1(1.0 - beta1), beta2(beta2_), one_minus_beta2(1.0 - beta2_) {}

    inline T first(T m, T g) const { return lerp(m, g, one_minus_beta1); }         // beta1 m + (1 - beta1) g
    inline T second(T v, T g) const { return v * beta2 + (one_minus_beta2 * g) * g; }  // beta2 v + (1 - beta2) g^2
};

// Adds one to every tensor's step counter and returns the new counts (as the reference's
// ``state["step"] += 1; t = state["step"].item()``).
inline std::vector<double> advance_steps(const Call& c) {
    std::vector<double> t(c.n_tensors);
    for (int64_t i = 0; i < c.n_tensors; ++i) {
        *c.steps[i] += 1.0f;
        t[i] = *c.steps[i];
    }
    return t;
}

// How many threads parallel_ranges uses: up to ``n_threads``, one per 64K elements at
// least, so a small model never pays for starting threads.
inline int thread_count(const Call& c) {
    int64_t total = 0;
    for (int64_t i = 0; i < c.n_tensors; ++i) total += c.numel[i];
    const int64_t min_per_thread = int64_t{1} << 16;
    return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(c.n_threads, total / min_per_thread)));
}

// Calls fn(thread, tensor, begin, end) over every element of every tensor, the elements
// split evenly across thread_count(c) threads; ``thread`` (0 .. thread_count - 1) lets a
// kernel keep per-thread partial sums.
template <typename Fn>
void parallel_thread_ranges(const Call& c, Fn fn) {
    int64_t total = 0;
    for (int64_t i = 0; i < c.n_tensors; ++i) total += c.numel[i];
    const int threads = thread_count(c);
    auto work = [&](int k) {
        // Boundaries on multiples of 64 elements keep each thread's vector loops aligned alike.
        const int64_t begin = (total * k / threads) & ~int64_t{63};
        const int64_t end = k + 1 == threads ? total : (total * (k + 1) / threads) & ~int64_t{63};
        int64_t offset = 0;
        for (int64_t i = 0; i < c.n_tensors && offset < end; offset += c.numel[i], ++i) {
            const int64_t lo = std::max(begin, offset), hi = std::min(end, offset + c.numel[i]);
            if (lo < hi) fn(k, i, lo - offset, hi - offset);
        }
    };
    std::vector<std::thread> pool;
    for (int k = 1; k < threads; ++k) pool.emplace_back(work, k);
    work(0);
    for (auto& thread : pool) thread.join();
}

// Calls fn(tensor, begin, end), as parallel_thread_ranges without the thread index.
template <typename Fn>
void parallel_ranges(const Call& c, Fn fn) {
    parallel_thread_ranges(c, [&](int, int64_t i, int64_t begin, int64_t end) { fn(i, begin, end); });
}

}  // namespace zoo

// The self-check _native.py runs once on each library it loads: on float64 tensors, through the
// same Call record and thread split as a kernel, advance the steps and set buffer 1 to
// 2 * buffer 0 + per_tensor * step, then answer ZOO_ABI_VERSION. A library that loads yet answers
// wrong (corrupt, or built against another Call) is rebuilt rather than handed parameters.
// Defined here, not in each kernel: every library is built from one .cpp file including this once.
extern "C" int32_t zoo_abi_check(const zoo::Call* c) {
    const std::vector<double> t = zoo::advance_steps(*c);
    zoo::parallel_ranges(*c, [&](int64_t i, int64_t begin, int64_t end) {
        const double* in = zoo::buffer<double>(*c, 0, i);
        double* out = zoo::buffer<double>(*c, 1, i);
        for (int64_t j = begin; j < end; ++j) out[j] = 2.0 * in[j] + c->per_tensor[i] * t[i];
    });
    return ZOO_ABI_VERSION;
}

// Exports ``zoo_<name>(const Call*)`` dispatching on dtype to the template ``name<T>``.
#define ZOO_EXPORT(name)                                       \
    extern "C" void zoo_##name(const zoo::Call* c) {           \
        if (c->dtype == 0) {                                   \
            name<float>(*c);                                   \
        } else {                                               \
            name<double>(*c);                                  \
        }                                                      \
    }
