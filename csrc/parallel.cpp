#include "parallel.hpp"

#include <atomic>

#if defined(__linux__)
#include <sched.h>
#endif

namespace steerid {

namespace {
std::atomic<int> g_threads_override{0};
}  // namespace

void set_threads_override(int threads) { g_threads_override.store(std::max(threads, 0)); }
int threads_override() { return g_threads_override.load(std::memory_order_relaxed); }

int available_cpus() {
    const int forced = g_threads_override.load(std::memory_order_relaxed);
    if (forced > 0) {
        return std::min(forced, 16);
    }
    static const int cpus = []() {
        int n = 0;
#if defined(__linux__)
        cpu_set_t set;
        CPU_ZERO(&set);
        if (sched_getaffinity(0, sizeof(set), &set) == 0) {
            n = CPU_COUNT(&set);
        }
#endif
        if (n <= 0) {
            n = static_cast<int>(std::thread::hardware_concurrency());
        }
        return std::clamp(n, 1, 16);
    }();
    return cpus;
}

}  // namespace steerid
