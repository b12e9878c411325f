#include "randomized_eigh.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "blas.hpp"
#include "parallel.hpp"

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

// ---------------------------------------------------------------------------------- checks

struct CheckPart {
    double max_abs = 0.0;
    double worst = 0.0;
    Index worst_i = 0;
    Index worst_j = 0;
    bool nonfinite = false;
};

template <typename T>
void check_tile_rows(const T* data, Index d, Index ib, Index i_end, CheckPart& part) {
    constexpr Index tile = 64;
    for (Index i = ib; i < i_end; ++i) {
        const T* row = data + i * d;
        double row_max = 0.0;
        bool row_bad = false;
        for (Index j = 0; j < d; ++j) {
            const double v = static_cast<double>(row[j]);
            row_bad |= !std::isfinite(v);
            row_max = std::max(row_max, std::abs(v));
        }
        part.nonfinite |= row_bad;
        part.max_abs = std::max(part.max_abs, row_max);
    }
    for (Index jb = 0; jb <= ib; jb += tile) {
        const Index j_end = std::min(jb + tile, d);
        for (Index i = ib; i < i_end; ++i) {
            const T* row = data + i * d;
            for (Index j = jb; j < std::min(j_end, i); ++j) {
                const double diff = std::abs(static_cast<double>(row[j]) - static_cast<double>(data[j * d + i]));
                if (diff > part.worst) {
                    part.worst = diff;
                    part.worst_i = i;
                    part.worst_j = j;
                }
            }
        }
    }
}

template <typename T>
CheckPart check_matrix(const T* data, Index d) {
    constexpr Index tile = 64;
    const Index tiles = (d + tile - 1) / tile;
    const Index pairs = (tiles + 1) / 2;  // tile p with tile (tiles - 1 - p) balances the triangle
    const int max_parts = available_cpus();
    std::vector<CheckPart> parts(static_cast<size_t>(max_parts));
    parallel_for(
        pairs, std::max<Index>(1, (Index(1) << 16) / std::max<Index>(1, d * tile)),
        [&](Index p0, Index p1, Index part) {
            CheckPart& mine = parts[static_cast<size_t>(part)];
            for (Index p = p0; p < p1; ++p) {
                const Index first = p;
                const Index second = tiles - 1 - p;
                check_tile_rows(data, d, first * tile, std::min(d, (first + 1) * tile), mine);
                if (second != first) {
                    check_tile_rows(data, d, second * tile, std::min(d, (second + 1) * tile), mine);
                }
            }
        },
        max_parts);
    CheckPart total;
    for (const auto& part : parts) {
        total.nonfinite |= part.nonfinite;
        total.max_abs = std::max(total.max_abs, part.max_abs);
        if (part.worst > total.worst) {
            total.worst = part.worst;
            total.worst_i = part.worst_i;
            total.worst_j = part.worst_j;
        }
    }
    return total;
}

void report_asymmetry(const CheckPart& result, double rel_tol, const std::string& what) {
    const double tol = rel_tol * result.max_abs;
    if (result.worst > tol) {
        std::ostringstream msg;
        msg.precision(3);
        msg << what << " is not symmetric: |C[" << result.worst_i << ", " << result.worst_j << "] - C["
            << result.worst_j << ", " << result.worst_i << "]| = " << result.worst << " exceeds " << rel_tol
            << " * max|C| = " << tol << "; expected a symmetric positive semi-definite matrix";
        throw std::invalid_argument(msg.str());
    }
}

CheckPart check_view(const RowMajorView& view, const std::string& what) {
    if (view.rows != view.cols) {
        throw std::invalid_argument(what + " has shape (" + std::to_string(view.rows) + ", " +
                                    std::to_string(view.cols) + "); expected a square (d, d) matrix");
    }
    switch (view.kind) {
        case ScalarKind::f32:
            return check_matrix(static_cast<const float*>(view.data), view.rows);
        case ScalarKind::f64:
            return check_matrix(static_cast<const double*>(view.data), view.rows);
        case ScalarKind::f16:
            break;
    }
    throw std::invalid_argument(what + ": float16 matrices are not supported");
}

// ---------------------------------------------------------------------------------- kernels

void validate(Index d, Index k, Index oversample, Index power_iters, const char* who) {
    if (k < 1 || k > d) {
        throw std::invalid_argument(std::string(who) + ": k=" + std::to_string(k) +
                                    " is out of range; expected 1 <= k <= d=" + std::to_string(d));
    }
    if (oversample < 0) {
        throw std::invalid_argument(std::string(who) + ": oversample=" + std::to_string(oversample) +
                                    " is invalid; expected oversample >= 0");
    }
    if (power_iters < 0) {
        throw std::invalid_argument(std::string(who) + ": power_iters=" + std::to_string(power_iters) +
                                    " is invalid; expected power_iters >= 0");
    }
}

// out (d, cols) = C * in (d, cols), through BLAS dgemm.
void apply(const Eigen::Ref<const Eigen::MatrixXd>& C, const Eigen::MatrixXd& in, Eigen::MatrixXd& out) {
    const Index d = C.rows();
    out.resize(d, in.cols());
    blas::gemm(false, false, d, in.cols(), d, 1.0, C.data(), C.outerStride(), in.data(), d, 0.0, out.data(), d);
}

// y -= Q (Q^T y), twice ("twice is enough" for numerical orthogonality), for the first `q_cols`
// columns of q.
void project_out(const Eigen::MatrixXd& q, Index q_cols, Eigen::MatrixXd& y) {
    if (q_cols == 0) {
        return;
    }
    const Index d = y.rows();
    Eigen::MatrixXd coeffs(q_cols, y.cols());
    for (int pass = 0; pass < 2; ++pass) {
        blas::gemm(true, false, q_cols, y.cols(), d, 1.0, q.data(), d, y.data(), d, 0.0, coeffs.data(), q_cols);
        blas::gemm(false, false, d, y.cols(), q_cols, -1.0, q.data(), d, coeffs.data(), q_cols, 1.0, y.data(), d);
    }
}

Eigen::MatrixXd gaussian(GaussianStream& normals, Index rows, Index cols) {
    Eigen::MatrixXd omega(rows, cols);
    for (Index j = 0; j < cols; ++j) {
        for (Index i = 0; i < rows; ++i) {
            omega(i, j) = normals.next();
        }
    }
    return omega;
}

// B = Q^T C Q from Q and CQ = C Q, symmetrised (rounding leaves it slightly asymmetric).
Eigen::MatrixXd projected(const Eigen::MatrixXd& q, const Eigen::MatrixXd& cq) {
    const Index d = q.rows();
    const Index l = q.cols();
    Eigen::MatrixXd b(l, l);
    blas::gemm(true, false, l, l, d, 1.0, q.data(), d, cq.data(), d, 0.0, b.data(), l);
    return 0.5 * (b + b.transpose());
}

// Rayleigh-Ritz on span(Q) given CQ = C Q: eigenpairs of B = Q^T C Q, values descending, and
// the top `k` Ritz vectors Q V written to result (signs normalised).
void rayleigh_ritz(const Eigen::MatrixXd& q, const Eigen::MatrixXd& cq, Index k, EighResult& result) {
    const Index d = q.rows();
    const Index l = q.cols();
    Eigen::MatrixXd b = projected(q, cq);
    Eigen::VectorXd ascending;
    blas::symmetric_eigen(b, ascending);
    Eigen::MatrixXd top(l, k);
    result.values.resize(k);
    for (Index c = 0; c < k; ++c) {
        result.values[c] = ascending[l - 1 - c];
        top.col(c) = b.col(l - 1 - c);
    }
    result.vectors.resize(d, k);
    blas::gemm(false, false, d, k, l, 1.0, q.data(), d, top.data(), l, 0.0, result.vectors.data(), d);
    // Fix each column's sign so that its largest-magnitude entry is positive.
    for (Index c = 0; c < k; ++c) {
        Index arg = 0;
        result.vectors.col(c).cwiseAbs().maxCoeff(&arg);
        if (result.vectors(arg, c) < 0.0) {
            result.vectors.col(c) *= -1.0;
        }
    }
}

// Descending Ritz values of span(Q) (no vectors).
Eigen::VectorXd ritz_values(const Eigen::MatrixXd& q, const Eigen::MatrixXd& cq) {
    Eigen::MatrixXd b = projected(q, cq);
    Eigen::VectorXd ascending;
    blas::symmetric_eigenvalues(b, ascending);
    return ascending.reverse();
}

}  // namespace

double require_finite_symmetric(const RowMajorView& view, double rel_tol, const std::string& what) {
    const CheckPart result = check_view(view, what);
    if (result.nonfinite) {
        require_finite(view, what);  // exact count and first position
    }
    report_asymmetry(result, rel_tol, what);
    const double limit = std::numeric_limits<double>::max() / 16.0 / static_cast<double>(std::max<Index>(view.rows, 1));
    if (result.max_abs > limit) {
        std::ostringstream msg;
        msg.precision(3);
        msg << what << " has entries up to " << result.max_abs << ", too large for products with it to stay finite "
            << "in float64 (limit " << limit << " at d=" << view.rows << "); rescale C (eigenvectors are unchanged)";
        throw std::invalid_argument(msg.str());
    }
    return result.max_abs;
}

void require_symmetric(const RowMajorView& view, double rel_tol, const std::string& what) {
    report_asymmetry(check_view(view, what), rel_tol, what);
}

EighResult randomized_eigh(const Eigen::Ref<const Eigen::MatrixXd>& C, Index k, Index oversample, Index power_iters,
                           std::uint64_t seed) {
    const Index d = C.rows();
    if (C.cols() != d) {
        throw std::invalid_argument("randomized_eigh: C has shape (" + std::to_string(C.rows()) + ", " +
                                    std::to_string(C.cols()) + "); expected a square (d, d) matrix");
    }
    validate(d, k, oversample, power_iters, "randomized_eigh");
    const Index l = std::min(d, k + std::min(oversample, d));

    GaussianStream normals(seed);
    Eigen::MatrixXd q = gaussian(normals, d, l);
    Eigen::MatrixXd y;
    apply(C, q, y);
    blas::orthonormalise_columns(y);
    q.swap(y);
    for (Index it = 0; it < 2 * power_iters; ++it) {
        apply(C, q, y);
        blas::orthonormalise_columns(y);
        q.swap(y);
    }
    apply(C, q, y);
    EighResult result;
    rayleigh_ritz(q, y, k, result);
    return result;
}

EighResult randomized_eigh_adaptive(const Eigen::Ref<const Eigen::MatrixXd>& C, double rtol, Index block, Index max_k,
                                    Index oversample, Index power_iters, std::uint64_t seed) {
    const char* who = "randomized_eigh_adaptive";
    const Index d = C.rows();
    if (C.cols() != d) {
        throw std::invalid_argument(std::string(who) + ": C is not square");
    }
    if (!(rtol >= 0.0) || !std::isfinite(rtol)) {
        throw std::invalid_argument(std::string(who) + ": rtol must be a finite number >= 0");
    }
    if (block < 1) {
        throw std::invalid_argument(std::string(who) + ": block=" + std::to_string(block) +
                                    " is invalid; expected block >= 1");
    }
    validate(d, max_k, oversample, power_iters, who);
    oversample = std::min(oversample, d);  // larger values change nothing and could overflow
    block = std::min(block, d);
    // Ritz values are only accurate well inside the subspace, so an eigenvalue counted above the
    // threshold must lie `margin` places before its end; the margin grows with the count
    // (l >= 1.5 x count) because convergence at index j goes as (lambda_{l+1} / lambda_j)^iters.
    const Index base_margin = std::max(oversample, block / 2);
    auto margin_for = [&](Index count) { return std::max(base_margin, count / 2); };
    const Index cap = std::min(d, max_k + margin_for(max_k));

    GaussianStream normals(seed);
    Eigen::MatrixXd q(d, 0);
    Eigen::MatrixXd cq(d, 0);
    Eigen::MatrixXd y;
    Eigen::VectorXd theta;
    Index l = 0;
    Index count = 0;
    bool refined = false;
    auto count_above = [&]() {
        theta = ritz_values(q, cq);
        const double threshold = rtol * std::max(theta[0], 0.0);
        Index c = 0;
        while (c < l && theta[c] > threshold && theta[c] > 0.0) {
            ++c;
        }
        return c;
    };
    enum class Stop { whole_space, converged, cap } stop;
    while (true) {
        const Index b = std::min(cap - l, l == 0 ? block + base_margin : block);
        // New block: power-iterate C on the complement of span(Q), re-orthonormalising every time.
        Eigen::MatrixXd qb = gaussian(normals, d, b);
        project_out(q, l, qb);
        for (Index it = 0; it <= 2 * power_iters; ++it) {
            apply(C, qb, y);
            project_out(q, l, y);
            blas::orthonormalise_columns(y);
            qb.swap(y);
        }
        apply(C, qb, y);
        q.conservativeResize(d, l + b);
        q.rightCols(b) = qb;
        cq.conservativeResize(d, l + b);
        cq.rightCols(b) = y;
        l += b;

        count = count_above();
        if (l == d) {
            stop = Stop::whole_space;  // the subspace is all of R^d: the spectrum is exact
            break;
        }
        if (count + margin_for(count) <= l) {
            if (!refined) {
                // One subspace iteration over the whole basis (C Q is cached) sharpens the Ritz
                // values near the threshold before the count is trusted.
                q = cq;
                blas::orthonormalise_columns(q);
                apply(C, q, cq);
                refined = true;
                count = count_above();
            }
            if (count + margin_for(count) <= l) {
                stop = Stop::converged;
                break;
            }
        }
        if (l >= cap) {
            stop = Stop::cap;
            break;
        }
    }
    Index keep = 0;
    bool saturated = false;
    switch (stop) {
        case Stop::whole_space:
            keep = std::min(max_k, d);
            saturated = count > keep;
            break;
        case Stop::converged:
            keep = std::min(max_k, l - margin_for(count));
            saturated = count > keep;
            break;
        case Stop::cap:
            keep = std::min(max_k, l);
            saturated = count >= keep;
            break;
    }
    EighResult result;
    rayleigh_ritz(q, cq, keep, result);
    result.saturated = saturated;
    return result;
}

}  // namespace steerid
