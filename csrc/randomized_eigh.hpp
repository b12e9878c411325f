// Top-k eigenpairs of a symmetric positive semi-definite matrix by the randomized range finder of
// Halko, Martinsson and Tropp (2011), with a Householder QR re-orthonormalisation after every
// product, and an adaptive variant that grows the subspace block by block until the spectrum
// falls below a relative tolerance. Products go through BLAS dgemm and the QR/small eigenproblem
// through LAPACK (blas.hpp: SciPy's OpenBLAS, else Eigen). Nothing here touches Python, so it
// may run with the GIL released.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <random>

#include "dense_block.hpp"

namespace steerid {

// Standard normal draws from std::mt19937_64 by the Box-Muller transform. mt19937_64 is fully
// specified by the C++ standard and the transform is written out here (std::normal_distribution
// is implementation-defined), so a seed yields the same numbers with every standard library, up
// to the last-ulp behaviour of the platform's log/sin/cos.
class GaussianStream {
   public:
    explicit GaussianStream(std::uint64_t seed) : engine_(seed) {}
    double next();

   private:
    std::mt19937_64 engine_;
    double spare_ = 0.0;
    bool has_spare_ = false;
};

struct EighResult {
    Eigen::VectorXd values;   // (k), descending
    Eigen::MatrixXd vectors;  // (d, k), orthonormal columns; each column's largest-magnitude entry is positive
    bool saturated = false;   // adaptive variant: every returned value is still >= rtol * largest
};

// C must be symmetric (d, d), column-major with leading dimension C.outerStride() (a row-major
// symmetric buffer reads the same). Requires 1 <= k <= d, oversample >= 0, power_iters >= 0
// (checked; std::invalid_argument). Uses l = min(k + oversample, d) sample columns; each power
// iteration is two products with C (Y = C Q, re-orthonormalise, twice), so the range is that of
// C^(2q+1) Omega.
EighResult randomized_eigh(const Eigen::Ref<const Eigen::MatrixXd>& C, Index k, Index oversample, Index power_iters,
                           std::uint64_t seed);

// Grows the sampled subspace by `block` columns at a time (the first block has
// max(oversample, block / 2) more), each new block power-iterated on C deflated by the columns
// already found, until the Rayleigh-Ritz values show that every eigenvalue > rtol * largest
// lies at least margin = max(oversample, block / 2, count / 2) places inside the subspace
// (checked again after one subspace iteration over the whole basis), or the subspace reaches
// min(d, max_k + margin(max_k)) columns. Returns the top min(max_k, l - margin) pairs (all
// min(max_k, d) when the subspace spans R^d); `saturated` when every returned value is still
// above the threshold, i.e. the rank is only known to be >= k.
EighResult randomized_eigh_adaptive(const Eigen::Ref<const Eigen::MatrixXd>& C, double rtol, Index block, Index max_k,
                                    Index oversample, Index power_iters, std::uint64_t seed);

// One pass over a row-major (d, d) float32/float64 matrix: throws std::invalid_argument naming the
// count and first position of NaN/Inf entries, or the worst asymmetric pair if
// max |C - C^T| > rel_tol * max |C|, or entries so large (max |C| * d > DBL_MAX / 16) that the
// products C Q could overflow. Runs on all cores. Returns max |C|.
double require_finite_symmetric(const RowMajorView& view, double rel_tol, const std::string& what);

// Kept for callers of the first version: the symmetry half of require_finite_symmetric.
void require_symmetric(const RowMajorView& view, double rel_tol, const std::string& what);

}  // namespace steerid
