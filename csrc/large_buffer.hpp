// Zero-initialised float64 buffers for the O(d^2) state and the O(rows * d) scratch.
//
// Large buffers (>= 4 MiB) are mapped anonymously on Linux, 2 MiB-aligned and marked
// MADV_HUGEPAGE: this machine's kernel only gives transparent huge pages on request
// ("madvise" mode), and with 4 KiB pages the first touch of a d = 4096 M2 (32 768 page faults
// inside the OpenBLAS threads) measured ~20 % of a whole covariance pass. Anonymous pages come
// zeroed from the kernel, so no memset is needed. Elsewhere (or for small sizes) it is calloc.
#pragma once

#include <cstddef>

namespace steerid {

class LargeBuffer {
   public:
    LargeBuffer() = default;
    // Zero-filled buffer of `count` doubles; throws std::bad_alloc when memory is short.
    explicit LargeBuffer(std::size_t count);
    ~LargeBuffer();
    LargeBuffer(LargeBuffer&& other) noexcept;
    LargeBuffer& operator=(LargeBuffer&& other) noexcept;
    LargeBuffer(const LargeBuffer&) = delete;
    LargeBuffer& operator=(const LargeBuffer&) = delete;

    double* data() const { return data_; }
    std::size_t size() const { return count_; }

   private:
    void release() noexcept;

    double* data_ = nullptr;
    std::size_t count_ = 0;
    void* mapping_ = nullptr;  // start of the mmap region (Linux large buffers), else nullptr
    std::size_t mapped_bytes_ = 0;
};

}  // namespace steerid
