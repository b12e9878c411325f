#include "large_buffer.hpp"

#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace steerid {

namespace {
constexpr std::size_t kHugePage = std::size_t(2) << 20;
constexpr std::size_t kMapThreshold = std::size_t(4) << 20;
}  // namespace

LargeBuffer::LargeBuffer(std::size_t count) : count_(count) {
    if (count == 0) {
        return;
    }
    if (count > SIZE_MAX / sizeof(double) - kHugePage) {
        throw std::bad_alloc();
    }
    const std::size_t bytes = count * sizeof(double);
#if defined(__linux__)
    if (bytes >= kMapThreshold) {
        // Over-map by one huge page so that the used part can start on a 2 MiB boundary.
        const std::size_t total = bytes + kHugePage;
        void* region = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (region == MAP_FAILED) {
            throw std::bad_alloc();
        }
        const auto start = reinterpret_cast<std::uintptr_t>(region);
        const std::uintptr_t aligned = (start + kHugePage - 1) & ~(static_cast<std::uintptr_t>(kHugePage) - 1);
#ifdef MADV_HUGEPAGE
        madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);  // advisory; failure is harmless
#endif
        mapping_ = region;
        mapped_bytes_ = total;
        data_ = reinterpret_cast<double*>(aligned);
        return;
    }
#endif
    data_ = static_cast<double*>(std::calloc(count, sizeof(double)));
    if (data_ == nullptr) {
        throw std::bad_alloc();
    }
}

LargeBuffer::~LargeBuffer() { release(); }

LargeBuffer::LargeBuffer(LargeBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      count_(std::exchange(other.count_, 0)),
      mapping_(std::exchange(other.mapping_, nullptr)),
      mapped_bytes_(std::exchange(other.mapped_bytes_, 0)) {}

LargeBuffer& LargeBuffer::operator=(LargeBuffer&& other) noexcept {
    if (this != &other) {
        release();
        data_ = std::exchange(other.data_, nullptr);
        count_ = std::exchange(other.count_, 0);
        mapping_ = std::exchange(other.mapping_, nullptr);
        mapped_bytes_ = std::exchange(other.mapped_bytes_, 0);
    }
    return *this;
}

void LargeBuffer::release() noexcept {
#if defined(__linux__)
    if (mapping_ != nullptr) {
        munmap(mapping_, mapped_bytes_);
        mapping_ = nullptr;
        data_ = nullptr;
        return;
    }
#endif
    std::free(data_);
    data_ = nullptr;
}

}  // namespace steerid
