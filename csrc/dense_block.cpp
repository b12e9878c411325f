#include "dense_block.hpp"

#include <sstream>

namespace steerid {

namespace {

// Returns the number of non-finite entries; sets first_row/first_col to the first one (row-major).
template <typename T>
std::int64_t count_nonfinite(const T* data, Index rows, Index cols, const std::uint8_t* where, Index& first_row,
                             Index& first_col) {
    std::int64_t bad = 0;
    for (Index i = 0; i < rows; ++i) {
        if (where != nullptr && !where[i]) {
            continue;
        }
        const T* row = data + i * cols;
        Index row_bad = 0;
        for (Index j = 0; j < cols; ++j) {
            row_bad += std::isfinite(row[j]) ? 0 : 1;  // branch-free so the clean path vectorises
        }
        if (row_bad != 0) {
            if (bad == 0) {
                for (Index j = 0; j < cols; ++j) {
                    if (!std::isfinite(row[j])) {
                        first_row = i;
                        first_col = j;
                        break;
                    }
                }
            }
            bad += row_bad;
        }
    }
    return bad;
}

std::int64_t count_nonfinite_half(const std::uint16_t* data, Index rows, Index cols, const std::uint8_t* where,
                                  Index& first_row, Index& first_col) {
    std::int64_t bad = 0;
    for (Index i = 0; i < rows; ++i) {
        if (where != nullptr && !where[i]) {
            continue;
        }
        const std::uint16_t* row = data + i * cols;
        Index row_bad = 0;
        for (Index j = 0; j < cols; ++j) {
            row_bad += half_is_finite(row[j]) ? 0 : 1;
        }
        if (row_bad != 0) {
            if (bad == 0) {
                for (Index j = 0; j < cols; ++j) {
                    if (!half_is_finite(row[j])) {
                        first_row = i;
                        first_col = j;
                        break;
                    }
                }
            }
            bad += row_bad;
        }
    }
    return bad;
}

}  // namespace

void require_finite(const RowMajorView& view, const std::string& what, const std::uint8_t* where) {
    Index first_row = -1;
    Index first_col = -1;
    std::int64_t bad = 0;
    switch (view.kind) {
        case ScalarKind::f16:
            bad = count_nonfinite_half(static_cast<const std::uint16_t*>(view.data), view.rows, view.cols, where,
                                       first_row, first_col);
            break;
        case ScalarKind::f32:
            bad = count_nonfinite(static_cast<const float*>(view.data), view.rows, view.cols, where, first_row,
                                  first_col);
            break;
        case ScalarKind::f64:
            bad = count_nonfinite(static_cast<const double*>(view.data), view.rows, view.cols, where, first_row,
                                  first_col);
            break;
    }
    if (bad != 0) {
        std::ostringstream msg;
        msg << what << " contains " << bad << " non-finite value" << (bad == 1 ? "" : "s")
            << " (NaN or Inf); the first is at (row " << first_row << ", col " << first_col
            << "); expected only finite values";
        throw std::invalid_argument(msg.str());
    }
}

}  // namespace steerid
