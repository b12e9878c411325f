// Memory-bound passes over a caller-owned row-major float16/32/64 block: column moments and
// the float64 conversion with centring, each over a row range so that callers can split the
// rows between threads. Nothing here touches Python or throws.
#pragma once

#include "dense_block.hpp"

namespace steerid {

// Every pass takes a position range [t0, t1) and an optional row list: position t is row
// rows[t] of the view, or row t when rows == nullptr (a row mask becomes such a list).

// sum[j] += sum_i x_ij and sumsq[j] += sum_i x_ij^2 over positions [t0, t1), in float64.
// A NaN/Inf entry makes the column's sum non-finite, which is how callers detect it cheaply.
void accumulate_moments(const RowMajorView& view, const Index* rows, Index t0, Index t1, double* sum, double* sumsq);

// out[j] += sum_i (x_ij - mu_j)^2 over positions [t0, t1), in float64.
void accumulate_centred_sumsq(const RowMajorView& view, const Index* rows, Index t0, Index t1, const double* mu,
                              double* out);

// dst[(t - t0) * d + j] = double(x_ij) - mu[j] for positions t in [t0, t1): dst is a row-major
// (t1 - t0, d) float64 buffer, i.e. a column-major (d, t1 - t0) matrix whose columns are rows.
void convert_centred(const RowMajorView& view, const Index* rows, Index t0, Index t1, const double* mu, double* dst);

// Whether float16 rows are converted with the F16C instructions (else a portable scalar path).
bool half_conversion_uses_f16c();

}  // namespace steerid
