#include "streaming_covariance.hpp"

#include "blas.hpp"
#include "convert.hpp"
#include "parallel.hpp"

#include <atomic>
#include <vector>
#include <cmath>
#include <limits>

#include <algorithm>
#include <sstream>
#include <string>

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
    parallel_for(n, std::max<Index>(1, StreamingCovariance::kParallelElements / d),
                 [&](Index t0, Index t1, Index part) {
                     accumulate_moments(block, rows, t0, t1, partial_sum.col(part).data(),
                                        partial_sq.col(part).data());
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
    parallel_for(n, std::max<Index>(1, StreamingCovariance::kParallelElements / d),
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
    // Rows converted and rank-updated together: large enough for dsyrk to reach its peak
    // (k >= 1024) and to amortise thread start-up, small enough that the float64 scratch
    // (rows * d * 8 bytes) stays a few tens of MiB: 4096 rows at d <= 1024, 2048 at d <= 2048,
    // 1024 above (32 MiB at d = 4096).
    if (d <= 1024) {
        return 4096;
    }
    if (d <= 2048) {
        return 2048;
    }
    return 1024;
}

void StreamingCovariance::set_block_rows_override(Index rows) { g_block_rows_override.store(std::max<Index>(rows, 0)); }

StreamingCovariance::StreamingCovariance(Index d) : d_(d) {
    if (d < 1) {
        throw std::invalid_argument("StreamingCovariance: d=" + std::to_string(d) +
                                    " is invalid; expected a dimension d >= 1");
    }
    mean_ = Eigen::VectorXd::Zero(d);
    m2_ = Eigen::MatrixXd::Zero(d, d);
}

std::int64_t StreamingCovariance::count() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return count_;
}

void StreamingCovariance::update(const RowMajorView& block, const std::uint8_t* where) {
    const std::string who = "StreamingCovariance.update";
    if (block.cols != d_) {
        throw std::invalid_argument(who + ": block has " + std::to_string(block.cols) + " columns, accumulator has d=" +
                                    std::to_string(d_));
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

    // The only O(n d) buffer, bounded by block_rows(d) whatever n is; allocated before the
    // state is touched so that a MemoryError leaves it intact.
    const Index rows = std::min(n, block_rows(d_));
    Eigen::MatrixXd scratch(d_, n > 1 ? rows : 0);

    std::lock_guard<std::mutex> lock(mutex_);
    const std::int64_t total = count_ + static_cast<std::int64_t>(n);
    const double n_a = static_cast<double>(count_);
    const double n_b = static_cast<double>(n);
    const double weight = count_ == 0 ? 0.0 : n_a * n_b / static_cast<double>(total);
    const Eigen::VectorXd delta = count_ == 0 ? Eigen::VectorXd::Zero(d_) : Eigen::VectorXd(block_mean - mean_);
    {
        const Eigen::VectorXd predicted =
            m2_.diagonal() + scatter_bound + weight * delta.cwiseAbs2();
        if (!all_below_guard(predicted) || !all_below_guard(delta)) {
            throw_overflow(who, "adding the block to the accumulated scatter");
        }
    }

    // Pass 2: convert to float64 and centre on the block mean (both cores), then add the
    // block's scatter to the lower triangle of M2 with one symmetric rank-k update (BLAS dsyrk).
    // A single row has zero scatter about its own mean.
    if (n > 1) {
        for (Index start = 0; start < n; start += rows) {
            const Index m = std::min(rows, n - start);
            double* dst = scratch.data();
            parallel_for(m, std::max<Index>(1, kParallelElements / d_), [&](Index r0, Index r1, Index) {
                convert_centred(block, rows_list, start + r0, start + r1, block_mean.data(), dst + r0 * d_);
            });
            blas::syrk_lower(d_, m, 1.0, dst, d_, m2_.data(), d_);
        }
    }
    // Chan's merge of (count_, mean_, M2) with (n, block_mean, block scatter).
    if (count_ == 0) {
        mean_ = block_mean;
    } else {
        m2_.selfadjointView<Eigen::Lower>().rankUpdate(delta, weight);
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
        if (!all_below_guard(2.0 * m2_.diagonal())) {
            throw_overflow(who, "doubling the scatter");
        }
        m2_.triangularView<Eigen::Lower>() *= 2.0;
        count_ *= 2;
        return;
    }
    std::scoped_lock lock(mutex_, other.mutex_);
    if (other.count_ == 0) {
        return;
    }
    if (count_ == 0) {
        mean_ = other.mean_;
        m2_.triangularView<Eigen::Lower>() = other.m2_;
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
        const Eigen::VectorXd predicted = m2_.diagonal() + other.m2_.diagonal() + weight * delta.cwiseAbs2();
        if (!all_below_guard(predicted) || !all_below_guard(delta)) {
            throw_overflow(who, "merging the two scatters");
        }
    }
    m2_.triangularView<Eigen::Lower>() += other.m2_;
    m2_.selfadjointView<Eigen::Lower>().rankUpdate(delta, weight);
    mean_ += delta * (n_b / n);
    count_ = total;
}

void StreamingCovariance::copy_mean(double* out) const {
    std::lock_guard<std::mutex> lock(mutex_);
    Eigen::Map<Eigen::VectorXd>(out, d_) = mean_;
}

void StreamingCovariance::write_symmetric(double* out, double scale) const {
    // The output is symmetric, so its row-major and column-major readings coincide.
    Eigen::Map<Eigen::MatrixXd> full(out, d_, d_);
    for (Index j = 0; j < d_; ++j) {
        full.col(j).tail(d_ - j) = m2_.col(j).tail(d_ - j) * scale;
    }
    // Mirror the lower triangle into the upper one, tile by tile to stay in cache.
    constexpr Index tile = 64;
    for (Index jb = 0; jb < d_; jb += tile) {
        const Index j_end = std::min(jb + tile, d_);
        for (Index ib = jb; ib < d_; ib += tile) {
            const Index i_end = std::min(ib + tile, d_);
            for (Index i = ib; i < i_end; ++i) {
                for (Index j = jb; j < std::min(j_end, i); ++j) {
                    full(j, i) = full(i, j);
                }
            }
        }
    }
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
    Eigen::MatrixXd new_m2 =
        Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(m2, d_, d_);
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
    m2_.swap(new_m2);
}

}  // namespace steerid
