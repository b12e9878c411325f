// Raw views of caller-owned row-major matrices (numpy buffers) and the element helpers shared by
// the streaming covariance and the randomized eigensolver. Nothing here touches Python, so every
// function may run with the GIL released; errors are reported as std::invalid_argument, which
// pybind11 turns into ValueError.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace steerid {

using Index = Eigen::Index;

// Element types accepted from numpy. float16 is read from its IEEE binary16 bit pattern.
enum class ScalarKind { f16, f32, f64 };

inline const char* scalar_kind_name(ScalarKind kind) {
    switch (kind) {
        case ScalarKind::f16:
            return "float16";
        case ScalarKind::f32:
            return "float32";
        case ScalarKind::f64:
            return "float64";
    }
    return "?";
}

// A C-contiguous (rows, cols) matrix owned by the caller; element (i, j) is at data[i * cols + j].
struct RowMajorView {
    const void* data = nullptr;
    Index rows = 0;
    Index cols = 0;
    ScalarKind kind = ScalarKind::f64;
};

// IEEE binary16 -> double, exact for every finite half (including subnormals).
inline double half_to_double(std::uint16_t h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t exponent = (h >> 10) & 0x1Fu;
    const std::uint32_t mantissa = h & 0x3FFu;
    float value;
    if (exponent == 0) {
        // Zero or subnormal: mantissa * 2^-24 is exact in float.
        value = static_cast<float>(mantissa) * 5.9604644775390625e-08f;
        return sign ? -static_cast<double>(value) : static_cast<double>(value);
    }
    std::uint32_t bits;
    if (exponent == 31) {
        bits = sign | 0x7F800000u | (mantissa << 13);  // Inf or NaN
    } else {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);  // rebias 15 -> 127
    }
    std::memcpy(&value, &bits, sizeof(value));
    return static_cast<double>(value);
}

inline bool half_is_finite(std::uint16_t h) { return (h & 0x7C00u) != 0x7C00u; }

// Counts the non-finite entries of a row-major view (only rows with where[i] != 0 when a row mask
// is given) and throws std::invalid_argument naming how many there are and the first (row, col).
// `what` names the argument in the message.
void require_finite(const RowMajorView& view, const std::string& what, const std::uint8_t* where = nullptr);

}  // namespace steerid
