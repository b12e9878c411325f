#include "blas.hpp"

#include <Eigen/Eigenvalues>
#include <Eigen/QR>
#include <algorithm>
#include <climits>
#include <stdexcept>
#include <vector>

namespace steerid {
namespace blas {

namespace {

std::atomic<bool> g_enabled{true};
// The QR of a (d, l) block and the (l, l) eigenproblem are a few per cent of the flops of the
// randomized solver but consist of many small BLAS-2 calls inside LAPACK; OpenBLAS threads them
// with spin barriers, which measured 10-70x slower than one thread whenever another process
// shares the cores (dgeqrf 4096 x 266: 1.6 s on 2 threads vs 0.13 s on 1, under load). Eigen's
// blocked Householder QR and eigensolver run on the calling thread and are immune to that.
std::atomic<bool> g_lapack_factorisations{false};

int fortran_int(Index value, const char* what) {
    if (value < 0 || value > static_cast<Index>(INT_MAX)) {
        throw std::invalid_argument(std::string("BLAS dimension ") + what + "=" + std::to_string(value) +
                                    " does not fit the 32-bit integer of the BLAS interface");
    }
    return static_cast<int>(value);
}

}  // namespace

namespace {
const Table g_empty{};
std::atomic<const Table*> g_table{&g_empty};
}  // namespace

const Table& table() { return *g_table.load(std::memory_order_acquire); }

void install(const Table& filled) { g_table.store(new Table(filled), std::memory_order_release); }

bool enabled() { return g_enabled.load(std::memory_order_relaxed); }
void set_enabled(bool on) { g_enabled.store(on, std::memory_order_relaxed); }
bool lapack_factorisations() { return g_lapack_factorisations.load(std::memory_order_relaxed); }
void set_lapack_factorisations(bool on) { g_lapack_factorisations.store(on, std::memory_order_relaxed); }

void syrk_lower(Index n, Index k, double alpha, const double* a, Index lda, double* c, Index ldc) {
    if (n == 0 || k == 0) {
        return;
    }
    const Table& t = table();
    if (enabled() && t.dsyrk != nullptr) {
        char uplo = 'L';
        char trans = 'N';
        int n_ = fortran_int(n, "n");
        int k_ = fortran_int(k, "k");
        int lda_ = fortran_int(lda, "lda");
        int ldc_ = fortran_int(ldc, "ldc");
        double alpha_ = alpha;
        double beta = 1.0;
        t.dsyrk(&uplo, &trans, &n_, &k_, &alpha_, const_cast<double*>(a), &lda_, &beta, c, &ldc_);
        return;
    }
    Eigen::Map<const Eigen::MatrixXd, 0, Eigen::OuterStride<>> a_map(a, n, k, Eigen::OuterStride<>(lda));
    Eigen::Map<Eigen::MatrixXd, 0, Eigen::OuterStride<>> c_map(c, n, n, Eigen::OuterStride<>(ldc));
    c_map.selfadjointView<Eigen::Lower>().rankUpdate(a_map, alpha);
}

void gemm(bool trans_a, bool trans_b, Index m, Index n, Index k, double alpha, const double* a, Index lda,
          const double* b, Index ldb, double beta, double* c, Index ldc) {
    if (m == 0 || n == 0) {
        return;
    }
    const Table& t = table();
    if (enabled() && t.dgemm != nullptr) {
        char ta = trans_a ? 'T' : 'N';
        char tb = trans_b ? 'T' : 'N';
        int m_ = fortran_int(m, "m");
        int n_ = fortran_int(n, "n");
        int k_ = fortran_int(k, "k");
        int lda_ = fortran_int(std::max<Index>(lda, 1), "lda");
        int ldb_ = fortran_int(std::max<Index>(ldb, 1), "ldb");
        int ldc_ = fortran_int(std::max<Index>(ldc, 1), "ldc");
        double alpha_ = alpha;
        double beta_ = beta;
        t.dgemm(&ta, &tb, &m_, &n_, &k_, &alpha_, const_cast<double*>(a), &lda_, const_cast<double*>(b), &ldb_, &beta_,
                c, &ldc_);
        return;
    }
    using Stride = Eigen::OuterStride<>;
    const Index a_rows = trans_a ? k : m;
    const Index a_cols = trans_a ? m : k;
    const Index b_rows = trans_b ? n : k;
    const Index b_cols = trans_b ? k : n;
    Eigen::Map<const Eigen::MatrixXd, 0, Stride> a_map(a, a_rows, a_cols, Stride(lda));
    Eigen::Map<const Eigen::MatrixXd, 0, Stride> b_map(b, b_rows, b_cols, Stride(ldb));
    Eigen::Map<Eigen::MatrixXd, 0, Stride> c_map(c, m, n, Stride(ldc));
    if (beta == 0.0) {
        c_map.setZero();
    } else if (beta != 1.0) {
        c_map *= beta;
    }
    if (k == 0) {
        return;
    }
    if (!trans_a && !trans_b) {
        c_map.noalias() += alpha * a_map * b_map;
    } else if (trans_a && !trans_b) {
        c_map.noalias() += alpha * a_map.transpose() * b_map;
    } else if (!trans_a && trans_b) {
        c_map.noalias() += alpha * a_map * b_map.transpose();
    } else {
        c_map.noalias() += alpha * a_map.transpose() * b_map.transpose();
    }
}

void orthonormalise_columns(Eigen::MatrixXd& y) {
    const Index m = y.rows();
    const Index n = y.cols();
    if (n == 0) {
        return;
    }
    const Table& t = table();
    if (enabled() && lapack_factorisations() && t.dgeqrf != nullptr && t.dorgqr != nullptr) {
        int m_ = fortran_int(m, "m");
        int n_ = fortran_int(n, "n");
        int lda = fortran_int(m, "lda");
        std::vector<double> tau(static_cast<size_t>(n));
        int info = 0;
        int lwork = -1;
        double query = 0.0;
        t.dgeqrf(&m_, &n_, y.data(), &lda, tau.data(), &query, &lwork, &info);
        double query2 = 0.0;
        t.dorgqr(&m_, &n_, &n_, y.data(), &lda, tau.data(), &query2, &lwork, &info);
        lwork = std::max({static_cast<int>(query), static_cast<int>(query2), n_, 1});
        std::vector<double> work(static_cast<size_t>(lwork));
        t.dgeqrf(&m_, &n_, y.data(), &lda, tau.data(), work.data(), &lwork, &info);
        if (info != 0) {
            throw std::runtime_error("LAPACK dgeqrf failed with info=" + std::to_string(info));
        }
        t.dorgqr(&m_, &n_, &n_, y.data(), &lda, tau.data(), work.data(), &lwork, &info);
        if (info != 0) {
            throw std::runtime_error("LAPACK dorgqr failed with info=" + std::to_string(info));
        }
        return;
    }
    Eigen::HouseholderQR<Eigen::MatrixXd> qr(y);
    y.setIdentity(m, n);
    qr.householderQ().applyThisOnTheLeft(y);
}

void symmetric_eigen(Eigen::MatrixXd& b, Eigen::VectorXd& values) {
    const Index n = b.rows();
    values.resize(n);
    if (n == 0) {
        return;
    }
    const Table& t = table();
    if (enabled() && lapack_factorisations() && t.dsyevd != nullptr) {
        char jobz = 'V';
        char uplo = 'L';
        int n_ = fortran_int(n, "n");
        int lda = n_;
        int info = 0;
        int lwork = -1;
        int liwork = -1;
        double work_query = 0.0;
        int iwork_query = 0;
        t.dsyevd(&jobz, &uplo, &n_, b.data(), &lda, values.data(), &work_query, &lwork, &iwork_query, &liwork, &info);
        lwork = std::max(static_cast<int>(work_query), 1 + 6 * n_ + 2 * n_ * n_);
        liwork = std::max(iwork_query, 3 + 5 * n_);
        std::vector<double> work(static_cast<size_t>(lwork));
        std::vector<int> iwork(static_cast<size_t>(liwork));
        t.dsyevd(&jobz, &uplo, &n_, b.data(), &lda, values.data(), work.data(), &lwork, iwork.data(), &liwork, &info);
        if (info != 0) {
            throw std::runtime_error("LAPACK dsyevd did not converge (info=" + std::to_string(info) + ")");
        }
        return;
    }
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(b);
    if (solver.info() != Eigen::Success) {
        throw std::runtime_error("the symmetric (" + std::to_string(n) + ", " + std::to_string(n) +
                                 ") eigenproblem did not converge");
    }
    values = solver.eigenvalues();
    b = solver.eigenvectors();
}

void symmetric_eigenvalues(const Eigen::MatrixXd& b, Eigen::VectorXd& values) {
    if (b.rows() == 0) {
        values.resize(0);
        return;
    }
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(b, Eigen::EigenvaluesOnly);
    if (solver.info() != Eigen::Success) {
        throw std::runtime_error("the symmetric (" + std::to_string(b.rows()) + ", " + std::to_string(b.rows()) +
                                 ") eigenproblem did not converge");
    }
    values = solver.eigenvalues();
}

}  // namespace blas
}  // namespace steerid
