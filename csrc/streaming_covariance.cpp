#include "streaming_covariance.hpp"

#include <algorithm>
#include <sstream>
#include <string>

namespace steerid {

namespace {

// Converts rows [0, m) of a row-major (m, d) source into the columns of a column-major (d, m)
// float64 destination (column i = row i) and, in the same pass, accumulates the column sums.
template <typename T, typename Convert>
void load_rows(const T* src, Index d, Index m, double* dst, double* sum, Convert convert) {
    std::fill(sum, sum + d, 0.0);
    for (Index i = 0; i < m; ++i) {
        const T* row = src + i * d;
        double* col = dst + i * d;
        for (Index j = 0; j < d; ++j) {
            const double v = convert(row[j]);
            col[j] = v;
            sum[j] += v;
        }
    }
}

void load_block(const RowMajorView& block, Index start, Index m, double* dst, double* sum) {
    const Index d = block.cols;
    switch (block.kind) {
        case ScalarKind::f16:
            load_rows(static_cast<const std::uint16_t*>(block.data) + start * d, d, m, dst, sum,
                      [](std::uint16_t h) { return half_to_double(h); });
            break;
        case ScalarKind::f32:
            load_rows(static_cast<const float*>(block.data) + start * d, d, m, dst, sum,
                      [](float x) { return static_cast<double>(x); });
            break;
        case ScalarKind::f64:
            load_rows(static_cast<const double*>(block.data) + start * d, d, m, dst, sum,
                      [](double x) { return x; });
            break;
    }
}

}  // namespace

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

void StreamingCovariance::update(const RowMajorView& block) {
    if (block.cols != d_) {
        throw std::invalid_argument("StreamingCovariance.update: block has " + std::to_string(block.cols) +
                                    " columns, accumulator has d=" + std::to_string(d_));
    }
    if (block.rows == 0) {
        return;
    }
    // Checked up front so that a rejected block leaves the state untouched.
    require_finite(block, "StreamingCovariance.update: block");

    const Index max_rows = std::min(block.rows, kBlockRows);
    Eigen::MatrixXd scratch(d_, max_rows);  // the only O(n d) buffer, bounded by kBlockRows
    Eigen::VectorXd block_mean(d_);

    std::lock_guard<std::mutex> lock(mutex_);
    for (Index start = 0; start < block.rows; start += kBlockRows) {
        const Index m = std::min(kBlockRows, block.rows - start);
        auto centred = scratch.leftCols(m);
        load_block(block, start, m, scratch.data(), block_mean.data());
        block_mean /= static_cast<double>(m);
        if (m > 1) {
            centred.colwise() -= block_mean;
        }
        add_centred_block(centred, block_mean, m);
    }
}

void StreamingCovariance::add_centred_block(const Eigen::Ref<const Eigen::MatrixXd>& centred,
                                            const Eigen::VectorXd& block_mean, std::int64_t block_count) {
    // The block's own scatter goes straight into the running M2 (lower triangle only); a single
    // row has zero scatter about its own mean.
    if (block_count > 1) {
        m2_.selfadjointView<Eigen::Lower>().rankUpdate(centred);
    }
    if (count_ == 0) {
        mean_ = block_mean;
        count_ = block_count;
        return;
    }
    const std::int64_t total = count_ + block_count;
    const double n_a = static_cast<double>(count_);
    const double n_b = static_cast<double>(block_count);
    const double n = static_cast<double>(total);
    const Eigen::VectorXd delta = block_mean - mean_;
    m2_.selfadjointView<Eigen::Lower>().rankUpdate(delta, n_a * n_b / n);
    mean_ += delta * (n_b / n);
    count_ = total;
}

void StreamingCovariance::merge(const StreamingCovariance& other) {
    if (other.d_ != d_) {
        throw std::invalid_argument("StreamingCovariance.merge: cannot merge an accumulator with d=" +
                                    std::to_string(other.d_) + " into one with d=" + std::to_string(d_) +
                                    "; expected equal dimensions");
    }
    if (&other == this) {
        // Chan's formula with identical halves: delta = 0, so M2 doubles and the mean stays.
        std::lock_guard<std::mutex> lock(mutex_);
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
    const Eigen::VectorXd delta = other.mean_ - mean_;
    m2_.triangularView<Eigen::Lower>() += other.m2_;
    m2_.selfadjointView<Eigen::Lower>().rankUpdate(delta, n_a * n_b / n);
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
