// Streaming covariance of (n, d) row blocks, accumulated in float64 with Chan's parallel merge.
//
// State: count n, mean (d), and M2 = sum_i (x_i - mean)(x_i - mean)^T, of which only the lower
// triangle is kept up to date. Each incoming block is centred on its own mean, its scatter is
// added with a symmetric rank-k update of the lower triangle, and the shift between the block
// mean and the running mean is added as the rank-1 term delta delta^T * n_a n_b / n.
//
// Every public method takes the accumulator's mutex, so the Python bindings can release the GIL
// and several threads may share one accumulator safely. Nothing here touches Python.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <mutex>

#include "dense_block.hpp"
#include "large_buffer.hpp"

namespace steerid {

class StreamingCovariance {
   public:
    // Rows of an update that are converted, centred and rank-updated together. Bounds the
    // scratch memory of one update to block_rows(d) * d * 8 bytes, whatever the size of the input.
    static Index block_rows(Index d);
    // Threads of the float64 conversion pass for dimension d.
    static int conversion_threads(Index d);
    // Testing/tuning hook: force block_rows() (0 restores the default).
    static void set_block_rows_override(Index rows);
    // Below this many elements a memory-bound pass runs on one thread.
    static constexpr Index kParallelElements = Index(1) << 16;

    explicit StreamingCovariance(Index d);
    StreamingCovariance(const StreamingCovariance&) = delete;
    StreamingCovariance& operator=(const StreamingCovariance&) = delete;

    Index dim() const { return d_; }
    std::int64_t count() const;

    // Adds the rows of `block` (block.cols must equal dim()), or only the rows i with
    // where[i] != 0 when a mask of block.rows bytes is given. Throws std::invalid_argument,
    // before changing any state, if a selected row holds a NaN or Inf or the scatter would overflow.
    void update(const RowMajorView& block, const std::uint8_t* where = nullptr);

    // Adds the data seen by `other` (same dim; may be *this).
    void merge(const StreamingCovariance& other);

    // Copies the mean into out[0..d).
    void copy_mean(double* out) const;

    // Writes M2 / (count - ddof) as a full symmetric row-major (d, d) matrix. Throws
    // std::invalid_argument if ddof < 0 or count <= ddof.
    void write_covariance(double* out, std::int64_t ddof) const;

    // Consistent snapshot of (count, mean, symmetric M2) for checkpoints; returns the count.
    std::int64_t snapshot(double* mean_out, double* m2_out) const;

    // Replaces the state. `m2` is a row-major (d, d) buffer of which only the lower triangle
    // (row >= col) is read. Throws std::invalid_argument on inconsistent values.
    void restore(std::int64_t count, const double* mean, const double* m2);

   private:
    using MatrixMap = Eigen::Map<Eigen::MatrixXd, Eigen::Aligned16>;
    MatrixMap m2() const { return MatrixMap(m2_.data(), d_, d_); }
    void write_symmetric(double* out, double scale) const;

    const Index d_;
    std::int64_t count_ = 0;
    Eigen::VectorXd mean_;
    // Column-major (d, d); only the lower triangle (i >= j) is meaningful. Huge-page backed.
    LargeBuffer m2_;
    // Float64 scratch of the rank-k updates: min(rows, block_rows(d)) columns of d. Grown when a
    // larger update arrives and kept, so that a stream of updates pays its page faults once.
    LargeBuffer scratch_;
    mutable std::mutex mutex_;
};

}  // namespace steerid
