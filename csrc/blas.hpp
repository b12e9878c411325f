// BLAS/LAPACK kernels used by the streaming covariance and the randomized eigensolver.
//
// The kernels are taken at run time from SciPy's Cython BLAS/LAPACK API: the function pointers
// exported as PyCapsules in `scipy.linalg.cython_blas.__pyx_capi__` and
// `scipy.linalg.cython_lapack.__pyx_capi__` (a documented, stable SciPy API). They are the
// OpenBLAS (or whatever BLAS SciPy was built with) that SciPy already loads, so there is no
// link-time dependency, no second BLAS, and the build stays a header-only Eigen build. The
// bindings fill the table once, with the GIL held (`load_from_scipy` in bindings.cpp); if SciPy
// is missing, every wrapper below falls back to an Eigen implementation (slower, same results
// up to round-off), so the extension works without SciPy.
//
// The Fortran integer of SciPy's Cython API is a C `int` (LP64 BLAS); the wrappers check that
// every dimension fits. Nothing here touches Python; all functions may run without the GIL.
#pragma once

#include <Eigen/Core>
#include <atomic>
#include <string>

namespace steerid {
namespace blas {

using Index = Eigen::Index;

// Signatures of scipy.linalg.cython_blas / cython_lapack (Fortran calling convention).
using dsyrk_t = void (*)(char* uplo, char* trans, int* n, int* k, double* alpha, double* a, int* lda, double* beta,
                         double* c, int* ldc);
using dgemm_t = void (*)(char* transa, char* transb, int* m, int* n, int* k, double* alpha, double* a, int* lda,
                         double* b, int* ldb, double* beta, double* c, int* ldc);
using dgeqrf_t = void (*)(int* m, int* n, double* a, int* lda, double* tau, double* work, int* lwork, int* info);
using dorgqr_t = void (*)(int* m, int* n, int* k, double* a, int* lda, double* tau, double* work, int* lwork,
                          int* info);
using dsyevd_t = void (*)(char* jobz, char* uplo, int* n, double* a, int* lda, double* w, double* work, int* lwork,
                          int* iwork, int* liwork, int* info);

struct Table {
    dsyrk_t dsyrk = nullptr;
    dgemm_t dgemm = nullptr;
    dgeqrf_t dgeqrf = nullptr;
    dorgqr_t dorgqr = nullptr;
    dsyevd_t dsyevd = nullptr;
    std::string source = "eigen";  // where the pointers came from, for diagnostics
};

// The process-wide table: an empty (all-Eigen) table until install() publishes a filled one.
// Tables are never freed, so a pointer read by a running kernel stays valid.
const Table& table();
void install(const Table& filled);

// Whether the BLAS pointers are used (true once loaded, unless disabled for testing).
bool enabled();
void set_enabled(bool on);

// Whether the tall-skinny QR and the small symmetric eigenproblem go to LAPACK (true) or to
// Eigen's single-threaded solvers (false, the default; see blas.cpp for why).
bool lapack_factorisations();
void set_lapack_factorisations(bool on);

// C_lower += alpha * A * A^T, where A is column-major (n, k) with leading dimension lda and C is
// column-major (n, n) with leading dimension ldc; only the lower triangle of C is referenced.
void syrk_lower(Index n, Index k, double alpha, const double* a, Index lda, double* c, Index ldc);

// C = alpha * op(A) * op(B) + beta * C, all column-major. op(A) is (m, k), op(B) is (k, n).
void gemm(bool trans_a, bool trans_b, Index m, Index n, Index k, double alpha, const double* a, Index lda,
          const double* b, Index ldb, double beta, double* c, Index ldc);

// Replaces the column-major (m, n) matrix Y (m >= n) by the thin Q factor of its Householder QR.
void orthonormalise_columns(Eigen::MatrixXd& y);

// Eigen-decomposition of the symmetric (n, n) matrix B (lower triangle read): values ascending,
// B overwritten by the orthonormal eigenvectors. Throws std::runtime_error if it fails to converge.
void symmetric_eigen(Eigen::MatrixXd& b, Eigen::VectorXd& values);

// Eigenvalues only (ascending) of the symmetric (n, n) matrix B (lower triangle read).
void symmetric_eigenvalues(const Eigen::MatrixXd& b, Eigen::VectorXd& values);

}  // namespace blas
}  // namespace steerid
