#include "streaming_covariance.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "blas.hpp"
#include "convert.hpp"
#include "parallel.hpp"

namespace steerid {

namespace {

std::atomic<Index> g_block_rows_override{0};

constexpr double kOverflowGuard = 0.0625 * std::numeric_limits<double>::max();

// Column sums and sums of squares of all rows, split over the available cores.
void column_moments(const RowMajorView& block, const Index* rows, Index n, Eigen::VectorXd& sum,
                    Eigen::VectorXd& sumsq) {
    const Index d = block.cols;
    const int parts = available_cpus();
    Eigen::MatrixXd partial_sum = Eigen::MatrixXd::Zero(d, parts);
    Eigen::MatrixXd partial_sq = Eigen::MatrixXd::Zero(d, parts);
    parallel_for(
        n, std::max<Index>(1, StreamingCovariance::kParallelElements / d),
        [&](Index t0, Index t1, Index part) {
            accumulate_moments(block, rows, t0, t1, partial_sum.col(part).data(), partial_sq.col(part).data());
        },
        parts);
    sum = partial_sum.rowwise().sum();
    sumsq = partial_sq.rowwise().sum();
}

// Exact column sums of squared deviations from mu (only needed when the cheap bound overflows).
Eigen::VectorXd centred_sumsq(const RowMajorView& block, const Index* rows, Index n, const Eigen::VectorXd& mu) {
    const Index d = block.cols;
    const int parts = available_cpus();
    Eigen::MatrixXd partial = Eigen::MatrixXd::Zero(d, parts);
    parallel_for(
        n, std::max<Index>(1, StreamingCovariance::kParallelElements / d),
        [&](Index t0, Index t1, Index part) {
            accumulate_centred_sumsq(block, rows, t0, t1, mu.data(), partial.col(part).data());
        },
        parts);
    return partial.rowwise().sum();
}

bool all_below_guard(const Eigen::VectorXd& v) {
    for (Index i = 0; i < v.size(); ++i) {
        if (!(std::abs(v[i]) < kOverflowGuard)) {  // also false for NaN
            return false;
        }
    }
    return true;
}

[[noreturn]] void throw_overflow(const std::string& who, const std::string& what) {
    throw std::invalid_argument(who + ": " + what +
                                " would overflow float64 (values too large in magnitude, e.g. ~1e154 or more); "
                                "rescale the data before accumulating");
}

}  // namespace

Index StreamingCovariance::block_rows(Index d) {
    const Index forced = g_block_rows_override.load(std::memory_order_relaxed);
    if (forced > 0) {
        return forced;
    }
    // Rows converted and rank-updated together. Measured on 2 cores (benchmarks/README.md):
    // dsyrk with k = 1024 already runs at the k = 4096 rate for d = 576...4096, 1024-row blocks
    // were the fastest at d = 576 (the float64 block, 4.5 MiB, stays in cache) and tied at
    // d >= 2048, and they keep the scratch small (rows * d * 8 bytes: 32 MiB at d = 4096).
    (void)d;
    return 1024;
}

int StreamingCovariance::conversion_threads(Index d) {
    // Measured (benchmarks/README.md): between two dsyrk calls, OpenBLAS's worker thread is
    // still spinning on the second core, so at d = 576 a second conversion thread lost time
    // (median 70 vs 82 GFLOP/s); from d = 2048 on it gained 1 %. The pass-1 moments, which run
    // once per update over all its rows, always use every core.
    if (threads_override() > 0) {
        return available_cpus();
    }
    return d >= 1024 ? available_cpus() : 1;
}

void StreamingCovariance::set_block_rows_override(Index rows) { g_block_rows_override.store(std::max<Index>(rows, 0)); }

StreamingCovariance::StreamingCovariance(Index d) : d_(d) {
    if (d < 1) {
        throw std::invalid_argument("StreamingCovariance: d=" + std::to_string(d) +
                                    " is invalid; expected a dimension d >= 1");
    }
    mean_ = Eigen::VectorXd::Zero(d);
    m2_ = LargeBuffer(static_cast<std::size_t>(d) * static_cast<std::size_t>(d));
}

std::int64_t StreamingCovariance::count() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return count_;
}

void StreamingCovariance::update(const RowMajorView& block, const std::uint8_t* where) {
    const std::string who = "StreamingCovariance.update";
    if (block.cols != d_) {
        throw std::invalid_argument(who + ": block has " + std::to_string(block.cols) +
                                    " columns, accumulator has d=" + std::to_string(d_));
    }
    // A row mask becomes a list of the selected rows (8 bytes per selected row).
    std::vector<Index> selected;
    if (where != nullptr) {
        for (Index i = 0; i < block.rows; ++i) {
            if (where[i]) {
                selected.push_back(i);
            }
        }
    }
    const Index* rows_list = where != nullptr ? selected.data() : nullptr;
    const Index n = where != nullptr ? static_cast<Index>(selected.size()) : block.rows;
    if (n == 0) {
        return;
    }
    // Pass 1 (no lock; the block is only read): column sums and sums of squares. Any NaN/Inf
    // makes its column sum non-finite, so the clean path needs no separate finiteness scan; the
    // exact scan (count and first position) runs only once something is wrong. Everything is
    // validated before the state changes, so a rejected block leaves the accumulator untouched.
    Eigen::VectorXd sum;
    Eigen::VectorXd sumsq;
    column_moments(block, rows_list, n, sum, sumsq);
    if (!sum.allFinite()) {
        require_finite(block, who + ": block", where);
        throw_overflow(who, "the column sums of the block");
    }
    const Eigen::VectorXd block_mean = sum / static_cast<double>(n);
    Eigen::VectorXd scatter_bound = sumsq;  // sum (x - mean)^2 <= sum x^2
    if (!all_below_guard(scatter_bound)) {
        scatter_bound = centred_sumsq(block, rows_list, n, block_mean);
        if (!all_below_guard(scatter_bound)) {
            throw_overflow(who, "the scatter of the block");
        }
    }

    std::lock_guard<std::mutex> lock(mutex_);
    // The only O(rows d) buffer, bounded by block_rows(d) whatever n is; (re)allocated before
    // the state is touched so that a MemoryError leaves it intact, then kept for later updates.
    const Index rows = std::min(n, block_rows(d_));
    const std::size_t needed = static_cast<std::size_t>(d_) * static_cast<std::size_t>(rows);
    if (scratch_.size() < needed) {
        scratch_ = LargeBuffer();  // free the old one first
        scratch_ = LargeBuffer(needed);
    }
    MatrixMap m2 = this->m2();
    const std::int64_t total = count_ + static_cast<std::int64_t>(n);
    const double n_a = static_cast<double>(count_);
    const double n_b = static_cast<double>(n);
    const double weight = count_ == 0 ? 0.0 : n_a * n_b / static_cast<double>(total);
    const Eigen::VectorXd delta = count_ == 0 ? Eigen::VectorXd::Zero(d_) : Eigen::VectorXd(block_mean - mean_);
    {
        const Eigen::VectorXd predicted = m2.diagonal() + scatter_bound + weight * delta.cwiseAbs2();
        if (!all_below_guard(predicted) || !all_below_guard(delta)) {
            throw_overflow(who, "adding the block to the accumulated scatter");
        }
    }

    // Pass 2: convert to float64 and centre (all cores), then add the rows' scatter to the lower
    // triangle of M2 with one symmetric rank-k update (BLAS dsyrk) per block of rows.
    // Chan's merge term w * delta delta^T (w = n_a n_b / (n_a + n_b)) is folded into the same
    // dsyrk calls by centring on c = block_mean - t * delta with t^2 = n_a / (n_a + n_b): then
    // sum (x - c)(x - c)^T = S_b + n_b t^2 delta delta^T = S_b + w delta delta^T exactly, since
    // sum (x - block_mean) = 0. No extra column, no separate O(d^2) pass over M2 (a dsyrk with
    // k = 1 costs ~8 ms at d >= 2048 here), and the scratch stays rows * d.
    const Eigen::VectorXd centre =
        count_ == 0 ? block_mean : Eigen::VectorXd(block_mean - std::sqrt(n_a / static_cast<double>(total)) * delta);
    double* dst = scratch_.data();
    for (Index start = 0; start < n; start += rows) {
        const Index m = std::min(rows, n - start);
        parallel_for(
            m, std::max<Index>(1, kParallelElements / d_),
            [&](Index r0, Index r1, Index) {
                convert_centred(block, rows_list, start + r0, start + r1, centre.data(), dst + r0 * d_);
            },
            conversion_threads(d_));
        blas::syrk_lower(d_, m, 1.0, dst, d_, m2.data(), d_);
    }
    if (count_ == 0) {
        mean_ = block_mean;
    } else {
        mean_ += delta * (n_b / static_cast<double>(total));
    }
    count_ = total;
}

void StreamingCovariance::merge(const StreamingCovariance& other) {
    const std::string who = "StreamingCovariance.merge";
    if (other.d_ != d_) {
        throw std::invalid_argument(who + ": cannot merge an accumulator with d=" + std::to_string(other.d_) +
                                    " into one with d=" + std::to_string(d_) + "; expected equal dimensions");
    }
    if (&other == this) {
        // Chan's formula with identical halves: delta = 0, so M2 doubles and the mean stays.
        std::lock_guard<std::mutex> lock(mutex_);
        MatrixMap m2 = this->m2();
        if (!all_below_guard(2.0 * m2.diagonal())) {
            throw_overflow(who, "doubling the scatter");
        }
        m2.triangularView<Eigen::Lower>() *= 2.0;
        count_ *= 2;
        return;
    }
    std::scoped_lock lock(mutex_, other.mutex_);
    if (other.count_ == 0) {
        return;
    }
    MatrixMap m2 = this->m2();
    const MatrixMap other_m2 = other.m2();
    if (count_ == 0) {
        mean_ = other.mean_;
        m2.triangularView<Eigen::Lower>() = other_m2;
        count_ = other.count_;
        return;
    }
    const std::int64_t total = count_ + other.count_;
    const double n_a = static_cast<double>(count_);
    const double n_b = static_cast<double>(other.count_);
    const double n = static_cast<double>(total);
    const double weight = n_a * n_b / n;
    const Eigen::VectorXd delta = other.mean_ - mean_;
    {
        const Eigen::VectorXd predicted = m2.diagonal() + other_m2.diagonal() + weight * delta.cwiseAbs2();
        if (!all_below_guard(predicted) || !all_below_guard(delta)) {
            throw_overflow(who, "merging the two scatters");
        }
    }
    m2.triangularView<Eigen::Lower>() += other_m2;
    m2.selfadjointView<Eigen::Lower>().rankUpdate(delta, weight);
    mean_ += delta * (n_b / n);
    count_ = total;
}

void StreamingCovariance::copy_mean(double* out) const {
    std::lock_guard<std::mutex> lock(mutex_);
    Eigen::Map<Eigen::VectorXd>(out, d_) = mean_;
}

void StreamingCovariance::write_symmetric(double* out, double scale) const {
    // The output is symmetric, so its row-major and column-major readings coincide. Tiles of the
    // lower triangle are scaled into place and mirrored, tile column by tile column over the cores.
    Eigen::Map<Eigen::MatrixXd> full(out, d_, d_);
    const MatrixMap m2 = this->m2();
    constexpr Index tile = 64;
    const Index tiles = (d_ + tile - 1) / tile;
    // Tile column t holds (tiles - t) tiles: pairing t with tiles - 1 - t balances the work.
    const Index pairs = (tiles + 1) / 2;
    auto do_column = [&](Index t) {
        const Index jb = t * tile;
        const Index j_end = std::min(jb + tile, d_);
        for (Index j = jb; j < j_end; ++j) {
            full.col(j).tail(d_ - j) = m2.col(j).tail(d_ - j) * scale;
        }
        for (Index ib = jb; ib < d_; ib += tile) {
            const Index i_end = std::min(ib + tile, d_);
            for (Index i = ib; i < i_end; ++i) {
                for (Index j = jb; j < std::min(j_end, i); ++j) {
                    full(j, i) = full(i, j);
                }
            }
        }
    };
    parallel_for(pairs, std::max<Index>(1, kParallelElements / std::max<Index>(1, d_ * tile)),
                 [&](Index p0, Index p1, Index) {
                     for (Index p = p0; p < p1; ++p) {
                         do_column(p);
                         if (tiles - 1 - p != p) {
                             do_column(tiles - 1 - p);
                         }
                     }
                 });
}

void StreamingCovariance::write_covariance(double* out, std::int64_t ddof) const {
    if (ddof < 0) {
        throw std::invalid_argument("StreamingCovariance.covariance: ddof=" + std::to_string(ddof) +
                                    " is invalid; expected ddof >= 0");
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (count_ <= ddof) {
        throw std::invalid_argument("StreamingCovariance.covariance: count=" + std::to_string(count_) +
                                    " observations are too few for ddof=" + std::to_string(ddof) +
                                    "; expected count > ddof");
    }
    write_symmetric(out, 1.0 / static_cast<double>(count_ - ddof));
}

std::int64_t StreamingCovariance::snapshot(double* mean_out, double* m2_out) const {
    std::lock_guard<std::mutex> lock(mutex_);
    Eigen::Map<Eigen::VectorXd>(mean_out, d_) = mean_;
    write_symmetric(m2_out, 1.0);
    return count_;
}

void StreamingCovariance::restore(std::int64_t count, const double* mean, const double* m2) {
    const std::string who = "StreamingCovariance.from_state: ";
    if (count < 0) {
        throw std::invalid_argument(who + "count=" + std::to_string(count) + " is invalid; expected count >= 0");
    }
    Eigen::VectorXd new_mean = Eigen::Map<const Eigen::VectorXd>(mean, d_);
    // Row-major buffer -> column-major matrix; the lower triangle (row >= col) is what counts.
    LargeBuffer new_buffer(static_cast<std::size_t>(d_) * static_cast<std::size_t>(d_));
    MatrixMap new_m2(new_buffer.data(), d_, d_);
    new_m2 = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(m2, d_, d_);
    bool any_nonzero = false;
    for (Index j = 0; j < d_; ++j) {
        any_nonzero = any_nonzero || new_mean[j] != 0.0;
        if (!std::isfinite(new_mean[j])) {
            throw std::invalid_argument(who + "mean[" + std::to_string(j) + "] is not finite; expected finite values");
        }
        for (Index i = j; i < d_; ++i) {
            if (!std::isfinite(new_m2(i, j))) {
                throw std::invalid_argument(who + "m2[" + std::to_string(i) + ", " + std::to_string(j) +
                                            "] is not finite; expected finite values");
            }
            any_nonzero = any_nonzero || new_m2(i, j) != 0.0;
        }
        if (new_m2(j, j) < 0.0) {
            std::ostringstream msg;
            msg << who << "m2[" << j << ", " << j << "]=" << new_m2(j, j)
                << " is negative; expected a positive semi-definite scatter matrix";
            throw std::invalid_argument(msg.str());
        }
    }
    if (count == 0 && any_nonzero) {
        throw std::invalid_argument(who + "count=0 but mean or m2 is non-zero; expected zeros for an empty state");
    }
    std::lock_guard<std::mutex> lock(mutex_);
    count_ = count;
    mean_.swap(new_mean);
    m2_ = std::move(new_buffer);
}

}  // namespace steerid
