#include "randomized_eigh.hpp"

#include <Eigen/Eigenvalues>
#include <Eigen/QR>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

namespace steerid {

double GaussianStream::next() {
    if (has_spare_) {
        has_spare_ = false;
        return spare_;
    }
    constexpr double two_pow_minus_53 = 1.0 / 9007199254740992.0;
    constexpr double two_pi = 6.283185307179586476925286766559;
    // u1 in (0, 1] so that log(u1) is finite; u2 in [0, 1). Both use the top 53 bits.
    const double u1 = static_cast<double>((engine_() >> 11) + 1) * two_pow_minus_53;
    const double u2 = static_cast<double>(engine_() >> 11) * two_pow_minus_53;
    const double radius = std::sqrt(-2.0 * std::log(u1));
    const double angle = two_pi * u2;
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return radius * std::cos(angle);
}

namespace {

// Replaces q (d, l) by the thin Q factor of the Householder QR of y (d, l).
void orthonormalise(const Eigen::MatrixXd& y, Eigen::HouseholderQR<Eigen::MatrixXd>& qr, Eigen::MatrixXd& q) {
    qr.compute(y);
    q.setIdentity(y.rows(), y.cols());
    qr.householderQ().applyThisOnTheLeft(q);
}

template <typename T>
void check_symmetric(const T* data, Index d, double rel_tol, const std::string& what) {
    double max_abs = 0.0;
    for (Index i = 0; i < d * d; ++i) {
        max_abs = std::max(max_abs, std::abs(static_cast<double>(data[i])));
    }
    const double tol = rel_tol * max_abs;
    double worst = 0.0;
    Index worst_i = 0;
    Index worst_j = 0;
    constexpr Index tile = 64;
    for (Index ib = 0; ib < d; ib += tile) {
        const Index i_end = std::min(ib + tile, d);
        for (Index jb = 0; jb <= ib; jb += tile) {
            const Index j_end = std::min(jb + tile, d);
            for (Index i = ib; i < i_end; ++i) {
                for (Index j = jb; j < std::min(j_end, i); ++j) {
                    const double diff =
                        std::abs(static_cast<double>(data[i * d + j]) - static_cast<double>(data[j * d + i]));
                    if (diff > worst) {
                        worst = diff;
                        worst_i = i;
                        worst_j = j;
                    }
                }
            }
        }
    }
    if (worst > tol) {
        std::ostringstream msg;
        msg.precision(3);
        msg << what << " is not symmetric: |C[" << worst_i << ", " << worst_j << "] - C[" << worst_j << ", "
            << worst_i << "]| = " << worst << " exceeds " << rel_tol << " * max|C| = " << tol
            << "; expected a symmetric positive semi-definite matrix";
        throw std::invalid_argument(msg.str());
    }
}

}  // namespace

void require_symmetric(const RowMajorView& view, double rel_tol, const std::string& what) {
    switch (view.kind) {
        case ScalarKind::f32:
            check_symmetric(static_cast<const float*>(view.data), view.rows, rel_tol, what);
            break;
        case ScalarKind::f64:
            check_symmetric(static_cast<const double*>(view.data), view.rows, rel_tol, what);
            break;
        case ScalarKind::f16:
            throw std::invalid_argument(what + ": float16 matrices are not supported");
    }
}

EighResult randomized_eigh(const Eigen::Ref<const Eigen::MatrixXd>& C, Index k, Index oversample,
                           Index power_iters, std::uint64_t seed) {
    const Index d = C.rows();
    if (C.cols() != d) {
        throw std::invalid_argument("randomized_eigh: C has shape (" + std::to_string(C.rows()) + ", " +
                                    std::to_string(C.cols()) + "); expected a square (d, d) matrix");
    }
    if (k < 1 || k > d) {
        throw std::invalid_argument("randomized_eigh: k=" + std::to_string(k) + " is out of range; expected 1 <= k <= d=" +
                                    std::to_string(d));
    }
    if (oversample < 0) {
        throw std::invalid_argument("randomized_eigh: oversample=" + std::to_string(oversample) +
                                    " is invalid; expected oversample >= 0");
    }
    if (power_iters < 0) {
        throw std::invalid_argument("randomized_eigh: power_iters=" + std::to_string(power_iters) +
                                    " is invalid; expected power_iters >= 0");
    }
    const Index l = std::min(d, k + oversample);

    // Gaussian test matrix, filled column by column.
    GaussianStream normals(seed);
    Eigen::MatrixXd omega(d, l);
    for (Index j = 0; j < l; ++j) {
        for (Index i = 0; i < d; ++i) {
            omega(i, j) = normals.next();
        }
    }

    Eigen::HouseholderQR<Eigen::MatrixXd> qr(d, l);
    Eigen::MatrixXd q(d, l);
    Eigen::MatrixXd y(d, l);
    y.noalias() = C * omega;
    omega.resize(0, 0);
    orthonormalise(y, qr, q);
    for (Index it = 0; it < 2 * power_iters; ++it) {
        y.noalias() = C * q;
        orthonormalise(y, qr, q);
    }

    // Rayleigh-Ritz on the sampled subspace: B = Q^T C Q (l, l).
    y.noalias() = C * q;
    Eigen::MatrixXd b(l, l);
    b.noalias() = q.transpose() * y;
    b = (0.5 * (b + b.transpose())).eval();
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> small(b);
    if (small.info() != Eigen::Success) {
        throw std::runtime_error("randomized_eigh: the small (" + std::to_string(l) + ", " + std::to_string(l) +
                                 ") eigenproblem did not converge");
    }

    // Eigen returns ascending eigenvalues; keep the top k in descending order.
    Eigen::MatrixXd top(l, k);
    EighResult result;
    result.values.resize(k);
    for (Index c = 0; c < k; ++c) {
        result.values[c] = small.eigenvalues()[l - 1 - c];
        top.col(c) = small.eigenvectors().col(l - 1 - c);
    }
    result.vectors.noalias() = q * top;

    // Fix each column's sign so that its largest-magnitude entry is positive.
    for (Index c = 0; c < k; ++c) {
        Index arg = 0;
        result.vectors.col(c).cwiseAbs().maxCoeff(&arg);
        if (result.vectors(arg, c) < 0.0) {
            result.vectors.col(c) *= -1.0;
        }
    }
    return result;
}

}  // namespace steerid
