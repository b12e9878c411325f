#include "convert.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define STEERID_HAVE_F16C_DISPATCH 1
#endif

namespace steerid {

namespace {

#ifdef STEERID_HAVE_F16C_DISPATCH
// Compiled for F16C/AVX whatever the baseline flags; only called after a run-time CPU check,
// so the extension stays portable (no -march=native). vcvtph2ps is exact for every half.
__attribute__((target("avx,f16c"))) void half_row_f16c(const std::uint16_t* src, float* dst, Index d) {
    Index j = 0;
    for (; j + 8 <= d; j += 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + j));
        _mm256_storeu_ps(dst + j, _mm256_cvtph_ps(h));
    }
    for (; j < d; ++j) {
        dst[j] = static_cast<float>(half_to_double(src[j]));
    }
}

bool detect_f16c() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
}
#endif

void half_row_portable(const std::uint16_t* src, float* dst, Index d) {
    for (Index j = 0; j < d; ++j) {
        dst[j] = static_cast<float>(half_to_double(src[j]));  // exact: every half is a float
    }
}

using HalfRowFn = void (*)(const std::uint16_t*, float*, Index);

HalfRowFn half_row_fn() {
#ifdef STEERID_HAVE_F16C_DISPATCH
    static const HalfRowFn fn = detect_f16c() ? &half_row_f16c : &half_row_portable;
#else
    static const HalfRowFn fn = &half_row_portable;
#endif
    return fn;
}

// Per-row kernels on float/double rows; simple loops the compiler vectorises.
template <typename T>
inline void moments_row(const T* row, Index d, double* __restrict sum, double* __restrict sumsq) {
    for (Index j = 0; j < d; ++j) {
        const double v = static_cast<double>(row[j]);
        sum[j] += v;
        sumsq[j] += v * v;
    }
}

template <typename T>
inline void centred_sumsq_row(const T* row, Index d, const double* __restrict mu, double* __restrict out) {
    for (Index j = 0; j < d; ++j) {
        const double v = static_cast<double>(row[j]) - mu[j];
        out[j] += v * v;
    }
}

template <typename T>
inline void convert_row(const T* row, Index d, const double* __restrict mu, double* __restrict dst) {
    for (Index j = 0; j < d; ++j) {
        dst[j] = static_cast<double>(row[j]) - mu[j];
    }
}

// Applies `kernel(row_pointer, t)` to positions [t0, t1) (row rows[t], or t without a list);
// float16 rows are first widened to a float buffer (exact), so kernels see float or double only.
template <typename Kernel>
void for_rows(const RowMajorView& view, const Index* rows, Index t0, Index t1, Kernel&& kernel) {
    const Index d = view.cols;
    auto row_of = [rows](Index t) { return rows ? rows[t] : t; };
    switch (view.kind) {
        case ScalarKind::f16: {
            const auto* base = static_cast<const std::uint16_t*>(view.data);
            std::vector<float> buffer(static_cast<size_t>(d));
            const HalfRowFn widen = half_row_fn();
            for (Index t = t0; t < t1; ++t) {
                widen(base + row_of(t) * d, buffer.data(), d);
                kernel(static_cast<const float*>(buffer.data()), t);
            }
            break;
        }
        case ScalarKind::f32: {
            const auto* base = static_cast<const float*>(view.data);
            for (Index t = t0; t < t1; ++t) {
                kernel(base + row_of(t) * d, t);
            }
            break;
        }
        case ScalarKind::f64: {
            const auto* base = static_cast<const double*>(view.data);
            for (Index t = t0; t < t1; ++t) {
                kernel(base + row_of(t) * d, t);
            }
            break;
        }
    }
}

}  // namespace

bool half_conversion_uses_f16c() { return half_row_fn() != &half_row_portable; }

void accumulate_moments(const RowMajorView& view, const Index* rows, Index t0, Index t1, double* sum, double* sumsq) {
    const Index d = view.cols;
    for_rows(view, rows, t0, t1, [&](const auto* row, Index) { moments_row(row, d, sum, sumsq); });
}

void accumulate_centred_sumsq(const RowMajorView& view, const Index* rows, Index t0, Index t1, const double* mu,
                              double* out) {
    const Index d = view.cols;
    for_rows(view, rows, t0, t1, [&](const auto* row, Index) { centred_sumsq_row(row, d, mu, out); });
}

void convert_centred(const RowMajorView& view, const Index* rows, Index t0, Index t1, const double* mu, double* dst) {
    const Index d = view.cols;
    for_rows(view, rows, t0, t1, [&](const auto* row, Index t) { convert_row(row, d, mu, dst + (t - t0) * d); });
}

}  // namespace steerid
