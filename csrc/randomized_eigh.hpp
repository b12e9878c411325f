// Top-k eigenpairs of a symmetric positive semi-definite matrix by the randomized range finder of
// Halko, Martinsson and Tropp (2011), with a Householder QR re-orthonormalisation after every
// product. Nothing here touches Python, so it may run with the GIL released.
#pragma once

#include "dense_block.hpp"

#include <Eigen/Core>

#include <cstdint>
#include <random>

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
};

// C must be symmetric (d, d); it is read through a column-major view, i.e. as C^T = C.
// Requires 1 <= k <= d, oversample >= 0, power_iters >= 0 (checked; std::invalid_argument).
// Uses l = min(k + oversample, d) sample columns; each power iteration is two products with C
// (Y = C Q, re-orthonormalise, twice), so the range is that of C^(2q+1) Omega.
EighResult randomized_eigh(const Eigen::Ref<const Eigen::MatrixXd>& C, Index k, Index oversample,
                           Index power_iters, std::uint64_t seed);

// Throws std::invalid_argument if max |C - C^T| > tol * max |C| (C given row-major, (d, d)).
void require_symmetric(const RowMajorView& view, double rel_tol, const std::string& what);

}  // namespace steerid
